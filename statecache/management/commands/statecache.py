"""`manage.py statecache warm | status | verify | prune | clear | dir`.

Exit status: 0 when the command did its job; 1 with one line on stderr when it could not (the
directory unusable: missing for `status`, not a directory, unreadable, read-only or full where
it must write, a link where statecache's own directories belong; busy; `warm` could not store
some states; `prune` could not remove some entries; `verify` found a difference; a setting
that turns statecache off); 2 for a usage error. Never a traceback: an OS error becomes that
one line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import time
from dataclasses import asdict

import filelock
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from statecache import conf, coverage, maintenance, plans, replay, snapshots, volatile
from statecache.store import STORE_VERSION

SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """`500M`, `2G`, `1.5GiB`, `4096` (bytes); k/M/G/T are decimal, Ki/Mi/Gi/Ti binary."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", text.lower())
    if not match:
        raise ValueError(f"not a size: {text!r} (examples: 500M, 2G, 1GiB)")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2) or ""])


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` or plain seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 30d, 12h, 90m)")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def _typed(parse):
    """argparse type that reports a bad value as a usage error."""
    import argparse

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc))

    convert.__name__ = parse.__name__
    return convert


class Command(BaseCommand):
    help = "Fill, inspect, check, prune and clear statecache's cache of migration states."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        warm = sub.add_parser("warm", help="Store the state before every migration of the graph.")
        warm.add_argument("--database", default=DEFAULT_DB_ALIAS)
        status = sub.add_parser("status", help="What the cache holds, covers and served.")
        status.add_argument("--database", default=DEFAULT_DB_ALIAS)
        status.add_argument("--json", action="store_true")
        verify = sub.add_parser(
            "verify", help="Replay the graph, compare the cached states; exit 1 on a difference."
        )
        verify.add_argument("--database", default=DEFAULT_DB_ALIAS)
        verify.add_argument(
            "--sample", type=int, metavar="N", help="check N randomly chosen cached states"
        )
        verify.add_argument("--seed", type=int, help="seed of the --sample choice")
        prune = sub.add_parser(
            "prune",
            help="Remove damaged entries, leftovers and unused objects; with options, states.",
        )
        prune.add_argument("--database", default=DEFAULT_DB_ALIAS)
        prune.add_argument(
            "--unreachable",
            action="store_true",
            help="remove states that are not states of the current graph (fully applied, or "
            "as the database's applied migrations have it)",
        )
        prune.add_argument(
            "--older-than",
            type=_typed(parse_duration),
            metavar="AGE",
            help="remove states unused for AGE (30d, 12h, ...)",
        )
        prune.add_argument(
            "--max-size",
            type=_typed(parse_size),
            metavar="SIZE",
            help="then remove the least recently used states until the cache fits (500M, 2G)",
        )
        prune.add_argument("--dry-run", action="store_true", help="say what would be removed")
        prune.add_argument(
            "--tmp-age",
            type=_typed(parse_duration),
            default=maintenance.TMP_MAX_AGE,
            metavar="AGE",
            help="temporary files older than this are leftovers of killed writers (default 1h)",
        )
        prune.add_argument("--json", action="store_true")
        for parser_ in (prune, sub.add_parser("clear", help="Remove every entry.")):
            parser_.add_argument(
                "--timeout",
                type=float,
                default=60.0,
                help="seconds to wait for writers to finish (0: refuse at once); default 60",
            )
        sub.add_parser("dir", help="Print the cache directory.")
        for verb_parser in sub.choices.values():
            # `statecache warm -v 2` as well as `statecache -v 2 warm`.
            verb_parser.add_argument(
                "-v",
                "--verbosity",
                type=int,
                choices=[0, 1, 2, 3],
                default=argparse.SUPPRESS,
                help="Verbosity level; 0=minimal output, 1=normal output, 2=verbose output",
            )

    def handle(self, *args, verb: str, **options) -> None:
        reason = conf.off_reason()
        if reason is not None and verb != "status":  # status shows what it can, to diagnose
            raise CommandError(f"{reason}; statecache is off (see `manage.py check`)")
        try:
            getattr(self, "do_" + verb)(**options)
        except OSError as exc:
            raise CommandError(_os_error(exc))

    def _plan(self, database: str) -> tuple[replay.StatePlan, MigrationExecutor]:
        if database not in connections:
            raise CommandError(f"unknown database {database!r}")
        try:
            # The database's applied migrations decide which squashed migrations replace
            # their originals in the graph, so the graph is the one `migrate` will see there.
            executor = MigrationExecutor(connections[database])
        except DatabaseError as exc:
            raise CommandError(f"cannot read the migrations of database {database!r}: {exc}")
        return replay.StatePlan(executor.loader, plans.full_plan(executor.loader)), executor

    def do_warm(self, database: str, verbosity: int, **_) -> None:
        started = time.perf_counter()
        plan, _ = self._plan(database)
        last_report = [started]

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if verbosity >= 1 and now - last_report[0] > 5:
                last_report[0] = now
                self.stdout.write(f"  {done}/{total} states computed ({now - started:.0f}s)")

        store = plan.cache.store
        # Import the migrations again: a key that changes with every import is never hit, so
        # what differs is recorded (volatile.py) and the keys are computed with it.
        found = coverage.unstable(plan)
        recorded = {
            u.source: u.positions for u in found if u.source and u.positions and not u.stays
        }
        if recorded and volatile.write(store, {**plan.hints, **recorded}):
            plan.rekey({**plan.hints, **recorded})
        else:
            recorded = {}
        try:
            lock = store.warm_lock(timeout=600)
        except OSError:  # a read-only directory: nothing to take turns for
            lock = contextlib.nullcontext()
        try:
            with lock:
                counts = plan.warm(progress)
                rollbacks = plan.warm_rollbacks()
        except filelock.Timeout:
            raise CommandError("another warm has held the cache for 10 minutes; try again")
        plan.cache.flush_stats()
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"statecache warm: {len(plan.migrations)} migrations, {_counted(counts)}; "
            f"{len(plan.rollback_masks())} states with an app's latest migration unapplied: "
            f"{_counted(rollbacks)}; in {elapsed:.2f}s"
        )
        for model, reason in sorted(plan.cache.uncacheable_models.items()):
            self.stdout.write(f"  uncacheable: {model}: {reason}")
        for line in coverage.summary_lines(coverage.measure(plan), verbosity)[1:]:
            self.stdout.write(line)
        for unstable in found:
            if unstable.source in recorded:
                self.stdout.write(
                    f"  recorded: {unstable.name}: {', '.join(unstable.values)} computed at "
                    "import time; from now on taken from each process's own migrations"
                )
            else:
                self.stdout.write(
                    f"  volatile: {unstable.name}: its fingerprint differs between two imports "
                    "(a value computed at import time); the states after it are computed again "
                    "by every process"
                )
        unstored = counts["unwritten"] + rollbacks["unwritten"]
        if unstored:
            why = "is not writable" if not store.writable else "is in use (cleared or pruned)"
            raise CommandError(f"{store.root} {why}: {unstored} states were not stored")

    def _status(self, database: str) -> dict:
        plan, _ = self._plan(database)
        cache = plan.cache
        store = cache.store
        covered = coverage.measure(plan, explain=True)
        counters = store.read_stats()
        for name, value in cache.unflushed().items():
            counters[name] = counters.get(name, 0) + value
        return {
            "directory": str(store.root),
            "enabled": conf.enabled(),
            "format": f"v{STORE_VERSION}",
            "other_formats": store.other_versions(),
            "signed": store.signing_key is not None,
            "umask": None if store.umask is None else f"{store.umask:03o}",
            "migrations": len(plan.migrations),
            **asdict(covered),
            **store.sizes(),
            "counters": counters,
        }

    def do_status(self, database: str, json: bool, verbosity: int, **_) -> None:  # noqa: A002
        reason = conf.off_reason()
        off = CommandError(f"{reason}; statecache is off (see `manage.py check`)")
        try:
            directory = conf.cache_dir()
        except conf.SettingError:
            raise off
        if directory.exists() and not directory.is_dir():
            raise off
        if not directory.is_dir():
            raise CommandError(f"{directory} does not exist: nothing is cached there yet")
        info = self._status(database)
        info["off_because"] = reason
        if json:
            self.stdout.write(_json(info))
        else:
            self._print_status(info, verbosity)
        if reason is not None:
            raise off

    def _print_status(self, info: dict, verbosity: int = 1) -> None:
        if info["off_because"] is None and not info["enabled"]:
            self.stdout.write("statecache is off (STATECACHE_ENABLED): migrate does not use it")
        counters = info["counters"]
        lookups = counters["hits"] + counters["misses"]
        rate = f" ({100 * counters['hits'] / lookups:.0f}% hits)" if lookups else ""
        self.stdout.write(f"directory: {info['directory']} (format {info['format']})")
        for line in coverage.summary_lines(coverage.Coverage(**_coverage_fields(info)), verbosity):
            self.stdout.write(line)
        self.stdout.write(
            f"entries: {info['refs']} states, {info['objects']} objects, "
            f"{info['bytes'] / 1e6:.1f} MB; {info['tmp']} temporary files"
        )
        self.stdout.write(
            f"counters: {counters['hits']} hits, {counters['misses']} misses{rate}, "
            f"{counters['keyless']} keyless replays; {counters['written']} states written, "
            f"{counters['uncacheable']} uncacheable, {counters['unwritten']} not written"
        )
        extras = []
        if info["signed"]:
            extras.append("signed entries only")
        if info["umask"] is not None:
            extras.append(f"group-shared, umask {info['umask']}")
        if info["other_formats"]:
            extras.append("other formats beside it: " + ", ".join(info["other_formats"]))
        if extras:
            self.stdout.write("; ".join(extras))

    def do_verify(self, database: str, sample: int | None, seed: int | None, **_) -> None:
        if sample is not None and sample < 1:
            raise CommandError("--sample must be at least 1")
        started = time.perf_counter()
        plan, _ = self._plan(database)
        report = maintenance.verify(plan, sample, seed)
        self.stdout.write(
            f"statecache verify: {report.checked} cached states compared with a replay, "
            f"{len(report.different)} different, {report.unreadable} unreadable "
            f"({report.healed} recomputed and stored), "
            f"in {time.perf_counter() - started:.2f}s"
        )
        for where in report.different:
            self.stderr.write(f"  different: the state {where}")
        if report.different:
            raise CommandError(
                f"{len(report.different)} cached states differ from Django's replay; "
                "run `statecache clear` and report it"
            )

    def _exclusive(self, timeout: float):
        store = snapshots.current().store

        def waiting() -> None:
            self.stderr.write(f"statecache: waiting up to {timeout:g}s for writers to finish")
            self.stderr.flush()

        try:
            return store, store.lock(timeout=max(timeout, 0), on_wait=waiting)
        except OSError as exc:
            raise CommandError(f"cannot lock {store.root}: {_os_error(exc)}")

    def do_prune(
        self,
        database: str,
        unreachable: bool,
        older_than: float | None,
        max_size: int | None,
        dry_run: bool,
        tmp_age: float,
        timeout: float,
        json: bool,  # noqa: A002
        **_,
    ) -> None:
        keep = None
        if unreachable:
            plan, executor = self._plan(database)
            keep = plan.reachable_keys(plans.applied_keys(executor.loader))
        store = snapshots.current().store
        if store.lstat(store.base) is None:
            report = maintenance.PruneReport()
        else:
            store, lock = self._exclusive(timeout)
            try:
                with lock:
                    report = maintenance.prune(
                        snapshots.current(),
                        keep=keep,
                        older_than=older_than,
                        max_size=max_size,
                        tmp_age=tmp_age,
                        dry_run=dry_run,
                    )
            except filelock.Timeout:
                raise CommandError(_busy(store.root, timeout))
        if json:
            self.stdout.write(_json({"dry_run": dry_run, **asdict(report)}))
        else:
            would = "would remove" if dry_run else "removed"
            self.stdout.write(
                f"statecache prune: {would} {report.refs_removed} states, "
                f"{report.objects_removed} objects and {report.tmp_removed} temporary files "
                f"({report.bytes_freed / 1e6:.1f} MB); {report.refs_kept} states and "
                f"{report.objects_kept} objects kept ({report.bytes_kept / 1e6:.1f} MB)"
            )
        if report.not_removed:
            raise CommandError(
                f"could not remove {report.not_removed} of them ({report.error}); "
                "they are still counted above as removed"
            )

    def do_dir(self, **_) -> None:
        self.stdout.write(str(conf.cache_dir()))

    def do_clear(self, timeout: float, **_) -> None:
        store = snapshots.current().store
        if store.lstat(store.base) is None:
            self.stdout.write("statecache: nothing to clear")
            return
        store, lock = self._exclusive(timeout)
        try:
            with lock:
                maintenance.clear(store)
        except filelock.Timeout:
            raise CommandError(_busy(store.root, timeout))
        except OSError as exc:
            raise CommandError(f"cannot clear {store.root}: {_os_error(exc)}")
        others = store.other_versions()
        note = f" ({', '.join(others)} of other statecache versions left alone)" if others else ""
        self.stdout.write(f"statecache: cleared {store.root}{note}")


def _busy(root, timeout: float) -> str:
    waited = f"after waiting {timeout:g}s" if timeout > 0 else "(--timeout 0)"
    return (
        f"{root} is in use: another process is writing to it or pruning it {waited}; "
        "try again, or pass a longer --timeout"
    )


def _counted(counts: dict[str, int]) -> str:
    return (
        f"{counts['computed']} states computed, {counts['cached']} already cached, "
        f"{counts['keyless']} keyless, {counts['uncacheable']} uncacheable, "
        f"{counts['unwritten']} not written"
    )


def _coverage_fields(info: dict) -> dict:
    names = coverage.Coverage.__dataclass_fields__
    return {name: info[name] for name in names}


def _os_error(exc: OSError) -> str:
    """One line for an OS error: what, where; no traceback."""
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
