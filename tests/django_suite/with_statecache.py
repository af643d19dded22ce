"""Run Django's own `tests/runtests.py` with statecache installed and enabled.

    python with_statecache.py RUNTESTS_PY [runtests arguments]

runtests.py sets INSTALLED_APPS itself, so "statecache" is added at the moment it calls
`django.setup()`; STATECACHE_ENABLED and STATECACHE_DIR come from the environment. The hook
(installed by statecache's AppConfig.ready) stays on for tests that override INSTALLED_APPS.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys

import django

_setup = django.setup


def setup(*args, **kwargs) -> None:
    from django.conf import settings

    if "statecache" not in settings.INSTALLED_APPS:
        settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "statecache"]
    _setup(*args, **kwargs)
    from django.db.migrations.executor import MigrationExecutor

    from statecache import conf, executor, snapshots

    hook = getattr(MigrationExecutor._create_project_state, "statecache_hook", None)
    if hook is not executor.create_project_state:
        sys.exit("statecache: the executor hook is not installed")
    if not conf.enabled():
        sys.exit("statecache: STATECACHE_ENABLED is not on")
    if os.getpid() == MAIN_PID:
        print(f"statecache: on, cache in {conf.cache_dir()}", file=sys.stderr)

    def report() -> None:
        stats = snapshots.current().stats
        print(
            f"statecache [{os.getpid()}]: {stats.hits} hits, {stats.misses} misses, "
            f"{stats.written} states written, {stats.uncacheable} uncacheable",
            file=sys.stderr,
        )

    atexit.register(report)


MAIN_PID = os.getpid()
django.setup = setup
runtests = os.path.abspath(sys.argv[1])
sys.argv = [runtests, *sys.argv[2:]]
sys.path.insert(0, os.path.dirname(runtests))
runpy.run_path(runtests, run_name="__main__")
