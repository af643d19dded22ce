"""The central test: the same migrate commands with and without statecache, compared.

Each scenario is a generated project (seeded: models across apps, FKs to a hub model and to
a swappable custom user model, MTI, proxies, M2M with explicit through models, a custom field
class, callable defaults, RunPython and RunSQL, renames, a squashed migration) and a sequence
of `migrate` commands (forwards, one step back, several steps back, `app zero`, forwards again,
back again). Every command runs in its own process, three times: vanilla Django, statecache
starting from an empty cache, statecache after `statecache warm`, on SQLite and on each database
server configured (tests/databases.py). Everything observable must be identical: output, errors,
schema (sqlite_master and pragmas, or the server's catalog), the rows of django_migrations,
django_content_type and auth_permission, the states handed to pre_migrate and post_migrate, and
the state MigrationExecutor.migrate returns.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.databases import BACKENDS, SQLITE, Databases, available
from tests.helpers import assert_same
from tests.projects import (
    FIXTURES,
    app_migrations,
    environment,
    generate,
    manage,
    observe,
    observe_all,
    scenario,
    walk,
)

SCENARIOS = [
    # seed, apps, models, migrations
    (11, 3, 12, 45),
    (12, 4, 18, 70),
    (13, 5, 25, 90),
    (14, 3, 16, 60),
    (15, 6, 30, 110),
    (16, 4, 20, 80),
]

# On the database servers too: every case (generated histories are reversible there as well).
ON_SERVERS = {*SCENARIOS, 21, 22, 23}


def on_backends(cases: list) -> list:
    """Each case on SQLite; the cases of ON_SERVERS on the servers too."""
    params = []
    for backend in BACKENDS:
        for case in cases:
            if backend is SQLITE or case in ON_SERVERS:
                values = case if isinstance(case, tuple) else (case,)
                params.append(pytest.param(backend, *values, id=f"{backend.name}-{values[0]}"))
    return params


@pytest.fixture
def databases(request, tmp_path):
    """Databases of their own for this test, on SQLite and on each configured server."""
    available(request.param)
    created = Databases(request.param, tmp_path)
    yield created
    created.drop_all()


@pytest.fixture(scope="session")
def projects(tmp_path_factory):
    base = tmp_path_factory.mktemp("projects")

    def get(seed, apps, models, migrations):
        return generate(base / f"p{seed}", seed, apps, models, migrations)

    return get


@pytest.mark.slow
@pytest.mark.parametrize(
    "databases,seed,apps,models,migrations", on_backends(SCENARIOS), indirect=["databases"]
)
def test_migrate_matches_vanilla(projects, databases, tmp_path, seed, apps, models, migrations):
    project = projects(seed, apps, models, migrations)
    commands = scenario(project, seed)
    results = {}
    for variant in ("vanilla", "cold", "warm"):
        cache = None if variant == "vanilla" else tmp_path / f"cache-{variant}"
        env = environment(tmp_path / f"{variant}.sqlite3", cache, databases.env(variant))
        if variant == "warm":
            warmed = manage(project, env, "statecache", "warm")
            assert warmed.returncode == 0, warmed.stderr
        results[variant] = [observe(project, env, *command) for command in commands]
    assert not (tmp_path / "unused-cache").exists(), "vanilla runs must not touch a cache"
    for variant in ("cold", "warm"):
        for command, expected, actual in zip(commands, results["vanilla"], results[variant]):
            assert_same(expected, actual, f"{variant} {' '.join(command)}")
    # The generator's histories are reversible on every backend (vanilla Django succeeds).
    assert [r["error"] for r in results["vanilla"]] == [None] * len(commands)
    # The cache was really used: a warm cache from the first rollback on (it served every
    # pre-state of it), a cold one from the second (the first stored what it computed). Not
    # after a command that failed half-way (the hand-written fixture's to_field rollback fails
    # on MariaDB, for vanilla Django alike): its database matches no stored plan.
    for variant, start in (("warm", 1), ("cold", 2)):
        records = list(zip(commands, results[variant]))
        for (command, record), (_, previous) in zip(records[start:], records[start - 1 :]):
            if previous["error"] is None:
                assert record["statecache"]["hits"] > 0, (variant, command)
    first_back = results["warm"][1]["statecache"]
    assert first_back["hits"] >= 2 and first_back["misses"] <= 1, first_back
    assert results["vanilla"][0]["statecache"] is None


@pytest.mark.slow
@pytest.mark.parametrize("databases,seed", on_backends([21, 22, 23]), indirect=["databases"])
def test_every_step_back_matches_vanilla(projects, databases, tmp_path, seed):
    """Unapply the busiest app one migration at a time (each rollback sees a different mix of
    operations and of models depending on them), in one process, as test suites do."""
    project = projects(seed, 4, 20, 90)
    apps = app_migrations(project)
    app = max(apps, key=lambda name: len(apps[name]))
    commands = walk(project, app)
    vanilla = observe_all(
        project, environment(tmp_path / "vanilla.sqlite3", None, databases.env("vanilla")), commands
    )
    cached = observe_all(
        project,
        environment(tmp_path / "cached.sqlite3", tmp_path / "cache", databases.env("cached")),
        commands,
    )
    for command, expected, actual in zip(commands, vanilla, cached):
        assert_same(expected, actual, " ".join(command))
    assert [r["error"] for r in vanilla] == [None] * len(commands)
    # Each rollback after the first found the state the previous one stored.
    assert all(
        record["statecache"]["hits"] >= 1
        for record, previous in zip(cached[2:], cached[1:])
        if previous["error"] is None
    ), [(r["command"], r["statecache"]) for r in cached]


@pytest.mark.parametrize("databases", [pytest.param(b, id=b.name) for b in BACKENDS], indirect=True)
def test_rollbacks_that_reach_other_models_match_vanilla(databases, tmp_path):
    """Hand-written: unapplying changes to columns that other apps' foreign keys point at (a
    to_field target, primary keys, a renamed model and renamed fields, M2M and through models,
    a multi-table child and a proxy) needs the referencing models rendered too."""
    project = shutil.copytree(FIXTURES / "reach", tmp_path / "reach")
    commands = walk(project, "core")
    vanilla = observe_all(
        project, environment(tmp_path / "vanilla.sqlite3", None, databases.env("vanilla")), commands
    )
    cached = observe_all(
        project,
        environment(tmp_path / "cached.sqlite3", tmp_path / "cache", databases.env("cached")),
        commands,
    )
    for command, expected, actual in zip(commands, vanilla, cached):
        assert_same(expected, actual, " ".join(command))


@pytest.mark.parametrize("changed", [False, True], ids=["models-match", "models-changed"])
def test_noop_migrate_checks_for_model_changes_like_vanilla(projects, tmp_path, changed):
    """With nothing to apply, migrate compares the graph's end state (from the cache) with the
    models: the same notice about changes without migrations, in the same cases."""
    project = shutil.copytree(projects(11, 3, 12, 45), tmp_path / "project")
    if changed:
        models_py = sorted(project.glob("app*/models.py"))[0]
        source = models_py.read_text()
        first_model = re.search(r"^class \w+\(models\.Model\):\n", source, re.M)
        models_py.write_text(
            source[: first_model.end()]
            + "    probe = models.IntegerField(default=0)\n"
            + source[first_model.end() :]
        )
    commands = [["migrate"], ["migrate"], ["migrate"]]
    results = {}
    for variant in ("vanilla", "cold", "warm"):
        cache = None if variant == "vanilla" else tmp_path / f"cache-{variant}"
        env = environment(tmp_path / f"{variant}.sqlite3", cache)
        if variant == "warm":
            assert manage(project, env, "statecache", "warm").returncode == 0
        results[variant] = [observe(project, env, *command) for command in commands]
    notice = "have changes that are not yet reflected in a migration"
    assert (notice in results["vanilla"][1]["stdout"]) is changed
    for variant in ("cold", "warm"):
        for command, expected, actual in zip(commands, results["vanilla"], results[variant]):
            assert_same(expected, actual, f"{variant} {' '.join(command)}")
    # Both states of a no-op run (the applied migrations', the graph's end) come from the
    # cache once it has them: warm from the start, cold from the second no-op.
    assert results["warm"][1]["statecache"] == {"hits": 2, "misses": 0}
    assert results["cold"][2]["statecache"] == {"hits": 2, "misses": 0}
