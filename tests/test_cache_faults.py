"""Issue 4.2-4.5: crashes, damaged and foreign entries, a hostile file system, sharing.

Every fault is real: processes are SIGKILLed, files are damaged on disk, a read-only bind
mount, a full tmpfs (ENOSPC) and a directory another user cannot write deny the writes (as
root, permissions do not deny anything, so those processes run as `nobody` through setpriv,
keeping only the capability to read: see sharedcache.as_nobody). Tests that need root or
mount say so when they skip; none uses a simulated failing write layer. Each test checks
that the migration observes exactly what vanilla Django does, and that the cache recovers:
what is stored afterwards is valid (`statecache verify`) and serves the same rollback
without a miss.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from statecache.store import CACHEDIR_TAG, STORE_VERSION
from tests.projects import manage, observe_all
from tests.sharedcache import (
    as_nobody,
    can_mount,
    is_root,
    manage_with_fault,
    projects_fixture,  # noqa: F401 - fixture
    scan,
    statecache_warnings,
)

ROOT = Path(__file__).resolve().parent.parent


def recovered(project, cache: Path, command: tuple[str, ...]) -> None:
    """The cache is valid and serves `command` without computing anything; then every cached
    state of the graph equals Django's replay (`statecache verify`, same process)."""
    assert scan(cache)["bad"] == []
    again, verified = observe_all(
        project.dir, project.env(cache), [list(command), ["statecache", "verify"]]
    )
    project.check_same(again, *command)
    assert again["statecache"]["misses"] == 0, again["statecache"]
    assert verified["error"] is None and " 0 different" in verified["stdout"], verified


@pytest.fixture
def world_dir():
    """A directory outside pytest's private tmp (0700), for processes run as another user."""
    path = Path(tempfile.mkdtemp(prefix="statecache-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- 4.2 crashes ----------------------------------------------------------------------------


def test_a_writer_killed_mid_write_leaves_nothing_a_reader_takes(projects, tmp_path):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("the fault launcher finds the file being written through /proc/self/fd")
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    command = p1.back(0)
    # Killed with half of a file written, then killed between a finished file and its rename.
    for fault in ("kill-mid-write:12", "kill-before-rename:40"):
        killed = manage_with_fault(p1, p1.env(cache), fault, "statecache", "warm")
        assert killed.returncode == -9, (fault, killed.stderr)
        assert scan(cache)["bad"] == [], f"{fault}: no entry a reader can see is damaged"
    found = scan(cache)
    assert len(found["tmp"]) == 2, "the two killed writes left their temporary files"
    assert 0 < found["refs"] < 32

    p1.check_same(p1.observe(cache, *command), *command)
    for name in found["tmp"]:
        old = time.time() - 7200
        os.utime(cache / f"v{STORE_VERSION}" / "tmp" / name, (old, old))
    pruned = p1.manage(cache, "statecache", "prune", "--json")
    assert json.loads(pruned.stdout)["tmp_removed"] == 2, pruned.stdout
    assert scan(cache)["tmp"] == []
    recovered(p1, cache, command)


# -- 4.3 damaged and foreign entries ----------------------------------------------------------


def test_damaged_entries_and_other_formats_are_misses_logged_once_then_healed(projects, tmp_path):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    command = p1.back(0)
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    base = cache / f"v{STORE_VERSION}"
    objects = sorted((base / "objects").rglob("*/*"))
    refs = sorted((base / "refs").rglob("*/*"))
    for index, path in enumerate(objects):  # blobs and manifests alike
        data = path.read_bytes()
        damage = index % 3
        if damage == 0:
            path.write_bytes(data[: len(data) // 2])  # truncated
        elif damage == 1:
            path.write_bytes(data[:-3] + bytes([data[-3] ^ 0x10]) + data[-2:])  # bit flip
        else:
            path.write_bytes(b"")  # zero length
    for index, path in enumerate(refs):
        if index % 2:
            path.write_bytes(b"")
    # A newer statecache's directory beside ours, and a junk file among our objects.
    newer = cache / f"v{STORE_VERSION + 1}"
    (newer / "objects" / "ab").mkdir(parents=True)
    (newer / "objects" / "ab" / "cdef").write_bytes(b"SCB9 a future format")
    (base / "objects" / "zz").mkdir()
    (base / "objects" / "zz" / "not-an-entry").write_bytes(b"junk")

    record = p1.observe_as([], cache, *command)
    p1.check_same(record, *command)
    warnings = statecache_warnings(record["stderr"])
    for kind in ("corrupt object", "corrupt ref"):
        assert sum(kind in line for line in warnings) == 1, (kind, warnings)
    assert len(warnings) <= 3, warnings

    # verify replays the graph: every damaged state it meets is recomputed and stored; prune
    # then drops the damaged objects no state uses.
    verified = p1.manage(cache, "statecache", "verify")
    assert verified.returncode == 0 and " 0 different" in verified.stdout, verified.stdout
    unreadable, healed = map(
        int, re.search(r"(\d+) unreadable \((\d+) recomputed", verified.stdout).groups()
    )
    assert unreadable == healed > 0, verified.stdout
    pruned = json.loads(p1.manage(cache, "statecache", "prune", "--json").stdout)
    assert pruned["objects_removed"] >= 1
    assert not (base / "objects" / "zz" / "not-an-entry").exists()
    recovered(p1, cache, command)
    assert (newer / "objects" / "ab" / "cdef").read_bytes() == b"SCB9 a future format"


def _sqlite_view(db: Path) -> list:
    with sqlite3.connect(db) as connection:
        schema = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall()
        applied = connection.execute(
            "SELECT app, name FROM django_migrations ORDER BY id"
        ).fetchall()
    return [schema, applied]


def test_entries_of_another_django_version_are_never_used_and_coexist(projects, tmp_path):
    """The same directory used by two Django versions (two virtualenvs): a key names the Django
    version, so each version misses the other's states, computes its own, and both stay."""
    import django

    mine = f"django-{django.VERSION[0]}.{django.VERSION[1]}"
    others = sorted(
        p for p in (ROOT / ".venvs").glob("django-*") if p.name != mine and (p / "bin").is_dir()
    )
    if not others:
        pytest.skip("needs a second virtualenv in .venvs/ with another Django version")
    other_python = str(others[-1] / "bin" / "python")
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    command = p1.back(0)
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    p1.check_same(p1.observe(cache, *command), *command)
    before = scan(cache)

    def other(cache_dir: Path | None, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
        db = p1.db("other")
        env = p1.env(cache_dir, db)
        result = subprocess.run(
            [other_python, "manage.py", *args], cwd=p1.dir, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result, db

    _, vanilla_db = other(None, *command)
    _, cached_db = other(cache, *command)
    assert _sqlite_view(cached_db) == _sqlite_view(vanilla_db)
    after = scan(cache)
    assert after["bad"] == [] and after["refs"] > before["refs"]
    # This version's entries are all still there and still served.
    recovered(p1, cache, command)


# -- 4.4 hostile environment -----------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def test_a_read_only_directory_is_used_and_never_written(projects, tmp_path):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    command = p1.back(0)
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    listing = sorted((str(p), p.stat().st_size) for p in cache.rglob("*"))
    mounted = can_mount()
    if mounted:  # a read-only bind mount: EROFS, whoever we are
        _mount("--bind", str(cache), str(cache))
        _mount("-o", "remount,ro,bind", str(cache))
    elif not is_root():
        for path in cache.rglob("*"):
            if path.is_dir():
                path.chmod(0o555)
    else:
        pytest.skip("root without mount: no way to make a directory read-only to this process")
    try:
        record = p1.observe_as([], cache, *command)
        p1.check_same(record, *command)
        assert record["statecache"]["hits"] >= 1, "what is there is used"
        warnings = statecache_warnings(record["stderr"])
        assert len(warnings) == 1 and "read-only" in warnings[0], warnings
        assert sorted((str(p), p.stat().st_size) for p in cache.rglob("*")) == listing
    finally:
        if mounted:
            subprocess.run(["umount", str(cache)], check=True)
        else:
            for path in cache.rglob("*"):
                if path.is_dir():
                    path.chmod(0o755)
    p1.check_same(p1.observe(cache, *command), *command)
    recovered(p1, cache, command)


def test_a_full_disk_never_stops_a_migration(projects, tmp_path):
    """ENOSPC from a real 160 KiB tmpfs: it fills up in the middle of the run."""
    if not can_mount():
        pytest.skip("needs root and `mount -t tmpfs` to give a real ENOSPC")
    p1 = projects["p1"]
    cache = tmp_path / "small"
    cache.mkdir()
    command = p1.back(0)
    _mount("-t", "tmpfs", "-o", "size=160k", "tmpfs", str(cache))
    try:
        # warm fills the disk; the rollback then meets it full
        warm = p1.manage(cache, "statecache", "warm")
        # Issue 12.7: the states it could not store are counted as such, and it says so.
        assert warm.returncode == 1, warm.stderr
        assert "No space left on device" in warm.stderr and "Traceback" not in warm.stderr
        assert "states were not stored" in warm.stderr and " 0 not stored" not in warm.stdout
        record = p1.observe_as([], cache, *command)
        p1.check_same(record, *command)
        warnings = statecache_warnings(record["stderr"])
        assert len(warnings) == 1 and "No space left" in warnings[0], warnings
        found = scan(cache)
        assert found["bad"] == [] and found["tmp"] == [], found
        _mount("-o", "remount,size=8m", str(cache))
        p1.check_same(p1.observe(cache, *command), *command)
        recovered(p1, cache, command)
    finally:
        subprocess.run(["umount", str(cache)], check=True)


def test_permission_denied_while_writing_never_stops_a_migration(projects, world_dir):
    """The refs directory belongs to another user: blobs are written, then the ref is denied."""
    nobody = as_nobody()
    if nobody is None and is_root():
        pytest.skip("as root, permissions deny nothing, and setpriv cannot run us as nobody")
    p1 = projects["p1"].relocated(world_dir)
    cache = world_dir / "cache"
    command = p1.back(0)
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    for path in [cache, *cache.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    refs = cache / f"v{STORE_VERSION}" / "refs"
    for path in [refs, *refs.iterdir()]:
        path.chmod(0o755)
    prefix = nobody or []
    record = p1.observe_as(prefix, cache, *command)
    p1.check_same(record, *command)
    warnings = statecache_warnings(record["stderr"])
    assert len(warnings) == 1 and "Permission denied" in warnings[0], warnings
    assert scan(cache)["bad"] == []
    for path in [refs, *refs.iterdir()]:
        path.chmod(0o777)
    healed = p1.observe_as(prefix, cache, *command)
    p1.check_same(healed, *command)
    assert statecache_warnings(healed["stderr"]) == []
    again = p1.observe_as(prefix, cache, *command)
    assert again["statecache"]["misses"] == 0


def test_a_missing_directory_is_created_with_its_tag(projects, tmp_path):
    p1 = projects["p1"]
    cache = tmp_path / "not" / "there" / "yet"
    command = p1.back(0)
    p1.check_same(p1.observe(cache, *command), *command)
    assert (cache / "CACHEDIR.TAG").read_bytes() == CACHEDIR_TAG
    assert scan(cache)["refs"] > 0
    recovered(p1, cache, command)


def test_a_cache_path_that_is_a_file_is_a_warning_and_migrate_is_vanillas(projects, tmp_path):
    """Issue 12.8: a misconfiguration never stops a migration."""
    p1 = projects["p1"]
    a_file = tmp_path / "cache"
    a_file.write_text("I am a file")
    checked = p1.manage(a_file, "check")
    assert checked.returncode == 0, checked.stderr
    assert "statecache.W003" in checked.stderr and "is not a directory" in checked.stderr
    assert "statecache is off" in checked.stderr
    command = p1.back(0)
    p1.vanilla(*command)
    record = p1.observe(a_file, *command)
    p1.check_same(record, *command)
    assert record["statecache"] is None, "statecache stayed off"
    migrated = manage(p1.dir, p1.env(a_file), *command)  # with the system checks
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stderr.count("(statecache.") == 1, migrated.stderr  # W003, once
    assert "statecache:" not in migrated.stderr and "Traceback" not in migrated.stderr
    status = p1.manage(a_file, "statecache", "status")
    assert status.returncode == 1 and "is not a directory" in status.stderr
    assert "Traceback" not in status.stderr
    assert a_file.read_text() == "I am a file"


# -- 4.5 sharing ----------------------------------------------------------------------------


def test_group_shared_mode_lets_another_user_write(projects, world_dir):
    """STATECACHE_UMASK=002, as ccache's umask: files group-writable, directories setgid, so a
    teammate in the directory's group writes and heals entries too."""
    p1 = projects["p1"].relocated(world_dir)
    cache = world_dir / "cache"
    cache.mkdir()
    nobody = as_nobody()
    if nobody:
        shutil.chown(cache, group="nogroup")
    cache.chmod(0o2775)  # as a team sets it up: the group may write, others may not
    command = p1.back(0)
    shared = {"STATECACHE_UMASK": "002"}
    assert p1.manage(cache, "statecache", "warm", **shared).returncode == 0
    assert (
        (cache / "CACHEDIR.TAG")
        .read_bytes()
        .startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
    )
    group = cache.stat().st_gid
    for path in cache.rglob("*"):
        mode = path.stat().st_mode & 0o7777
        if path.is_dir():
            assert mode == 0o2775, (path, oct(mode))
        else:
            assert mode == 0o664, (path, oct(mode))
        assert path.stat().st_gid == group
    if not nobody:
        pytest.skip("the second user's writes need root and setpriv (modes were checked)")
    record = p1.observe_as(nobody, cache, *command, **shared)
    p1.check_same(record, *command)
    assert statecache_warnings(record["stderr"]) == []
    written_by_nobody = [p for p in cache.rglob("*") if p.stat().st_uid != 0]
    assert written_by_nobody, "the other user stored states"
    for path in written_by_nobody:
        mode = path.stat().st_mode & 0o7777
        assert mode == (0o2775 if path.is_dir() else 0o664) and path.stat().st_gid == group
    again = p1.observe_as(nobody, cache, *command, **shared)
    assert again["statecache"]["misses"] == 0
    recovered(p1, cache, command)


def test_a_directory_the_user_cannot_write_is_a_check_warning(projects, tmp_path):
    nobody = as_nobody()
    if nobody is None:
        pytest.skip("needs root and setpriv to run `check` as a user the directory denies")
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    (cache / f"v{STORE_VERSION}").mkdir(parents=True)
    cache.chmod(0o755)
    env = p1.env(cache)
    checked = subprocess.run(
        [*nobody, os.sys.executable, "manage.py", "check"],
        cwd=p1.dir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr  # a warning: migrate still runs
    assert "statecache.W001" in checked.stderr, checked.stderr
    assert "statecache.W001" not in p1.manage(cache, "check").stderr, "root may write it"
