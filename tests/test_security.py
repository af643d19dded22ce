"""Issue 4.6: a shared writable cache directory is a trust boundary.

Entries are forged here the way someone with write access to the directory could: valid
msgpack, valid hashes and checksums, naming import paths of their choosing. Decoding must refuse
every path the loaded migration graph does not use (before importing anything), and with a
signing key, entries without a valid tag must be ignored.
"""

from __future__ import annotations

import contextlib
import logging
import sys

import msgpack
import pytest
from django.db import migrations, models
from django.db.migrations.state import ModelState

from statecache import codec, conf, keys
from statecache.snapshots import Snapshots
from statecache.store import BLOB, REF_SIZE, SIGNED_REF_SIZE, Store
from tests.helpers import ext, forged_state

EVIL = """
import pathlib
pathlib.Path(__file__).with_suffix(".imported").write_text("imported")
class Field:
    def __init__(self, *args, **kwargs):
        pathlib.Path(__file__).with_suffix(".called").write_text("called")
def run(*args):
    pathlib.Path(__file__).with_suffix(".called").write_text("called")
"""


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """A module that leaves a mark when it is imported or called."""
    name = f"sc_evil_{tmp_path.name[-8:].replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(EVIL)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, tmp_path / f"{name}.imported", tmp_path / f"{name}.called"
    sys.modules.pop(name, None)


def char_with_default(default) -> msgpack.ExtType:
    return ext(
        codec.FIELD,
        ["django.db.models.fields:CharField", [], {"max_length": 10, "default": default}],
    )


def test_a_forged_state_decodes_when_it_names_only_allowed_classes():
    state = codec.decode_model_state(forged_state())
    assert isinstance(state.fields["name"], models.CharField)


@pytest.mark.parametrize(
    "forge",
    [
        lambda m: forged_state(ext(codec.FIELD, [f"{m}:Field", [], {}])),
        lambda m: forged_state(char_with_default(ext(codec.REF, f"{m}:run"))),
        lambda m: forged_state(
            char_with_default(ext(codec.PARTIAL, [ext(codec.REF, f"{m}:run"), ["x"], {}]))
        ),
        lambda m: forged_state(char_with_default(ext(codec.ENUM, [f"{m}:Field", 1]))),
        lambda m: forged_state(char_with_default(ext(codec.DECONSTRUCTED, [f"{m}:Field", [], {}]))),
        lambda m: forged_state(char_with_default(ext(codec.PATH, [f"{m}:Field", "/"]))),
        lambda m: forged_state(
            char_with_default(
                ext(codec.LAZY, [ext(codec.REF, f"{m}:run"), [], {}, ["builtins:str"]])
            )
        ),
        lambda m: forged_state(
            options={"indexes": [ext(codec.DECONSTRUCTED, [f"{m}:Field", [], {}])]}
        ),
        lambda m: forged_state(
            managers=[("objects", ext(codec.MANAGER, [False, f"{m}.Field", None, [], {}]))]
        ),
        lambda m: forged_state(
            managers=[("objects", ext(codec.MANAGER, [True, None, f"{m}.Field", [], {}]))]
        ),
    ],
    ids=[
        "field",
        "ref",
        "partial",
        "enum",
        "deconstructed",
        "path",
        "lazy",
        "index",
        "manager",
        "queryset",
    ],
)
def test_decoding_never_imports_a_path_the_graph_does_not_use(evil, forge):
    module, imported, called = evil
    data = forge(module)
    with pytest.raises(codec.Disallowed, match=module):
        codec.decode_model_state(data)
    assert module not in sys.modules and not imported.exists() and not called.exists()
    # The same bytes, trusted, do import it: the refusal above is what protected us.
    with contextlib.suppress(Exception):
        state = codec.decode_model_state(data, trusted=True)
        state.fields["name"].get_default()
    assert imported.exists()


@pytest.mark.parametrize(
    "path",
    [
        "os:system",
        "subprocess:Popen",
        "django.core.management:call_command",  # Django's, but no field/manager/... class
        "django.db.models.fields:NOT_PROVIDED",  # in a Django module, not a class
    ],
)
def test_dangerous_callables_are_refused_even_when_importable(path):
    for data in (
        forged_state(char_with_default(ext(codec.REF, path))),
        forged_state(char_with_default(ext(codec.PARTIAL, [ext(codec.REF, path), ["id"], {}]))),
    ):
        with pytest.raises(codec.Disallowed):
            codec.decode_model_state(data)


def test_paths_become_allowed_by_fingerprinting_the_migrations_that_use_them(evil):
    module, imported, _ = evil
    helpers = __import__(module)  # the project's own code is imported by its migrations
    assert imported.exists()
    data = forged_state(char_with_default(ext(codec.REF, f"{module}:run")))
    with pytest.raises(codec.Disallowed):
        codec.decode_model_state(data)
    migration = migrations.Migration("0001_initial", "testapp")
    migration.operations = [
        migrations.AddField("author", "code", models.CharField(max_length=10, default=helpers.run))
    ]
    assert keys.migration_fingerprint(migration) is not None
    state = codec.decode_model_state(data)
    assert state.fields["name"].default is helpers.run


def test_a_forged_entry_in_the_store_is_a_miss_logged_once(tmp_path, evil, caplog):
    module, imported, called = evil
    store = Store(tmp_path / "cache", signing_key=None, umask=None)
    snapshots = Snapshots(store)
    blob, _ = store.put_object(BLOB, forged_state(ext(codec.FIELD, [f"{module}:Field", [], {}])))
    manifest = snapshots.write_manifest({"testapp.forged": blob}, None)
    store.set_ref(b"k" * 16, manifest.digest)
    store.set_ref(b"j" * 16, manifest.digest)
    with caplog.at_level(logging.WARNING, logger="statecache"):
        assert snapshots.load(b"k" * 16, set()) is None
        assert snapshots.load(b"j" * 16, set()) is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and module in messages[0], messages
    assert not imported.exists() and not called.exists()


# -- signing ---------------------------------------------------------------------------------

KEY = b"0123456789abcdef-team-secret"


def test_signed_entries_round_trip_and_unsigned_readers_can_use_them(tmp_path, project_state):
    signed = Snapshots(Store(tmp_path, signing_key=KEY, umask=None))
    assert signed.save(b"k" * 16, project_state) is not None
    assert len(signed.store.ref_path(b"k" * 16).read_bytes()) == SIGNED_REF_SIZE
    assert signed.load(b"k" * 16, project_state.real_apps)[0] == project_state
    plain = Snapshots(Store(tmp_path, signing_key=None, umask=None))
    assert plain.load(b"k" * 16, project_state.real_apps)[0] == project_state
    # An unsigned writer leaves the signed entries as they are.
    assert plain.save(b"k" * 16, project_state) is not None
    assert Snapshots(Store(tmp_path, signing_key=KEY, umask=None)).load(
        b"k" * 16, project_state.real_apps
    )


def test_a_forged_ref_is_refused_with_a_key_and_taken_without(tmp_path, project_state, caplog):
    """Someone who can write the directory but has no key points a state's ref at another
    state's manifest, with a correct checksum."""
    other = project_state.clone()
    other.remove_model("testapp", "book")
    writer = Snapshots(Store(tmp_path, signing_key=KEY, umask=None))
    writer.save(b"k" * 16, project_state)
    writer.save(b"o" * 16, other)
    forger = Store(tmp_path, signing_key=None, umask=None)
    forger.ref_path(b"k" * 16).unlink()
    assert forger.set_ref(b"k" * 16, forger.get_ref(b"o" * 16)[0])
    assert len(forger.ref_path(b"k" * 16).read_bytes()) == REF_SIZE
    # Without a key the forgery is indistinguishable from a real entry...
    assert (
        Snapshots(Store(tmp_path, signing_key=None, umask=None)).load(
            b"k" * 16, project_state.real_apps
        )[0]
        == other
    )
    # ...with the key it is ignored (and rewritten by the next write).
    reader = Snapshots(Store(tmp_path, signing_key=KEY, umask=None))
    with caplog.at_level(logging.WARNING, logger="statecache"):
        assert reader.load(b"k" * 16, project_state.real_apps) is None
    assert any("no valid signature" in r.getMessage() for r in caplog.records)
    assert reader.save(b"k" * 16, project_state) is not None
    assert reader.load(b"k" * 16, project_state.real_apps)[0] == project_state


def test_a_forged_object_is_refused_with_a_key(tmp_path):
    store = Store(tmp_path, signing_key=KEY, umask=None)
    digest, _ = store.put_object(BLOB, b"honest payload")
    path = store.object_path(digest)
    assert store.get_object(digest, BLOB) == b"honest payload"
    path.write_bytes(BLOB + b"honest payload")  # the unsigned bytes: the right hash, no tag
    assert store.get_object(digest, BLOB) is None
    data = BLOB + b"honest payload"
    path.write_bytes(data + b"\0" * 16)  # a tag the forger made up
    assert store.get_object(digest, BLOB) is None
    assert Store(tmp_path, signing_key=b"another key of 16+ bytes").get_object(digest, BLOB) is None
    assert store.put_object(BLOB, b"honest payload") == (digest, True), "healed by a write"
    assert store.get_object(digest, BLOB) == b"honest payload"


def test_signing_key_settings(monkeypatch):
    from django.core import checks

    monkeypatch.setenv("STATECACHE_ENABLED", "1")
    monkeypatch.setenv("STATECACHE_SIGNING_KEY", "short")
    assert conf.enabled() is False, "a bad key turns statecache off, never to unsigned reads"
    assert "statecache.W006" in {m.id for m in checks.run_checks()}
    monkeypatch.setenv("STATECACHE_SIGNING_KEY", "x" * 100)
    assert conf.enabled() is True and len(conf.current().signing_key) == conf.MAX_KEY
    assert Store("/nonexistent").signing_key == conf.current().signing_key
    monkeypatch.delenv("STATECACHE_SIGNING_KEY")
    assert conf.current().signing_key is None
    with pytest.raises(conf.SettingError):
        conf.parse_signing_key(1234, "STATECACHE_SIGNING_KEY")
    assert ModelState  # imported for the fixtures' states


@pytest.mark.parametrize(
    "path",
    [
        # Issue 12.3: attributes reached through modules an allowed module imports.
        "django.core.validators:re.enum.bltns.bytearray",
        "django.core.validators:re.enum.sys.__loader__",
        "django.core.validators:ipaddress.functools.partial",
        "django.db.models.fields:validators.RegexValidator",
        "django.db.models:fields.CharField",
        "django.db.models.fields:CharField.__init__",
        "django.db.models.fields:CharField.__class__",
    ],
)
def test_only_exact_import_paths_are_allowed(path):
    assert not codec.is_allowed(path)
    for code in (codec.DECONSTRUCTED, codec.FIELD):
        data = forged_state(ext(code, [path, [400_000_000], {}]))
        with pytest.raises(codec.Disallowed):
            codec.decode_model_state(data)
    with pytest.raises(codec.Disallowed):
        codec.decode_model_state(forged_state(char_with_default(ext(codec.REF, path))))


def test_django_classes_are_allowed_by_the_path_the_encoder_writes():
    assert codec.is_allowed("django.db.models.fields:CharField")
    assert codec.is_allowed("django.core.validators:RegexValidator")
    assert codec.is_allowed("django.db.models.manager.Manager")
    assert codec.ref_of(models.CharField) == "django.db.models.fields:CharField"
