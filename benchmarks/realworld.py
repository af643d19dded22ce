"""statecache's coverage on the real-world corpus (tests/realworld/): `statecache warm` twice
on an empty cache, then `statecache status` (text and --json).

    python -m benchmarks.realworld [--work DIR] [--json OUT.json]

Run it with the Python of the realworld nox session, which has the corpus installed, e.g.
.venvs/nox-sessions/realworld-django-5-2-py3-12/bin/python -m benchmarks.realworld. `warm` reads
the graph only, so the database is an empty SQLite file; the cache starts empty in --work (a
temporary directory by default). A second `warm` should compute and store nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "realworld"


def manage(env: dict, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=CORPUS, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="directory for the database and the cache (kept)")
    parser.add_argument("--json", help="write the figures to this file")
    options = parser.parse_args()
    work = Path(options.work or tempfile.mkdtemp(prefix="statecache-realworld-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="corpus.settings",
        GEN_DB=str(work / "db.sqlite3"),
        STATECACHE_DIR=str(cache),
        STATECACHE_ENABLED="1",
        PYTHONHASHSEED="0",
        PYTHONWARNINGS="ignore",
    )
    import django

    print(f"corpus: {CORPUS}, Django {django.get_version()}, Python {sys.version.split()[0]}")
    print(f"work: {work}")
    figures: dict = {"django": django.get_version(), "python": sys.version.split()[0]}
    for run in ("first", "second"):
        result, elapsed = manage(env, "statecache", "warm")
        lines = result.stdout.strip().splitlines()
        print(f"== {run} warm ({elapsed:.1f} s)")
        print("\n".join(line for line in lines if "states computed (" not in line))
        figures[f"{run}_warm"] = {
            "seconds": round(elapsed, 1),
            "output": lines[-1] if lines else "",
        }
    status, _ = manage(env, "statecache", "status")
    print("== status")
    print(status.stdout.strip())
    status_json, _ = manage(env, "statecache", "status", "--json")
    figures["status"] = json.loads(status_json.stdout)
    covered, total = figures["status"]["states_covered"], figures["status"]["states_total"]
    print(f"== coverage: {covered}/{total} states ({100 * covered / max(total, 1):.1f}%)")
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
