"""For every node of every graph the tests use, the cached pre-node state equals Django's
replay: same models, fields, options, bases and managers, in the same order."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ProjectState

from statecache.replay import StatePlan
from tests.harness import dump_state, pristine_copy
from tests.projects import FIXTURES, ROOT, generate

NODECHECK = ROOT / "tests" / "nodecheck.py"


def test_contrib_and_test_app_graph(cache_dir):
    executor = MigrationExecutor(connection)
    full_plan = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
    plan = StatePlan(executor.loader, full_plan)
    pristine = [pristine_copy(m) for m in plan.migrations]  # see nodecheck.py
    counts = plan.warm()
    assert counts["computed"] == len(full_plan) + 1 and counts["uncacheable"] == 0
    assert {m.app_label for m in plan.migrations} >= {
        "admin",
        "auth",
        "contenttypes",
        "sessions",
        "sites",
        "flatpages",
        "redirects",
        "testapp",
    }
    state = ProjectState(real_apps=executor.loader.unmigrated_apps)
    for position, key in enumerate(plan.keys.running([True] * len(plan.migrations))):
        loaded, _ = plan.cache.load(key, executor.loader.unmigrated_apps)
        assert loaded == state and dump_state(loaded) == dump_state(state), position
        if position < len(plan.migrations):
            pristine[position].mutate_state(state, preserve=False)
    again = StatePlan(MigrationExecutor(connection).loader, full_plan).warm()
    assert again["computed"] == 0 and again["cached"] == len(full_plan) + 1


@pytest.mark.parametrize(
    "project",
    ["reach", ("gen", 31, 5, 30, 150, True), ("gen", 32, 4, 25, 120, False)],
    ids=["reach", "generated-stress", "generated"],
)
def test_every_node_of_a_project(tmp_path, project):
    if project == "reach":
        directory = shutil.copytree(FIXTURES / "reach", tmp_path / "reach")
    else:
        _, seed, apps, models, migrations, stress = project
        directory = generate(tmp_path / "gen", seed, apps, models, migrations, stress=stress)
    out = tmp_path / "nodes.json"
    env = {
        "STATECACHE_DIR": str(tmp_path / "cache"),
        "GEN_DB": str(tmp_path / "db.sqlite3"),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, str(NODECHECK), str(directory), str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["mismatches"] == []
    assert report["warm"]["uncacheable"] == 0
    assert report["checked"] > 20 and {"auth", "contenttypes"} <= set(report["apps"])
