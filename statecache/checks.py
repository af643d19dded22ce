"""System checks for statecache's settings (run by `manage.py check` and before `migrate`).

Every problem is a Warning, never an Error: a cache problem must not stop a migration. Each
one says what statecache does about it (off, or read-only, or the umask not applied), and
`migrate` then runs as Django does; `manage.py statecache status` shows the same reasons.

Django runs the checks of installed apps only, and nothing of statecache is imported unless
`statecache` is in INSTALLED_APPS, so "the flag is on but the app is not installed" cannot be
reported by statecache itself: without the app the flag is inert, the cache untouched and the
`statecache` command unknown (which is the visible symptom). The README says so where the flag
is documented.

The checks never raise: a failure inside one is reported as a warning too.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
from pathlib import Path

from django.core import checks

from . import compat, conf
from .store import STORE_VERSION

logger = logging.getLogger("statecache")

OFF = "statecache is off until this is fixed; migrations run as Django's own."


@checks.register()
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    try:
        return _check_settings()
    except Exception as exc:  # a check must never stop a command
        logger.debug("statecache: the system check failed", exc_info=True)
        return [
            checks.Warning(
                f"statecache could not check its settings ({type(exc).__name__}: {exc}).",
                hint=OFF,
                id="statecache.W008",
            )
        ]


# What statecache does about each setting problem (conf.Problem.id).
HINTS = {
    "statecache.W002": OFF,
    "statecache.W005": "The umask is not applied.",
    "statecache.W006": OFF,
    "statecache.W007": OFF,
}


def _check_settings() -> list[checks.CheckMessage]:
    config = conf.current()
    found = [
        checks.Warning(problem.message, hint=HINTS[problem.id], id=problem.id)
        for problem in config.problems
    ]
    if config.cache_dir is None or not config.flag:
        return found
    found.extend(_check_directory(config.cache_dir))
    if not compat.is_supported():
        found.append(
            checks.Warning(
                f"statecache does not support Django "
                f"{'.'.join(map(str, compat.django_version()))} "
                f"(supported: {compat.supported_text()}).",
                hint="statecache is off; migrations run as Django's own.",
                id="statecache.W004",
            )
        )
    return found


def _check_directory(directory: Path) -> list[checks.CheckMessage]:
    if directory.exists() and not directory.is_dir():
        return [
            checks.Warning(
                f"STATECACHE_DIR {directory} exists and is not a directory.",
                hint="Point STATECACHE_DIR (or the environment variable) at a directory. " + OFF,
                id="statecache.W003",
            )
        ]
    problem = _unwritable(directory)
    if problem is None:
        conf.reported_unwritable.discard(str(directory))
        return []
    conf.reported_unwritable.add(str(directory))
    return [
        checks.Warning(
            f"STATECACHE_DIR {directory} cannot be created or written ({problem}).",
            hint="statecache reads what is there and stores nothing.",
            id="statecache.W001",
        )
    ]


def _unwritable(directory: Path) -> str | None:
    """Why the cache cannot be written, found by trying what a writer does: create a file in
    the format directory (or the directory, or a directory in its nearest existing ancestor,
    removed again). os.access is not enough: it says yes to root for a read-only mount or
    /proc."""
    probe = directory
    for candidate in (directory / f"v{STORE_VERSION}" / "tmp", directory / f"v{STORE_VERSION}"):
        if candidate.is_dir():
            probe = candidate
            break
    name = f".statecache-check.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        if probe.is_dir():
            fd = os.open(probe / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.unlink(probe / name)
            return None
        ancestor = probe
        while not ancestor.exists():
            if ancestor.parent == ancestor:
                return "no existing parent"
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            return f"{ancestor} is not a directory"
        os.mkdir(ancestor / name, 0o700)
        os.rmdir(ancestor / name)
        return None
    except OSError as exc:
        return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
