"""Values taken by origin (statecache/origins.py): what fingerprints record, what a state
stores, and what decoding does with origins it cannot trust."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.db import migrations, models
from django.db.migrations.state import ModelState

from statecache import codec, keys, origins
from tests.helpers import ext, forged_state

_classes: dict[str, type] = {}


def factory_field(max_length: int) -> models.Field:
    """A field whose class is made by a factory (as django-cryptography's encrypt())."""
    if "cls" not in _classes:
        _classes["cls"] = type("MadeCharField", (models.CharField,), {})
    return _classes["cls"](max_length=max_length)


class NoEquality:
    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, value) -> None:
        pass

    def deconstruct(self):
        return (f"{__name__}.NoEquality", (self.n,), {})


class HiddenField(models.CharField):
    """Its constructor changes its arguments, as django-extensions' AutoSlugField: given
    editable=True it deconstructs without it, and a field built from that is not editable."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)


def migration(now: datetime.datetime | None = None, name: str = "0001_initial"):
    m = migrations.Migration(name, "wildapp")
    m.operations = [
        migrations.CreateModel(
            "Thing",
            [
                ("id", models.AutoField(primary_key=True)),
                ("token", factory_field(10)),
                ("at", models.DateTimeField(default=now or datetime.datetime.now())),
                ("ref", models.UUIDField(default=uuid.uuid4())),
                ("text", models.TextField(validators=[NoEquality(3)])),
                ("slug", HiddenField(max_length=5, editable=True)),
            ],
        )
    ]
    return m


def plan_of(m) -> tuple[origins.Index, ModelState]:
    fingerprint, leaves = keys.fingerprint_and_leaves(m)
    assert fingerprint is not None
    fields = m.operations[0].fields
    return origins.Index([(m, leaves)]), ModelState("wildapp", "Thing", list(fields))


def test_fingerprints_hash_markers_so_two_imports_give_the_same_key():
    first, second = migration(), migration()
    assert first.operations[0].fields[2][1].default != second.operations[0].fields[2][1].default
    assert keys.migration_fingerprint(first) == keys.migration_fingerprint(second)
    _, leaves = keys.fingerprint_and_leaves(first)
    assert leaves.reasons == [
        origins.NOT_IMPORTABLE,
        origins.IMPORT_TIME,
        origins.IMPORT_TIME,
        origins.NO_EQUALITY,
    ]


def test_what_decides_an_ordinal_is_in_the_fingerprint():
    """A value recorded as a leaf in one process and not in another (a class that gained an
    __eq__ in a new release) shifts the ordinals after it: the fingerprints must differ."""
    before = keys.migration_fingerprint(migration())
    NoEquality.__eq__ = lambda self, other: isinstance(other, NoEquality) and self.n == other.n
    try:
        after = keys.migration_fingerprint(migration())
    finally:
        del NoEquality.__eq__
    assert before != after


def test_a_state_takes_this_process_s_own_objects():
    writer_index, writer_state = plan_of(migration())
    data = codec.encode_model_state(writer_state, index=writer_index)
    # Another process: the same source imported again.
    reader = migration()
    reader_index, reader_state = plan_of(reader)
    decoded = codec.decode_model_state(data, index=reader_index)
    assert decoded == reader_state
    live = dict(reader.operations[0].fields)
    assert decoded.fields["at"].default is live["at"].default
    assert decoded.fields["ref"].default is live["ref"].default
    assert decoded.fields["text"].validators[0] is live["text"].validators[0]
    assert type(decoded.fields["token"]) is type(live["token"])
    # Its deconstruction would rebuild it not editable: the operation's own field.
    assert decoded.fields["slug"] is live["slug"] and decoded.fields["slug"].editable
    assert decoded.fields["id"] is not live["id"]  # a faithful one is rebuilt
    # ... never the writer's.
    assert decoded.fields["ref"].default != writer_state.fields["ref"].default


def test_without_the_loaded_migrations_an_origin_is_a_miss():
    index, state = plan_of(migration())
    data = codec.encode_model_state(state, index=index)
    with pytest.raises(origins.Unresolved):
        codec.decode_model_state(data)
    other = migrations.Migration("0001_initial", "otherapp")
    other.operations = []
    with pytest.raises(origins.Unresolved):
        codec.decode_model_state(data, index=origins.Index([(other, origins.Leaves())]))


def test_a_field_taken_by_origin_that_has_changed_since_is_a_miss():
    index, state = plan_of(migration())
    data = codec.encode_model_state(state, index=index)
    # As Django's RenameField does to the fields pointing at the renamed one.
    state.fields["slug"].max_length = 6
    with pytest.raises(origins.Unresolved):
        codec.decode_model_state(data, index=index)


def test_an_import_time_value_from_elsewhere_is_not_stored_by_value():
    index, _ = plan_of(migration())
    stray = ModelState(
        "wildapp", "Other", [("at", models.DateTimeField(default=datetime.datetime.now()))]
    )
    with pytest.raises(codec.Uncacheable):
        codec.encode_model_state(stray, index=index)


def origin(app, name, ordinal, expected):
    return ext(codec.ORIGIN, [[[app, name, ordinal]], expected])


@pytest.mark.parametrize(
    "forged",
    [
        # An origin the migrations do not have.
        origin("wildapp", "0001_initial", 99, "builtins:int"),
        origin("wildapp", "0999_nope", 0, "builtins:int"),
        # The right origin, claimed to be of another type.
        origin("wildapp", "0001_initial", 1, "builtins:int"),
        # Malformed.
        ext(codec.ORIGIN, ["wildapp", "x"]),
        ext(codec.ORIGIN, [[["wildapp", "0001_initial"]], "x"]),
    ],
)
def test_forged_origins_are_refused(forged):
    index, _ = plan_of(migration())
    with pytest.raises((origins.Unresolved, ValueError, TypeError)):
        codec.decode_model_state(forged_state(field=forged), index=index)


def test_an_origin_in_a_class_slot_must_be_a_class():
    """A forged field whose class is an origin naming a value (not a class) is not called."""
    index, _ = plan_of(migration())
    at = origin("wildapp", "0001_initial", 1, origins.type_name(datetime.datetime.now()))
    field = ext(codec.FIELD, [at, [], {}])
    with pytest.raises((ValueError, TypeError, codec.Disallowed)):
        codec.decode_model_state(forged_state(field=field), index=index)
    # The class by origin, where it is one: a field of that class.
    cls = origin("wildapp", "0001_initial", 0, origins.type_name(_classes["cls"]))
    state = codec.decode_model_state(
        forged_state(field=ext(codec.FIELD, [cls, [], {"max_length": 3}])), index=index
    )
    assert type(state.fields["name"]) is _classes["cls"]


def test_sets_give_no_ordinals():
    leaves = origins.Leaves()
    codec.fingerprint_bytes([{object()}, object()], leaves=leaves)
    assert leaves.reasons == [origins.NO_ENCODING]  # the one outside the set only


def test_a_state_taking_values_by_origin_is_decoded_at_every_load(tmp_path):
    """The cache keeps decoded models for the process, except those taking values by origin:
    each load takes the operations' own objects as they are now (a field changed since is a
    miss), never a copy kept from an earlier load."""
    from django.db.migrations.state import ProjectState

    from statecache.snapshots import Snapshots
    from statecache.store import Store

    m = migration()
    index, model_state = plan_of(m)
    snapshots = Snapshots(Store(tmp_path))
    key = b"k" * 16
    assert snapshots.save(key, ProjectState({("wildapp", "thing"): model_state}), index=index)
    live = dict(m.operations[0].fields)
    for _ in range(2):
        loaded, _ = snapshots.load(key, set(), index=index)
        assert loaded.models["wildapp", "thing"].fields["slug"] is live["slug"]
    live["slug"].max_length = 6  # as Django's RenameField changes fields in place
    assert snapshots.load(key, set(), index=index) is None
