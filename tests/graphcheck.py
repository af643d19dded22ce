"""Build a project's migration graph with Django's own code and with statecache's hooks (its
roots found once per build, statecache/graph.py), and say whether the two are identical.

    python tests/graphcheck.py PROJECT_DIR SETTINGS_MODULE OUT.json

Compared: the nodes in order, each node's parents and children, the replacements, and the
root and leaf nodes of every app, after Django's build (squashed migrations replaced as
`migrate` does, and kept as `squashmigrations` does). OUT.json also counts the `root_nodes(app)`
calls of statecache's build and the scans that answered them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def describe(loader) -> dict:
    graph = loader.graph
    apps = sorted({app for app, _ in graph.nodes})
    return {
        "nodes": [list(key) for key in graph.nodes],
        "edges": {
            f"{key[0]}.{key[1]}": [
                sorted(map(list, graph.node_map[key].parents)),
                sorted(map(list, graph.node_map[key].children)),
            ]
            for key in graph.nodes
        },
        "replacements": sorted(f"{app}.{name}" for app, name in loader.replacements),
        "roots": {app: [list(k) for k in graph.root_nodes(app)] for app in apps},
        "leaves": {app: [list(k) for k in graph.leaf_nodes(app)] for app in apps},
    }


def main() -> None:
    project, settings_module, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    sys.path.insert(0, str(project))
    os.chdir(project)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    from django.db import connection
    from django.db.migrations.graph import MigrationGraph
    from django.db.migrations.loader import MigrationLoader
    from django.test.utils import override_settings

    from statecache import graph

    calls = {"root_nodes": 0, "scans": 0}
    scan = graph.Roots.__init__

    def counted_scan(self, *args):
        calls["scans"] += 1
        scan(self, *args)

    graph.Roots.__init__ = counted_scan
    installed = MigrationGraph.root_nodes

    def counted(self, app=None):
        calls["root_nodes"] += graph._building.get() is not None and app is not None
        return installed(self, app)

    MigrationGraph.root_nodes = counted
    report = {}
    for replace in (True, False):
        with override_settings(STATECACHE_ENABLED=False):
            django_own = describe(MigrationLoader(connection, replace_migrations=replace))
        with override_settings(STATECACHE_ENABLED=True):
            hooked = describe(MigrationLoader(connection, replace_migrations=replace))
        report[f"replace={replace}"] = {
            "identical": django_own == hooked,
            "nodes": len(django_own["nodes"]),
        }
    report["calls"] = calls
    out.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
