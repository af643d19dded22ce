"""States along the migration plan: loaded from the cache, or replayed (never rendered) and stored.

`StatePlan` wraps one loader and its full plan. A position p in the plan means "before
migration p" (p == len(plan): after all of it); which migrations count as applied is a mask over
the plan. Everything Django does to build these states is Django's own `Migration.mutate_state`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.db.migrations.state import ProjectState

from . import changes, volatile
from .keys import PlanKeys
from .operations import ModelKey
from .snapshots import Snapshot, Snapshots, current

logger = logging.getLogger("statecache")

# How many cached entries _nearest_cached tries to load before it replays from the start.
NEAREST_ATTEMPTS = 2


@dataclass
class Fetched:
    state: ProjectState
    hit: bool
    seconds: float  # spent here, loading or replaying
    cost: float  # what replaying it from scratch cost when it was computed
    # For a replayed state: whether it is in the cache now, and if not, why.
    stored: bool = False
    why_not: str | None = None


class StatePlan:
    def __init__(self, loader, full_plan: Sequence, cache: Snapshots | None = None) -> None:
        self.loader = loader
        self.full_plan = full_plan
        self.cache = cache or current()
        self.rekey(volatile.read(self.cache.store))

    def rekey(self, hints: volatile.Hints) -> None:
        """Keys with the volatile values recorded in `hints` (volatile.py)."""
        self.hints = hints

        def positions(migration) -> frozenset[tuple[int, str]]:
            source = volatile.source_of(migration) if hints else None
            return hints.get(source, frozenset()) if source is not None else frozenset()

        self.keys = PlanKeys(self.loader, self.full_plan, positions)
        self.migrations = self.keys.migrations

    def empty(self) -> ProjectState:
        return ProjectState(real_apps=self.loader.unmigrated_apps)

    def load(self, key: bytes) -> tuple[ProjectState, float] | None:
        """The cached state under `key`, its values by origin from this plan's migrations."""
        return self.cache.load(key, self.loader.unmigrated_apps, index=self.keys.origins)

    def save(self, key: bytes, state: ProjectState, **options) -> Snapshot | None:
        return self.cache.save(key, state, index=self.keys.origins, **options)

    def why_not_stored(self) -> str:
        failure = self.cache.failure
        if failure is None:
            return "not stored"
        if failure.kind == "uncacheable":
            return f"not stored: {failure.model} cannot be encoded exactly ({failure.reason})"
        return f"not stored: {failure.reason}"

    def mask(self, applied: Iterable[tuple[str, str]]) -> list[bool]:
        return self.keys.included(applied)

    def position(self, migration) -> int:
        return self.keys.index[(migration.app_label, migration.name)]

    def _nearest_cached(
        self, keys: Sequence[bytes | None], below: int
    ) -> tuple[int, ProjectState, float, Snapshot | None]:
        """The latest position <= `below` whose state the cache has, with its manifest (else
        position 0 and the empty state).

        Gives up after NEAREST_ATTEMPTS entries that do not load: the states before a refused
        one mostly hold the same model, and decoding each of them before replaying would cost
        more than the replay (and a hostile directory could make it quadratic)."""
        checked: set[bytes] = set()
        attempts = 0
        for q in range(below, -1, -1):
            key = keys[q]
            if key is None or key in checked:
                continue
            checked.add(key)
            if self.cache.store.has_ref(key):
                loaded = self.load(key)
                if loaded is not None:
                    return q, loaded[0], loaded[1], self.cache.snapshot_of(key)
                attempts += 1
                if attempts >= NEAREST_ATTEMPTS:
                    break
        return 0, self.empty(), 0.0, None

    def replay(self, state: ProjectState, start: int, end: int, mask: Sequence[bool]) -> None:
        """Apply the masked migrations start..end-1 to `state`, as Django does (no rendering)."""
        self._advance(state, start, end, mask, None)

    def _advance(
        self,
        state: ProjectState,
        start: int,
        end: int,
        mask: Sequence[bool],
        changed: set[ModelKey] | None,
    ) -> set[ModelKey] | None:
        """Apply the masked migrations start..end-1 to `state` (Django's mutate_state, no
        rendering); return the keys of the models that may have changed since `changed`
        started (None: any of them)."""
        for i in range(start, end):
            if not mask[i]:
                continue
            migration = self.migrations[i]
            scope = changes.before(migration, state) if changed is not None else None
            migration.mutate_state(state, preserve=False)
            if scope is None:
                changed = None
            elif changed is not None:
                changed |= scope | changes.rename_referrers(migration, state)
        return changed

    def states_at(
        self,
        mask: Sequence[bool],
        positions: Iterable[int],
        *,
        store: bool = True,
        count: bool = True,
    ) -> dict[int, Fetched]:
        """The states at `positions` under `mask`, each its own object (`count`: add to the
        hit and miss counters)."""
        keys = self.keys.running(mask)
        result: dict[int, Fetched] = {}
        current: ProjectState | None = None
        current_pos = 0
        current_cost = 0.0
        # The stored snapshot `current` started from, and what changed since: a miss is then
        # stored as a small delta, encoding only the models the replay touched.
        base: Snapshot | None = None
        changed: set[ModelKey] | None = None
        for p in sorted(set(positions)):
            started = time.perf_counter()
            key = keys[p]
            if key is not None:
                loaded = self.load(key)
                if loaded is not None:
                    self.cache.stats.hits += count
                    result[p] = Fetched(loaded[0], True, time.perf_counter() - started, loaded[1])
                    continue
                self.cache.stats.misses += count
            else:
                self.cache.stats.keyless += count
            if current is None or current_pos > p:
                if key is None:
                    current_pos, current, current_cost, base = 0, self.empty(), 0.0, None
                else:
                    current_pos, current, current_cost, base = self._nearest_cached(keys, p)
                changed = set() if base is not None else None
            replay_started = time.perf_counter()
            changed = self._advance(current, current_pos, p, mask, changed)
            current_cost += time.perf_counter() - replay_started
            current_pos = p
            state = current.clone()
            why_not = "no key: " + self.keyless_reason(mask, p) if key is None else None
            if store and key is not None:
                base = self.save(key, state, cost=current_cost, base=base, changed=changed)
                changed = set() if base is not None else None
                why_not = None if base is not None else self.why_not_stored()
            seconds = time.perf_counter() - started
            result[p] = Fetched(state, False, seconds, current_cost, why_not is None, why_not)
        return result

    def keyless_reason(self, mask: Sequence[bool], position: int) -> str:
        for i in range(position):
            if mask[i] and self.keys.fps[i] is None:
                migration = self.migrations[i]
                return f"{migration.app_label}.{migration.name} has no fingerprint"
        return "no fingerprint"

    def warm(self, progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
        """Store the state before every node of the plan, all of it applied, in one replay.

        Counts: computed (and stored), cached (already), keyless (no key: a migration before
        it has no fingerprint), uncacheable (a model cannot be encoded), unwritten (the
        directory refused it)."""
        mask = [True] * len(self.migrations)
        keys = self.keys.running(mask)
        counts = _counts()
        missing = [
            p
            for p, key in enumerate(keys)
            if key is not None and not self.cache.store.has_state(key)
        ]
        counts["keyless"] = sum(1 for key in keys if key is None)
        counts["cached"] = len(keys) - len(missing) - counts["keyless"]
        if not missing:
            return counts
        start, state, cost, base = self._nearest_cached(keys, missing[0])
        missing_set = set(missing)
        changed: set[ModelKey] | None = set() if base is not None else None
        for p in range(start, len(keys)):
            if p in missing_set:
                snapshot = self.save(keys[p], state, cost=cost, base=base, changed=changed)
                if snapshot is None:
                    counts[self.cache.failure.kind] += 1  # save() says why it stored nothing
                else:
                    counts["computed"] += 1
                base, changed = snapshot, (set() if snapshot is not None else None)
                if progress:
                    progress(counts["computed"], len(missing))
            if p == len(self.migrations) or keys[p + 1] is None:
                break
            started = time.perf_counter()
            changed = self._advance(state, p, p + 1, mask, changed)
            cost += time.perf_counter() - started
        return counts

    def rollback_masks(self) -> list[list[bool]]:
        """For each app, everything applied but its latest migration (a leaf of the graph)."""
        masks = []
        for leaf in self.loader.graph.leaf_nodes():
            q = self.keys.index.get(leaf)
            if q is not None:
                mask = [True] * len(self.migrations)
                mask[q] = False
                masks.append(mask)
        return masks

    def reachable_keys(self, applied: Iterable[tuple[str, str]]) -> set[bytes]:
        """The keys of the states a `migrate` of this graph can ask for that `warm` keeps:
        every state of the fully applied graph, those of the database's applied migrations,
        and each app's latest migration unapplied (`prune --unreachable` keeps these)."""
        keep = set(self.keys.running([True] * len(self.migrations)))
        keep |= set(self.keys.running(self.mask(applied)))
        keep |= {self.keys.running(mask)[-1] for mask in self.rollback_masks()}
        keep.discard(None)
        return keep  # type: ignore[return-value]

    def warm_rollbacks(self) -> dict[str, int]:
        """Store, for each app, the state with its latest migration unapplied: the post-migrate
        state of the most common rollback (one step back on an app), and the applied state of
        the `migrate` that re-applies it. One replay each, from that migration to the end."""
        end = len(self.migrations)
        counts = _counts()
        for mask in self.rollback_masks():
            key = self.keys.running(mask)[end]
            if key is None:
                counts["keyless"] += 1
            elif self.cache.store.has_state(key):
                counts["cached"] += 1
            else:
                fetched = self.states_at(mask, [end], count=False)[end]
                if fetched.stored:
                    counts["computed"] += 1
                else:
                    counts[self.cache.failure.kind] += 1  # save() says why it stored nothing
        return counts


def _counts() -> dict[str, int]:
    return dict.fromkeys(("computed", "cached", "keyless", "uncacheable", "unwritten"), 0)
