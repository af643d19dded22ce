"""Issue 12: a hostile cache directory, and broken file systems, for real.

Each attack is done the way someone with write access to a shared directory would do it (or a
broken disk would): symbolic links to files and directories outside the cache, dangling links,
link loops, forged entries naming import paths reached through other modules, sparse 2 GiB
files, a read-only bind mount, a directory the user may not write (`setpriv` as nobody). What
must hold: nothing outside the directory is written or deleted, the memory and CPU time of the
process stay bounded (measured with getrusage of the child, not the clock), every command
answers with one line and a documented exit status, and migrate's result is vanilla Django's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import msgpack
import pytest

from statecache import checks, codec, compat, conf
from statecache.snapshots import Snapshots
from statecache.store import BLOB, STORE_VERSION, Store
from tests.projects import HARNESS, manage
from tests.sharedcache import (
    Project,
    as_nobody,
    projects_fixture,  # noqa: F401 - fixture
    scan,
    statecache_warnings,
    without_dac,
)

V = f"v{STORE_VERSION}"
GiB = 2**30


# -- helpers ---------------------------------------------------------------------------------


def tree(root: Path) -> dict[str, tuple[str, bytes | str, int]]:
    """Everything under `root` (links not followed): kind, content or link target, mtime."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            found[str(path)] = ("link", os.readlink(path), info.st_mtime_ns)
        elif path.is_dir():
            found[str(path)] = ("dir", "", info.st_mtime_ns)
        else:
            found[str(path)] = ("file", path.read_bytes(), info.st_mtime_ns)
    return found


@pytest.fixture
def victim(tmp_path) -> Path:
    """Files outside the cache that an attacker would like statecache to write or delete,
    shaped like cache entries (fan directories of hex names) so that a walk takes them."""
    root = tmp_path / "victim"
    (root / "ab").mkdir(parents=True)
    (root / "ab" / ("cd" * 15)).write_bytes(b"precious entry-shaped file")
    (root / "precious.txt").write_bytes(b"precious")
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_bytes(b"deep")
    return root


def measured(project: Project, cache: Path | None, *command: str) -> tuple[dict, object]:
    """observe() of one command, with the child's own resource usage (os.wait4)."""
    env = project.env(cache)
    out = Path(env["GEN_RECORD"])
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, str(HARNESS), str(project.dir), str(out), "--", *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode()
    assert process.returncode == 0, stderr
    record = json.loads(out.read_text())[0]
    record["stderr"] = stderr
    return record, usage


def cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def refs_of(cache: Path) -> list[Path]:
    store = Store(cache, signing_key=None, umask=None)
    return [p for p in store.iter_files("refs") if store.digest_of(p) is not None]


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


# -- 12.1 writes through links ---------------------------------------------------------------


def test_links_where_counters_and_locks_belong_are_never_written_through(
    projects, tmp_path, victim
):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    stats = cache / V / "stats"
    stats.mkdir(exist_ok=True)
    for shard in range(16):
        path = stats / f"{shard:x}"
        path.unlink(missing_ok=True)
        # Half point at a file outside, half dangle (a write through them would create it).
        target = victim / "precious.txt" if shard % 2 else victim / f"created-{shard:x}"
        path.symlink_to(target)
    for name in ("lock", "warm.lock"):
        (cache / V / name).unlink(missing_ok=True)
        (cache / V / name).symlink_to(victim / f"created-{name}")
    before = tree(victim)
    command = p1.back(0)
    record = p1.observe(cache, *command)
    p1.check_same(record, *command)
    for args in (("statecache", "warm"), ("statecache", "status"), ("statecache", "prune")):
        result = p1.manage(cache, *args)
        no_traceback(result)
        assert result.returncode == 0, (args, result.stderr)
    assert tree(victim) == before, "nothing outside the cache was written or created"
    assert not (cache / V / "lock").is_symlink(), "the link was removed, a lock file made"


# -- 12.2 deletes through links --------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    ["objects/zz", "refs/zz", "tmp", "tmp/old-leftover", "stats", "objects", "refs", V],
)
def test_walks_never_descend_through_links_nor_delete_outside(projects, tmp_path, victim, where):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    link = cache / where if where == V else cache / V / where
    if link.is_dir() and not link.is_symlink():
        link.rename(link.with_name(link.name + ".moved"))
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim, target_is_directory=True)
    before = tree(victim)
    command = p1.back(0)
    p1.check_same(p1.observe(cache, *command), *command)
    assert tree(victim) == before, "migrate wrote or deleted outside the cache"
    for args in (
        ("statecache", "status"),
        ("statecache", "prune", "--tmp-age", "0"),
        ("statecache", "verify"),
        ("statecache", "prune", "--unreachable", "--max-size", "1", "--tmp-age", "0"),
        ("statecache", "clear"),
    ):
        result = p1.manage(cache, *args)
        no_traceback(result)
        assert result.returncode == 0, (args, result.stderr)
        assert tree(victim) == before, f"{args} wrote or deleted outside the cache"
    p1.check_same(p1.observe(cache, *command), *command)
    assert tree(victim) == before


# -- 12.3 import paths walked through other modules -------------------------------------------


def forge_every_state(cache: Path, path: str, args: list) -> int:
    """Rewrite every state of the cache (valid hashes and checksums, as anyone who may write
    the directory can) with one more field whose default is `path` called with `args`."""
    store = Store(cache, signing_key=None, umask=None)
    snapshots = Snapshots(store)
    evil = msgpack.ExtType(codec.DECONSTRUCTED, msgpack.packb([path, args, {}], use_bin_type=True))
    field = msgpack.ExtType(
        codec.FIELD,
        msgpack.packb(
            ["django.db.models.fields:CharField", [], {"max_length": 9, "default": evil}],
            use_bin_type=True,
        ),
    )
    forged = 0
    for ref_path in refs_of(cache):
        key = store.digest_of(ref_path)
        entries, _ = snapshots.read_manifest(store.get_ref(key)[0])
        if not entries:  # the state before the first migration
            continue
        name, blob = next(iter(entries.items()))
        payload = msgpack.unpackb(store.get_object(blob, BLOB), raw=False, strict_map_key=False)
        payload[3].append(["hostile", field])
        digest, _ = store.put_object(BLOB, msgpack.packb(payload, use_bin_type=True))
        snapshot = snapshots.write_manifest({**entries, name: digest}, None)
        assert store.set_ref(key, snapshot.digest)
        forged += 1
    return forged


def test_forged_states_naming_walked_paths_are_refused_in_a_real_run(projects, tmp_path):
    path, args = "django.core.validators:re.enum.bltns.bytearray", [400_000_000]
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    command = p1.back(0)
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    _, baseline = measured(p1, cache, *command)
    assert forge_every_state(cache, path, args) > 10
    record, usage = measured(p1, cache, *command)
    p1.check_same(record, *command)  # the forged field never reached the migration
    assert usage.ru_maxrss < baseline.ru_maxrss + 150 * 1024, "no 400 MB bytearray was made"
    assert record["statecache"]["misses"] >= 1
    assert len([w for w in statecache_warnings(record["stderr"]) if "refus" in w]) <= 1


# -- 12.4 oversized entries --------------------------------------------------------------------


def test_sparse_two_gib_entries_are_refused_from_their_size(projects, tmp_path):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    command = p1.back(0)
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    _, baseline = measured(p1, cache, *command)
    refs = refs_of(cache)
    assert len(refs) > 10
    store = Store(cache, signing_key=None, umask=None)
    blobs = [p for p in store.iter_files("objects") if store.digest_of(p) is not None][:5]
    for path in [*refs, *blobs]:
        os.truncate(path, 2 * GiB)  # sparse: costs no disk, 2 GiB to whoever reads it whole
    record, usage = measured(p1, cache, *command)
    p1.check_same(record, *command)
    assert usage.ru_maxrss < baseline.ru_maxrss + 150 * 1024, "nothing was read whole"
    assert cpu(usage) < cpu(baseline) + 20, "nor read in a loop"
    warnings = [
        w for w in statecache_warnings(record["stderr"]) if "larger than any real entry" in w
    ]
    assert len(warnings) <= 1, warnings  # logged once
    assert any(not p.exists() or p.stat().st_size < 2 * GiB for p in refs), "the ones read"
    pruned = p1.manage(cache, "statecache", "prune")  # reads every entry, bounded too
    assert pruned.returncode == 0, pruned.stderr
    assert all(p.stat().st_size < 2 * GiB for p in refs if p.exists()), "all removed"


# -- 12.5 every command on hostile directories ---------------------------------------------------


@pytest.mark.parametrize("verb", ["warm", "status", "verify", "prune", "clear", "dir"])
def test_commands_on_link_loops_answer_without_a_traceback(projects, tmp_path, verb):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    for name in ("lock", "warm.lock"):
        (cache / V / name).unlink(missing_ok=True)
        (cache / V / name).symlink_to(cache / V / name)  # ELOOP: a link to itself
    result = p1.manage(cache, "statecache", verb)
    no_traceback(result)
    assert result.returncode == 0, result.stderr


def test_commands_on_a_read_only_directory_say_one_line(projects, tmp_path, read_only):
    p1 = projects["p1"]
    full = tmp_path / "full"
    assert p1.manage(full, "statecache", "warm").returncode == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    read_only(full)
    read_only(empty)
    expected = {
        (full, "warm"): 0,  # everything is cached: nothing to store
        (full, "status"): 0,
        (full, "verify"): 0,
        (full, "prune"): 0,  # nothing to remove
        (full, "clear"): 1,  # cannot remove: one line
        (full, "dir"): 0,
        (empty, "warm"): 1,  # stored nothing: says so, exit 1
        (empty, "status"): 0,
        (empty, "prune"): 0,
        (empty, "clear"): 0,  # nothing to clear
    }
    for (cache, verb), status in expected.items():
        result = p1.manage(cache, "statecache", verb)
        no_traceback(result)
        assert result.returncode == status, (cache.name, verb, result.stdout, result.stderr)
        said = [
            line
            for line in result.stderr.splitlines()
            if line.startswith(("CommandError", "statecache:"))
        ]
        assert len(said) == (1 if status else 0), (cache.name, verb, said)  # W001 said the rest
    warm = p1.manage(empty, "statecache", "warm")
    assert "states were not stored" in warm.stderr and " 0 uncacheable" in warm.stdout


def test_migrate_on_a_read_only_directory_reports_it_once(projects, tmp_path, read_only):
    """Issue 12.9: W001, then no second line at run time."""
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    cache.mkdir()
    read_only(cache)
    command = p1.back(0)
    p1.vanilla(*command)
    db = p1.db()
    result = manage(p1.dir, p1.env(cache, db=db), *command)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("statecache.W001") == 1, result.stderr
    assert [line for line in result.stderr.splitlines() if "statecache:" in line] == []


@pytest.fixture
def unprivileged():
    prefix = without_dac()
    if prefix is None:
        pytest.skip("needs root and setpriv (chmod does not stop a root with its capabilities)")
    return prefix


def test_commands_on_unreadable_objects_answer_in_one_line(projects, tmp_path, unprivileged):
    """Issue 12.5: `v1/objects` that the process may not read."""
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    (cache / V / "objects").chmod(0)
    # verify recomputes what it cannot read (a cache problem, not a difference): exit 0.
    expected = {"warm": 1, "status": 1, "verify": 0, "prune": 1}
    try:
        for verb, status in expected.items():
            result = subprocess.run(
                [*unprivileged, sys.executable, "manage.py", "statecache", verb],
                cwd=p1.dir,
                env=p1.env(cache),
                capture_output=True,
                text=True,
            )
            no_traceback(result)
            assert result.returncode == status, (verb, result.stderr)
            said = [
                line
                for line in result.stderr.splitlines()
                if line.startswith(("CommandError", "statecache:"))
            ]
            # One line; warm's error may follow the warning about the first unreadable entry.
            assert 1 <= len(said) <= (2 if verb == "warm" else 1), (verb, result.stderr)
            assert "Permission denied" in said[0], (verb, result.stderr)
            assert " ." not in said[-1] and str(cache) in said[-1], (verb, result.stderr)
    finally:
        (cache / V / "objects").chmod(0o755)


def test_migrate_on_an_unreadable_directory_is_vanilla_with_one_line(
    projects, tmp_path, unprivileged
):
    """Issue 12.5: the whole directory unreadable; before, two tracebacks at -v 1."""
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    cache.chmod(0)
    try:
        command = p1.back(0)
        record = p1.observe_as(unprivileged, cache, *command)
        p1.check_same(record, *command)
        assert "Traceback" not in record["stderr"], record["stderr"]
        warnings = statecache_warnings(record["stderr"])
        assert len(warnings) == 1 and "Permission denied" in warnings[0], record["stderr"]
    finally:
        cache.chmod(0o755)


# -- 12.6 checks that crash, 12.8 misconfiguration that stops migrate ----------------------------


@pytest.mark.parametrize(
    "setting",
    [
        {"STATECACHE_DIR": "~nonexistentuser/x", "STATECACHE_ENABLED": "0"},
        {"STATECACHE_DIR": "~nonexistentuser/x"},
        {"STATECACHE_ENABLED": "maybe"},
        {"STATECACHE_SIGNING_KEY": "short"},
        {"STATECACHE_UMASK": "rwx"},
    ],
    ids=["tilde-off", "tilde-on", "flag", "key", "umask"],
)
def test_misconfiguration_never_stops_a_migration(projects, tmp_path, setting):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    command = p1.back(0)
    env = p1.env(cache, **setting)
    checked = manage(p1.dir, env, "check")
    no_traceback(checked)
    assert checked.returncode == 0, checked.stderr
    assert "(statecache.W" in checked.stderr, checked.stderr
    migrated = manage(p1.dir, env, *command)
    no_traceback(migrated)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stderr.count("(statecache.W") == 1, migrated.stderr
    record = p1.observe(cache, *command, **setting)
    p1.check_same(record, *command)
    status = manage(p1.dir, env, "statecache", "status")
    no_traceback(status)
    if "STATECACHE_UMASK" in setting or setting.get("STATECACHE_ENABLED") in ("0", "maybe"):
        assert status.returncode in (0, 1)
    else:
        assert status.returncode == 1 and "statecache is off" in status.stderr, status.stderr


def test_an_unsupported_django_is_one_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("STATECACHE_ENABLED", "1")
    monkeypatch.setenv("STATECACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(compat, "SUPPORTED", ((1, 0),))
    found = [m for m in checks.check_settings() if m.id.startswith("statecache.")]
    assert [m.id for m in found] == ["statecache.W004"]
    assert found[0].level < 40  # a warning, not an error: migrate is not stopped


def test_the_package_excludes_the_django_versions_it_refuses():
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '"Django>=4.2,!=5.0.*,!=5.1.*,<6.2"' in text


def test_w001_tries_a_real_write(monkeypatch):
    if not Path("/proc").is_dir() or os.access("/proc", os.W_OK) is False:
        pytest.skip("needs /proc, which os.access calls writable for root")
    monkeypatch.setenv("STATECACHE_ENABLED", "1")
    monkeypatch.setenv("STATECACHE_DIR", "/proc/statecache")
    ids = [m.id for m in checks.check_settings()]
    assert ids == ["statecache.W001"], ids
    conf.reported_unwritable.discard("/proc/statecache")


# -- 12.7 counts that are true ----------------------------------------------------------------


def test_a_file_in_place_of_the_objects_is_not_already_cached(projects, tmp_path):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    objects = cache / V / "objects"
    objects.rename(tmp_path / "objects.moved")
    objects.write_text("not a directory")
    warm = p1.manage(cache, "statecache", "warm")
    no_traceback(warm)
    assert warm.returncode == 0, warm.stderr
    assert " 0 already cached" in warm.stdout, warm.stdout
    assert objects.is_dir(), "the file was damage: removed, and the states stored again"
    verified = p1.manage(cache, "statecache", "verify")
    assert " 0 unreadable" in verified.stdout, verified.stdout


def test_warm_on_a_directory_it_may_not_write_exits_non_zero(projects, tmp_path):
    nobody = as_nobody()
    if nobody is None:
        pytest.skip("needs root and setpriv to run warm as a user the directory denies")
    world = Path(tempfile.mkdtemp(prefix="statecache-test-"))
    try:
        world.chmod(0o755)
        p1 = projects["p1"].relocated(world)
        cache = world / "cache"
        (cache / V).mkdir(parents=True)
        result = subprocess.run(
            [*nobody, sys.executable, "manage.py", "statecache", "warm"],
            cwd=p1.dir,
            env=p1.env(cache),
            capture_output=True,
            text=True,
        )
        no_traceback(result)
        assert result.returncode == 1, result.stderr
        assert " 0 uncacheable" in result.stdout and "not stored" in result.stderr
    finally:
        subprocess.run(["rm", "-rf", str(world)], check=False)


def test_status_of_a_directory_that_does_not_exist_exits_non_zero(projects, tmp_path):
    result = projects["p1"].manage(tmp_path / "nothing-here", "statecache", "status")
    no_traceback(result)
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_store_writes_say_they_stored_nothing_on_a_read_only_directory(tmp_path, read_only):
    store = Store(tmp_path / "cache", signing_key=None, umask=None)
    (tmp_path / "cache").mkdir()
    read_only(tmp_path / "cache")
    assert store.put_object(BLOB, b"x") == (None, False)
    assert store.put_ref(b"k" * 16, b"t" * 16) == (False, False)


# -- 12.9 git, relative directories -----------------------------------------------------------


def test_the_cache_directory_ignores_itself_for_git(projects, tmp_path):
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("needs git")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    cache = repo / ".statecache"
    assert projects["p1"].manage(cache, "statecache", "warm").returncode == 0
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    assert (cache / "CACHEDIR.TAG").exists()
    listed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout == ""


def test_a_relative_directory_is_taken_from_base_dir_else_the_current_directory(
    monkeypatch, tmp_path
):
    from django.test import override_settings

    monkeypatch.delenv("STATECACHE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with override_settings(STATECACHE_DIR="rel/cache", BASE_DIR=tmp_path / "project"):
        assert conf.cache_dir() == tmp_path / "project" / "rel" / "cache"
    with override_settings(STATECACHE_DIR="rel/cache", BASE_DIR=None):
        assert conf.cache_dir() == tmp_path / "rel" / "cache"
    monkeypatch.setenv("STATECACHE_DIR", "from-env")
    with override_settings(BASE_DIR=tmp_path / "project"):
        assert conf.cache_dir() == tmp_path / "from-env", "a shell path: the current directory"


def test_nothing_outside_is_touched_by_a_scan_of_links(tmp_path, victim):
    """The store's walks, in process: links are listed as what they are, never followed."""
    cache = tmp_path / "cache"
    store = Store(cache, signing_key=None, umask=None)
    digest, _ = store.put_object(BLOB, b"payload")
    (cache / V / "objects" / "zz").symlink_to(victim)
    found = list(store.iter_files("objects"))
    assert cache / V / "objects" / "zz" in found, "the link is listed, as what prune removes"
    assert not [p for p in found if p.parent == cache / V / "objects" / "zz"], "not descended"
    assert scan(cache)["objects"] == 2
    assert store.get_object(digest, BLOB) == b"payload"
