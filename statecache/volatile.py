"""Field arguments that a migration module computes anew at every import.

origins.py recognises import-time values by their type (dates, times, UUIDs). A string such as
`default=uuid.uuid4().hex` cannot be told from a literal that way: it changes the migration's
fingerprint in every process, so every state after it is computed again each time. `statecache
warm` imports every migration module a second time and compares the fields their operations
hold, argument by argument; what differs is recorded here, by the hash of the module's source
and the position of the value (the field's ordinal in the fingerprint walk and the keyword):

    {source hash: [[field ordinal, keyword], ...]}

Every process reads the record once (one small file in the cache, `v1/volatile`) and
fingerprints those values as markers, as leaves: a cached state then takes them from this
process's own migrations, never from the process that wrote it. The source hash is part of
every fingerprint of a migration read from disk, so an edited module is fingerprinted by value
again until warm records it anew.

Why trusting the record is safe: it can only make values be taken from this process's own
migrations instead of the cache, which is what vanilla Django would hold.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

import msgpack

from . import codec, keys
from .store import Store

logger = logging.getLogger("statecache")

Positions = frozenset[tuple[int, str]]
Hints = dict[bytes, Positions]


def read(store: Store) -> Hints:
    """The recorded positions; nothing if there is no record or it is damaged."""
    try:
        payload = store.get_volatile()
    except OSError:
        return {}
    if payload is None:
        return {}
    try:
        raw = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        return {
            bytes(source): frozenset((int(ordinal), str(name)) for ordinal, name in positions)
            for source, positions in raw.items()
        }
    except Exception:  # a foreign or hostile payload: ignored
        logger.warning("statecache: ignoring the record of volatile values (malformed)")
        return {}


def write(store: Store, hints: Hints) -> bool:
    record = {source: sorted([o, n] for o, n in found) for source, found in sorted(hints.items())}
    payload = msgpack.packb(record, use_bin_type=True)
    return store.put_volatile(payload)


def source_of(migration) -> bytes | None:
    """The hash of the module that defines the migration's class (None: not read from disk)."""
    module = sys.modules.get(type(migration).__module__)
    if not getattr(module, "__file__", None):
        return None
    return keys.module_source_hash(module.__name__)


def positions(loaded, fresh) -> Positions:
    """The field arguments that differ between two instances of one migration, imported
    twice; nothing if their operations hold different numbers of fields (no way to pair
    them)."""
    first = keys.fields_of(loaded)
    second = keys.fields_of(fresh)
    if len(first) != len(second):
        return frozenset()
    found = set()
    for ordinal, (a, b) in enumerate(zip(first, second)):
        kwargs_a, kwargs_b = a.deconstruct()[3], b.deconstruct()[3]
        for name in kwargs_a.keys() & kwargs_b.keys():
            value = kwargs_a[name]
            if _hashed(value) != _hashed(kwargs_b[name]) and _distinct(value):
                found.add((ordinal, name))
    return frozenset(found)


def _distinct(value) -> bool:
    """Whether the value is an object of its own, which a state can be checked to hold only
    where its field holds it. None, booleans, small integers and short strings are shared by
    the interpreter: such a value is not recorded, and its migration stays volatile."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -5 <= value <= 256
    if isinstance(value, (str, bytes)):
        return len(value) > 1
    return True


def _hashed(value) -> bytes:
    return codec.fingerprint_bytes(value)


def describe(migration, found: Iterable[tuple[int, str]]) -> list[str]:
    fields = keys.fields_of(migration)
    return [
        f"{type(fields[o]).__name__} {name}" if o < len(fields) else f"#{o} {name}"
        for o, name in sorted(found)
    ]
