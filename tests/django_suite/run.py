"""Django's own migration test suites, without and with statecache, on SQLite.

    python tests/django_suite/run.py [--work DIR] [--parallel N]

Fetches the source distribution of the installed Django from the package index (it holds
`tests/`), then runs `tests/runtests.py migrations migrate_signals
migration_test_data_persistence` three times: plain Django, statecache with an empty cache, and
statecache again with the cache the second run filled (Django's tests drive MigrationExecutor
directly and swap migration modules between tests under the same app labels, so the warm run
is where a wrong key would serve a wrong state). Exits non-zero when a run with statecache
fails a test that plain Django passes or runs a different number of tests.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import django

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LABELS = ["migrations", "migrate_signals", "migration_test_data_persistence"]
# Tests that fail with statecache by design: none so far. Format: "test id  # reason".
KNOWN = HERE / "known_differences.txt"


@dataclass
class Outcome:
    name: str
    ran: int = 0
    skipped: int = 0
    failed: set[str] = field(default_factory=set)
    summary: str = ""
    statecache: str = ""


def fetch_sources(work: Path) -> Path:
    version = django.get_version()
    tests = work / f"django-{version}" / "tests"
    if (tests / "runtests.py").exists():
        return tests
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        + [f"Django=={version}", "--dest", str(work)],
        check=True,
    )
    archive = next(p for p in work.glob("*.tar.gz") if version in p.name)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/tests/" in m.name or m.name.endswith("/tests")]
        if sys.version_info >= (3, 12):
            tar.extractall(work, members=members, filter="data")
        else:
            tar.extractall(work, members=members)  # noqa: S202 - the package index's sdist
    directory = next(p for p in work.iterdir() if p.is_dir() and p.name.lower().endswith(version))
    if directory != tests.parent:
        directory.rename(tests.parent)
    return tests


def run(name: str, argv: list[str], tests: Path, env: dict[str, str]) -> Outcome:
    print(f"== {name}: {' '.join(argv[1:])}", flush=True)
    result = subprocess.run(argv, cwd=tests, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    outcome = Outcome(name)
    ran = re.search(r"^Ran (\d+) tests?", output, re.M)
    outcome.ran = int(ran.group(1)) if ran else 0
    skipped = re.search(r"skipped=(\d+)", output)
    outcome.skipped = int(skipped.group(1)) if skipped else 0
    outcome.failed = set(re.findall(r"^(?:FAIL|ERROR|UNEXPECTED SUCCESS): (.+)$", output, re.M))
    summary = re.findall(r"^(OK.*|FAILED.*)$", output, re.M)
    outcome.summary = summary[-1] if summary else f"no summary (exit {result.returncode})"
    outcome.statecache = "; ".join(re.findall(r"^statecache \[\d+\]: (.+)$", output, re.M))
    if not ran or (result.returncode != 0 and not outcome.failed):
        print(output[-5000:])
    return outcome


def known_differences() -> set[str]:
    if not KNOWN.exists():
        return set()
    lines = (line.split("#")[0].strip() for line in KNOWN.read_text().splitlines())
    return {line for line in lines if line}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / ".django-suite")
    parser.add_argument("--parallel", default="1", help="runtests.py --parallel (default 1)")
    args = parser.parse_args()
    tests = fetch_sources(args.work)
    common = [*LABELS, "--settings=test_sqlite", f"--parallel={args.parallel}", "--noinput"]
    env = dict(os.environ, STATECACHE_ENABLED="0")
    outcomes = [run("plain Django", [sys.executable, "runtests.py", *common], tests, env)]
    wrapper = [sys.executable, str(HERE / "with_statecache.py"), "runtests.py", *common]
    with tempfile.TemporaryDirectory(prefix="statecache-suite-") as cache:
        env = dict(env, STATECACHE_ENABLED="1", STATECACHE_DIR=cache)
        outcomes.append(run("statecache, empty cache", wrapper, tests, env))
        outcomes.append(run("statecache, warm cache", wrapper, tests, env))

    print(f"\nDjango {django.get_version()}, Python {sys.version.split()[0]}, SQLite")
    for outcome in outcomes:
        print(f"  {outcome.name:<24} ran {outcome.ran:>4}  {outcome.summary}")
        if outcome.statecache:
            print(f"  {'':<24} statecache: {outcome.statecache}")
    plain, *cached = outcomes
    known = known_differences()
    status = 0 if plain.ran else 1
    for outcome in cached:
        extra = outcome.failed - plain.failed - known
        if outcome.ran != plain.ran or extra:
            status = 1
            print(f"\n{outcome.name}: {outcome.ran} tests run (plain: {plain.ran})")
            for test in sorted(extra):
                print(f"  fails only with statecache: {test}")
    for test in sorted(plain.failed):
        print(f"  fails without statecache too: {test}")
    return status


if __name__ == "__main__":
    sys.exit(main())
