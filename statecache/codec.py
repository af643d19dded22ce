"""ModelState <-> bytes, with msgpack and no pickle.

Every value is stored as what it is (scalars, containers with their exact types) or as its
deconstruction: the class by import path plus the constructor arguments, recursively, the way
Django writes migrations and clones fields. A value that cannot be written that way raises
`Uncacheable`; `encode_model_state` also decodes what it wrote and refuses anything that does
not come back equal and re-encode to the same bytes, so a cached state is never a guess.

Values that cannot be written that way but come from an operation argument (origins.py) are
written as their origin when an `origins.Index` is given, and decoding takes them from the
migrations this process has loaded. Fingerprinting (`fingerprint=True`) never refuses a value:
what it cannot encode it hashes as a stable marker and records as a leaf of the migration.

Decoding what the cache holds imports and calls only what the migration graph itself uses: the
import paths its operations reference (collected when keys.py fingerprints them, see `allow`)
and Django's own field, manager, index, constraint, expression and validator classes from
modules already imported. Any other path raises `Disallowed` before anything is imported.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import importlib
import pathlib
import re
import sys
import types
import uuid
import zoneinfo
from typing import Any

import msgpack
from django.conf import SettingsReference
from django.db import models
from django.db.migrations.state import ModelState
from django.db.models.manager import BaseManager
from django.utils.functional import Promise, lazy
from django.utils.module_loading import import_string

from . import compat, origins
from .origins import VOLATILE

# Bumped whenever the byte layout changes; part of every key and of the store's path.
CODEC_VERSION = 3


class Uncacheable(Exception):
    """A value that cannot be encoded exactly."""


class Disallowed(ValueError):
    """A decoded value names an import path the migration graph does not use."""


# Import paths ("module:qualname" for refs, dotted for managers) that the loaded migration
# graphs reference; filled by keys.migration_fingerprint for every migration it fingerprints.
_allowed: set[str] = set()


def allow(paths: set[str] | frozenset[str]) -> None:
    _allowed.update(paths)


def _split(path: str) -> tuple[str, str]:
    if ":" in path:
        module, _, qualname = path.partition(":")
    else:
        module, _, qualname = path.rpartition(".")
    return module, qualname


@functools.cache
def _django_kinds() -> tuple[type, ...]:
    from django.db.models import BaseConstraint, Index, Model, Q, QuerySet
    from django.db.models.expressions import BaseExpression, Combinable

    return (
        models.Field,
        BaseManager,
        QuerySet,
        Index,
        BaseConstraint,
        BaseExpression,
        Combinable,
        Q,
        Model,
    )


def _django_own(path: str) -> bool:
    """A class of Django's own field, manager, index, constraint, expression or validator
    kinds, named exactly by the module that defines it and its qualified name (as the encoder
    writes it), in a Django module that is already imported (nothing is imported to find
    out). Only classes are walked: `django.core.validators:re.enum.bltns.bytearray` reaches
    a builtin through other modules and is refused."""
    module_name, qualname = _split(path)
    if not (module_name == "django" or module_name.startswith("django.")):
        return False
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split(".") if obj is not None else ():
        if not isinstance(obj, (type, types.ModuleType)) or part.startswith("__"):
            return False
        obj = obj.__dict__.get(part)  # no __getattr__ of a module or class is run
        if not isinstance(obj, type):
            return False
    if not isinstance(obj, type):
        return False
    if obj.__module__ != module_name or obj.__qualname__ != qualname:
        return False
    return issubclass(obj, _django_kinds()) or module_name == "django.core.validators"


def is_allowed(path: str) -> bool:
    """Whether `path` is exactly one the migration graph uses (collected by fingerprinting)
    or one of Django's own classes of the kinds above; never an attribute reached through it."""
    return path in _allowed or _django_own(path)


# Extension type codes.
TUPLE = 1
SET = 2
FROZENSET = 3
DECIMAL = 4
DATETIME = 5
DATE = 6
TIME = 7
TIMEDELTA = 8
UUID = 9
ENUM = 10
REGEX = 11
LAZY = 12
SETTINGSREF = 13
REF = 14
PARTIAL = 15
DECONSTRUCTED = 16
FIELD = 17
MANAGER = 18
PATH = 19
OPERATION = 20
# 21 was UNRESOLVABLE_REF (codec 1): fingerprints now hash such values as ORIGIN markers.
BIGINT = 22
ORIGIN = 23
FIELD_ORIGIN = 24


class Partial(functools.partial):
    """A partial that compares by value.

    functools.partial compares by identity, so a decoded partial would never equal the one a
    migration module holds. Django's serializer and autodetector treat partials by value too.
    """

    def __eq__(self, other: object) -> bool:
        if isinstance(other, functools.partial):
            return (self.func, self.args, self.keywords) == (
                other.func,
                other.args,
                other.keywords,
            )
        return NotImplemented

    def __hash__(self) -> int:
        try:
            return hash((self.func, self.args, tuple(sorted(self.keywords.items()))))
        except TypeError:
            return hash(self.func)


# Django's migration serializer writes "functools.<class name>(...)": keep that "partial", so
# that a migration written from a cached state imports.
Partial.__name__ = "partial"


def ref_of(obj: Any) -> str:
    """The import path of a module-level class or function, checked to resolve back to it."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    owner = getattr(obj, "__self__", None)
    if module is None and isinstance(owner, type):  # a builtin class method: date.today
        module = owner.__module__
    if not module or not qualname or "<" in qualname:
        raise Uncacheable(f"{obj!r} has no import path")
    path = f"{module}:{qualname}"
    try:
        resolved = resolve_ref(path)
    except Exception:
        raise Uncacheable(f"{obj!r} is not importable as {path}")
    if resolved is not obj and resolved != obj:
        raise Uncacheable(f"{path} does not resolve to {obj!r}")
    return path


@functools.lru_cache(maxsize=4096)
def resolve_ref(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _tz_payload(tz: datetime.tzinfo | None) -> Any:
    if tz is None:
        return None
    if tz is datetime.timezone.utc:
        return ["utc"]
    if type(tz) is datetime.timezone:
        offset = tz.utcoffset(None)
        return ["fixed", offset.days, offset.seconds, offset.microseconds, tz.tzname(None)]
    if isinstance(tz, zoneinfo.ZoneInfo) and tz.key:
        return ["zone", tz.key]
    raise Uncacheable(f"time zone {tz!r}")


def _clock(value: datetime.datetime | datetime.time) -> list:
    """The time-of-day part of a datetime or time, as decoding expects it."""
    fields = [value.hour, value.minute, value.second, value.microsecond, value.fold]
    return [*fields, _tz_payload(value.tzinfo)]


def _tz_value(payload: Any) -> datetime.tzinfo | None:
    if payload is None:
        return None
    kind = payload[0]
    if kind == "utc":
        return datetime.timezone.utc
    if kind == "fixed":
        _, days, seconds, micro, name = payload
        return datetime.timezone(datetime.timedelta(days, seconds, micro), name)
    if kind == "zone":
        return zoneinfo.ZoneInfo(payload[1])
    raise ValueError(f"unknown time zone payload {payload!r}")


class Encoder:
    """Turns values into msgpack bytes.

    `fingerprint=True` is for hashing migrations, not for decoding: operations are accepted and
    callables that cannot be imported (lambdas in RunPython) are named rather than refused.
    """

    def __init__(
        self,
        fingerprint: bool = False,
        refs: set[str] | None = None,
        *,
        leaves: origins.Leaves | None = None,
        index: origins.Index | None = None,
        fields_by_origin: bool = True,
        volatile: frozenset[tuple[int, str]] = frozenset(),
    ) -> None:
        self.fingerprint = fingerprint
        # Fingerprinting: field ordinal -> the keywords whose values are volatile.
        self.volatile: dict[int, set[str]] = {}
        for ordinal, name in volatile:
            self.volatile.setdefault(ordinal, set()).add(name)
        # Encoding a state: operations' fields that their deconstruction does not rebuild
        # are written by origin (_unfaithful).
        self.fields_by_origin = fields_by_origin and index is not None
        self.refs = refs  # collects every import path written, when given
        self.leaves = leaves  # fingerprinting: receives the values taken by origin
        self.index = index  # encoding a state: where those values come from
        # > 0 while the elements of a set are packed: their order is not stable, so values
        # met there cannot be given an ordinal (they are hashed, never taken by origin).
        self._in_set = 0

    def _path(self, obj: Any) -> str:
        path = ref_of(obj)
        if self.refs is not None:
            self.refs.add(path)
        return path

    def pack(self, value: Any) -> bytes:
        try:
            return msgpack.packb(value, default=self._default, use_bin_type=True, strict_types=True)
        except Uncacheable:
            raise
        except (OverflowError, TypeError, ValueError, RecursionError) as exc:
            raise Uncacheable(f"cannot encode {value!r}: {exc}")

    def _ext(self, code: int, payload: Any) -> Any:
        if self.fingerprint:
            # Hashed, never decoded: a tagged list is unambiguous (no migration holds an
            # ExtType) and saves packing every nested value separately.
            return [msgpack.ExtType(code, b""), payload]
        return msgpack.ExtType(code, self.pack(payload))

    def _leaf(self, obj: Any, reason: str, marker: Any) -> Any:
        """Fingerprinting: what is hashed for a value taken by origin (its kind and a stable
        marker, never the value), recording the value as a leaf of the migration."""
        if self.leaves is not None and not self._in_set:
            self.leaves.add(obj, reason)
        else:
            reason = "unrecorded " + reason
        return self._ext(ORIGIN, [reason, marker])

    def _origin(self, obj: Any) -> Any:
        """Encoding a state: `obj` as its origin, if it is a leaf of the loaded migrations."""
        found = self.index.origins_of(obj) if self.index is not None else None
        if found is None:
            return None
        return self._ext(ORIGIN, [[list(o) for o in found], origins.type_name(obj)])

    def _class(self, cls: type) -> Any:
        """A class by import path; if it has none (made by a factory), by origin."""
        try:
            return self._path(cls)
        except Uncacheable:
            if self.fingerprint:
                bases = [origins.path_of(base) for base in cls.__mro__[1:]]
                return self._leaf(cls, origins.NOT_IMPORTABLE, [origins.path_of(cls), bases])
            found = self._origin(cls)
            if found is None:
                raise
            return found

    def _volatile_by_origin(self, field: models.Field, kwargs: dict) -> dict:
        """Encoding a state: the field's volatile arguments as their origin. A volatile value
        anywhere else (a copy of the field) cannot be written: it would be this writer's."""
        names = self.index.volatile_names(field)
        if not names and not self.index.has_volatile:
            return kwargs
        result = {}
        for name, value in kwargs.items():
            if name in names:
                found = self._origin(value)
                if found is None:
                    raise Uncacheable(f"{field!r}: {name} has no origin here")
                result[name] = found
            elif self.index.is_volatile(value):
                raise Uncacheable(f"{field!r}: {name} is a value computed at import time")
            else:
                result[name] = value
        return result

    def _field_class(self, cls: type, path: str) -> Any:
        """A field's class by import path. A class made by a factory, whose deconstruction
        names that factory (django-cryptography's `encrypt(CharField(...))`), by the factory:
        decoding calls it with the deconstruction's arguments, as loading the migration does
        (verify() then checks that this gives the same class and deconstruction). Otherwise
        by origin (_class)."""
        try:
            return self._path(cls)
        except Uncacheable:
            pass
        module, _, name = path.rpartition(".")
        factory = getattr(sys.modules.get(module), name, None)  # imports nothing
        if callable(factory) and not isinstance(factory, type):
            try:
                return self._path(factory)
            except Uncacheable:
                pass
        return self._class(cls)

    def _ref(self, obj: Any) -> msgpack.ExtType:
        try:
            return self._ext(REF, self._path(obj))
        except Uncacheable:
            if not self.fingerprint:
                raise
            name = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', '?')}"
            deconstruct = getattr(obj, "deconstruct", None)
            if callable(deconstruct):  # models.SET(value) returns such a closure
                try:
                    return self._leaf(obj, origins.NOT_IMPORTABLE, [name, deconstruct()])
                except Exception:
                    pass
            code = getattr(obj, "__code__", None)
            body = code.co_code if code is not None else b""
            return self._leaf(obj, origins.NOT_IMPORTABLE, [name, body])

    def _default(self, obj: Any) -> Any:
        if self.fingerprint:
            if type(obj) in VOLATILE:
                return self._leaf(obj, origins.IMPORT_TIME, origins.type_name(obj))
            try:
                return self._exact(obj)
            except Uncacheable:
                return self._leaf(obj, origins.NO_ENCODING, origins.type_name(obj))
        found = self._origin(obj)
        if found is not None:
            return found
        if self.index is not None and type(obj) in VOLATILE:
            # Its value would be the writer's: only an operation's own value is this process's.
            raise Uncacheable(f"{obj!r} is not an operation argument")
        return self._exact(obj)

    def _exact(self, obj: Any) -> Any:  # noqa: C901 - one dispatch table
        t = type(obj)
        if t is int:  # beyond msgpack's 64 bits
            return self._ext(BIGINT, str(obj))
        if t is tuple:
            return self._ext(TUPLE, list(obj))
        if t is set or t is frozenset:
            self._in_set += 1
            try:
                items = sorted(self.pack(item) for item in obj)
            finally:
                self._in_set -= 1
            return msgpack.ExtType(
                SET if t is set else FROZENSET,
                msgpack.packb([msgpack.ExtType(0, i) for i in items], use_bin_type=True),
            )
        if t is SettingsReference:
            return self._ext(SETTINGSREF, [str(obj), obj.setting_name])
        if isinstance(obj, enum.Enum):
            return self._ext(ENUM, [self._path(t), obj.value])
        if isinstance(obj, Promise):
            _, (func, args, kwargs, *resultclasses) = obj.__reduce__()
            return self._ext(
                LAZY, [self._ref(func), args, kwargs, [self._path(c) for c in resultclasses]]
            )
        if t is decimal.Decimal:
            return self._ext(DECIMAL, str(obj))
        if t is datetime.datetime:
            return self._ext(DATETIME, [obj.year, obj.month, obj.day, *_clock(obj)])
        if t is datetime.date:
            return self._ext(DATE, [obj.year, obj.month, obj.day])
        if t is datetime.time:
            return self._ext(TIME, _clock(obj))
        if t is datetime.timedelta:
            return self._ext(TIMEDELTA, [obj.days, obj.seconds, obj.microseconds])
        if t is uuid.UUID:
            return self._ext(UUID, obj.bytes)
        if t is re.Pattern:
            return self._ext(REGEX, [obj.pattern, obj.flags])
        if isinstance(obj, pathlib.PurePath):
            return self._ext(PATH, [self._path(t), str(obj)])
        if isinstance(obj, functools.partial):
            return self._ext(PARTIAL, [obj.func, list(obj.args), obj.keywords])
        if isinstance(obj, models.Field):
            _, path, args, kwargs = obj.deconstruct()
            if self.fingerprint and self.leaves is not None and not self._in_set:
                names = self.volatile.get(len(self.leaves.fields), set()) & kwargs.keys()
                self.leaves.fields.append(obj)
                if names:
                    self.leaves.volatile[len(self.leaves.fields) - 1] = names
                    kwargs = {
                        name: self._leaf(value, origins.IMPORT_TIME, origins.type_name(value))
                        if name in names
                        else value
                        for name, value in kwargs.items()
                    }
            elif self.index is not None:
                kwargs = self._volatile_by_origin(obj, kwargs)
            if self.fields_by_origin:
                found = self.index.field_origins_of(obj)
                # A field with volatile arguments too: a copy would hold them outside it.
                by_origin = self.index.volatile_names(obj) or _unfaithful(obj, self.index)
                if found is not None and by_origin:
                    where = [list(o) for o in found]
                    payload = [where, origins.type_name(obj), path, list(args), kwargs]
                    return self._ext(FIELD_ORIGIN, payload)
            return self._ext(FIELD, [self._field_class(t, path), list(args), kwargs])
        if isinstance(obj, BaseManager):
            try:
                as_manager, manager_path, qs_path, args, kwargs = obj.deconstruct()
            except ValueError as exc:
                raise Uncacheable(str(exc))
            if self.refs is not None:
                self.refs.update(p for p in (manager_path, qs_path) if p)
            return self._ext(
                MANAGER, [as_manager, manager_path, qs_path, list(args or ()), kwargs or {}]
            )
        if self.fingerprint and hasattr(obj, "state_forwards"):
            constructed = compat.constructor_args(obj)
            if constructed is not None:
                args, kwargs = constructed
                return self._ext(OPERATION, [self._class(t), list(args), kwargs])
        if isinstance(
            obj,
            (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType),
        ):
            return self._ref(obj)
        deconstruct = getattr(obj, "deconstruct", None)
        if deconstruct is not None:
            try:
                result = deconstruct()
            except Exception as exc:
                raise Uncacheable(f"{obj!r}.deconstruct() failed: {exc}")
            if not (isinstance(result, tuple) and len(result) == 3):
                raise Uncacheable(f"{obj!r}.deconstruct() is not (path, args, kwargs)")
            _, args, kwargs = result
            payload = [self._class(t), list(args), dict(kwargs)]
            if self.fingerprint and t.__eq__ is object.__eq__:
                # A decoded copy would never equal it: the state needs the object itself.
                return self._leaf(obj, origins.NO_EQUALITY, payload)
            return self._ext(DECONSTRUCTED, payload)
        raise Uncacheable(f"no exact encoding for {t.__qualname__} value {obj!r}")


class _Decoder:
    """msgpack's ext hook; unless `trusted`, every import path is checked before it is used."""

    def __init__(self, trusted: bool, index: origins.Index | None = None) -> None:
        self.trusted = trusted
        self.index = index

    def unpack(self, data: bytes) -> Any:
        return msgpack.unpackb(
            data, ext_hook=self.hook, raw=False, strict_map_key=False, use_list=True
        )

    def resolve(self, path: Any) -> Any:
        if not isinstance(path, str):
            raise ValueError(f"import path {path!r} is not a string")
        if not self.trusted and not is_allowed(path):
            raise Disallowed(path)
        if ":" not in path:  # managers are deconstructed to dotted paths
            return import_string(path)
        return resolve_ref(path)

    def construct(self, cls: Any, args: Any, kwargs: Any) -> Any:
        if not isinstance(cls, type):  # a class by origin: never anything else
            cls = self.resolve(cls)
        return cls(*args, **kwargs)

    def hook(self, code: int, data: bytes) -> Any:  # noqa: C901 - one dispatch table
        if code == 0:  # an element of a sorted set, packed on its own
            return self.unpack(data)
        payload = self.unpack(data)
        if code == TUPLE:
            return tuple(payload)
        if code == SET:
            return set(payload)
        if code == FROZENSET:
            return frozenset(payload)
        if code == DECIMAL:
            return decimal.Decimal(payload)
        if code == BIGINT:
            return int(payload)
        if code == DATETIME:
            *parts, fold, tz = payload
            return datetime.datetime(*parts, tzinfo=_tz_value(tz), fold=fold)
        if code == DATE:
            return datetime.date(*payload)
        if code == TIME:
            *parts, fold, tz = payload
            return datetime.time(*parts, tzinfo=_tz_value(tz), fold=fold)
        if code == TIMEDELTA:
            return datetime.timedelta(*payload)
        if code == UUID:
            return uuid.UUID(bytes=payload)
        if code == ENUM:
            return self.resolve(payload[0])(payload[1])
        if code == REGEX:
            return re.compile(payload[0], payload[1])
        if code == LAZY:
            func, args, kwargs, resultclasses = payload
            return lazy(func, *[self.resolve(c) for c in resultclasses])(*args, **kwargs)
        if code == SETTINGSREF:
            return SettingsReference(payload[0], payload[1])
        if code == REF:
            return self.resolve(payload)
        if code == PARTIAL:
            func, args, keywords = payload
            return Partial(func, *args, **keywords)
        if code in (DECONSTRUCTED, FIELD):
            cls, args, kwargs = payload
            return self.construct(cls, args, kwargs)
        if code == FIELD_ORIGIN:
            if self.index is None:
                raise origins.Unresolved("no loaded migrations to take it from")
            found, expected, path, args, kwargs = payload
            live = self.index.resolve_field(found, expected)
            # The operation's own field, unless something has changed it since (Django's
            # RenameField mutates the fields that point at the renamed one): a miss.
            if not _same(list(live.deconstruct()[1:]), [path, args, kwargs]):
                raise origins.Unresolved(f"{found[0]!r} has another deconstruction here")
            return live
        if code == ORIGIN:
            if self.index is None:
                raise origins.Unresolved("no loaded migrations to take it from")
            found, expected = payload
            return self.index.resolve(found, expected)
        if code == MANAGER:
            as_manager, manager_path, qs_path, args, kwargs = payload
            # Exactly what ModelState.construct_managers does with a deconstruction.
            if as_manager:
                return self.resolve(qs_path).as_manager()
            return self.resolve(manager_path)(*args, **kwargs)
        if code == PATH:
            return self.resolve(payload[0])(payload[1])
        raise ValueError(f"unknown extension type {code}")


_encoder = Encoder()
fingerprint_encoder = Encoder(fingerprint=True)


def _encoder_for(index: origins.Index | None) -> Encoder:
    return _encoder if index is None else Encoder(index=index)


def _model_state_payload(state: ModelState, encoder: Encoder) -> list[Any]:
    if type(state.options) is not dict or type(state.fields) is not dict:
        raise Uncacheable(f"{state!r} has non-dict fields or options")
    counters = sorted(
        range(len(state.managers)), key=lambda i: state.managers[i][1].creation_counter
    )
    rank = {index: position for position, index in enumerate(counters)}
    return [
        CODEC_VERSION,
        state.app_label,
        state.name,
        [[name, field] for name, field in state.fields.items()],
        state.options,
        tuple(state.bases),
        # Packed separately so that decoding can create them in their creation order.
        [
            [name, encoder.pack(manager), rank[i]]
            for i, (name, manager) in enumerate(state.managers)
        ],
    ]


def encode_model_state(
    state: ModelState, *, check: bool = True, index: origins.Index | None = None
) -> bytes:
    """The bytes of `state`; with `index`, the leaves of those migrations by origin."""
    encoder = _encoder_for(index)
    data = encoder.pack(_model_state_payload(state, encoder))
    if check:
        verify(state, data, index=index)
    return data


def _unfaithful(field: models.Field, index: origins.Index) -> bool:
    """Whether rebuilding `field` from its deconstruction gives another deconstruction: its
    constructor changes its arguments (django-extensions' AutoSlugField(editable=True) comes
    back editable=False). Such a field, an operation's own object, is written by origin:
    decoding takes this process's object, as vanilla Django's state holds it. Checked once
    per field and plan."""
    known = index.faithful.get(id(field))
    if known is None or known[0] is not field:
        try:
            encoder = Encoder(index=index, fields_by_origin=False)
            copy = _Decoder(True, index).unpack(encoder.pack(field))
            faithful = type(copy) is type(field) and _same(copy, field)
        except Exception:
            faithful = False
        known = index.faithful[id(field)] = (field, faithful)
    return not known[1]


def verify(state: ModelState, data: bytes, *, index: origins.Index | None = None) -> None:
    """Raise Uncacheable unless `data` decodes to a state equal to `state` that encodes back
    to the same bytes."""
    try:
        decoded = decode_model_state(data, trusted=True, index=index)
    except Exception as exc:
        raise Uncacheable(f"{state!r} does not decode: {exc}")
    encoder = _encoder_for(index)
    again = encoder.pack(_model_state_payload(decoded, encoder))
    if not same_state(decoded, state) or again != data:
        raise Uncacheable(f"{state!r} does not round-trip exactly")


def same_state(a: ModelState, b: ModelState) -> bool:
    """ModelState.__eq__, except that fields given as arguments to other fields are compared
    by deconstruction too.

    Django compares each field by its deconstruction, whose arguments it compares with ==; a
    field among them compares by creation counter. A wrapper that deconstructs to a factory
    and a new base field each time (django-cryptography's `encrypt(CharField(...))`) is then
    never equal to itself, although Django itself rebuilds it from that deconstruction when it
    loads the migration or clones the field."""
    if (a.app_label, a.name, sorted(a.fields)) != (b.app_label, b.name, sorted(b.fields)):
        return False
    if any(not _same(a.fields[name], b.fields[name]) for name in a.fields):
        return False
    return a.options == b.options and a.bases == b.bases and a.managers == b.managers


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, models.Field) and isinstance(b, models.Field):
        return type(a) is type(b) and _same(a.deconstruct()[1:], b.deconstruct()[1:])
    if type(a) is not type(b):
        return a == b
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def decode_model_state(
    data: bytes, *, trusted: bool = False, index: origins.Index | None = None
) -> ModelState:
    """Decode a ModelState. Unless `trusted` (bytes this process has just encoded), an import
    path the migration graph does not use raises Disallowed, before anything is imported.
    Values by origin come from `index` (origins.Unresolved without it)."""
    decoder = _Decoder(trusted, index)
    version, app_label, name, fields, options, bases, managers = decoder.unpack(data)
    if version != CODEC_VERSION:
        raise ValueError(f"codec version {version}, expected {CODEC_VERSION}")
    # Managers are created in their original creation order so that rendering sorts them the same.
    built: dict[int, Any] = {}
    for position, (_, packed, _rank) in sorted(enumerate(managers), key=lambda item: item[1][2]):
        built[position] = decoder.unpack(packed)
    return ModelState(
        app_label,
        name,
        [(field_name, field) for field_name, field in fields],
        options,
        bases,
        [(manager_name, built[i]) for i, (manager_name, _, _) in enumerate(managers)],
    )


def fingerprint_bytes(
    value: Any,
    refs: set[str] | None = None,
    leaves: origins.Leaves | None = None,
    volatile: frozenset[tuple[int, str]] = frozenset(),
) -> bytes:
    """Bytes to hash; `refs`, when given, receives every import path they name, and `leaves`
    the values they hash as markers (see origins.py), with the field arguments at the
    `volatile` positions (volatile.py)."""
    if refs is None and leaves is None:
        return fingerprint_encoder.pack(value)
    return Encoder(fingerprint=True, refs=refs, leaves=leaves, volatile=volatile).pack(value)
