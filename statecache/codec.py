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
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

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


# Extension type codes: the byte layout, each code written and read by one handler (below).
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


class Encoder:
    """Turns values into msgpack bytes: what msgpack cannot pack itself goes to the handler of
    its kind (`_exact`, the table below).

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

    def pack(self, value: Any) -> bytes:
        try:
            return msgpack.packb(value, default=self._default, use_bin_type=True, strict_types=True)
        except Uncacheable:
            raise
        except (OverflowError, TypeError, ValueError, RecursionError) as exc:
            raise Uncacheable(f"cannot encode {value!r}: {exc}")

    def _default(self, obj: Any) -> Any:
        """msgpack's hook for what it cannot pack: by origin, as a leaf, or exactly."""
        if self.fingerprint:
            if type(obj) in VOLATILE:
                return self.leaf(obj, origins.IMPORT_TIME, origins.type_name(obj))
            try:
                return self._exact(obj)
            except Uncacheable:
                return self.leaf(obj, origins.NO_ENCODING, origins.type_name(obj))
        found = self.origin(obj)
        if found is not None:
            return found
        if self.index is not None and type(obj) in VOLATILE:
            # Its value would be the writer's: only an operation's own value is this process's.
            raise Uncacheable(f"{obj!r} is not an operation argument")
        return self._exact(obj)

    def _exact(self, obj: Any) -> Any:
        """`obj` written by the handler of its kind (the table below)."""
        t = type(obj)
        handler = _BY_TYPE.get(t)
        if handler is not None:
            return handler.encode(self, obj)
        for handler in _BY_KIND:
            if handler.accepts(self, obj):
                return handler.encode(self, obj)
        raise Uncacheable(f"no exact encoding for {t.__qualname__} value {obj!r}")

    # -- what handlers write with --------------------------------------------------------------

    def ext(self, code: int, payload: Any) -> Any:
        if self.fingerprint:
            # Hashed, never decoded: a tagged list is unambiguous (no migration holds an
            # ExtType) and saves packing every nested value separately.
            return [msgpack.ExtType(code, b""), payload]
        return msgpack.ExtType(code, self.pack(payload))

    def pack_unordered(self, items: Iterable[Any]) -> list[bytes]:
        """The items packed one by one and sorted: one encoding whatever their order. None of
        the values met there is recorded as a leaf (see `recording`)."""
        self._in_set += 1
        try:
            return sorted(self.pack(item) for item in items)
        finally:
            self._in_set -= 1

    @property
    def recording(self) -> bool:
        """Whether values met now are recorded as leaves: not inside a set, whose elements
        have no stable order, hence no ordinal."""
        return self.leaves is not None and not self._in_set

    def path(self, obj: Any) -> str:
        path = ref_of(obj)
        if self.refs is not None:
            self.refs.add(path)
        return path

    def leaf(self, obj: Any, reason: str, marker: Any) -> Any:
        """Fingerprinting: what is hashed for a value taken by origin (its kind and a stable
        marker, never the value), recording the value as a leaf of the migration."""
        if self.recording:
            self.leaves.add(obj, reason)
        else:
            reason = "unrecorded " + reason
        return self.ext(ORIGIN, [reason, marker])

    def origin(self, obj: Any) -> Any:
        """Encoding a state: `obj` as its origin, if it is a leaf of the loaded migrations."""
        found = self.index.origins_of(obj) if self.index is not None else None
        if found is None:
            return None
        return self.ext(ORIGIN, [[list(o) for o in found], origins.type_name(obj)])

    def class_ref(self, cls: type) -> Any:
        """A class by import path; if it has none (made by a factory), by origin."""
        try:
            return self.path(cls)
        except Uncacheable:
            if self.fingerprint:
                bases = [origins.path_of(base) for base in cls.__mro__[1:]]
                return self.leaf(cls, origins.NOT_IMPORTABLE, [origins.path_of(cls), bases])
            found = self.origin(cls)
            if found is None:
                raise
            return found

    def ref(self, obj: Any) -> Any:
        """A class or function by import path; fingerprinting, one that has none (a lambda, a
        closure) as a leaf."""
        try:
            return self.ext(REF, self.path(obj))
        except Uncacheable:
            if not self.fingerprint:
                raise
            name = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', '?')}"
            deconstruct = getattr(obj, "deconstruct", None)
            if callable(deconstruct):  # models.SET(value) returns such a closure
                try:
                    return self.leaf(obj, origins.NOT_IMPORTABLE, [name, deconstruct()])
                except Exception:
                    pass
            code = getattr(obj, "__code__", None)
            body = code.co_code if code is not None else b""
            return self.leaf(obj, origins.NOT_IMPORTABLE, [name, body])


class _Decoder:
    """msgpack's ext hook; unless `trusted`, every import path is checked before it is used."""

    def __init__(self, trusted: bool, index: origins.Index | None = None) -> None:
        self.trusted = trusted
        self.index = index

    def unpack(self, data: bytes) -> Any:
        return msgpack.unpackb(
            data, ext_hook=self.hook, raw=False, strict_map_key=False, use_list=True
        )

    def hook(self, code: int, data: bytes) -> Any:
        payload = self.unpack(data)
        handler = _BY_CODE.get(code)
        if handler is None:
            raise ValueError(f"unknown extension type {code}")
        return handler.decode(self, payload)

    # -- what handlers read with ---------------------------------------------------------------

    def resolve(self, path: Any) -> Any:
        """What an import path names; the only way decoding imports anything."""
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

    def loaded(self) -> origins.Index:
        """The loaded migrations, which values by origin are taken from."""
        if self.index is None:
            raise origins.Unresolved("no loaded migrations to take it from")
        return self.index


# -- the handlers --------------------------------------------------------------------------------
#
# One handler per kind of value: the extension code it is written under, the values it takes,
# and both directions side by side. Adding a kind is adding a handler (and its code above).


class Handler:
    """How one kind of value is written (`encode`: what msgpack packs in its place, usually
    `encoder.ext(self.code, payload)`) and read back (`decode`: from that payload, unpacked).

    A value goes to the handler registered for its exact type (`exact`, matched by `type(obj)
    is`, as msgpack's strict types match what it packs itself: a subclass is not taken), else
    to the first handler, in registration order, that `accepts` it (by default: an instance of
    one of its `kinds`). A handler with neither only decodes: another writes its code."""

    code: ClassVar[int]
    exact: ClassVar[tuple[type, ...]] = ()
    kinds: ClassVar[tuple[type, ...]] = ()

    def accepts(self, encoder: Encoder, obj: Any) -> bool:
        return isinstance(obj, self.kinds)

    def encode(self, encoder: Encoder, obj: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} only decodes")

    def decode(self, decoder: _Decoder, payload: Any) -> Any:
        # Written only to be hashed (OPERATION): never in a cached state.
        raise ValueError(f"unknown extension type {self.code}")


_BY_TYPE: dict[type, Handler] = {}  # exact type -> its handler
_BY_KIND: list[Handler] = []  # handlers that accept by kind, in the order they are tried
_BY_CODE: dict[int, Handler] = {}  # extension code -> the handler that decodes it

_H = TypeVar("_H", bound=type[Handler])


def handler(cls: _H) -> _H:
    """Register a handler (one per extension code).

    Exact types are looked up first; the handlers by kind are then tried in the order they are
    registered, which matters where kinds overlap: a field, a manager or a deconstructible
    class also has a `deconstruct`, and must be taken before _Deconstructed takes anything
    that has one. Looking exact types up first gives what trying every handler in order would
    only while no handler by kind registered before an exact type can take its values: checked
    here (what a handler's own `accepts` takes cannot be, so no exact type may follow one)."""
    instance = cls()
    if cls.code in _BY_CODE:
        raise RuntimeError(f"extension code {cls.code} is taken by {_BY_CODE[cls.code]!r}")
    _BY_CODE[cls.code] = instance
    for t in cls.exact:
        if t in _BY_TYPE or any(_may_take(h, t) for h in _BY_KIND):
            raise RuntimeError(f"{t.__qualname__} values may be taken before {cls.__name__}")
        _BY_TYPE[t] = instance
    if cls.kinds or cls.accepts is not Handler.accepts:
        _BY_KIND.append(instance)
    return cls


def _may_take(earlier: Handler, t: type) -> bool:
    return type(earlier).accepts is not Handler.accepts or issubclass(t, earlier.kinds)


@handler
class _SetElement(Handler):
    """An element of a set, packed on its own (SET, FROZENSET)."""

    code = 0

    def decode(self, decoder: _Decoder, payload: Any) -> Any:
        return payload


@handler
class _BigInt(Handler):
    """An int beyond msgpack's 64 bits (msgpack packs the others itself)."""

    code = BIGINT
    exact = (int,)

    def encode(self, encoder: Encoder, obj: int) -> Any:
        return encoder.ext(BIGINT, str(obj))

    def decode(self, decoder: _Decoder, payload: Any) -> int:
        return int(payload)


@handler
class _Tuple(Handler):
    code = TUPLE
    exact = (tuple,)

    def encode(self, encoder: Encoder, obj: tuple) -> Any:
        return encoder.ext(TUPLE, list(obj))

    def decode(self, decoder: _Decoder, payload: Any) -> tuple:
        return tuple(payload)


class _AnySet(Handler):
    """Sets are written in a canonical order, their elements sorted by their bytes, so that
    equal states have equal bytes (and fingerprints). Always as an ExtType, fingerprinting
    too: the elements are packed separately anyway."""

    def encode(self, encoder: Encoder, obj: set | frozenset) -> Any:
        items = encoder.pack_unordered(obj)
        return msgpack.ExtType(
            self.code,
            msgpack.packb([msgpack.ExtType(_SetElement.code, i) for i in items], use_bin_type=True),
        )


@handler
class _Set(_AnySet):
    code = SET
    exact = (set,)

    def decode(self, decoder: _Decoder, payload: Any) -> set:
        return set(payload)


@handler
class _FrozenSet(_AnySet):
    code = FROZENSET
    exact = (frozenset,)

    def decode(self, decoder: _Decoder, payload: Any) -> frozenset:
        return frozenset(payload)


@handler
class _SettingsReference(Handler):
    """A swappable model's name and its setting (`AUTH_USER_MODEL`)."""

    code = SETTINGSREF
    exact = (SettingsReference,)

    def encode(self, encoder: Encoder, obj: SettingsReference) -> Any:
        return encoder.ext(SETTINGSREF, [str(obj), obj.setting_name])

    def decode(self, decoder: _Decoder, payload: Any) -> SettingsReference:
        return SettingsReference(payload[0], payload[1])


@handler
class _Enum(Handler):
    code = ENUM
    kinds = (enum.Enum,)

    def encode(self, encoder: Encoder, obj: enum.Enum) -> Any:
        return encoder.ext(ENUM, [encoder.path(type(obj)), obj.value])

    def decode(self, decoder: _Decoder, payload: Any) -> enum.Enum:
        return decoder.resolve(payload[0])(payload[1])


@handler
class _Lazy(Handler):
    """A lazy object (gettext_lazy): the function, its arguments and the result classes."""

    code = LAZY
    kinds = (Promise,)

    def encode(self, encoder: Encoder, obj: Promise) -> Any:
        _, (func, args, kwargs, *resultclasses) = obj.__reduce__()
        payload = [encoder.ref(func), args, kwargs, [encoder.path(c) for c in resultclasses]]
        return encoder.ext(LAZY, payload)

    def decode(self, decoder: _Decoder, payload: Any) -> Any:
        func, args, kwargs, resultclasses = payload
        return lazy(func, *[decoder.resolve(c) for c in resultclasses])(*args, **kwargs)


@handler
class _Decimal(Handler):
    code = DECIMAL
    exact = (decimal.Decimal,)

    def encode(self, encoder: Encoder, obj: decimal.Decimal) -> Any:
        return encoder.ext(DECIMAL, str(obj))

    def decode(self, decoder: _Decoder, payload: Any) -> decimal.Decimal:
        return decimal.Decimal(payload)


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


def _clock(value: datetime.datetime | datetime.time) -> list:
    """The time-of-day part of a datetime or time: [hour, minute, second, microsecond, fold,
    time zone], the end of both payloads."""
    fields = [value.hour, value.minute, value.second, value.microsecond, value.fold]
    return [*fields, _tz_payload(value.tzinfo)]


@handler
class _DateTime(Handler):
    code = DATETIME
    exact = (datetime.datetime,)

    def encode(self, encoder: Encoder, obj: datetime.datetime) -> Any:
        return encoder.ext(DATETIME, [obj.year, obj.month, obj.day, *_clock(obj)])

    def decode(self, decoder: _Decoder, payload: Any) -> datetime.datetime:
        *parts, fold, tz = payload
        return datetime.datetime(*parts, tzinfo=_tz_value(tz), fold=fold)


@handler
class _Date(Handler):
    code = DATE
    exact = (datetime.date,)

    def encode(self, encoder: Encoder, obj: datetime.date) -> Any:
        return encoder.ext(DATE, [obj.year, obj.month, obj.day])

    def decode(self, decoder: _Decoder, payload: Any) -> datetime.date:
        return datetime.date(*payload)


@handler
class _Time(Handler):
    code = TIME
    exact = (datetime.time,)

    def encode(self, encoder: Encoder, obj: datetime.time) -> Any:
        return encoder.ext(TIME, _clock(obj))

    def decode(self, decoder: _Decoder, payload: Any) -> datetime.time:
        *parts, fold, tz = payload
        return datetime.time(*parts, tzinfo=_tz_value(tz), fold=fold)


@handler
class _TimeDelta(Handler):
    code = TIMEDELTA
    exact = (datetime.timedelta,)

    def encode(self, encoder: Encoder, obj: datetime.timedelta) -> Any:
        return encoder.ext(TIMEDELTA, [obj.days, obj.seconds, obj.microseconds])

    def decode(self, decoder: _Decoder, payload: Any) -> datetime.timedelta:
        return datetime.timedelta(*payload)


@handler
class _UUID(Handler):
    code = UUID
    exact = (uuid.UUID,)

    def encode(self, encoder: Encoder, obj: uuid.UUID) -> Any:
        return encoder.ext(UUID, obj.bytes)

    def decode(self, decoder: _Decoder, payload: Any) -> uuid.UUID:
        return uuid.UUID(bytes=payload)


@handler
class _Regex(Handler):
    code = REGEX
    exact = (re.Pattern,)

    def encode(self, encoder: Encoder, obj: re.Pattern) -> Any:
        return encoder.ext(REGEX, [obj.pattern, obj.flags])

    def decode(self, decoder: _Decoder, payload: Any) -> re.Pattern:
        return re.compile(payload[0], payload[1])


@handler
class _Path(Handler):
    code = PATH
    kinds = (pathlib.PurePath,)

    def encode(self, encoder: Encoder, obj: pathlib.PurePath) -> Any:
        return encoder.ext(PATH, [encoder.path(type(obj)), str(obj)])

    def decode(self, decoder: _Decoder, payload: Any) -> pathlib.PurePath:
        return decoder.resolve(payload[0])(payload[1])


@handler
class _Partial(Handler):
    """Decoded as a `Partial`, which compares by value."""

    code = PARTIAL
    kinds = (functools.partial,)

    def encode(self, encoder: Encoder, obj: functools.partial) -> Any:
        return encoder.ext(PARTIAL, [obj.func, list(obj.args), obj.keywords])

    def decode(self, decoder: _Decoder, payload: Any) -> Partial:
        func, args, keywords = payload
        return Partial(func, *args, **keywords)


@handler
class _Field(Handler):
    """A field as its deconstruction, its class by import path (FIELD); an operation's own
    field that its deconstruction does not rebuild, by origin (FIELD_ORIGIN, decoded below).

    Fingerprinting, every field met is recorded in walk order (its ordinal) and the arguments
    at the volatile positions are hashed as leaves; encoding a state, volatile arguments are
    written by origin."""

    code = FIELD
    kinds = (models.Field,)

    def encode(self, encoder: Encoder, obj: models.Field) -> Any:
        _, path, args, kwargs = obj.deconstruct()
        if encoder.fingerprint and encoder.recording:
            kwargs = self._recorded(encoder, obj, kwargs)
        elif encoder.index is not None:
            kwargs = self._volatile_by_origin(encoder, obj, kwargs)
        if encoder.fields_by_origin:
            found = encoder.index.field_origins_of(obj)
            # A field with volatile arguments too: a copy would hold them outside it.
            by_origin = encoder.index.volatile_names(obj) or _unfaithful(obj, encoder.index)
            if found is not None and by_origin:
                where = [list(o) for o in found]
                payload = [where, origins.type_name(obj), path, list(args), kwargs]
                return encoder.ext(FIELD_ORIGIN, payload)
        cls = self._field_class(encoder, type(obj), path)
        return encoder.ext(FIELD, [cls, list(args), kwargs])

    def decode(self, decoder: _Decoder, payload: Any) -> models.Field:
        cls, args, kwargs = payload
        return decoder.construct(cls, args, kwargs)

    @staticmethod
    def _recorded(encoder: Encoder, field: models.Field, kwargs: dict) -> dict:
        """Fingerprinting: record `field` as the next field of the migration, and its
        arguments at the volatile positions as leaves."""
        leaves = encoder.leaves
        names = encoder.volatile.get(len(leaves.fields), set()) & kwargs.keys()
        leaves.fields.append(field)
        if not names:
            return kwargs
        leaves.volatile[len(leaves.fields) - 1] = names
        return {
            name: encoder.leaf(value, origins.IMPORT_TIME, origins.type_name(value))
            if name in names
            else value
            for name, value in kwargs.items()
        }

    @staticmethod
    def _volatile_by_origin(encoder: Encoder, field: models.Field, kwargs: dict) -> dict:
        """Encoding a state: the field's volatile arguments as their origin. A volatile value
        anywhere else (a copy of the field) cannot be written: it would be this writer's."""
        index = encoder.index
        names = index.volatile_names(field)
        if not names and not index.has_volatile:
            return kwargs
        result = {}
        for name, value in kwargs.items():
            if name in names:
                found = encoder.origin(value)
                if found is None:
                    raise Uncacheable(f"{field!r}: {name} has no origin here")
                result[name] = found
            elif index.is_volatile(value):
                raise Uncacheable(f"{field!r}: {name} is a value computed at import time")
            else:
                result[name] = value
        return result

    @staticmethod
    def _field_class(encoder: Encoder, cls: type, path: str) -> Any:
        """A field's class by import path. A class made by a factory, whose deconstruction
        names that factory (django-cryptography's `encrypt(CharField(...))`), by the factory:
        decoding calls it with the deconstruction's arguments, as loading the migration does
        (verify() then checks that this gives the same class and deconstruction). Otherwise
        by origin (Encoder.class_ref)."""
        try:
            return encoder.path(cls)
        except Uncacheable:
            pass
        module, _, name = path.rpartition(".")
        factory = getattr(sys.modules.get(module), name, None)  # imports nothing
        if callable(factory) and not isinstance(factory, type):
            try:
                return encoder.path(factory)
            except Uncacheable:
                pass
        return encoder.class_ref(cls)


@handler
class _FieldOrigin(Handler):
    """An operation's own field (written by _Field): this process's object, if it still has
    the deconstruction it was written with."""

    code = FIELD_ORIGIN

    def decode(self, decoder: _Decoder, payload: Any) -> models.Field:
        index = decoder.loaded()
        found, expected, path, args, kwargs = payload
        live = index.resolve_field(found, expected)
        # The operation's own field, unless something has changed it since (Django's
        # RenameField mutates the fields that point at the renamed one): a miss.
        if not _same(list(live.deconstruct()[1:]), [path, args, kwargs]):
            raise origins.Unresolved(f"{found[0]!r} has another deconstruction here")
        return live


@handler
class _Manager(Handler):
    """A manager as its deconstruction, rebuilt exactly as ModelState.construct_managers
    does."""

    code = MANAGER
    kinds = (BaseManager,)

    def encode(self, encoder: Encoder, obj: BaseManager) -> Any:
        try:
            as_manager, manager_path, qs_path, args, kwargs = obj.deconstruct()
        except ValueError as exc:
            raise Uncacheable(str(exc))
        if encoder.refs is not None:
            encoder.refs.update(p for p in (manager_path, qs_path) if p)
        payload = [as_manager, manager_path, qs_path, list(args or ()), kwargs or {}]
        return encoder.ext(MANAGER, payload)

    def decode(self, decoder: _Decoder, payload: Any) -> BaseManager:
        as_manager, manager_path, qs_path, args, kwargs = payload
        if as_manager:
            return decoder.resolve(qs_path).as_manager()
        return decoder.resolve(manager_path)(*args, **kwargs)


@handler
class _Operation(Handler):
    """Fingerprinting only: an operation as its class and constructor arguments. Anything else
    with a `state_forwards` (or an operation without its arguments) goes on down the table."""

    code = OPERATION

    def accepts(self, encoder: Encoder, obj: Any) -> bool:
        return (
            encoder.fingerprint
            and hasattr(obj, "state_forwards")
            and compat.constructor_args(obj) is not None
        )

    def encode(self, encoder: Encoder, obj: Any) -> Any:
        args, kwargs = compat.constructor_args(obj)
        return encoder.ext(OPERATION, [encoder.class_ref(type(obj)), list(args), kwargs])


@handler
class _Ref(Handler):
    """A class or function by import path (Encoder.ref)."""

    code = REF
    kinds = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)

    def encode(self, encoder: Encoder, obj: Any) -> Any:
        return encoder.ref(obj)

    def decode(self, decoder: _Decoder, payload: Any) -> Any:
        return decoder.resolve(payload)


@handler
class _Deconstructed(Handler):
    """Anything else with a `deconstruct()` (indexes, constraints, expressions, validators):
    its class and its arguments."""

    code = DECONSTRUCTED

    def accepts(self, encoder: Encoder, obj: Any) -> bool:
        return getattr(obj, "deconstruct", None) is not None

    def encode(self, encoder: Encoder, obj: Any) -> Any:
        try:
            result = obj.deconstruct()
        except Exception as exc:
            raise Uncacheable(f"{obj!r}.deconstruct() failed: {exc}")
        if not (isinstance(result, tuple) and len(result) == 3):
            raise Uncacheable(f"{obj!r}.deconstruct() is not (path, args, kwargs)")
        _, args, kwargs = result
        t = type(obj)
        payload = [encoder.class_ref(t), list(args), dict(kwargs)]
        if encoder.fingerprint and t.__eq__ is object.__eq__:
            # A decoded copy would never equal it: the state needs the object itself.
            return encoder.leaf(obj, origins.NO_EQUALITY, payload)
        return encoder.ext(DECONSTRUCTED, payload)

    def decode(self, decoder: _Decoder, payload: Any) -> Any:
        cls, args, kwargs = payload
        return decoder.construct(cls, args, kwargs)


@handler
class _Origin(Handler):
    """A value by origin (written by Encoder.origin): this process's own object. Fingerprints
    hash leaves under this code too (Encoder.leaf), never decoded."""

    code = ORIGIN

    def decode(self, decoder: _Decoder, payload: Any) -> Any:
        index = decoder.loaded()
        found, expected = payload
        return index.resolve(found, expected)


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
