"""Time `migrate` with and without statecache, as whole processes, on one project.

    python -m benchmarks.run --project medium --runs 3 --json out.json
    python -m benchmarks.run --project example --runs 1

Variants, alternated run by run so that machine noise spreads evenly:
  vanilla   STATECACHE_ENABLED=0
  cold      statecache with an empty cache directory
  warm      statecache with the cache as `statecache warm` left it (restored before every run)
  fastmig   django-fastmig 0.1.1 (if importable), statecache off
Every run starts from the same database file. Times are medians with min-max; ratios are
against vanilla in the same run. The floor is `migrate --plan` (settings, checks, loading the
graph) plus the time the migrations themselves took (as `migrate -v 2` reports them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.generate import SIZES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
PHASES = Path(__file__).resolve().parent / "phases.py"
NEWAPP_MODELS = """from django.db import models


class Report(models.Model):
    title = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)
"""
NEWAPP_SECOND = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("{app}", "0001_initial")]
    operations = [migrations.AddField("report", "notes", models.TextField(default=""))]
"""
NEWAPP_MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Report",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("title", models.CharField(max_length=100)),
                ("created", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
"""
SETTINGS_TAIL = """
# Added by benchmarks.run
INSTALLED_APPS += ["{app}"]
if os.environ.get("BENCH_FASTMIG") == "1":
    INSTALLED_APPS.insert(0, "fastmig")
"""


@dataclass
class Project:
    path: Path
    settings: str
    db_env: str
    apps: dict[str, list[str]] = field(default_factory=dict)
    new_app: str = "alerts"

    def env(self, db: Path, variant: str, cache: Path) -> dict:
        env = dict(os.environ)
        env.update(
            {
                self.db_env: str(db),
                "DJANGO_SETTINGS_MODULE": self.settings,
                "STATECACHE_ENABLED": "1" if variant in ("cold", "warm") else "0",
                "STATECACHE_DIR": str(cache),
                "BENCH_FASTMIG": "1" if variant == "fastmig" else "0",
                "PYTHONHASHSEED": "0",
            }
        )
        return env

    def run(
        self, env: dict, *args: str, check: bool = True, timeout: float | None = None
    ) -> tuple[float, str]:
        """Run manage.py; the elapsed time is inf when it ran out of `timeout`."""
        started = time.perf_counter()
        try:
            result = subprocess.run(
                [sys.executable, "manage.py", *args],
                cwd=self.path,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return float("inf"), ""
        elapsed = time.perf_counter() - started
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return elapsed, result.stdout


def prepare(name: str, work: Path, seed: int, new_app: str = "alerts") -> Project:
    """The project, with an extra app (one CreateModel): the report's case.

    Its label decides where it sits in the plan: Django plans leaf nodes in label order, so
    "alerts" (after "accounts", before "app00") comes early and unapplying it makes vanilla
    Django replay almost the whole plan for the post-migrate state, as in the report."""
    path = work / "project"
    if name == "example":
        if not path.exists():
            shutil.copytree(
                EXAMPLE, path, ignore=shutil.ignore_patterns("*.sqlite3", ".statecache")
            )
        project = Project(path, "shop.settings", "SHOP_DB")
        settings_file = path / "shop" / "settings.py"
    else:
        if not (path / "manage.py").exists():
            size = SIZES[name] if name in SIZES else None
            if size is None:
                raise SystemExit(f"unknown project {name!r}")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.generate",
                    str(path),
                    "--seed",
                    str(seed),
                    "--apps",
                    str(size["apps"]),
                    "--models",
                    str(size["models"]),
                    "--migrations",
                    str(size["migrations"]),
                ],
                cwd=ROOT,
                check=True,
            )
        project = Project(path, "genproject.settings", "GEN_DB")
        settings_file = path / "genproject" / "settings.py"
    newapp = path / new_app
    project.new_app = new_app
    if not newapp.exists():
        (newapp / "migrations").mkdir(parents=True)
        (newapp / "__init__.py").write_text("")
        (newapp / "migrations" / "__init__.py").write_text("")
        (newapp / "models.py").write_text(NEWAPP_MODELS)
        (newapp / "migrations" / "0001_initial.py").write_text(NEWAPP_MIGRATION)
        text = settings_file.read_text()
        if "import os" not in text:
            text = "import os\n" + text
        settings_file.write_text(text + SETTINGS_TAIL.replace("{app}", new_app))
    for migrations in sorted(p for p in path.rglob("migrations") if (p / "__init__.py").exists()):
        names = sorted(p.stem for p in migrations.glob("0*.py") if "_squashed_" not in p.stem)
        project.apps[migrations.parent.name] = names
    return project


def floor_seconds(stdout: str) -> float:
    """What the migrations themselves took, from `migrate -v 2` output."""
    return sum(float(x) for x in re.findall(r"(?:OK|FAKED) \((\d+\.\d+)s\)", stdout))


@dataclass
class Scenario:
    name: str
    start: str  # which database snapshot to start from
    args: list[str]
    then: str | None = None  # snapshot name to save the result under (from a vanilla run)


def scenarios(
    project: Project, plan_order: list[str], zero_app: str | None = None
) -> list[Scenario]:
    apps = {a: n for a, n in project.apps.items() if a not in (project.new_app, "accounts")}
    # An app in the middle of the plan (by where its last migration sits).
    middle = plan_order[len(plan_order) // 2].split(".")[0]
    if middle not in apps or len(apps[middle]) < 2:
        middle = max(apps, key=lambda a: len(apps[a]))
    longest = max(apps, key=lambda a: len(apps[a]))
    ten = min(10, len(apps[longest]) - 1)
    zero = zero_app or longest
    return [
        Scenario("no-op migrate", "full", ["migrate"]),
        # Every other scenario starts from a database with everything applied, as a deployed
        # one has; the report's case starts from it without the new app.
        # The forum report's case: a new app (one CreateModel), applied and then unapplied.
        Scenario(
            f"new app {project.new_app} forwards", "without-new-app", ["migrate", project.new_app]
        ),
        Scenario(
            f"new app {project.new_app} back to zero",
            "full",
            ["migrate", project.new_app, "zero"],
        ),
        Scenario(
            f"one step back ({middle})",
            "full",
            ["migrate", middle, apps[middle][-2]],
            then="stepped",
        ),
        Scenario(f"same step forwards ({middle})", "stepped", ["migrate", middle]),
        Scenario(
            f"{ten} steps back ({longest})", "full", ["migrate", longest, apps[longest][-1 - ten]]
        ),
        Scenario(f"{zero} zero ({len(apps[zero])} migrations)", "full", ["migrate", zero, "zero"]),
        # What creating a test database does: the whole plan, forwards, from nothing.
        Scenario("whole plan from an empty database", "empty", ["migrate"]),
    ]


def fastmig_available() -> bool:
    try:
        import fastmig  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="small", help="example, tiny, small, medium, large")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variants", default="vanilla,cold,warm,fastmig")
    parser.add_argument("--work", type=Path, help="where to keep the project and databases")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--new-app", default="alerts", help="label of the report's new app")
    parser.add_argument("--zero-app", help="the app to migrate to zero (default: the longest)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="stop a run after this many seconds and report it as longer (default 900)",
    )
    parser.add_argument(
        "--slow",
        type=float,
        default=60.0,
        help="after one round, stop repeating a scenario whose vanilla run took longer (s)",
    )
    parser.add_argument(
        "--only", help="run only scenarios whose name contains one of these (comma-separated)"
    )
    parser.add_argument(
        "--phases", action="store_true", help="also break each scenario down into phases"
    )
    args = parser.parse_args(argv)

    import django

    version = django.get_version()
    work = (
        args.work
        or Path(tempfile.gettempdir())
        / f"statecache-bench2-{args.project}-{args.seed}-{args.new_app}-{version}"
    )
    work.mkdir(parents=True, exist_ok=True)
    variants = [v for v in args.variants.split(",") if v != "fastmig" or fastmig_available()]
    project = prepare(args.project, work, args.seed, args.new_app)
    print(
        f"project: {args.project} ({project.path}), Django {version}, "
        f"{sum(len(v) for v in project.apps.values())} migration files, "
        f"{os.cpu_count()} cores",
        flush=True,
    )

    snapshots = work / "snapshots"
    snapshots.mkdir(exist_ok=True)
    vanilla_env = lambda db: project.env(db, "vanilla", work / "unused")  # noqa: E731
    full = snapshots / "full.sqlite3"
    if not full.exists():
        # The starting database is built once, by statecache (the same SQL as Django, which the
        # differential tests check, and the fastest of the variants forwards from zero: a
        # large project takes long to migrate from zero).
        print("migrating a database forwards (statecache, once)...", flush=True)
        tmp = snapshots / "building.sqlite3"
        tmp.unlink(missing_ok=True)
        build_cache = work / "build-cache"
        project.run(project.env(tmp, "cold", build_cache), "migrate", "-v", "0")
        shutil.copy(tmp, snapshots / "without-new-app.sqlite3")
        project.run(
            project.env(snapshots / "without-new-app.sqlite3", "cold", build_cache),
            "migrate",
            project.new_app,
            "zero",
            "-v",
            "0",
        )
        tmp.rename(full)
    (snapshots / "empty.sqlite3").touch()  # an empty file is an empty SQLite database
    _, plan_text = project.run(vanilla_env(full), "showmigrations", "--plan", "-v", "1")
    plan_order = [line.split("]", 1)[1].strip() for line in plan_text.splitlines() if "]" in line]

    warm_cache = work / "warm-cache"
    results: dict = {
        "project": args.project,
        "django": version,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
        "runs": args.runs,
        "scenarios": {},
    }
    # statecache warm, from empty (timed), which also gives the warm variant its cache.
    if "warm" in variants:
        times = []
        for _ in range(args.runs):
            shutil.rmtree(warm_cache, ignore_errors=True)
            elapsed, _ = project.run(project.env(full, "warm", warm_cache), "statecache", "warm")
            times.append(elapsed)
        results["warm from empty"] = summary(times)
        results["cache size"] = cache_size(warm_cache)
        # One new migration, then warm again: only the states after it are computed.
        second = project.path / project.new_app / "migrations" / "0002_notes.py"
        times = []
        try:
            second.write_text(NEWAPP_SECOND.replace("{app}", project.new_app))
            for _ in range(args.runs):
                cache = work / "cache-incremental"
                shutil.rmtree(cache, ignore_errors=True)
                shutil.copytree(warm_cache, cache)
                elapsed, out = project.run(project.env(full, "warm", cache), "statecache", "warm")
                times.append(elapsed)
        finally:
            second.unlink(missing_ok=True)
        results["warm after one new migration"] = summary(times)
        results["warm after one new migration"]["report"] = out.strip().splitlines()[-1]
    plan_times = [project.run(vanilla_env(full), "migrate", "--plan")[0] for _ in range(args.runs)]
    results["migrate --plan"] = summary(plan_times)

    for scenario in scenarios(project, plan_order, args.zero_app):
        if args.only and not any(part in scenario.name for part in args.only.split(",")):
            continue
        start = snapshots / f"{scenario.start}.sqlite3"
        timings: dict[str, list[float]] = {v: [] for v in variants}
        floors: list[float] = []
        for run in range(args.runs):
            if run and "vanilla" in timings and min(timings["vanilla"]) > args.slow:
                break  # one round is enough to show a ratio this large
            order = variants[run % len(variants) :] + variants[: run % len(variants)]
            for variant in order:
                db, cache = fresh_files(work, start, variant, warm_cache)
                elapsed, out = project.run(
                    project.env(db, variant, cache),
                    *scenario.args,
                    "-v",
                    "2",
                    timeout=args.timeout,
                )
                timings[variant].append(elapsed)
                if variant == "warm":
                    floors.append(floor_seconds(out))
                if variant == "vanilla" and scenario.then and run == 0:
                    shutil.copy(db, snapshots / f"{scenario.then}.sqlite3")
        floor = statistics.median(plan_times) + (statistics.median(floors) if floors else 0.0)
        entry = {v: summary(t) for v, t in timings.items()}
        entry["runs"] = len(timings[variants[0]])
        entry["floor"] = round(floor, 3)
        if args.phases:
            entry["phases"] = {}
            for variant in variants:
                db, cache = fresh_files(work, start, variant, warm_cache)
                result = subprocess.run(
                    [sys.executable, str(PHASES), *scenario.args],
                    cwd=project.path,
                    env=project.env(db, variant, cache),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                entry["phases"][variant] = json.loads(result.stdout.strip().splitlines()[-1])
        results["scenarios"][scenario.name] = entry
        print(format_row(scenario.name, entry, variants, args.timeout), flush=True)

    print()
    print(table(results, variants, args.timeout))
    if args.phases:
        print()
        print(phase_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def fresh_files(work: Path, start: Path, variant: str, warm_cache: Path) -> tuple[Path, Path]:
    """A copy of the starting database, and the cache a variant starts with (empty, or as
    `statecache warm` left it)."""
    db = work / f"run-{variant}.sqlite3"
    shutil.copy(start, db)
    cache = work / f"cache-{variant}"
    shutil.rmtree(cache, ignore_errors=True)
    if variant == "warm":
        shutil.copytree(warm_cache, cache)
    return db, cache


def summary(times: list[float]) -> dict:
    """Median and range; a run that timed out is inf (JSON: Infinity), "> timeout" in tables."""
    return {
        "median": round(statistics.median(times), 3),
        "min": round(min(times), 3),
        "max": round(max(times), 3),
    }


def cache_size(directory: Path) -> dict:
    files = [p for p in directory.rglob("*") if p.is_file()]
    apparent = sum(p.stat().st_size for p in files)
    allocated = sum(p.stat().st_blocks * 512 for p in files)
    return {
        "files": len(files),
        "apparent_mb": round(apparent / 1e6, 1),
        "on_disk_mb": round(allocated / 1e6, 1),
    }


def seconds(value: float, timeout: float) -> str:
    return f"> {timeout:.0f} s" if math.isinf(value) else f"{value:.2f} s"


def ratio(base: float, value: float, timeout: float) -> str:
    if math.isinf(value):
        return ""
    if math.isinf(base):
        return f" (> {timeout / value:.1f}×)"
    return f" ({base / value:.1f}×)"


def format_row(name: str, entry: dict, variants: list[str], timeout: float) -> str:
    base = entry["vanilla"]["median"] if "vanilla" in entry else None
    cells = []
    for variant in variants:
        m = entry[variant]
        r = ratio(base, m["median"], timeout) if base and variant != "vanilla" else ""
        cells.append(
            f"{variant} {seconds(m['median'], timeout)} "
            f"[{seconds(m['min'], timeout)} to {seconds(m['max'], timeout)}]{r}"
        )
    return f"{name}: " + ", ".join(cells) + f", floor {entry['floor']:.2f} s"


def table(results: dict, variants: list[str], timeout: float) -> str:
    header = ["scenario", *variants, "floor"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in results["scenarios"].items():
        base = entry.get("vanilla", {}).get("median")
        cells = [name]
        for variant in variants:
            m = entry[variant]["median"]
            r = ratio(base, m, timeout) if base and variant != "vanilla" else ""
            cells.append(f"{seconds(m, timeout)}{r}")
        cells.append(f"{entry['floor']:.2f} s")
        lines.append("| " + " | ".join(cells) + " |")
    extra = []
    if "warm from empty" in results:
        extra.append(
            f"`statecache warm` from empty: {results['warm from empty']['median']:.2f} s; "
            f"cache: {results['cache size']['files']} files, "
            f"{results['cache size']['apparent_mb']} MB "
            f"({results['cache size']['on_disk_mb']} MB allocated)"
        )
    if "warm after one new migration" in results:
        incremental = results["warm after one new migration"]
        extra.append(
            f"`statecache warm` after one new migration: {incremental['median']:.2f} s "
            f"({incremental['report']})"
        )
    extra.append(f"`migrate --plan`: {results['migrate --plan']['median']:.2f} s")
    return "\n".join(lines + [""] + extra)


def phase_table(results: dict) -> str:
    lines = []
    for name, entry in results["scenarios"].items():
        phases = entry.get("phases", {})
        if not phases:
            continue
        variants = list(phases)
        labels = sorted(
            {label for p in phases.values() for label in p},
            key=lambda label: -max(p.get(label, 0) for p in phases.values()),
        )
        lines += [
            f"{name}:",
            "| phase | " + " | ".join(variants) + " |",
            "|---|" + "---|" * len(variants),
        ]
        for label in labels:
            cells = [f"{phases[v].get(label, 0):.2f} s" for v in variants]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
