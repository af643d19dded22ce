"""What the cache covers of a plan, and why what it does not cover is not there.

Shown by `statecache warm` and `statecache status` (and `--json`): the states of the fully
applied graph and the states with one app's latest migration unapplied that are cached, the
migrations that have no fingerprint (every state after one is keyless: replayed, never stored),
the values that cached states take from the loaded migrations (origins.py), and, for the first
state of the graph that is not cached, the model that stops it from being stored.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field

from . import codec, keys, volatile
from .replay import StatePlan


@dataclass
class Coverage:
    states_covered: int
    states_total: int
    rollback_states_covered: int
    rollback_states_total: int
    keyless_states: int
    no_fingerprint: list[str] = field(default_factory=list)
    # reason -> ["app_label.migration: what", ...]
    from_migrations: dict[str, list[str]] = field(default_factory=dict)
    first_uncovered: str | None = None  # where, and why it is not stored

    @property
    def complete(self) -> bool:
        return (
            self.states_covered == self.states_total
            and self.rollback_states_covered == self.rollback_states_total
        )


def measure(plan: StatePlan, *, explain: bool = False) -> Coverage:
    """Coverage of `plan`; with `explain`, replay up to the first uncached state of the fully
    applied graph to say why it is not cached (what `status` shows; nothing is stored)."""
    store = plan.cache.store
    end = len(plan.migrations)
    keys = plan.keys.running([True] * end)
    rollback_keys = [plan.keys.running(mask)[end] for mask in plan.rollback_masks()]
    result = Coverage(
        states_covered=sum(1 for key in keys if key is not None and store.has_ref(key)),
        states_total=len(keys),
        rollback_states_covered=sum(
            1 for key in rollback_keys if key is not None and store.has_ref(key)
        ),
        rollback_states_total=len(rollback_keys),
        keyless_states=sum(1 for key in keys if key is None),
        no_fingerprint=[
            f"{m.app_label}.{m.name}" for m, fp in zip(plan.migrations, plan.keys.fps) if fp is None
        ],
        from_migrations={
            reason: [f"{app}.{name}: {what}" for app, name, what in found]
            for reason, found in sorted(plan.keys.origins.reasons.items())
        },
    )
    if explain:
        missing = [p for p, key in enumerate(keys) if key is None or not store.has_ref(key)]
        if missing:
            result.first_uncovered = _why(plan, keys, missing[0])
    return result


@dataclass
class Unstable:
    """A migration whose fingerprint differs when its module is imported again."""

    name: str
    source: bytes | None  # the hash of its module's source
    positions: frozenset[tuple[int, str]]  # the field arguments that differ (volatile.py)
    values: list[str]  # those arguments, described
    stays: bool  # whether its fingerprint still differs with them taken by origin


def unstable(plan: StatePlan) -> list[Unstable]:
    """Migrations whose fingerprint differs when their module is imported again: a value
    computed at import time of a type other than a date, time or UUID (a random string, say).
    Their keys change in every process unless those values are recorded (volatile.py).

    Re-executes each migration module, then puts back what it held: the process goes on with
    the migrations it loaded."""
    found = []
    for migration, fingerprint in zip(plan.migrations, plan.keys.fps):
        module = sys.modules.get(type(migration).__module__)
        if fingerprint is None or getattr(module, "Migration", None) is not type(migration):
            continue
        source = volatile.source_of(migration)
        known = plan.hints.get(source, frozenset()) if source is not None else frozenset()
        saved = dict(vars(module))
        try:
            codec.resolve_ref.cache_clear()  # the new Migration class must resolve to itself
            fresh = importlib.reload(module).Migration(migration.name, migration.app_label)
            if keys.fingerprint_and_leaves(fresh, known)[0] == fingerprint:
                continue
            positions = known | volatile.positions(migration, fresh)
            again = keys.fingerprint_and_leaves(fresh, positions)[0]
        except Exception:  # a module that cannot be imported twice: nothing to compare
            continue
        finally:
            # Back to the module as it was loaded: this process goes on with those objects.
            vars(module).clear()
            vars(module).update(saved)
            codec.resolve_ref.cache_clear()
        # (The loaded class resolves by its path again only now.)
        stays = again != keys.fingerprint_and_leaves(migration, positions)[0]
        name = f"{migration.app_label}.{migration.name}"
        described = volatile.describe(migration, positions - known)
        found.append(Unstable(name, source, positions, described, stays))
    return found


def _why(plan: StatePlan, keys: list, position: int) -> str:
    where = (
        "after the whole plan"
        if position == len(plan.migrations)
        else f"before {plan.migrations[position].app_label}.{plan.migrations[position].name}"
    )
    if keys[position] is None:
        mask = [True] * len(plan.migrations)
        return f"the state {where}: no key ({plan.keyless_reason(mask, position)})"
    state = plan.states_at([True] * len(plan.migrations), [position], store=False, count=False)
    for model_state in state[position].state.models.values():
        try:
            codec.encode_model_state(model_state, index=plan.keys.origins)
        except codec.Uncacheable as exc:
            name = f"{model_state.app_label}.{model_state.name_lower}"
            return f"the state {where}: {name} cannot be encoded exactly ({exc})"
    return f"the state {where}: not stored yet (run `statecache warm`)"


def summary_lines(coverage: Coverage, verbosity: int = 1) -> list[str]:
    """The human-readable lines for `warm` and `status`."""
    lines = [
        f"coverage: {coverage.states_covered}/{coverage.states_total} states of the fully "
        f"applied graph, {coverage.rollback_states_covered}/{coverage.rollback_states_total} "
        "with an app's latest migration unapplied"
    ]
    if coverage.no_fingerprint:
        lines.append(
            f"keyless: {coverage.keyless_states} states (replayed every time, never stored) "
            f"after {len(coverage.no_fingerprint)} migrations with no fingerprint: "
            + ", ".join(coverage.no_fingerprint[:5])
            + (" ..." if len(coverage.no_fingerprint) > 5 else "")
        )
    if coverage.from_migrations:
        counts = ", ".join(
            f"{len(found)} {reason}" for reason, found in coverage.from_migrations.items()
        )
        total = sum(len(found) for found in coverage.from_migrations.values())
        lines.append(f"taken from the loaded migrations: {total} values ({counts})")
        if verbosity >= 2:
            for reason, found in coverage.from_migrations.items():
                lines.extend(f"  {reason}: {where}" for where in found)
    if coverage.first_uncovered:
        lines.append(f"first state not cached: {coverage.first_uncovered}")
    return lines
