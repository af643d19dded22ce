"""ModelState <-> bytes, with msgpack and no pickle.

Every value is stored as what it is (scalars, containers with their exact types) or as its
deconstruction: the class by import path plus the constructor arguments, recursively, the way
Django writes migrations and clones fields. A value that cannot be written that way raises
`Uncacheable`; `encode_model_state` also decodes what it wrote and refuses anything that does
not come back equal and re-encode to the same bytes, so a cached state is never a guess.

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

# Bumped whenever the byte layout changes; part of every key and of the store's path.
CODEC_VERSION = 1


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
UNRESOLVABLE_REF = 21
BIGINT = 22


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

    def __init__(self, fingerprint: bool = False, refs: set[str] | None = None) -> None:
        self.fingerprint = fingerprint
        self.refs = refs  # collects every import path written, when given

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

    def _ref(self, obj: Any) -> msgpack.ExtType:
        try:
            return self._ext(REF, self._path(obj))
        except Uncacheable:
            if not self.fingerprint:
                raise
            code = getattr(obj, "__code__", None)
            body = code.co_code if code is not None else b""
            name = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', '?')}"
            return self._ext(UNRESOLVABLE_REF, [name, body])

    def _default(self, obj: Any) -> Any:  # noqa: C901 - one dispatch table
        t = type(obj)
        if t is int:  # beyond msgpack's 64 bits
            return self._ext(BIGINT, str(obj))
        if t is tuple:
            return self._ext(TUPLE, list(obj))
        if t is set or t is frozenset:
            items = sorted(self.pack(item) for item in obj)
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
            _, _, args, kwargs = obj.deconstruct()
            return self._ext(FIELD, [self._path(t), list(args), kwargs])
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
        if (
            self.fingerprint
            and hasattr(obj, "state_forwards")
            and hasattr(obj, "_constructor_args")
        ):
            args, kwargs = obj._constructor_args
            return self._ext(OPERATION, [ref_of(t), list(args), kwargs])
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
            return self._ext(DECONSTRUCTED, [self._path(t), list(args), dict(kwargs)])
        raise Uncacheable(f"no exact encoding for {t.__qualname__} value {obj!r}")


class _Decoder:
    """msgpack's ext hook; unless `trusted`, every import path is checked before it is used."""

    def __init__(self, trusted: bool) -> None:
        self.trusted = trusted

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
            return self.resolve(cls)(*args, **kwargs)
        if code == MANAGER:
            as_manager, manager_path, qs_path, args, kwargs = payload
            # Exactly what ModelState.construct_managers does with a deconstruction.
            if as_manager:
                return self.resolve(qs_path).as_manager()
            return self.resolve(manager_path)(*args, **kwargs)
        if code == PATH:
            return self.resolve(payload[0])(payload[1])
        raise ValueError(f"unknown extension type {code}")


_trusted = _Decoder(trusted=True)
_checked = _Decoder(trusted=False)


_encoder = Encoder()
fingerprint_encoder = Encoder(fingerprint=True)


def _model_state_payload(state: ModelState) -> list[Any]:
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
            [name, _encoder.pack(manager), rank[i]]
            for i, (name, manager) in enumerate(state.managers)
        ],
    ]


def encode_model_state(state: ModelState, *, check: bool = True) -> bytes:
    data = _encoder.pack(_model_state_payload(state))
    if check:
        verify(state, data)
    return data


def verify(state: ModelState, data: bytes) -> None:
    """Raise Uncacheable unless `data` decodes to a state equal to `state` that encodes back
    to the same bytes."""
    try:
        decoded = decode_model_state(data, trusted=True)
    except Exception as exc:
        raise Uncacheable(f"{state!r} does not decode: {exc}")
    if decoded != state or _encoder.pack(_model_state_payload(decoded)) != data:
        raise Uncacheable(f"{state!r} does not round-trip exactly")


def decode_model_state(data: bytes, *, trusted: bool = False) -> ModelState:
    """Decode a ModelState. Unless `trusted` (bytes this process has just encoded), an import
    path the migration graph does not use raises Disallowed, before anything is imported."""
    decoder = _trusted if trusted else _checked
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


def fingerprint_bytes(value: Any, refs: set[str] | None = None) -> bytes:
    """Bytes to hash; `refs`, when given, receives every import path they name."""
    if refs is None:
        return fingerprint_encoder.pack(value)
    return Encoder(fingerprint=True, refs=refs).pack(value)
