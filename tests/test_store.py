from __future__ import annotations

import logging
import os

import msgpack
import pytest
from django.db import models
from django.db.migrations.state import ModelState, ProjectState

from statecache import codec
from statecache import store as store_module
from statecache.snapshots import MAX_DEPTH, Snapshots, model_key
from statecache.store import BLOB, MANIFEST, Store

CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


def test_objects_are_content_addressed_and_verified(tmp_path):
    store = Store(tmp_path)
    digest, new = store.put_object(BLOB, b"payload")
    assert new and store.get_object(digest, BLOB) == b"payload"
    assert store.put_object(BLOB, b"payload") == (digest, False)
    assert store.object_path(digest).parent.parent.name == "objects"
    assert str(store.object_path(digest)).startswith(
        str(tmp_path / f"v{store_module.STORE_VERSION}")
    )
    # The wrong kind is not returned as another.
    assert store.get_object(digest, MANIFEST) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],
        lambda data: b"",
        lambda data: data[:5] + bytes([data[5] ^ 1]) + data[6:],
        lambda data: data + b"x",
    ],
    ids=["truncated", "empty", "bit-flip", "appended"],
)
def test_a_damaged_object_is_a_miss_and_is_removed(tmp_path, damage, caplog):
    store = Store(tmp_path)
    digest, _ = store.put_object(BLOB, b"some payload bytes")
    path = store.object_path(digest)
    path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="statecache"):
        assert store.get_object(digest, BLOB) is None
        assert store.get_object(digest, BLOB) is None
    assert not path.exists(), "removed, so that the next write heals it"
    assert len([r for r in caplog.records if "corrupt" in r.getMessage()]) == 1, "logged once"
    assert store.put_object(BLOB, b"some payload bytes") == (digest, True)


@pytest.mark.parametrize("damage", [lambda d: d[:-1], lambda d: b"", lambda d: d[:-1] + b"\0"])
def test_a_damaged_ref_is_a_miss(tmp_path, damage):
    store = Store(tmp_path)
    key, target = b"k" * 16, b"t" * 16
    assert store.set_ref(key, target, 1.5)
    assert store.get_ref(key) == (target, 1.5)
    path = store.ref_path(key)
    path.write_bytes(damage(path.read_bytes()))
    assert store.get_ref(key) is None


def test_a_ref_copied_to_another_key_is_refused(tmp_path):
    store = Store(tmp_path)
    store.set_ref(b"a" * 16, b"t" * 16)
    store.ref_path(b"b" * 16).parent.mkdir(parents=True, exist_ok=True)
    store.ref_path(b"b" * 16).write_bytes(store.ref_path(b"a" * 16).read_bytes())
    assert store.get_ref(b"b" * 16) is None


def test_an_unwritable_directory_turns_the_store_read_only(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = Store(blocker / "cache")
    with caplog.at_level(logging.WARNING, logger="statecache"):
        assert store.put_object(BLOB, b"x")[1] is False
        assert store.set_ref(b"k" * 16, b"t" * 16) is False
    assert store.writable is False
    assert len(caplog.records) == 1


def test_temporary_files_never_look_like_entries(tmp_path):
    store = Store(tmp_path)
    digest, _ = store.put_object(BLOB, b"payload")
    leftovers = list((store.base / "tmp").iterdir())
    assert leftovers == []
    assert sorted(p.name for p in store.base.iterdir()) == ["lock", "objects", "tmp"]
    assert (tmp_path / "CACHEDIR.TAG").read_bytes().startswith(CACHEDIR_SIGNATURE)
    assert digest.hex()[2:] in os.listdir(store.object_path(digest).parent)


def test_snapshots_round_trip_a_project_state(tmp_path, project_state):
    snapshots = Snapshots(Store(tmp_path))
    key = b"k" * 16
    assert snapshots.save(key, project_state, cost=2.0) is not None
    loaded, cost = Snapshots(Store(tmp_path)).load(key, project_state.real_apps)
    assert loaded == project_state and cost == 2.0
    assert list(loaded.models) == list(project_state.models)


def test_delta_manifests_resolve_across_many_links(tmp_path, project_state):
    snapshots = Snapshots(Store(tmp_path))
    state = project_state.clone()
    base = None
    keys = []
    removed = list(state.models)
    for i in range(MAX_DEPTH * 2 + 3):
        key = i.to_bytes(16, "big")
        keys.append((key, list(state.models)))
        base = snapshots.save(key, state, base=base, changed=set())
        assert base is not None and base.depth <= MAX_DEPTH
        if i < len(removed) - 1:
            state.remove_model(*removed[i])
    fresh = Snapshots(Store(tmp_path))
    for key, names in keys:
        loaded, _ = fresh.load(key, set())
        assert list(loaded.models) == names


def test_a_missing_blob_makes_the_whole_state_a_miss(tmp_path, project_state):
    store = Store(tmp_path)
    snapshots = Snapshots(store)
    key = b"k" * 16
    snapshots.save(key, project_state)
    blob = next(store.iter_files("objects"))
    blob.unlink()
    assert Snapshots(store).load(key, set()) is None


def test_a_damaged_ref_is_rewritten_by_the_next_write(tmp_path):
    store = Store(tmp_path)
    key, target = b"k" * 16, b"t" * 16
    store.set_ref(key, target, 1.0)
    path = store.ref_path(key)
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    assert store.set_ref(key, target, 2.0) is True
    assert store.get_ref(key) == (target, 2.0)
    assert store.set_ref(key, target, 3.0) is False, "an intact ref is left alone"


@pytest.mark.parametrize(
    "damage",
    [lambda d: d[: len(d) // 2], lambda d: b"", lambda d: d[:-1] + bytes([d[-1] ^ 4])],
    ids=["truncated", "empty", "bit-flip"],
)
def test_a_damaged_manifest_is_a_miss_logged_once_then_healed(
    tmp_path, project_state, damage, caplog
):
    store = Store(tmp_path)
    snapshot = Snapshots(store).save(b"k" * 16, project_state)
    path = store.object_path(snapshot.digest)
    path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="statecache"):
        assert Snapshots(store).load(b"k" * 16, project_state.real_apps) is None
        assert Snapshots(store).load(b"k" * 16, project_state.real_apps) is None
    assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
    assert Snapshots(store).save(b"k" * 16, project_state) is not None
    loaded, _ = Snapshots(store).load(b"k" * 16, project_state.real_apps)
    assert loaded == project_state


def test_entries_of_a_newer_format_are_misses(tmp_path, project_state, caplog):
    store = Store(tmp_path)
    snapshots = Snapshots(store)
    model = next(iter(project_state.models.values()))
    # A manifest and a ref with a newer type header, at their right addresses and checksums.
    manifest, _ = store.put_object(b"SCM2", b"a manifest of the future")
    assert store.set_ref(b"m" * 16, manifest)
    body = store_module.REF_BODY.pack(b"SCR2", manifest, 0.0)
    store.ref_path(b"r" * 16).parent.mkdir(parents=True, exist_ok=True)
    store.ref_path(b"r" * 16).write_bytes(body + store_module._ref_check(b"r" * 16, body))
    # A blob of a newer codec, referenced by a valid manifest.
    payload = codec.encode_model_state(model)
    newer = msgpack.packb([codec.CODEC_VERSION + 1, *msgpack.unpackb(payload)[1:]])
    blob, _ = store.put_object(BLOB, newer)
    snapshot = snapshots.write_manifest({model_key(model): blob}, None)
    store.set_ref(b"c" * 16, snapshot.digest)
    with caplog.at_level(logging.WARNING, logger="statecache"):
        for _ in range(2):
            for key in (b"m" * 16, b"r" * 16, b"c" * 16):
                assert Snapshots(store).load(key, set()) is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages  # one per kind of problem
    assert not store.ref_path(b"r" * 16).exists(), "a foreign ref is removed"
    # A newer directory beside ours is never read or written.
    (tmp_path / f"v{store_module.STORE_VERSION + 1}").mkdir()
    assert store.other_versions() == [f"v{store_module.STORE_VERSION + 1}"]


def test_counters_persist_in_shards(tmp_path):
    store = Store(tmp_path)
    assert store.read_stats()["hits"] == 0
    assert store.add_stats({"hits": 2, "misses": 1})
    assert Store(tmp_path).add_stats({"hits": 3})
    shard = next((store.base / "stats").iterdir())
    (store.base / "stats" / "junk").write_bytes(b"\xff not json")
    assert Store(tmp_path).read_stats() == {**Store(tmp_path).read_stats(), "hits": 5}
    assert Store(tmp_path).read_stats()["misses"] == 1
    snapshots = Snapshots(Store(tmp_path))
    snapshots.stats.hits += 4
    snapshots.flush_stats()
    snapshots.flush_stats()  # nothing new: nothing added twice
    assert Store(tmp_path).read_stats()["hits"] == 9
    assert shard.exists()


def test_group_shared_mode_sets_file_and_directory_modes(tmp_path):
    store = Store(tmp_path / "cache", umask=0o002)
    digest, _ = store.put_object(BLOB, b"payload")
    store.set_ref(b"k" * 16, digest)
    store.add_stats({"hits": 1})
    for path in (tmp_path / "cache").rglob("*"):
        mode = path.stat().st_mode & 0o7777
        assert mode == (0o2775 if path.is_dir() else 0o664), (path, oct(mode))
    private = Store(tmp_path / "private", umask=0o077)
    private.put_object(BLOB, b"payload")
    assert private.object_path(digest).stat().st_mode & 0o777 == 0o600


def test_stale_temporary_files_are_found_by_age(tmp_path):
    store = Store(tmp_path)
    store.put_object(BLOB, b"x")
    leftover = store.base / "tmp" / "abcdef.123.000000"
    leftover.write_bytes(b"half")
    assert store.stale_tmp(3600) == []
    os.utime(leftover, (0, 0))
    assert store.stale_tmp(3600) == [leftover]


def test_writers_store_nothing_while_the_exclusive_lock_is_held(tmp_path, caplog):
    store = Store(tmp_path)
    with store.lock(timeout=0):
        with caplog.at_level(logging.INFO, logger="statecache"):
            assert store.put_object(BLOB, b"x") == (None, False)
    assert store.writable, "busy is not broken: the next write goes through"
    assert any("being cleared or pruned" in r.getMessage() for r in caplog.records)
    assert store.put_object(BLOB, b"x")[1] is True


def test_a_forked_child_locks_through_its_own_file_description(tmp_path):
    store = Store(tmp_path)
    store.put_object(BLOB, b"x")  # opens the lock file in the parent
    parent_fd = store._lock_fd
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        with store.writing():
            os.write(write, b"1" if store._lock_fd != parent_fd else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"


def _referenced_by_to_field() -> ProjectState:
    """A model whose unique field another model's foreign key targets by name (to_field)."""
    state = ProjectState()
    state.add_model(
        ModelState(
            "shop",
            "Product",
            [
                ("id", models.AutoField(primary_key=True)),
                ("code", models.CharField(max_length=10, unique=True)),
            ],
        )
    )
    state.add_model(
        ModelState(
            "shop",
            "Line",
            [
                ("id", models.AutoField(primary_key=True)),
                ("product", models.ForeignKey("shop.Product", models.CASCADE, to_field="code")),
            ],
        )
    )
    return state


def test_each_load_gets_fields_of_its_own(tmp_path):
    """Decoded models are kept for the process, but Django's state operations change fields in
    place (ProjectState.rename_field repoints the foreign keys that name the renamed field):
    what one loaded state undergoes, the next load of the same entry never shows."""
    original = _referenced_by_to_field()
    codec.allow({codec.ref_of(models.CASCADE)})  # as fingerprinting a migration using it does
    snapshots = Snapshots(Store(tmp_path))
    key = b"k" * 16
    assert snapshots.save(key, original) is not None
    first, _ = snapshots.load(key, set())
    first.rename_field("shop", "product", "code", "sku")
    renamed = first.models["shop", "line"].fields["product"]
    assert list(renamed.to_fields) == ["sku"] and renamed.remote_field.field_name == "sku"
    second, _ = snapshots.load(key, set())
    assert second == original
    field = second.models["shop", "line"].fields["product"]
    assert list(field.to_fields) == ["code"] and field.remote_field.field_name == "code"
    assert field.remote_field.field is field
