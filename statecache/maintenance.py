"""Looking after a cache directory: prune, verify, clear (behind `manage.py statecache`).

prune and clear must run under the store's exclusive lock (`Store.lock`): writers hold the
shared one for the whole of each state they write, so under the exclusive lock every object is
either used by a ref or garbage, and every temporary file is a leftover.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .replay import StatePlan
from .snapshots import Snapshots
from .store import Store

# A temporary file this old was left by a writer that died (a write takes milliseconds).
TMP_MAX_AGE = 3600.0


@dataclass
class PruneReport:
    refs_removed: int = 0
    objects_removed: int = 0
    tmp_removed: int = 0
    bytes_freed: int = 0
    refs_kept: int = 0
    objects_kept: int = 0
    bytes_kept: int = 0
    not_removed: int = 0  # entries that could not be removed (a read-only directory)
    error: str | None = None  # the first reason


@dataclass
class _Ref:
    key: bytes | None
    path: Path
    size: int
    used: float  # mtime: written, or last loaded (Store.touch_ref)
    needs: tuple[bytes, ...] = ()


def _size(store: Store, path: Path) -> tuple[int, float] | None:
    """Size and mtime of what is at `path` itself (a link is not followed)."""
    info = store.lstat(path)
    if info is None:
        return None
    return info.st_size, info.st_mtime


def prune(
    snapshots: Snapshots,
    *,
    keep: set[bytes] | None = None,
    older_than: float | None = None,
    max_size: int | None = None,
    tmp_age: float = TMP_MAX_AGE,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneReport:
    """Remove states not in `keep` (when given), states unused for `older_than` seconds, then
    the least recently used states until the entries fit in `max_size` bytes; always damaged
    entries and the states that need them, objects no remaining state needs and stale
    temporary files. Reads every manifest and blob a state needs (not `status`: prune is the
    maintenance that may)."""
    store = snapshots.store
    if not dry_run:
        store.repair_base()
    if dry_run:  # reading would remove damaged files: read through a store that cannot
        reader = Store(store.root, signing_key=store.signing_key, umask=store.umask)
        reader.writable = False
        snapshots = Snapshots(reader)
    now = time.time() if now is None else now
    report = PruneReport()
    doomed: list[Path] = []

    for path in store.stale_tmp(tmp_age):
        found = _size(store, path)
        report.tmp_removed += 1
        report.bytes_freed += found[0] if found else 0
        doomed.append(path)

    objects: dict[bytes, tuple[Path, int]] = {}
    for path in store.iter_files("objects"):
        found = _size(store, path)
        if found is None:
            continue
        digest = store.digest_of(path)
        if digest is None:  # not an entry at all
            report.objects_removed += 1
            report.bytes_freed += found[0]
            doomed.append(path)
        else:
            objects[digest] = (path, found[0])

    live: list[_Ref] = []
    dropped: list[_Ref] = []
    valid: dict[bytes, bool] = {}
    for path in store.iter_files("refs"):
        found = _size(store, path)
        if found is None:
            continue
        ref = _Ref(store.digest_of(path), path, *found)
        needs = _needs(snapshots, ref.key, objects, valid)
        too_old = older_than is not None and ref.used < now - older_than
        if needs is None or too_old or (keep is not None and ref.key not in keep):
            dropped.append(ref)
        else:
            ref.needs = needs
            live.append(ref)

    users: dict[bytes, int] = {}
    for ref in live:
        for digest in ref.needs:
            users[digest] = users.get(digest, 0) + 1
    total = sum(ref.size for ref in live) + sum(objects[d][1] for d in users)
    if max_size is not None and total > max_size:
        live.sort(key=lambda ref: ref.used)
        while live and total > max_size:
            ref = live.pop(0)
            dropped.append(ref)
            total -= ref.size
            for digest in ref.needs:
                users[digest] -= 1
                if not users[digest]:
                    del users[digest]
                    total -= objects[digest][1]

    for ref in dropped:
        report.refs_removed += 1
        report.bytes_freed += ref.size
        doomed.append(ref.path)
    for digest, (path, size) in objects.items():
        if digest in users:
            report.objects_kept += 1
        else:
            report.objects_removed += 1
            report.bytes_freed += size
            doomed.append(path)
    report.refs_kept = len(live)
    report.bytes_kept = total
    if not dry_run:
        for path in doomed:  # refs before the objects they need: see the order above
            try:
                store.remove(path)  # never through a link, never outside the directory
            except OSError as exc:
                report.not_removed += 1
                report.error = report.error or f"{path}: {exc.strerror or exc}"
    return report


def _needs(
    snapshots: Snapshots,
    key: bytes | None,
    objects: dict[bytes, tuple[Path, int]],
    valid: dict[bytes, bool],
) -> tuple[bytes, ...] | None:
    """The objects a ref needs (its manifest chain and blobs), or None if it is unusable: one
    of them missing or damaged (each blob is read and checked once, `valid` remembers)."""
    if key is None:
        return None
    ref = snapshots.store.get_ref(key)
    if ref is None:
        return None
    chain = snapshots.manifest_chain(ref[0])
    resolved = snapshots.read_manifest(ref[0])
    if chain is None or resolved is None:
        return None
    needs = (*chain, *resolved[0].values())
    for digest in resolved[0].values():  # the chain's manifests were just read and checked
        if digest not in valid:
            valid[digest] = digest in objects and snapshots.store.has_object(digest)
        if not valid[digest]:
            return None
    if any(digest not in objects for digest in chain):
        return None
    return needs


def clear(store: Store) -> None:
    """Remove every entry of this format (other formats' directories are left alone), never
    through a link; raises OSError when something cannot be removed."""
    store.clear()


@dataclass
class VerifyReport:
    checked: int = 0
    unreadable: int = 0
    healed: int = 0
    different: list[str] = field(default_factory=list)


def describe_position(plan: StatePlan, position: int) -> str:
    if position == len(plan.migrations):
        return "after the whole plan"
    migration = plan.migrations[position]
    return f"before {migration.app_label}.{migration.name}"


def verify(plan: StatePlan, sample: int | None = None, seed: int | None = None) -> VerifyReport:
    """Compare the cached states of the current graph with Django's own replay of it; a state
    that cannot be read (damaged) is stored again from the replay."""
    mask = [True] * len(plan.migrations)
    keys = plan.keys.running(mask)
    store = plan.cache.store
    positions: Iterable[int] = [
        p for p, key in enumerate(keys) if key is not None and store.has_ref(key)
    ]
    if sample is not None and sample < len(positions):
        positions = sorted(random.Random(seed).sample(positions, sample))
    report = VerifyReport()
    state = plan.empty()
    at = 0
    for position in positions:
        plan.replay(state, at, position, mask)
        at = position
        loaded = plan.load(keys[position])
        if loaded is None:  # damaged (and now removed): store the replayed state instead
            report.unreadable += 1
            if plan.save(keys[position], state.clone()) is not None:
                report.healed += 1
            continue
        report.checked += 1
        cached = loaded[0]
        if cached != state or list(cached.models) != list(state.models):
            report.different.append(describe_position(plan, position))
    return report
