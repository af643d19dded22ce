"""Where a `migrate` spends its time: one run, in-process, with timers around Django's phases.

    cd PROJECT && python /path/to/benchmarks/phases.py migrate app 0041

Prints a JSON object of inclusive seconds per phase. Phases nest (the pre-migrate state is
inside `migrate: handle`, a render can be inside a backwards plan), so they do not add up.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time

STARTED = time.perf_counter()
TIMES: dict[str, float] = {}


def timed(owner, name: str, label: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label] = TIMES.get(label, 0.0) + time.perf_counter() - started

    setattr(owner, name, wrapper)


def main() -> None:
    sys.path.insert(0, os.getcwd())
    import django

    django.setup()
    from django.core.management import call_command, sql
    from django.core.management.commands import migrate
    from django.db.migrations import autodetector, executor, loader, state

    timed(loader.MigrationLoader, "build_graph", "load the graph")
    timed(executor.MigrationExecutor, "_create_project_state", "pre-migrate state")
    timed(state.StateApps, "__init__", "render (StateApps)")
    timed(loader.MigrationLoader, "project_state", "autodetector's project state")
    timed(autodetector.MigrationAutodetector, "changes", "autodetector")
    timed(executor.MigrationExecutor, "_migrate_all_backwards", "backwards (states + unapply)")
    timed(executor.MigrationExecutor, "_migrate_all_forwards", "forwards (apply)")
    timed(executor.MigrationExecutor, "unapply_migration", "unapply (Django's, DDL)")
    timed(executor.MigrationExecutor, "apply_migration", "apply (Django's, DDL)")
    timed(migrate, "emit_pre_migrate_signal", "pre_migrate signal")
    timed(migrate, "emit_post_migrate_signal", "post_migrate signal")
    timed(migrate.Command, "handle", "migrate: handle")
    _ = sql
    before = time.perf_counter()
    call_command(*sys.argv[1:], verbosity=0)
    TIMES["settings, setup and checks"] = (
        before - STARTED + (time.perf_counter() - before - TIMES.get("migrate: handle", 0.0))
    )
    TIMES["total"] = time.perf_counter() - STARTED
    print(json.dumps({k: round(v, 3) for k, v in TIMES.items()}))


if __name__ == "__main__":
    main()
