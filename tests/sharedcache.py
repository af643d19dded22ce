"""Helpers of the cache-directory tests (issue 4): tiny generated projects, their fully
migrated databases, vanilla observations to compare with, a scan of a cache directory that
checks every entry, and a launcher that runs manage.py with a fault injected into the process.

The projects and the processes come from tests/projects.py; nothing here replaces them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from statecache.snapshots import Snapshots
from statecache.store import Store
from tests.helpers import assert_same
from tests.projects import app_migrations, environment, generate, manage, observe

# seed, apps, models, migrations: about 30 migrations, a second to migrate from scratch.
PROJECTS = {"p1": (21, 3, 8, 20), "p2": (22, 3, 8, 20)}


class Project:
    def __init__(self, root: Path, name: str) -> None:
        seed, apps, models, migrations = PROJECTS[name]
        self.name = name
        self.dir = generate(root / name, seed, apps, models, migrations)
        self.work = root / f"{name}-work"
        self.work.mkdir(exist_ok=True)
        self.base_db = self.work / "base.sqlite3"
        result = manage(self.dir, environment(self.base_db, None), "migrate")
        assert result.returncode == 0, result.stderr
        self._vanilla: dict[tuple[str, ...], dict] = {}
        self._count = 0

    def migrations(self) -> dict[str, list[str]]:
        return app_migrations(self.dir)

    def back(self, index: int = 0, steps: int = 2) -> tuple[str, ...]:
        """A backwards migrate of one app, `steps` migrations back from its last."""
        apps = {app: names for app, names in self.migrations().items() if len(names) > steps}
        app = sorted(apps)[index % len(apps)]
        return ("migrate", app, apps[app][-1 - steps])

    def env(self, cache: Path | None, db: Path | None = None, **extra: str) -> dict:
        return environment(db or self.db(), cache, extra)

    def vanilla(self, *command: str) -> dict:
        if command not in self._vanilla:
            self._vanilla[command] = observe(self.dir, self.env(None), *command)
        return self._vanilla[command]

    def observe(self, cache: Path, *command: str, **extra: str) -> dict:
        return observe(self.dir, self.env(cache, **extra), *command)

    def check_same(self, observed: dict, *command: str) -> None:
        assert observed["error"] is None, observed["error"]
        assert_same(self.vanilla(*command), observed, f"{self.name} {' '.join(command)}")

    def manage(self, cache: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
        return manage(self.dir, self.env(cache, **extra), *args)

    def relocated(self, root: Path) -> Project:
        """The same project (and vanilla references) in a directory every user can read,
        with databases every user can write: for processes run as another user."""
        root.chmod(0o755)
        clone = object.__new__(Project)
        clone.__dict__.update(self.__dict__)
        clone.dir = root / self.name
        shutil.copytree(self.dir, clone.dir)
        clone.work = root / f"{self.name}-work"
        clone.work.mkdir()
        clone.work.chmod(0o777)
        clone.base_db = clone.work / "base.sqlite3"
        shutil.copy(self.base_db, clone.base_db)
        clone.base_db.chmod(0o666)
        for path in clone.dir.rglob("*"):
            path.chmod(0o777 if path.is_dir() else 0o666)
        return clone

    def db(self, tag: str = "db") -> Path:
        """A fresh copy of the fully migrated database (writable by every user)."""
        self._count += 1
        target = self.work / f"{tag}-{self._count}.sqlite3"
        shutil.copy(self.base_db, target)
        target.chmod(0o666)
        return target

    def observe_as(self, prefix: list[str], cache: Path, *command: str, **extra: str) -> dict:
        """observe(), in a process started through `prefix` (setpriv to another user)."""
        return observe(self.dir, self.env(cache, **extra), *command, prefix=prefix)


_projects: dict[str, Project] = {}


@pytest.fixture(scope="session", name="projects")
def projects_fixture(tmp_path_factory) -> dict[str, Project]:
    """Built once per session, whichever test module asks first (each module imports this
    fixture, and pytest would otherwise build it once per module)."""
    if not _projects:
        root = tmp_path_factory.mktemp("projects")
        _projects.update((name, Project(root, name)) for name in PROJECTS)
    return _projects


def scan(cache: Path) -> dict:
    """Read every entry of a cache directory through a store that removes nothing: whatever
    a reader can see must be valid. Returns counts and the files that are not."""
    store = Store(cache, signing_key=None, umask=None)
    store.writable = False
    snapshots = Snapshots(store)
    found = {"objects": 0, "refs": 0, "states": 0, "bad": [], "tmp": []}
    for path in store.iter_files("objects"):
        found["objects"] += 1
        digest = store.digest_of(path)
        if digest is None or not store.has_object(digest):
            found["bad"].append(str(path))
    for path in store.iter_files("refs"):
        found["refs"] += 1
        key = store.digest_of(path)
        ref = store.get_ref(key) if key else None
        if ref is None:
            found["bad"].append(str(path))
        elif snapshots.read_manifest(ref[0]) is not None:
            found["states"] += 1
    tmp = store.base / "tmp"
    found["tmp"] = sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []
    return found


# Runs manage.py after installing a fault: FAULT=kill-before-rename:N SIGKILLs the process at
# the Nth rename of a finished temporary file into the cache; FAULT=kill-mid-write:N writes
# half of the Nth file written anywhere in the cache and SIGKILLs the process.
LAUNCHER = r"""
import os, runpy, signal, sys
kind, _, n = os.environ["FAULT"].partition(":")
n = int(n)
calls = [0]
real_replace, real_write = os.replace, os.write

def where(path, dir_fd):
    # The store writes relative to directory descriptors: name the file by its directory.
    if dir_fd is None:
        return str(path)
    return os.readlink(f"/proc/self/fd/{dir_fd}") + "/" + str(path)

def replace(src, dst, *a, **k):
    if kind == "kill-before-rename" and "/v1/tmp/" in where(src, k.get("src_dir_fd")):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *a, **k)

def write(fd, data):
    if kind == "kill-mid-write":
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if "/v1/tmp/" in target:
            calls[0] += 1
            if calls[0] == n:
                real_write(fd, bytes(data[: len(data) // 2]))
                os.kill(os.getpid(), signal.SIGKILL)
    return real_write(fd, data)

os.replace, os.write = replace, write
sys.argv = ["manage.py", *sys.argv[1:]]
runpy.run_path("manage.py", run_name="__main__")
"""


def manage_with_fault(project: Project, env: dict, fault: str, *args: str):
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args],
        cwd=project.dir,
        env={**env, "FAULT": fault},
        capture_output=True,
        text=True,
    )


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def can_mount() -> bool:
    if not is_root() or not shutil.which("mount"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="statecache-mount-"))
    try:
        ok = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True
        )
        if ok.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    finally:
        probe.rmdir()


def as_nobody() -> list[str] | None:
    """A command prefix that runs a process as `nobody` (group `nogroup`), when we are root.

    The process keeps one capability, CAP_DAC_READ_SEARCH, so that it can read the Python
    installation wherever root keeps it (/root/.pyenv here); every write is checked against
    the file's permissions like any other user's."""
    if not is_root() or not shutil.which("setpriv"):
        return None
    prefix = [
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import django"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def without_dac() -> list[str] | None:
    """A command prefix that runs a process as root without the capabilities that let root
    read and write what its permissions deny (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): a
    directory of mode 000 is then as unreadable to it as to any user, while it can still read
    the Python installation root owns."""
    if not is_root() or not shutil.which("setpriv"):
        return None
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import django"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def statecache_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("statecache:")]
