"""Values a cached state takes from the loaded migrations instead of from the cache.

Some operation arguments cannot be stored exactly, or should not be: a field class made by a
factory (not importable by its path), a closure such as `models.SET(callable)`, a validator
without `__eq__` (a decoded copy would never equal the original), a value with no exact
encoding, and values of the types that real migrations compute at import time
(`default=timezone.now()`, `default=uuid.uuid4()`), which differ in every process.

Fingerprinting a migration (keys.py) walks every constructor argument of its operations; each
such value met there becomes a *leaf* of that migration: its position is its origin,
`(app_label, migration name, ordinal)`, where the ordinal is the order in which the walk meets
it. The fingerprint hashes a stable marker in its place (its kind and type, or its
deconstruction), so the key neither fails nor changes from one process to the next; the value
itself is covered by the source of the migration module, which every fingerprint includes.

Django's state mutations and clones keep these objects as they are (`Field.clone` passes the
deconstruction's own values to the new field), so the states built from those operations hold
the very same objects. Encoding a state writes such an object as its origin; decoding it looks
the origin up in the migrations this process has loaded and takes this process's own object:
what vanilla Django would have put there. Nothing is imported to find it. An origin that does
not resolve here, or resolves to an object of another type, makes the entry a miss.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The types of values that migrations compute at import time. A value of these types in a
# cached state must come from an operation argument: only then can it be taken from this
# process's migrations (anything else would be the value of the process that wrote the entry).
VOLATILE = (datetime.datetime, datetime.date, datetime.time, uuid.UUID)

# Why a value is taken by origin.
IMPORT_TIME = "import-time value"
NOT_IMPORTABLE = "not importable"
NO_EQUALITY = "no __eq__"
NO_ENCODING = "no exact encoding"

Origin = tuple[str, str, int]
_MISSING = object()


class Unresolved(LookupError):
    """An origin that names no value of the loaded migrations (or one of another type)."""


def path_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def type_name(obj: Any) -> str:
    """What an origin's value must be, recorded with it and checked when it is resolved: the
    class itself for a class, else the type of the value."""
    if isinstance(obj, type):
        return "class " + path_of(obj)
    return path_of(type(obj))


def describe(obj: Any) -> str:
    """A short, stable description of a leaf for messages (never its id or address)."""
    if isinstance(obj, type) or callable(obj):
        name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
        return f"{getattr(obj, '__module__', '?')}.{name}"
    return type(obj).__qualname__


@dataclass
class Leaves:
    """The leaves of one migration, in the order its fingerprint meets them."""

    objects: list[Any] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    # Every field among the operations' arguments, in walk order: a field whose deconstruction
    # does not rebuild it is written by origin (codec._unfaithful).
    fields: list[Any] = field(default_factory=list)
    # field ordinal -> keywords whose values are volatile (volatile.py), taken as leaves.
    volatile: dict[int, set[str]] = field(default_factory=dict)

    def add(self, obj: Any, reason: str) -> int:
        self.objects.append(obj)
        self.reasons.append(reason)
        return len(self.objects) - 1


class Index:
    """The leaves of the migrations of one plan, by origin and by object."""

    def __init__(self, migrations: Iterable[tuple[Any, Leaves | None]]) -> None:
        self._by_origin: dict[Origin, Any] = {}
        # id(obj) -> (obj, its origins); the object is kept so that its id cannot be reused.
        self._by_id: dict[int, tuple[Any, list[Origin]]] = {}
        self.reasons: dict[str, list[tuple[str, str, str]]] = {}
        self._fields_by_origin: dict[Origin, Any] = {}
        # Volatile field arguments (volatile.py): which fields hold them, and the values.
        self._volatile_names: dict[int, tuple[Any, frozenset[str]]] = {}
        self._volatile_values: dict[int, Any] = {}
        self._fields_by_id: dict[int, tuple[Any, list[Origin]]] = {}
        # id(field) -> (field, whether its deconstruction rebuilds it): codec._unfaithful.
        self.faithful: dict[int, tuple[Any, bool]] = {}
        # How many values this index has handed out: a decoded state that took none depends on
        # its bytes alone (snapshots.Snapshots keeps such states decoded).
        self.resolved = 0
        for migration, leaves in migrations:
            if leaves is None:
                continue
            for ordinal, obj in enumerate(leaves.fields):
                origin = (migration.app_label, migration.name, ordinal)
                self._fields_by_origin[origin] = obj
                self._fields_by_id.setdefault(id(obj), (obj, []))[1].append(origin)
                names = leaves.volatile.get(ordinal)
                if names:
                    self._volatile_names[id(obj)] = (obj, frozenset(names))
                    kwargs = obj.deconstruct()[3]
                    for name in names:
                        self._volatile_values[id(kwargs[name])] = kwargs[name]
            for ordinal, (obj, reason) in enumerate(zip(leaves.objects, leaves.reasons)):
                origin = (migration.app_label, migration.name, ordinal)
                self._by_origin[origin] = obj
                known = self._by_id.setdefault(id(obj), (obj, []))
                known[1].append(origin)
                self.reasons.setdefault(reason, []).append(
                    (migration.app_label, migration.name, describe(obj))
                )

    def __len__(self) -> int:
        return len(self._by_origin)

    def origins_of(self, obj: Any) -> list[Origin] | None:
        known = self._by_id.get(id(obj))
        if known is None or known[0] is not obj:
            return None
        return known[1]

    @property
    def has_volatile(self) -> bool:
        return bool(self._volatile_values)

    def volatile_names(self, field: Any) -> frozenset[str]:
        known = self._volatile_names.get(id(field))
        return known[1] if known is not None and known[0] is field else frozenset()

    def is_volatile(self, value: Any) -> bool:
        return self._volatile_values.get(id(value), _MISSING) is value

    def field_origins_of(self, obj: Any) -> list[Origin] | None:
        known = self._fields_by_id.get(id(obj))
        if known is None or known[0] is not obj:
            return None
        return known[1]

    def resolve_field(self, origins: Any, expected_type: Any) -> Any:
        return self.resolve(origins, expected_type, self._fields_by_origin)

    def resolve(
        self, origins: Any, expected_type: Any, by_origin: dict[Origin, Any] | None = None
    ) -> Any:
        """The one object that every origin names, checked to be of `expected_type`."""
        self.resolved += 1
        by_origin = self._by_origin if by_origin is None else by_origin
        if not isinstance(origins, list) or not origins:
            raise Unresolved(f"malformed origins {origins!r}")
        found: list[Any] = []
        for origin in origins:
            if not (isinstance(origin, list) and len(origin) == 3):
                raise Unresolved(f"malformed origin {origin!r}")
            app_label, name, ordinal = origin
            try:
                found.append(by_origin[(app_label, name, ordinal)])
            except (KeyError, TypeError):
                raise Unresolved(f"{app_label}.{name} has no value #{ordinal} here")
        obj = found[0]
        if any(other is not obj for other in found[1:]):
            raise Unresolved(f"origins {origins!r} name different values here")
        if type_name(obj) != expected_type:
            raise Unresolved(f"{origins[0]!r} is a {type_name(obj)} here, not {expected_type}")
        return obj
