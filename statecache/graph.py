"""Building the migration graph without the quadratic part: each app's root nodes found once.

`MigrationLoader.build_graph` resolves every `("app", "__first__")` dependency (which each
`swappable_dependency(settings.AUTH_USER_MODEL)` is) with `MigrationGraph.root_nodes(app)`, and
that scans every node of the graph and the parents of each, for one app. Real projects have
hundreds of migrations with a foreign key to the user model, so the graph is scanned hundreds of
times: 465 scans took 4.4-4.9 s of a 9.1 s load on a generated project of 6,018 migrations
(docs/upstream.md).

While a graph is being built, the hooks here answer `root_nodes(app)` from one scan that finds
the roots of every app. The answer is Django's exactly: a node is a root of its app when none of
its parents is in its app, and during the build a node only stops being one (an edge inside its
app is added: a `run_before` naming a migration of the same app) or a new one appears (a node is
added: a dependency on a migration that does not exist becomes a dummy node). So a memo is used
only while the graph has as many nodes as when it was made and each root it lists still has no
parent in its app; otherwise the roots are found again. Outside a build, and with statecache
off, `root_nodes` is Django's.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader

from . import conf
from .plans import NodeKey


class Roots:
    """The root nodes of every app of one graph, as `MigrationGraph.root_nodes` sorts them."""

    def __init__(self, graph: MigrationGraph) -> None:
        self.graph = graph
        self.size = len(graph.nodes)
        found: dict[str, list[NodeKey]] = {}
        for node in graph.nodes:
            if all(parent[0] != node[0] for parent in graph.node_map[node].parents):
                found.setdefault(node[0], []).append(node)
        self.by_app = {app: sorted(nodes) for app, nodes in found.items()}

    def holds(self, graph: MigrationGraph, app: str) -> bool:
        """Whether the roots found for `app` are still its roots in `graph`."""
        if graph is not self.graph or len(graph.nodes) != self.size:
            return False
        return all(
            all(parent[0] != app for parent in graph.node_map[node].parents)
            for node in self.by_app.get(app, ())
        )


# The loader whose graph is being built, and the memo of that graph's roots.
_building: ContextVar[tuple[MigrationLoader, list[Roots]] | None] = ContextVar(
    "statecache_building", default=None
)


def build_graph(original: Callable, self: MigrationLoader) -> None:
    if not conf.enabled():
        return original(self)
    token = _building.set((self, []))
    try:
        return original(self)
    finally:
        _building.reset(token)


def root_nodes(original: Callable, self: MigrationGraph, app: str | None = None) -> list:
    building = _building.get()
    # Django's build_graph makes the graph itself: it is the one its loader holds now.
    if app is None or building is None or getattr(building[0], "graph", None) is not self:
        return original(self, app)
    memo = building[1]
    if not memo or not memo[0].holds(self, app):
        memo[:] = [Roots(self)]
    return list(memo[0].by_app.get(app, ()))
