"""What identifies a migration state.

The state before node N, given the set A of applied migrations, is what Django gets by mutating
`ProjectState(real_apps=unmigrated_apps)` with every migration of A that precedes N in the full
plan, in plan order. So its key is a running hash over that sequence:

    key_0 = xxh3_128("statecache" | store, codec and key versions | Django version
                     | sorted unmigrated apps)
    key_n = xxh3_128(key_(n-1) | fingerprint(m_n))     for each m_n of A, in plan order

and the fingerprint of a migration is the xxh3-128 of its app label, name, class, and each
operation's class and constructor arguments, encoded by deconstruction (values as they are at run
time, so settings such as AUTH_USER_MODEL, migrations built in memory and MIGRATION_MODULES
swaps are all seen). Operation and Migration classes defined outside Django also contribute the
bytes of the source file that defines them: their `state_forwards` is code we cannot see through;
for a migration read from disk that is its own module, so its literal values are covered twice.

Values that cannot be deconstructed exactly, and values computed at import time (dates, times,
UUIDs), are hashed as stable markers and recorded as the migration's leaves (origins.py): a
cached state takes them from this process's loaded migrations, so no such value can make a key
fail, or change from one process to the next.
"""

from __future__ import annotations

import functools
import logging
import sys
import weakref
from collections.abc import Callable, Iterable, Sequence

import django
import xxhash
from django.db.migrations import Migration
from django.db.migrations.operations.base import Operation

from . import codec, origins, store

logger = logging.getLogger("statecache")

KEY_VERSION = 3


@functools.cache
def module_source_hash(module_name: str) -> bytes:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not path:
        return b"no-source:" + module_name.encode()
    try:
        with open(path, "rb") as handle:
            return xxhash.xxh3_128_digest(handle.read())
    except OSError:
        return b"unreadable:" + module_name.encode()


def _outside_django(cls: type) -> bool:
    module = cls.__module__ or ""
    return not (module == "django" or module.startswith("django."))


def _code_hashes(migration: Migration) -> list[bytes]:
    classes = {type(migration)}
    stack = list(migration.operations)
    while stack:
        operation = stack.pop()
        classes.add(type(operation))
        for attr in ("state_operations", "database_operations"):
            stack.extend(getattr(operation, attr, None) or ())
    return sorted(module_source_hash(cls.__module__) for cls in classes if _outside_django(cls))


def _hidden_operations(migration: Migration) -> list[list]:
    """Operations that operations defined outside Django hold as attributes rather than
    constructor arguments (django-two-factor-auth's CreatePhoneDevice keeps the CreateModel it
    runs on its class), by attribute name. Their source is hashed already; walking them too
    records the import paths and leaves of the states they build."""
    found: list[list] = []
    stack = list(migration.operations)
    seen: set[int] = set()
    while stack:
        operation = stack.pop()
        if id(operation) in seen:
            continue
        seen.add(id(operation))
        for attr in ("state_operations", "database_operations"):
            stack.extend(getattr(operation, attr, None) or ())
        if not _outside_django(type(operation)):
            continue
        attributes: dict = {}
        for cls in reversed(type(operation).__mro__):
            if _outside_django(cls):
                attributes.update(vars(cls))
        attributes.update(vars(operation))
        for name in sorted(attributes):
            value = attributes[name]
            values = value if isinstance(value, (list, tuple)) else [value]
            held = [v for v in values if isinstance(v, Operation)]
            if held:
                found.append([name, held])
                stack.extend(held)
    return found


def migration_fingerprint(migration: Migration) -> bytes | None:
    """The migration's fingerprint; the import paths its operations name become what decoding
    a cached state may import (codec.allow)."""
    return fingerprint_and_leaves(migration)[0]


def fields_of(migration: Migration) -> list:
    """The fields among the migration's operations, in the order its fingerprint meets them."""
    leaves = fingerprint_and_leaves(migration)[1]
    return leaves.fields if leaves is not None else []


def fingerprint_and_leaves(
    migration: Migration, volatile: frozenset[tuple[int, str]] = frozenset()
) -> tuple[bytes | None, origins.Leaves | None]:
    """The fingerprint and the values taken by origin (None, None: no fingerprint).
    `volatile`: the (field ordinal, keyword) arguments that the module computes anew at every
    import (volatile.py), taken by origin too."""
    refs: set[str] = set()
    leaves = origins.Leaves()
    try:
        data = codec.fingerprint_bytes(
            [
                migration.app_label,
                migration.name,
                type(migration),
                list(migration.operations),
                _hidden_operations(migration),
                _code_hashes(migration),
            ],
            refs,
            leaves,
            volatile,
        )
    except codec.Uncacheable as exc:
        logger.info(
            "statecache: %s.%s has no fingerprint: %s", migration.app_label, migration.name, exc
        )
        return None, None
    codec.allow(refs)
    return xxhash.xxh3_128_digest(data), leaves


# Fingerprints are computed once per loader: the migrations of one loader do not change, and
# computing them before any replay matters, since Django's RenameField mutates fields in place.
_memo: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fingerprints(loader, migrations: Iterable[Migration]) -> dict[int, bytes | None]:
    return {ident: fp for ident, (fp, _) in _fingerprinted(loader, migrations).items()}


def _fingerprinted(
    loader,
    migrations: Iterable[Migration],
    volatile: Callable[[Migration], frozenset[tuple[int, str]]] | None = None,
) -> dict[int, tuple[bytes | None, origins.Leaves | None]]:
    memo = _memo.setdefault(loader, {})
    for migration in migrations:
        positions = volatile(migration) if volatile is not None else frozenset()
        known = memo.get(id(migration))
        if known is None or known[1] != positions:
            found = fingerprint_and_leaves(migration, positions)
            memo[id(migration)] = (migration, positions, *found)
    return {ident: (fp, leaves) for ident, (_, _, fp, leaves) in memo.items()}


def base_key(unmigrated_apps: Iterable[str], django_version: str | None = None) -> bytes:
    parts = [
        b"statecache",
        f"store{store.STORE_VERSION}.codec{codec.CODEC_VERSION}.key{KEY_VERSION}".encode(),
        (django_version or django.get_version()).encode(),
        "\0".join(sorted(unmigrated_apps)).encode(),
    ]
    return xxhash.xxh3_128_digest(b"\x00".join(parts))


def step(key: bytes | None, fingerprint: bytes | None) -> bytes | None:
    if key is None or fingerprint is None:
        return None
    return xxhash.xxh3_128_digest(key + fingerprint)


class PlanKeys:
    """Keys along the full plan for one loader: `pre(i, applied)` and `after(applied)`."""

    def __init__(
        self,
        loader,
        full_plan: Sequence[tuple[Migration, bool]],
        volatile: Callable[[Migration], frozenset[tuple[int, str]]] | None = None,
    ) -> None:
        self.loader = loader
        self.migrations = [migration for migration, _ in full_plan]
        self.index = {(m.app_label, m.name): i for i, m in enumerate(self.migrations)}
        done = _fingerprinted(loader, self.migrations, volatile)
        self.fps = [done[id(m)][0] for m in self.migrations]
        # What cached states of this plan take from its migrations (origins.py).
        self.origins = origins.Index((m, done[id(m)][1]) for m in self.migrations)
        self.base = base_key(loader.unmigrated_apps)

    def running(self, included: Sequence[bool]) -> list[bytes | None]:
        """keys[i] is the key before migration i; keys[len] the key after the whole plan."""
        keys: list[bytes | None] = [self.base]
        key: bytes | None = self.base
        for fp, include in zip(self.fps, included):
            if include:
                key = step(key, fp)
            keys.append(key)
        return keys

    def included(self, applied: Iterable[tuple[str, str]]) -> list[bool]:
        applied = set(applied)
        return [(m.app_label, m.name) in applied for m in self.migrations]
