from __future__ import annotations

import datetime
import decimal
import functools
import pathlib
import re
import uuid
import zoneinfo

import pytest
from django.conf import SettingsReference
from django.core import validators
from django.db import connection, models
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ModelState, ProjectState
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy
from hypothesis import given, settings
from hypothesis import strategies as st

from statecache import codec
from tests.testapp import values


def exact(a, b) -> bool:
    """Equal, and of the same types all the way down (1 is not True, a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(exact(a[k], b[k]) for k in a)
    if isinstance(a, (set, frozenset)):
        return a == b
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def decode(data: bytes) -> ModelState:
    """These tests are about exactness; what decoding may import is tested in test_security."""
    return codec.decode_model_state(data, trusted=True)


def round_trip_field(field: models.Field) -> models.Field:
    state = ModelState("testapp", "Thing", [("value", field)])
    decoded = decode(codec.encode_model_state(state))
    assert decoded == state
    return decoded.fields["value"]


def test_contrib_and_test_app_states_round_trip_exactly():
    state = MigrationLoader(connection).project_state()
    assert len(state.models) > 10
    for key, model_state in state.models.items():
        data = codec.encode_model_state(model_state)
        decoded = decode(data)
        assert decoded == model_state, key
        assert list(decoded.fields) == list(model_state.fields), key
        assert codec.encode_model_state(decoded) == data, key
        for name, field in model_state.fields.items():
            assert decoded.fields[name].deconstruct() == field.deconstruct(), (key, name)


DEFAULTS = [
    None,
    True,
    0,
    -(2**63),
    2**64 - 1,
    -(2**80),
    1.5,
    float("inf"),
    "text",
    b"bytes",
    (1, 2),
    [1, (2, 3)],
    {"a": 1, 2: "b", (1, 2): [3]},
    {1, 2, 3},
    frozenset({"a", "b"}),
    decimal.Decimal("1.10"),
    datetime.date(2020, 2, 29),
    datetime.datetime(2020, 1, 1, 12, 30, 1, 5),
    datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
    datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=-3))),
    datetime.datetime(2020, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
    datetime.time(10, 5, tzinfo=datetime.timezone.utc),
    datetime.timedelta(days=1, seconds=5, microseconds=3),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    values.Color.BLUE,
    values.Level.HIGH,
    values.default_code,
    uuid.uuid4,
    dict,
    pathlib.PurePosixPath("/srv/files"),
]


@pytest.mark.parametrize(
    "value", DEFAULTS, ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(DEFAULTS)]
)
def test_default_values_round_trip_with_their_types(value):
    decoded = round_trip_field(models.Field(default=value))
    assert exact(decoded.default, value)


def test_partial_compares_by_value_after_decoding():
    original = functools.partial(values.make_code, "b", size=2)
    decoded = round_trip_field(models.CharField(max_length=5, default=original)).default
    assert decoded == original and original == decoded
    assert decoded.func is values.make_code and decoded.args == ("b",)
    assert decoded.keywords == {"size": 2}
    assert isinstance(decoded, functools.partial)
    from django.db.migrations.writer import MigrationWriter

    assert MigrationWriter.serialize(decoded) == MigrationWriter.serialize(original)


def test_lazy_strings_settings_references_and_validators():
    field = models.ForeignKey(
        SettingsReference("auth.User", "AUTH_USER_MODEL"),
        on_delete=models.CASCADE,
        verbose_name=gettext_lazy("owner"),
        validators=[
            validators.RegexValidator(re.compile(r"^a+$", re.I)),
            validators.MaxValueValidator(10),
        ],
        limit_choices_to=models.Q(is_active=True) | ~models.Q(username="x"),
    )
    decoded = round_trip_field(field)
    name, path, args, kwargs = decoded.deconstruct()
    assert type(kwargs["to"]) is SettingsReference
    assert kwargs["to"].setting_name == "AUTH_USER_MODEL"
    assert str(kwargs["verbose_name"]) == "owner"
    assert kwargs["validators"] == field.validators
    assert kwargs["limit_choices_to"] == field.remote_field.limit_choices_to
    assert kwargs["on_delete"] is models.CASCADE


def test_options_with_expressions_indexes_and_constraints():
    state = ModelState(
        "testapp",
        "Thing",
        [("id", models.AutoField(primary_key=True)), ("name", models.CharField(max_length=5))],
        options={
            "ordering": [Lower("name").desc(), "-id"],
            "unique_together": {("id", "name")},
            "indexes": [models.Index(Lower("name"), name="thing_lower_idx")],
            "constraints": [
                models.UniqueConstraint(
                    fields=["name"], condition=models.Q(id__gt=1), name="uniq_name"
                ),
                models.UniqueConstraint(values.Upper("name"), name="upper_name"),
            ],
            "permissions": (("can_x", "Can x"),),
            "verbose_name": gettext_lazy("thing"),
        },
    )
    decoded = decode(codec.encode_model_state(state))
    assert decoded == state
    assert type(decoded.options["permissions"]) is tuple
    assert type(decoded.options["unique_together"]) is set


def test_bases_and_managers_keep_classes_strings_and_order():
    second = values.NamedManager("second")
    first = values.NamedManager("first")  # created later, listed first
    state = ModelState(
        "testapp",
        "Thing",
        [("id", models.AutoField(primary_key=True))],
        bases=(values.TimestampMixin, "auth.user"),
        managers=[("first", first), ("second", second)],
    )
    decoded = decode(codec.encode_model_state(state))
    assert decoded == state
    assert decoded.bases == (values.TimestampMixin, "auth.user")
    # Rendering sorts managers by creation order: the decoded ones keep the original order.
    order = [name for name, _ in sorted(decoded.managers, key=lambda m: m[1].creation_counter)]
    assert order == ["second", "first"]


def test_a_queryset_as_manager_is_refused():
    """QuerySet.as_manager() builds a new class on every call, so a rebuilt one never equals
    the original (Django compares managers by class): such a state is not cached."""
    state = ModelState(
        "testapp",
        "Thing",
        [("id", models.AutoField(primary_key=True))],
        managers=[("objects", values.ShoutingQuerySet.as_manager())],
    )
    with pytest.raises(codec.Uncacheable):
        codec.encode_model_state(state)


def local_function():
    return 1


@pytest.mark.parametrize(
    "value",
    [lambda: 1, object(), (lambda: functools.partial(int))(), type("Local", (), {})],
    ids=["lambda", "object", "partial-of-builtin-ok", "local-class"],
)
def test_values_without_an_exact_encoding_are_refused(value):
    field = models.Field(default=value)
    state = ModelState("testapp", "Thing", [("value", field)])
    if isinstance(value, functools.partial):
        codec.encode_model_state(state)  # int is importable: fine
        return
    with pytest.raises(codec.Uncacheable):
        codec.encode_model_state(state)


def test_a_deconstructible_without_eq_is_refused():
    @__import__("django.utils.deconstruct", fromlist=["deconstructible"]).deconstructible
    class NoEq:
        pass

    state = ModelState("testapp", "Thing", [("value", models.Field(default=NoEq()))])
    with pytest.raises(codec.Uncacheable):
        codec.encode_model_state(state)


def test_a_field_a_factory_makes_is_rebuilt_by_the_factory_and_compared_by_deconstruction():
    field = values.wrap(models.CharField(max_length=30))
    state = ModelState("testapp", "Thing", [("value", field)])
    # Django's own comparison cannot tell: the base field is new on every deconstruction.
    assert state != state
    decoded = decode(codec.encode_model_state(state))
    assert type(decoded.fields["value"]) is type(field)
    assert codec.same_state(decoded, state)
    # Not lax: another base field, or the base field's arguments changed, is another state.
    for other in [
        values.wrap(models.CharField(max_length=31)),
        values.wrap(models.TextField(max_length=30)),
        models.CharField(max_length=30),
    ]:
        assert not codec.same_state(ModelState("testapp", "Thing", [("value", other)]), state)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3)
    | st.dates()
    | st.datetimes()
    | st.timedeltas()
    | st.uuids()
)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner), max_leaves=5)
structures = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4)
        | st.frozensets(hashables, max_size=4)
        | st.sets(hashables, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(structures)
def test_any_structure_of_supported_values_round_trips_exactly(value):
    decoded = round_trip_field(models.Field(default=value)).default
    assert exact(decoded, value)


@settings(max_examples=50, deadline=None)
@given(st.sets(st.text(max_size=5), max_size=6))
def test_encoding_is_canonical(items):
    """Content addressing needs one encoding per value: set order must not matter."""
    first = codec.encode_model_state(ModelState("a", "B", [("v", models.Field(default=items))]))
    shuffled = set(sorted(items, reverse=True))
    second = codec.encode_model_state(ModelState("a", "B", [("v", models.Field(default=shuffled))]))
    assert first == second


def test_fingerprints_name_lambdas_instead_of_refusing_them():
    assert codec.fingerprint_bytes([lambda apps, editor: None])
    assert codec.fingerprint_bytes([local_function]) != codec.fingerprint_bytes([lambda: 1])


def test_project_state_round_trip_through_models():
    state = MigrationLoader(connection).project_state()
    decoded = ProjectState(
        models={
            key: decode(codec.encode_model_state(model_state))
            for key, model_state in state.models.items()
        },
        real_apps=state.real_apps,
    )
    assert decoded == state
