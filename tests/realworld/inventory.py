"""Count what the corpus's migrations contain (the figures in README.md beside this file).

    cd tests/realworld && python inventory.py [--json]

Apps with migrations, migrations, models of the final state, and the migrations that hold each
kind of content the corpus is chosen for, found in the loaded operations and the migration
modules' source.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
from collections import defaultdict


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "corpus.settings")
    os.environ.setdefault("STATECACHE_ENABLED", "0")
    import django

    django.setup()
    from django.db import connection, migrations
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection, ignore_no_migrations=True)
    graph = loader.graph
    nodes = graph.nodes
    found: dict[str, set[str]] = defaultdict(set)
    patterns = {
        "models.SET(...)": re.compile(r"\bSET\("),
        "import-time values (default=timezone.now(), uuid4(), datetime(...))": re.compile(
            r"default=[\w.]*(now|utcnow|uuid4|uuid1)\(\)|default=datetime\.datetime\("
        ),
        "field factories and wrappers (encrypt(...))": re.compile(r"\bencrypt\("),
        "settings read in the migration": re.compile(r"\bsettings\.(?!AUTH_USER_MODEL)[A-Z_]+"),
        "swappable_dependency": re.compile(r"swappable_dependency\("),
        "lambdas in operations": re.compile(r"lambda\b"),
        "validator instances (validators=[...])": re.compile(r"validators=\["),
        "callables as default/upload_to": re.compile(
            r"\b(default|upload_to)=[A-Za-z_][\w.]*\.[a-z_]\w*[,)]"
        ),
        "functools.partial": re.compile(r"\bpartial\("),
    }

    def walk(operation):
        yield operation
        if isinstance(operation, migrations.SeparateDatabaseAndState):
            for inner in [*operation.state_operations, *operation.database_operations]:
                yield from walk(inner)

    for key, migration in nodes.items():
        name = f"{key[0]}.{key[1]}"
        if migration.replaces:
            found["squashed (replaces = [...])"].add(name)
        try:
            source = inspect.getsource(sys.modules[type(migration).__module__])
        except (OSError, TypeError, KeyError):
            source = ""
        for label, pattern in patterns.items():
            if pattern.search(source):
                found[label].add(name)
        for operation in migration.operations:
            for op in walk(operation):
                kind = type(op).__name__
                if isinstance(op, migrations.SeparateDatabaseAndState):
                    found["SeparateDatabaseAndState"].add(name)
                elif isinstance(op, migrations.RunPython):
                    found[f"RunPython {'with' if op.reversible else 'without'} reverse"].add(name)
                elif isinstance(op, migrations.RunSQL):
                    found[f"RunSQL {'with' if op.reversible else 'without'} reverse"].add(name)
                elif kind not in {
                    "CreateModel", "AddField", "AlterField", "RemoveField", "DeleteModel",
                    "RenameField", "RenameModel", "AlterModelOptions", "AddIndex",
                    "RemoveIndex", "AlterUniqueTogether", "AlterIndexTogether",
                    "AddConstraint", "RemoveConstraint", "AlterModelManagers",
                    "AlterModelTable", "RenameIndex", "AlterOrderWithRespectTo",
                    "AlterModelTableComment", "AlterConstraint",
                }:  # fmt: skip
                    found[f"custom operation {type(op).__module__}.{kind}"].add(name)
    state = loader.project_state()
    apps = sorted({key[0] for key in nodes})
    report = {
        "apps with migrations": len(apps),
        "migrations": len(nodes),
        "models (final state)": len(state.models),
        "contents": {label: len(names) for label, names in sorted(found.items())},
        "examples": {label: sorted(names)[:6] for label, names in sorted(found.items())},
        "migrations per app": {
            app: sum(1 for key in nodes if key[0] == app)
            for app in sorted(apps, key=lambda a: -sum(1 for k in nodes if k[0] == a))
        },
    }
    if "--json" in sys.argv:
        print(json.dumps(report, indent=1))
        return
    for label in ("apps with migrations", "migrations", "models (final state)"):
        print(f"{label}: {report[label]}")
    for label, count in report["contents"].items():
        print(f"{label}: {count} ({', '.join(report['examples'][label])})")
    print(
        "longest histories:",
        ", ".join(f"{a} {n}" for a, n in report["migrations per app"].items() if n >= 10),
    )


if __name__ == "__main__":
    main()
