"""Warm the cache of a project, then compare every cached pre-node state with Django's replay.

    python tests/nodecheck.py PROJECT_DIR OUT.json

The replay is Django's own: `ProjectState(real_apps=...)` mutated by each migration of the full
plan, as `_migrate_all_backwards` and `_create_project_state` do. States are compared with
`ProjectState.__eq__` and in Django's serialized form, which also sees model and field order.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    project, out = Path(sys.argv[1]), Path(sys.argv[2])
    sys.path.insert(0, str(project))
    os.chdir(project)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genproject.settings")
    import django

    django.setup()
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.db.migrations.state import ProjectState
    from harness import dump_state, pristine_copy

    from statecache.replay import StatePlan

    executor = MigrationExecutor(connection)
    full_plan = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
    plan = StatePlan(executor.loader, full_plan)
    # Django's RenameField mutates the fields of earlier operations in place, so a second
    # replay in one process would not see what a fresh process sees: replay copies.
    pristine = [pristine_copy(m) for m in plan.migrations]
    counts = plan.warm()
    keys = plan.keys.running([True] * len(plan.migrations))
    state = ProjectState(real_apps=executor.loader.unmigrated_apps)
    mismatches = []
    apps = set()
    for position, key in enumerate(keys):
        loaded = plan.load(key)
        if loaded is None:
            mismatches.append([position, "missing"])
        elif loaded[0] != state:
            mismatches.append([position, "not equal"])
        elif dump_state(loaded[0]) != dump_state(state):
            mismatches.append([position, "different serialization or order"])
        if position < len(plan.migrations):
            migration = pristine[position]
            apps.add(migration.app_label)
            migration.mutate_state(state, preserve=False)
    out.write_text(
        json.dumps(
            {"checked": len(keys), "warm": counts, "mismatches": mismatches, "apps": sorted(apps)}
        )
    )


if __name__ == "__main__":
    main()
