"""Building the migration graph with each app's roots found once (statecache/graph.py): the
graph is Django's own, on every project of the tests, and the answers follow the graph as it
changes during a build."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
from django.db.migrations.graph import MigrationGraph

from statecache import compat, graph
from tests.projects import FIXTURES, ROOT, generate

GRAPHCHECK = ROOT / "tests" / "graphcheck.py"


def _building(loader):
    """Answer root_nodes as during a build of `loader.graph` (reset the returned token)."""
    return graph._building.set((loader, []))


def test_roots_follow_edges_and_nodes_added_during_a_build():
    """A same-app edge (a `run_before`) takes a root away; a dependency on a missing migration
    adds a dummy node, a new root: each answer is what Django's own scan gives then."""
    g = MigrationGraph()
    for key in [("a", "0001"), ("a", "0002"), ("b", "0001"), ("b", "0002")]:
        g.add_node(key, None)
    g.add_dependency(None, ("b", "0002"), ("b", "0001"), skip_validation=True)
    django_own = compat.original("root_nodes")
    token = _building(SimpleNamespace(graph=g))
    try:
        assert g.root_nodes("a") == django_own(g, "a") == [("a", "0001"), ("a", "0002")]
        assert g.root_nodes("b") == django_own(g, "b") == [("b", "0001")]
        # An edge inside app a: 0002 is no longer a root.
        g.add_dependency(None, ("a", "0002"), ("a", "0001"), skip_validation=True)
        assert g.root_nodes("a") == django_own(g, "a") == [("a", "0001")]
        # A dependency on a migration that does not exist: a dummy node, a root of its app.
        g.add_dependency(None, ("a", "0001"), ("c", "0009"), skip_validation=True)
        assert g.root_nodes("c") == django_own(g, "c") == [("c", "0009")]
        g.add_dependency(None, ("b", "0001"), ("b", "0000"), skip_validation=True)
        assert g.root_nodes("b") == django_own(g, "b") == [("b", "0000")]
        assert g.root_nodes("nothing") == django_own(g, "nothing") == []
        assert g.root_nodes() == django_own(g)
    finally:
        graph._building.reset(token)


def test_one_scan_answers_every_app_until_the_graph_changes():
    g = MigrationGraph()
    for app in "abcdefgh":
        for n in range(3):
            g.add_node((app, f"000{n}"), None)
            if n:
                g.add_dependency(None, (app, f"000{n}"), (app, f"000{n - 1}"))
    scans = []
    scan = graph.Roots.__init__

    def counted(self, *args):
        scans.append(1)
        scan(self, *args)

    token = _building(SimpleNamespace(graph=g))
    graph.Roots.__init__ = counted
    try:
        for _ in range(3):
            for app in "abcdefgh":
                assert g.root_nodes(app) == [(app, "0000")]
        assert len(scans) == 1
    finally:
        graph.Roots.__init__ = scan
        graph._building.reset(token)


def test_outside_a_build_root_nodes_is_django_s():
    g = MigrationGraph()
    g.add_node(("a", "0001"), None)
    assert graph._building.get() is None
    scan = graph.Roots.__init__
    graph.Roots.__init__ = None  # would fail if called
    try:
        assert g.root_nodes("a") == [("a", "0001")]
    finally:
        graph.Roots.__init__ = scan


PROJECTS = {
    "example": (ROOT / "example_project", "shop.settings"),
    "reach": (FIXTURES / "reach", "genproject.settings"),
    "wild": (FIXTURES / "wild", "genproject.settings"),
    "generated-stress": (("gen", 31, 5, 30, 150, True), "genproject.settings"),
    "generated": (("gen", 32, 4, 25, 120, False), "genproject.settings"),
}


@pytest.mark.parametrize("name", list(PROJECTS))
def test_the_graph_of_every_project_is_django_s(tmp_path, name):
    """Nodes, edges, replacements, roots and leaves identical to Django's own build, with and
    without squashed migrations replaced; the memo answered the build's root_nodes calls."""
    source, settings_module = PROJECTS[name]
    if isinstance(source, tuple):
        _, seed, apps, models, migrations, stress = source
        directory = generate(tmp_path / "gen", seed, apps, models, migrations, stress=stress)
    else:
        directory = shutil.copytree(source, tmp_path / name)
    out = tmp_path / "graph.json"
    env = {
        "STATECACHE_DIR": str(tmp_path / "cache"),
        "GEN_DB": str(tmp_path / "db.sqlite3"),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [sys.executable, str(GRAPHCHECK), str(directory), settings_module, str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for replace in ("replace=True", "replace=False"):
        assert report[replace]["identical"], replace
        assert report[replace]["nodes"] > 10
    calls = report["calls"]
    # `__first__` dependencies (swappable ones among them) were resolved through the memo:
    # one scan per build (two builds), whatever the number of calls.
    assert calls["root_nodes"] >= 2 and calls["scans"] == 2, calls
