"""Generated projects and the helpers that run commands in them, shared by the tests."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
HARNESS = Path(__file__).resolve().parent / "harness.py"


def generate(
    out: Path, seed: int, apps: int, models: int, migrations: int, stress: bool = True
) -> Path:
    if not (out / "manage.py").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.generate",
                str(out),
                "--seed",
                str(seed),
                "--apps",
                str(apps),
                "--models",
                str(models),
                "--migrations",
                str(migrations),
                *(["--stress"] if stress else []),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return out


def environment(db: Path, cache: Path | None, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(
        GEN_DB=str(db),
        GEN_RECORD=str(db.with_suffix(".observed.json")),
        PYTHONHASHSEED="0",
        STATECACHE_ENABLED="1" if cache is not None else "0",
        STATECACHE_DIR=str(cache or db.parent / "unused-cache"),
        # Reuse the pre-migrate registry after every rollback, however much it re-renders, so
        # that every differential rollback checks that path (registry.py).
        STATECACHE_REGISTRY_MAX_SHARE="1",
    )
    env.update(extra or {})
    return env


def manage(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=project, env=env, capture_output=True, text=True
    )


def observe_all(
    project: Path, env: dict, commands: list[list[str]], prefix: Sequence[str] = ()
) -> list[dict]:
    """Run commands one after the other in one process (started through `prefix`, e.g.
    setpriv to run as another user); what the harness recorded for each, and the stderr."""
    return start_observing(project, env, commands, prefix)()


def start_observing(
    project: Path, env: dict, commands: list[list[str]], prefix: Sequence[str] = ()
) -> Callable[[], list[dict]]:
    """observe_all in the background: start the process, return the call that waits for it
    and returns the records (to run a vanilla and a statecache variant side by side)."""
    out = Path(env["GEN_RECORD"])
    argv = [word for command in commands for word in ("--", *command)]
    process = subprocess.Popen(
        [*prefix, sys.executable, str(HARNESS), str(project), str(out), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def finish() -> list[dict]:
        _, stderr = process.communicate()
        assert process.returncode == 0, stderr
        records = json.loads(out.read_text())
        for record in records:
            record["stderr"] = stderr
        return records

    return finish


def observe(project: Path, env: dict, *command: str, prefix: Sequence[str] = ()) -> dict:
    """Run one command in a fresh process, as `manage.py migrate` is run."""
    return observe_all(project, env, [list(command)], prefix)[0]


def app_migrations(project: Path) -> dict[str, list[str]]:
    """Each generated app's migrations that can be a target (not squashed or replaced)."""
    result = {}
    for app_dir in sorted(project.glob("*/migrations")):
        names = sorted(p.stem for p in app_dir.glob("0*.py"))
        squashed = [n for n in names if "_squashed_" in n]
        replaced = set()
        for name in squashed:
            last = int(re.search(r"_squashed_(\d+)", name).group(1))
            replaced |= {n for n in names if int(n[:4]) <= last}
        result[app_dir.parent.name] = [n for n in names if n not in replaced and n not in squashed]
    return result


def scenario(project: Path, seed: int) -> list[list[str]]:
    """A sequence of migrate commands: forwards, one step back, several back, zero, forwards."""
    rng = random.Random(seed)
    apps = app_migrations(project)
    candidates = [app for app, names in apps.items() if len(names) >= 3]
    commands = [["migrate"]]
    app = rng.choice(candidates)
    commands.append(["migrate", app, apps[app][-2]])
    app = rng.choice(candidates)
    steps = rng.randint(2, max(2, len(apps[app]) - 1))
    commands.append(["migrate", app, apps[app][-steps]])
    commands.append(["migrate", rng.choice(sorted(apps)), "zero"])
    commands.append(["migrate"])
    app = rng.choice(candidates)
    commands.append(["migrate", app, apps[app][len(apps[app]) // 2]])
    return commands


def walk(project: Path, app: str) -> list[list[str]]:
    """Step one app back one migration at a time, to zero, then forwards again."""
    names = app_migrations(project)[app]
    commands = [["migrate"]]
    commands += [["migrate", app, name] for name in reversed(names[:-1])]
    commands += [["migrate", app, "zero"], ["migrate"]]
    return commands


def fresh_copy(source: Path | None, target: Path) -> Path:
    if target.exists():
        target.unlink()
    if source is not None:
        shutil.copy(source, target)
    return target
