from __future__ import annotations

import logging
import os

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from statecache import keys
from statecache import store as store_module
from statecache.snapshots import MAX_DEPTH, Snapshots
from statecache.store import BLOB, MANIFEST, Store

CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


@pytest.fixture
def project_state():
    loader = MigrationLoader(connection)
    # As every run does before it reads the cache: fingerprinting the graph is what lets
    # decoding import the classes its migrations use.
    keys.fingerprints(loader, loader.graph.nodes.values())
    return loader.project_state()


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
