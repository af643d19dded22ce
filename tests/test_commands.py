"""`manage.py statecache status | verify | prune | clear | dir`, in-process against the test
settings' graph (the contrib apps and tests.testapp), and the counters across processes."""

from __future__ import annotations

import io
import json
import os
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from statecache import replay, snapshots
from statecache.management.commands.statecache import parse_duration, parse_size
from statecache.store import STORE_VERSION
from tests.sharedcache import projects_fixture, scan  # noqa: F401 - fixture


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("statecache", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def status() -> dict:
    return json.loads(run("status", "--json"))


@pytest.fixture
def warm(cache_dir, monkeypatch):
    monkeypatch.setenv("STATECACHE_ENABLED", "1")
    run("warm")
    return cache_dir


def plan() -> replay.StatePlan:
    executor = MigrationExecutor(connection)
    full = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
    return replay.StatePlan(executor.loader, full)


def test_sizes_and_durations_parse():
    assert parse_size("500M") == 500 * 10**6 and parse_size("1GiB") == 2**30
    assert parse_size("4096") == 4096 and parse_size("1.5k") == 1500
    assert parse_duration("30d") == 30 * 86400 and parse_duration("90m") == 5400
    assert parse_duration("12") == 12
    for bad in ("", "lots", "-1M"):
        with pytest.raises(ValueError):
            parse_size(bad)
    with pytest.raises(CommandError):
        call_command("statecache", "prune", "--max-size", "lots", stdout=io.StringIO())


def test_status_reports_coverage_entries_and_formats(warm):
    info = status()
    assert info["states_covered"] == info["states_total"] > 10
    assert info["refs"] >= info["states_total"] - 1 and info["objects"] > 0
    assert info["bytes"] > 0 and info["tmp"] == 0 and info["format"] == f"v{STORE_VERSION}"
    assert info["counters"]["written"] >= info["refs"] and info["signed"] is False
    text = run("status")
    assert "coverage:" in text and "counters:" in text
    assert run("dir").strip() == str(warm)


def test_counters_add_up_across_processes(projects, tmp_path):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    command = p1.back(0)
    first = p1.observe(cache, *command)
    second = p1.observe(cache, *command)
    info = json.loads(p1.manage(cache, "statecache", "status", "--json").stdout)
    counters = info["counters"]
    assert counters["hits"] == first["statecache"]["hits"] + second["statecache"]["hits"] > 0
    assert counters["misses"] == first["statecache"]["misses"] + second["statecache"]["misses"]
    assert counters["written"] == scan(cache)["refs"] > 0
    assert len(list((cache / f"v{STORE_VERSION}" / "stats").iterdir())) >= 1


def test_verify_passes_then_finds_a_wrong_state(warm):
    assert "0 different, 0 unreadable" in run("verify")
    assert "3 cached states compared" in run("verify", "--sample", "3", "--seed", "1")
    # A wrong state under a valid key (as a bug or a keyless forger could leave it).
    states = plan()
    keys = states.keys.running([True] * len(states.migrations))
    wrong = states.load(keys[3])[0]
    victim = states.migrations[len(states.migrations) // 2]
    victim_key = keys[states.position(victim)]
    states.cache.store.ref_path(victim_key).unlink()
    assert states.save(victim_key, wrong) is not None
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 cached states differ"):
        call_command("statecache", "verify", stdout=io.StringIO(), stderr=err)
    assert f"before {victim.app_label}.{victim.name}" in err.getvalue()


def test_prune_dry_run_then_unreachable(warm):
    before = scan(warm)
    store = snapshots.current().store
    other = plan()
    # States of another graph: same models, keys no current graph produces.
    for n in range(3):
        fake = bytes([n]) * 16
        state = other.load(other.keys.base)[0]
        assert other.save(fake, state) is not None
    dry = json.loads(run("prune", "--unreachable", "--dry-run", "--json"))
    assert dry["refs_removed"] == 3 and dry["dry_run"] is True
    assert scan(warm)["refs"] == before["refs"] + 3, "a dry run removes nothing"
    done = json.loads(run("prune", "--unreachable", "--json"))
    assert done["refs_removed"] == 3
    assert (
        scan(warm)["refs"] == before["refs"]
        and status()["states_covered"] == (status()["states_total"])
    )
    assert all(not store.has_ref(bytes([n]) * 16) for n in range(3))
    assert "0 different" in run("verify")


def test_prune_older_than_removes_unused_states_and_their_objects(warm):
    store = snapshots.current().store
    refs = list(store.iter_files("refs"))
    old = time.time() - 40 * 86400
    for path in refs[: len(refs) // 2]:
        os.utime(path, (old, old))
    report = json.loads(run("prune", "--older-than", "30d", "--json"))
    assert report["refs_removed"] == len(refs) // 2
    assert report["refs_kept"] == len(refs) - len(refs) // 2
    found = scan(warm)
    assert found["bad"] == [] and found["refs"] == found["states"] == report["refs_kept"]
    assert "0 different, 0 unreadable" in run("verify")


def test_prune_max_size_keeps_the_most_recently_used(warm):
    states = plan()
    keys = states.keys.running([True] * len(states.migrations))
    store = states.cache.store
    # Every state unused for a while, in plan order; then the last one is loaded (a hit).
    for age, key in enumerate(reversed(keys)):
        stamp = time.time() - 3600 - age
        os.utime(store.ref_path(key), (stamp, stamp))
    assert states.load(keys[0]) is not None
    total = store.sizes()["bytes"]
    report = json.loads(run("prune", "--max-size", str(total // 3), "--json"))
    assert report["bytes_kept"] <= total // 3 < total
    assert 0 < report["refs_kept"] < len(keys)
    assert store.has_ref(keys[0]), "the state just used survives"
    assert not store.has_ref(keys[1]), "the least recently used went first"
    states.cache._manifests.clear()
    assert states.load(keys[0]) is not None
    assert sum(1 for _ in store.iter_files("objects")) == report["objects_kept"]
    assert store.sizes()["bytes"] == report["bytes_kept"]


def test_clear_removes_the_entries_and_leaves_other_formats_alone(warm):
    newer = warm / f"v{STORE_VERSION + 1}"
    (newer / "refs").mkdir(parents=True)
    assert status()["other_formats"] == [newer.name]
    assert newer.name in run("clear")
    assert (newer / "refs").is_dir()
    assert scan(warm)["refs"] == 0 and scan(warm)["objects"] == 0
    assert status()["states_covered"] == 0


def test_settings_are_checked(monkeypatch, tmp_path):
    from django.core import checks

    monkeypatch.setenv("STATECACHE_ENABLED", "1")
    monkeypatch.setenv("STATECACHE_DIR", str(tmp_path / "cache"))
    ids = {m.id for m in checks.run_checks()}
    assert not {i for i in ids if i.startswith("statecache.")}, ids
    monkeypatch.setenv("STATECACHE_UMASK", "rwx")
    assert "statecache.W005" in {m.id for m in checks.run_checks()}
    monkeypatch.setenv("STATECACHE_UMASK", "1777")
    assert "statecache.W005" in {m.id for m in checks.run_checks()}
    monkeypatch.setenv("STATECACHE_UMASK", "007")
    assert "statecache.W005" not in {m.id for m in checks.run_checks()}
    from django.test import override_settings

    with override_settings(STATECACHE_DIR=42):
        monkeypatch.delenv("STATECACHE_DIR")
        assert "statecache.W002" in {m.id for m in checks.run_checks()}
    with override_settings(STATECACHE_UMASK=True, STATECACHE_SIGNING_KEY=b"\0" * 4):
        ids = {m.id for m in checks.run_checks()}
        assert {"statecache.W005", "statecache.W006"} <= ids


def test_prune_removes_a_damaged_blob_and_the_states_that_need_it(warm):
    store = snapshots.current().store
    before = status()["states_covered"]
    blob = max(store.iter_files("objects"), key=lambda p: p.stat().st_size)  # a ModelState
    blob.write_bytes(blob.read_bytes()[:-1])
    dry = json.loads(run("prune", "--dry-run", "--json"))
    assert dry["refs_removed"] >= 1 and dry["objects_removed"] >= 1 and blob.exists()
    report = json.loads(run("prune", "--json"))
    assert report["refs_removed"] == dry["refs_removed"] and not blob.exists()
    found = scan(warm)
    assert found["bad"] == [] and found["refs"] == found["states"]
    assert status()["states_covered"] == before - report["refs_removed"]
    snapshots.current()._manifests.clear()
    assert ", 0 states computed" not in run("warm")
    assert status()["states_covered"] == before
    assert "0 different, 0 unreadable" in run("verify")
