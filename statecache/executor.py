"""The hooks on Django's MigrationExecutor: states from the cache instead of replays.

compat.py installs them (on the class, so `migrate`, test-database creation and tools that drive
the executor directly all go through statecache); each is called with Django's original method
first. With STATECACHE_ENABLED off they call the original and nothing else.

- `create_project_state(with_applied_migrations=True)`: the state of the applied migrations,
  which `migrate` builds on every run for `pre_migrate`, comes from the cache.
- `migrate_all_forwards`: Django's own until a migration leaves the state "delayed" (Django
  then renders every model afresh whenever a registry is next looked at, so the order in which
  incremental re-renders left the models no longer shows); from there on, each migration is
  applied with a registry of only the models its operations can reach, as backwards, instead of
  Django re-rendering every related model after each operation.
- `migrate_all_backwards`: each migration's pre-state comes from the cache; the registry handed
  to `Migration.unapply` holds only the models its operations can reach (render.py); the
  post-migrate state is the cached (or replayed, never rendered) state of what stays applied,
  and its registry is the pre-migrate one that `migrate` passed in, updated (registry.py).
- `migrate`: Django's own, remembering for the length of the call the state it was handed
  (`migrate` hands the pre-migrate state, with its rendered registry), which Django does not
  pass on to the backwards step.

The database work is Django's own `unapply_migration`. A failure inside statecache before any
database work falls back to Django's original method; after it, to a plain replay.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar

from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ProjectState

from . import compat, conf, registry, render
from .plans import applied_keys, full_plan
from .replay import StatePlan

logger = logging.getLogger("statecache")

# The executor whose `migrate` call is running and the state it was handed (see `migrate`), for
# its backwards step.
_incoming: ContextVar[tuple[MigrationExecutor, ProjectState | None] | None] = ContextVar(
    "statecache_incoming", default=None
)


class Reporter:
    """Where statecache says what it did: the `statecache` logger at debug level, and the
    output of `migrate -v 3` when the executor reports to a management command. Django's own
    tests and users' scripts read `-v 2` output, which must stay exactly Django's."""

    def __init__(self, executor: MigrationExecutor) -> None:
        command = compat.command_of(executor.progress_callback)
        self.stdout = None
        if command is not None and getattr(command, "verbosity", 1) >= 3:
            self.stdout = getattr(command, "stdout", None)

    def say(self, message: str) -> None:
        logger.debug(message)
        if self.stdout is not None:
            self.stdout.write("    statecache: " + message)


_fell_back: set[str] = set()


def fallback(message: str, *args: object) -> None:
    """Say once per process, in one line, that statecache handed a job to Django and why; the
    traceback goes to the `statecache` logger at debug level only (a cache problem is never a
    traceback in the middle of a migration)."""
    exc = sys.exc_info()[1]
    level = logging.DEBUG if message in _fell_back else logging.WARNING
    _fell_back.add(message)
    logger.log(level, message + " (%s: %s)", *args, type(exc).__name__, exc)
    logger.debug("statecache: the traceback of the above", exc_info=True)


def _without_first_render_start(callback):
    """The progress callback, without the "render_start" already reported."""
    said = [False]

    def progress(action, *args, **kwargs):
        if action == "render_start" and not said[0]:
            said[0] = True
            return None
        return callback(action, *args, **kwargs)

    # The reporter finds the command through the callback's owner.
    progress.__self__ = compat.command_of(callback)  # type: ignore[attr-defined]
    return progress


def _describe(fetched) -> str:
    if fetched.hit:
        saved = max(fetched.cost - fetched.seconds, 0.0)
        return f"hit, loaded in {fetched.seconds:.3f}s (about {saved:.3f}s of replay saved)"
    if fetched.stored:
        return f"miss, replayed in {fetched.seconds:.3f}s and stored"
    return f"miss, replayed in {fetched.seconds:.3f}s; {fetched.why_not}"


def create_project_state(original, self: MigrationExecutor, with_applied_migrations=False):
    if not with_applied_migrations or not conf.enabled():
        return original(self, with_applied_migrations)
    try:
        plan = StatePlan(self.loader, full_plan(self.loader))
        mask = plan.mask(applied_keys(self.loader))
        end = len(plan.migrations)
        fetched = plan.states_at(mask, [end])[end]
    except Exception:
        fallback("statecache: cannot build the applied state; using Django's")
        return original(self, with_applied_migrations)
    Reporter(self).say(f"state of the applied migrations: {_describe(fetched)}")
    return fetched.state


def migrate(
    original,
    self: MigrationExecutor,
    targets,
    plan=None,
    state=None,
    fake=False,
    fake_initial=False,
):
    """Django's `migrate`, remembering for the length of the call the state it was handed: a
    backwards run ignores it, but `migrate` hands the pre-migrate state with its rendered
    registry, which `migrate_all_backwards` turns into the post-migrate registry."""
    token = _incoming.set((self, state))
    try:
        return original(self, targets, plan=plan, state=state, fake=fake, fake_initial=fake_initial)
    finally:
        _incoming.reset(token)


def _adopt_registry(executor: MigrationExecutor, reporter: Reporter, post) -> None:
    running = _incoming.get()
    if running is None or running[0] is not executor or running[1] is None:
        return
    incoming = running[1]
    started = time.perf_counter()
    try:
        rerendered = registry.adopt(incoming, post.state)
    except Exception:
        fallback("statecache: cannot reuse the pre-migrate registry; rendering")
        return
    if rerendered is not None:
        reporter.say(
            f"post-migrate registry: the pre-migrate one with {rerendered} of "
            f"{len(post.state.models)} models re-rendered "
            f"({time.perf_counter() - started:.3f}s)"
        )


def migrate_all_forwards(
    original, self: MigrationExecutor, state, plan, full_plan, fake, fake_initial
):
    if not conf.enabled():
        return original(self, state, plan, full_plan, fake, fake_initial)
    to_run = {migration for migration, _ in plan}
    edges = None  # the relation graph, from the first partially applied migration on
    partial = rendered = 0
    for migration, _ in full_plan:
        if not to_run:
            break
        if migration not in to_run:
            continue
        to_run.remove(migration)
        if not compat.delayed(state):
            # Django's way, on the full registry: until the state is delayed, that registry
            # (the order incremental re-renders left its models in) is what `post_migrate`
            # receivers and RunPython code would see.
            if compat.rendered_registry(state) is None:
                if self.progress_callback:
                    self.progress_callback("render_start")
                compat.render_all(state)
                if self.progress_callback:
                    self.progress_callback("render_success")
            state = self.apply_migration(state, migration, fake=fake, fake_initial=fake_initial)
            continue
        compat.drop_registry(state)
        try:
            edges = edges or render.Edges(state)
            changing = edges.before(migration)
            # RunPython renders every model afresh from a delayed state (Django's own rule).
            count = render.render(state, migration, edges, run_python_renders=True)
        except Exception:
            fallback("statecache: cannot render for %s; rendering every model", migration)
            edges = None
            compat.drop_registry(state)
            compat.render_all(state)
            count = len(state.models)
        partial += 1
        rendered += count
        state = self.apply_migration(state, migration, fake=fake, fake_initial=fake_initial)
        compat.drop_registry(state)
        try:
            if edges is not None:
                edges.after(state, changing)
        except Exception:
            fallback("statecache: cannot follow the relations after %s", migration)
            edges = None
    if partial:
        Reporter(self).say(
            f"forwards: {partial} migrations applied rendering {rendered} models in all"
        )
    return state


def migrate_all_backwards(original, self: MigrationExecutor, plan, full_plan, fake):
    if not conf.enabled():
        return original(self, plan, full_plan, fake)
    # 1. Pre-states, and the registries to unapply with: no database work yet, so any problem
    #    here can still hand the whole job to Django.
    if self.progress_callback:
        self.progress_callback("render_start")
    try:
        states_plan = StatePlan(self.loader, full_plan)
        applied = applied_keys(self.loader)
        mask = states_plan.mask(applied)
        positions = {migration: states_plan.position(migration) for migration, _ in plan}
        fetched = states_plan.states_at(mask, positions.values())
        states = {migration: fetched[positions[migration]] for migration in positions}
        rendered = {
            migration: render.render(states[migration].state, migration) for migration in states
        }
    except Exception:
        fallback("statecache: cannot prepare the backwards states; using Django's")
        # Django's own path says "Rendering model states..." itself: the output stays its.
        callback = self.progress_callback
        if callback:
            self.progress_callback = _without_first_render_start(callback)
        try:
            return original(self, plan, full_plan, fake)
        finally:
            self.progress_callback = callback
    if self.progress_callback:
        self.progress_callback("render_success")
    reporter = Reporter(self)
    for migration in states:
        total = len(states[migration].state.models)
        reporter.say(
            f"{migration.app_label}.{migration.name}: pre-state {_describe(states[migration])}; "
            f"rendered {rendered[migration]} of {total} models",
        )

    # 2. The database work: Django's own.
    for migration, _ in plan:
        self.unapply_migration(states[migration].state, migration, fake=fake)
        applied.discard((migration.app_label, migration.name))

    # 3. The post-migrate state, as Django builds it: the migrations applied before the last one
    #    unapplied, then those still applied after it, in plan order.
    last = states_plan.position(plan[-1][0])
    still_applied = states_plan.mask(applied)
    post_mask = [mask[i] if i < last else still_applied[i] for i in range(len(mask))]
    end = len(states_plan.migrations)
    try:
        post = states_plan.states_at(post_mask, [end])[end]
    except Exception:
        fallback("statecache: cannot store the post-migrate state; replaying it")
        post_state = states_plan.empty()
        states_plan.replay(post_state, 0, end, post_mask)
        return post_state
    reporter.say(f"post-migrate state: {_describe(post)}")
    _adopt_registry(self, reporter, post)
    return post.state
