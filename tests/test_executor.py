"""The hook, driven in-process: through `migrate` and through MigrationExecutor directly (as
django-test-migrations does), against two real SQLite databases, one per variant."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

from statecache import compat, snapshots
from tests.harness import dump_state, schema


def migrate(database, *targets, verbosity=0):
    out = io.StringIO()
    call_command("migrate", *targets, database=database, verbosity=verbosity, stdout=out)
    return out.getvalue()


@pytest.fixture
def databases(cache_dir, monkeypatch):
    """'default' migrated with statecache, 'other' with vanilla Django, both fully forwards."""
    monkeypatch.setenv("STATECACHE_ENABLED", "0")
    for database in ("default", "other"):
        migrate(database, "testapp", "zero")
        migrate(database)
    return cache_dir


def enable(monkeypatch, on=True):
    monkeypatch.setenv("STATECACHE_ENABLED", "1" if on else "0")


def served(stats) -> tuple[int, int, int]:
    return stats.hits, stats.misses, stats.keyless


def assert_all_hits(stats, before: tuple[int, int, int], at_least: int) -> None:
    """Every state since `before` came from the cache: at least `at_least` hits, no miss and
    no keyless replay (a statecache that handed the job to Django would count nothing)."""
    hits, misses, keyless = served(stats)
    assert (misses, keyless) == before[1:]
    assert hits - before[0] >= at_least


def test_the_executor_methods_are_replaced():
    assert MigrationExecutor._migrate_all_backwards.__module__ == "statecache.executor"
    assert MigrationExecutor._create_project_state.__module__ == "statecache.executor"
    assert compat.original("migrate_all_backwards").__module__ == "django.db.migrations.executor"
    assert MigrationLoader.project_state.__module__ == "statecache.loader"
    assert compat.original("project_state").__module__ == "django.db.migrations.loader"


@pytest.mark.parametrize("connected", [True, False], ids=["migrate", "makemigrations"])
def test_the_graph_end_state_comes_from_the_cache(cache_dir, monkeypatch, connected):
    """`loader.project_state()` (migrate's check for model changes, makemigrations' starting
    state) equals Django's replay, model order included, and is a hit the second time."""
    connection = connections["default"] if connected else None
    enable(monkeypatch, False)
    expected = dump_state(MigrationLoader(connection).project_state())
    partial = dump_state(MigrationLoader(connection).project_state(("testapp", "0002_more")))
    enable(monkeypatch, True)
    stats = snapshots.current().stats
    hits, misses = stats.hits, stats.misses
    assert dump_state(MigrationLoader(connection).project_state()) == expected
    assert (stats.hits, stats.misses) == (hits, misses + 1)
    assert dump_state(MigrationLoader(connection).project_state()) == expected
    assert (stats.hits, stats.misses) == (hits + 1, misses + 1)
    # Any other call is Django's own.
    loader = MigrationLoader(connection)
    assert dump_state(loader.project_state(("testapp", "0002_more"))) == partial
    assert (stats.hits, stats.misses) == (hits + 1, misses + 1)


def test_flag_off_touches_no_cache(databases, monkeypatch):
    enable(monkeypatch, False)
    migrate("default", "testapp", "0001")
    assert not databases.exists()


@pytest.mark.parametrize("target", ["0002_more", "0001_initial"])
def test_executor_driven_directly_matches_vanilla(databases, monkeypatch, target):
    results = {}
    for database, on in (("other", False), ("default", True)):
        enable(monkeypatch, on)
        executor = MigrationExecutor(connections[database])
        state = executor.migrate([("testapp", target)])
        executor.loader.build_graph()
        results[database] = (
            dump_state(state),
            schema(connections[database]),
            sorted(executor.loader.applied_migrations),
        )
    from tests.helpers import first_difference

    assert results["default"] == results["other"], first_difference(
        results["other"], results["default"]
    )
    assert databases.exists()


def test_a_second_identical_rollback_replays_nothing(databases, monkeypatch):
    enable(monkeypatch, True)
    migrate("default", "testapp", "0001")
    migrate("default")
    stats = snapshots.current().stats
    before = served(stats)
    migrate("default", "testapp", "0001")
    assert_all_hits(stats, before, at_least=3)  # the applied state, the pre-state, the post


def test_a_failure_preparing_the_rollback_hands_it_to_django_with_django_s_output(
    databases, monkeypatch, caplog
):
    """Fault injection (no real cache entry makes this code raise: decoding problems are
    misses): the rollback is Django's, and so is every line of its output."""
    from statecache import render

    expected = migrate("other", "testapp", "0001", verbosity=1)
    enable(monkeypatch, True)

    def broken(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(render, "render", broken)
    with caplog.at_level(logging.WARNING, logger="statecache"):
        actual = migrate("default", "testapp", "0001", verbosity=1)
    assert actual == expected
    assert actual.count("Rendering model states...") == 1
    assert "cannot prepare the backwards states; using Django's" in caplog.text
    assert schema(connections["default"]) == schema(connections["other"])


def test_verbose_migrate_explains_hits_and_renders(databases, monkeypatch):
    enable(monkeypatch, True)
    migrate("default", "testapp", "0002")
    migrate("default")
    output = migrate("default", "testapp", "0002", verbosity=3)
    assert "statecache: state of the applied migrations: hit" in output
    assert "testapp.0003_rename: pre-state hit" in output
    assert "rendered" in output and "post-migrate state: hit" in output
    # `-v 2` output is Django's alone (Django's own tests compare it).
    assert "statecache" not in migrate("default", "testapp", "0001", verbosity=2)


def test_a_corrupt_blob_is_a_miss_then_heals(databases, monkeypatch, caplog):
    enable(monkeypatch, True)
    call_command("statecache", "warm", verbosity=0, stdout=io.StringIO())
    store = snapshots.current().store
    blobs = list(store.iter_files("objects"))
    for path in blobs:  # damage every object: whatever the rollback needs is broken
        data = path.read_bytes()
        path.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    snapshots.current()._manifests.clear()
    with caplog.at_level(logging.WARNING, logger="statecache"):
        migrate("default", "testapp", "0001")
    enable(monkeypatch, False)
    migrate("other", "testapp", "0001")
    assert schema(connections["default"]) == schema(connections["other"])
    assert any("corrupt" in record.getMessage() for record in caplog.records)
    # Healed: the same rollback again finds everything it needs, valid, in the cache.
    enable(monkeypatch, True)
    migrate("default")
    snapshots.current()._manifests.clear()
    stats = snapshots.current().stats
    before = served(stats)
    migrate("default", "testapp", "0001")
    assert_all_hits(stats, before, at_least=3)  # the applied state, the pre-state, the post


def test_an_unusable_cache_directory_never_stops_a_migration(
    databases, monkeypatch, tmp_path, caplog
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("STATECACHE_DIR", str(blocker / "cache"))
    snapshots._current.clear()
    enable(monkeypatch, True)
    with caplog.at_level(logging.WARNING, logger="statecache"):
        migrate("default", "testapp", "0001")
    enable(monkeypatch, False)
    migrate("other", "testapp", "0001")
    assert schema(connections["default"]) == schema(connections["other"])
    warnings = [r.getMessage() for r in caplog.records if "read-only" in r.getMessage()]
    assert len(warnings) == 1, warnings


def test_warm_reports_counts_and_computes_nothing_the_second_time(cache_dir):
    out = io.StringIO()
    call_command("statecache", "warm", stdout=out)
    first = out.getvalue()
    assert "states computed" in first and " 0 uncacheable" in first
    out = io.StringIO()
    call_command("statecache", "warm", stdout=out)
    assert ", 0 states computed" in out.getvalue()
    assert "latest migration unapplied: 0 states computed" in out.getvalue()
    out = io.StringIO()
    call_command("statecache", "status", "--json", stdout=out)
    import json

    status = json.loads(out.getvalue())
    assert status["states_covered"] == status["states_total"] > 10
    assert status["refs"] >= status["states_total"] - 1 and status["objects"] > 0


def test_warm_on_an_unknown_database_is_a_clear_error(cache_dir):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown database"):
        call_command("statecache", "warm", "--database", "nope", stdout=io.StringIO())


@pytest.mark.parametrize("share", ["1", "0.5"], ids=["always-reused", "default"])
@pytest.mark.parametrize("target", ["0002_more", "0001_initial", "zero"])
def test_the_post_migrate_registry_is_the_pre_migrate_one_updated(
    databases, monkeypatch, target, share
):
    """After a rollback, `post_migrate` gets the pre-migrate registry with the changed models
    re-rendered: the same models, fields, options and order as Django's fresh render. Here
    every model is related to auth's, so by default the re-render would cover most models and
    Django renders afresh instead."""
    monkeypatch.setenv("STATECACHE_REGISTRY_MAX_SHARE", share)
    from django.db.models.signals import post_migrate

    from tests.harness import dump_apps

    seen = {}

    def receiver(sender, apps, using, **kwargs):
        seen.setdefault(using, dump_apps(apps))

    post_migrate.connect(receiver, weak=False)
    try:
        enable(monkeypatch, False)
        migrate("other", "testapp", target)
        enable(monkeypatch, True)
        output = migrate("default", "testapp", target, verbosity=3)
    finally:
        post_migrate.disconnect(receiver)
    assert ("post-migrate registry: the pre-migrate one with" in output) is (share == "1")
    assert seen["default"] == seen["other"]


def test_after_warm_one_step_back_and_forwards_again_replay_nothing(databases, monkeypatch):
    """warm also stores the states with each app's latest migration unapplied: the rollback of
    that migration finds its post-migrate state, and re-applying it its applied state."""
    enable(monkeypatch, True)
    call_command("statecache", "warm", database="default", stdout=io.StringIO())
    stats = snapshots.current().stats
    before = served(stats)
    # sites comes before testapp in the plan: its post-migrate state is not a prefix.
    migrate("default", "sites", "0001_initial")
    migrate("default")
    assert_all_hits(stats, before, at_least=4)  # 3 for the rollback, 1 applied state forwards


def test_forwards_after_a_delayed_migration_render_only_what_each_one_reaches(
    databases, monkeypatch
):
    """testapp's 0002 adds a plain field, which leaves Django's state "delayed": 0003 is then
    applied with a registry of the models it reaches. Database, rows, the registry handed to
    `post_migrate` and the returned state are Django's."""
    from django.db.models.signals import post_migrate

    from tests.harness import dump_apps, rows

    seen = {}

    def receiver(sender, apps, using, **kwargs):
        seen.setdefault(using, dump_apps(apps))

    results = {}
    outputs = {}
    for database, on in (("other", False), ("default", True)):
        enable(monkeypatch, False)
        migrate(database, "testapp", "zero")
        enable(monkeypatch, on)
        post_migrate.connect(receiver, weak=False)
        try:
            outputs[database] = migrate(database, verbosity=3)
        finally:
            post_migrate.disconnect(receiver)
        executor = MigrationExecutor(connections[database])
        table_rows = rows(connections[database])
        # Earlier tests left the two databases with different histories: not the ids.
        table_rows["django_migrations"] = [row[1:] for row in table_rows["django_migrations"]]
        results[database] = (schema(connections[database]), table_rows)
        results[database] += (dump_state(executor.loader.project_state()),)
    assert "statecache: forwards: 1 migrations applied rendering" in outputs["default"]
    assert results["default"] == results["other"]
    assert seen["default"] == seen["other"]


def test_forwards_driven_directly_returns_django_s_state(databases, monkeypatch):
    """Through MigrationExecutor.migrate without a state (the executor renders on its own):
    the same returned state, model order included, and the same database."""
    results = {}
    for database, on in (("other", False), ("default", True)):
        enable(monkeypatch, False)
        migrate(database, "testapp", "zero")
        enable(monkeypatch, on)
        executor = MigrationExecutor(connections[database])
        state = executor.migrate([("testapp", "0003_rename")])
        results[database] = (dump_state(state), schema(connections[database]))
    assert results["default"] == results["other"]
