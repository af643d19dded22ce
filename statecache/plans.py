"""The migration plan statecache keys states along, and the migrations a database has applied.

Both are computed here only: the hooks, the loader's end state and the `statecache` command
must agree on them, or a state stored by one would be looked for under another key.
"""

from __future__ import annotations

from django.db.migrations.loader import MigrationLoader

NodeKey = tuple[str, str]


def full_plan(loader: MigrationLoader) -> list:
    """Every migration of the graph, forwards: each leaf's forwards plan in leaf order, each
    migration once. It is `MigrationExecutor.migration_plan(leaf_nodes, clean_start=True)`
    (what Django's backwards run walks) and the order `graph.make_state()` replays, computed
    without an executor (`makemigrations` has none)."""
    graph = loader.graph
    seen: set[NodeKey] = set()
    plan = []
    for leaf in graph.leaf_nodes():
        for key in graph.forwards_plan(leaf):
            if key not in seen:
                seen.add(key)
                plan.append((graph.nodes[key], False))
    return plan


def applied_keys(loader: MigrationLoader) -> set[NodeKey]:
    """The applied migrations that are nodes of the graph (as Django's executor filters them:
    a recorded migration whose file is gone is not part of any state)."""
    nodes = loader.graph.nodes
    return {key for key in loader.applied_migrations or () if key in nodes}
