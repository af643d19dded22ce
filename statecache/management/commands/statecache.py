"""`manage.py statecache warm | status | dir | clear`."""

from __future__ import annotations

import json
import shutil
import time

import filelock
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

from statecache import conf, replay


class Command(BaseCommand):
    help = "Fill, inspect and clear statecache's cache of migration states."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        warm = sub.add_parser("warm", help="Store the state before every migration of the graph.")
        warm.add_argument("--database", default=DEFAULT_DB_ALIAS)
        status = sub.add_parser("status", help="What the cache holds and covers.")
        status.add_argument("--database", default=DEFAULT_DB_ALIAS)
        status.add_argument("--json", action="store_true")
        sub.add_parser("dir", help="Print the cache directory.")
        sub.add_parser("clear", help="Remove every entry.")

    def handle(self, *args, verb: str, **options) -> None:
        try:
            directory = conf.cache_dir()
        except conf.SettingError as exc:
            raise CommandError(str(exc))
        if directory.exists() and not directory.is_dir():
            raise CommandError(f"{directory} is not a directory (STATECACHE_DIR)")
        getattr(self, "do_" + verb)(**options)

    def _plan(self, database: str) -> replay.StatePlan:
        if database not in connections:
            raise CommandError(f"unknown database {database!r}")
        try:
            # The database's applied migrations decide which squashed migrations replace
            # their originals in the graph, so the graph is the one `migrate` will see there.
            executor = MigrationExecutor(connections[database])
        except DatabaseError as exc:
            raise CommandError(f"cannot read the migrations of database {database!r}: {exc}")
        full_plan = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
        return replay.StatePlan(executor.loader, full_plan)

    def do_warm(self, database: str, verbosity: int, **_) -> None:
        started = time.perf_counter()
        plan = self._plan(database)
        last_report = [started]

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if verbosity >= 1 and now - last_report[0] > 5:
                last_report[0] = now
                self.stdout.write(f"  {done}/{total} states computed ({now - started:.0f}s)")

        try:
            with plan.cache.store.lock(timeout=600):
                counts = plan.warm(progress)
        except filelock.Timeout:
            raise CommandError("the cache is locked by a clear or prune; try again")
        elapsed = time.perf_counter() - started
        if not plan.cache.store.writable:
            self.stderr.write(
                f"statecache: {plan.cache.store.root} is not writable; stored nothing"
            )
        self.stdout.write(
            f"statecache warm: {len(plan.migrations)} migrations, "
            f"{counts['computed']} states computed, {counts['cached']} already cached, "
            f"{counts['uncacheable']} uncacheable, in {elapsed:.2f}s"
        )

    def do_status(self, database: str, json: bool, **_) -> None:  # noqa: A002
        plan = self._plan(database)
        store = plan.cache.store
        keys = plan.keys.running([True] * len(plan.migrations))
        covered = sum(1 for key in keys if key is not None and store.has_ref(key))
        sizes = store.sizes()
        info = {
            "directory": str(store.root),
            "migrations": len(plan.migrations),
            "states_covered": covered,
            "states_total": len(keys),
            **sizes,
        }
        if json:
            self.stdout.write(_json(info))
            return
        self.stdout.write(f"directory: {info['directory']}")
        self.stdout.write(f"coverage: {covered}/{len(keys)} states of the current graph")
        self.stdout.write(
            f"entries: {sizes['refs']} states, {sizes['objects']} objects, "
            f"{sizes['bytes'] / 1e6:.1f} MB"
        )

    def do_dir(self, **_) -> None:
        self.stdout.write(str(conf.cache_dir()))

    def do_clear(self, **_) -> None:
        store = replay.snapshots().store
        if not store.base.exists():
            self.stdout.write("statecache: nothing to clear")
            return
        try:
            with store.lock(timeout=30):
                for section in ("objects", "refs", "tmp"):
                    shutil.rmtree(store.base / section, ignore_errors=True)
        except filelock.Timeout:
            raise CommandError("the cache is in use by another process; try again")
        except OSError as exc:
            raise CommandError(f"cannot clear {store.root}: {exc}")
        self.stdout.write(f"statecache: cleared {store.root}")


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
