"""Issue 4.1: one cache directory, many real processes at once.

Eight processes share one empty STATECACHE_DIR and start together: `statecache warm` and
backwards `migrate`s of two different projects, several of them the same command on the same
project (so they race to write the very same entries). Each must succeed and observe exactly
what vanilla Django does; afterwards every entry on disk is valid, none is left half-written,
`statecache verify` finds every cached state equal to Django's replay, and the same rollbacks
run again are served from the cache. Clear and prune take the exclusive lock: they wait for, or
refuse with a clear message, a writer that is in the middle of a state, and writers that meet
them store nothing and go on.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.projects import manage, observe, observe_all
from tests.sharedcache import Project, projects_fixture, scan  # noqa: F401 - fixture

HOLD = r"""
import sys
sys.path.insert(0, {root!r})
from statecache.store import Store
store = Store({cache!r}, signing_key=None, umask=None)
if sys.argv[1] == "writer":
    with store.writing() as ok:
        print("holding" if ok else "refused", flush=True)
        sys.stdin.read()  # until the test closes the pipe
else:
    with store.lock(timeout=10):
        print("holding", flush=True)
        sys.stdin.read()
print("released", flush=True)
"""


class Holder:
    """A real process holding the cache's shared (writer) or exclusive lock until released:
    the tests wait on what it prints and on the pipe, never on the clock."""

    def __init__(self, cache: Path, kind: str) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLD.format(root=root, cache=str(cache)), kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout.readline().strip() == "holding"

    def holding(self) -> bool:
        return self.process.poll() is None

    def release(self) -> None:
        self.process.stdin.close()
        assert self.process.stdout.readline().strip() == "released"
        assert self.process.wait(60) == 0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def test_eight_processes_share_one_cache(projects, tmp_path):
    cache = tmp_path / "cache"
    p1, p2 = projects["p1"], projects["p2"]
    jobs: list[tuple[Project, tuple[str, ...]]] = [
        (p1, p1.back(0)),
        (p1, p1.back(0)),
        (p1, p1.back(0)),
        (p1, p1.back(1, steps=1)),
        (p1, ("statecache", "warm")),
        (p2, p2.back(0)),
        (p2, p2.back(0)),
        (p2, ("statecache", "warm")),
    ]
    for project, command in jobs:  # the references, computed before the race
        if command[0] == "migrate":
            project.vanilla(*command)
    envs = [project.env(cache) for project, _ in jobs]

    def run(index: int):
        project, command = jobs[index]
        if command[0] == "migrate":
            return observe(project.dir, envs[index], *command)
        return manage(project.dir, envs[index], *command)

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(run, range(len(jobs))))

    for (project, command), result in zip(jobs, results):
        if command[0] == "migrate":
            project.check_same(result, *command)
        else:
            assert result.returncode == 0, result.stderr
            assert "Traceback" not in result.stderr, result.stderr
    found = scan(cache)
    assert found["bad"] == [] and found["tmp"] == [], found
    assert found["states"] == found["refs"] > 30
    # Every state the race stored is the state Django computes, and it now serves them all.
    for project in (p1, p2):
        again, verified = observe_all(
            project.dir, project.env(cache), [list(project.back(0)), ["statecache", "verify"]]
        )
        project.check_same(again, *project.back(0))
        assert again["statecache"]["misses"] == 0
        assert verified["error"] is None, verified["error"]
        assert " 0 different, 0 unreadable" in verified["stdout"]


def test_clear_refuses_or_waits_while_a_writer_holds_a_state(projects, tmp_path):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    assert p1.manage(cache, "statecache", "warm").returncode == 0
    writer = Holder(cache, "writer")
    try:
        refused = p1.manage(cache, "statecache", "clear", "--timeout", "0")
        assert writer.holding(), "the writer held the lock all along"
        assert refused.returncode == 1, refused.stdout
        assert "is in use" in refused.stderr and "--timeout" in refused.stderr
        assert scan(cache)["refs"] > 30, "nothing was removed"
        clear = subprocess.Popen(
            [sys.executable, "manage.py", "statecache", "clear", "--timeout", "600"],
            cwd=p1.dir,
            env=p1.env(cache),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # It says when it finds the lock taken and starts waiting: the event to wait on.
            said = ""
            while "waiting" not in said:
                line = clear.stderr.readline()
                assert line, f"clear ended without waiting: {said}"
                said += line
            assert "waiting up to 600s for writers" in said, said
            assert scan(cache)["refs"] > 30, "nothing is removed while the writer holds it"
            writer.release()
            out, err = clear.communicate(timeout=300)
        finally:
            if clear.poll() is None:
                clear.kill()
        assert clear.returncode == 0, err
        assert "statecache: cleared" in out
    finally:
        writer.kill()
    assert scan(cache)["refs"] == 0


def test_writers_store_nothing_while_a_prune_holds_the_cache_then_resume(projects, tmp_path):
    p1 = projects["p1"]
    cache = tmp_path / "cache"
    command = p1.back(0)
    pruner = Holder(cache, "exclusive")
    try:
        observed = p1.observe(cache, *command)
        assert pruner.holding(), "the migrate finished while the lock was held: it never waits"
        p1.check_same(observed, *command)
        assert scan(cache)["refs"] == 0, "nothing written under the exclusive lock"
        refused = p1.manage(cache, "statecache", "prune", "--timeout", "0")
        assert refused.returncode == 1 and "is in use" in refused.stderr
        pruner.release()
    finally:
        pruner.kill()
    # The lock is gone with its process: the next run stores, the one after is served.
    p1.check_same(p1.observe(cache, *command), *command)
    again = p1.observe(cache, *command)
    p1.check_same(again, *command)
    assert again["statecache"]["misses"] == 0
