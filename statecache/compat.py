"""Everything that depends on the Django version lives here.

statecache replaces two private methods of `MigrationExecutor` whose signatures and meaning
are the same on every supported Django:

- `_create_project_state(self, with_applied_migrations=False)`
- `_migrate_all_backwards(self, plan, full_plan, fake)`

What differs between versions is what Django does inside them (4.2 computes the post-migrate
state with every model rendered and re-rendered on each mutation; 5.1+ drops the render first),
and statecache replaces that whole part, so no branch is needed yet. New Django releases are
refused until they have been checked, because the executor is private API.
"""

from __future__ import annotations

from collections.abc import Callable

import django
from django.db.migrations.executor import MigrationExecutor

SUPPORTED = ((4, 2), (5, 2), (6, 0), (6, 1))
PATCHED = ("_create_project_state", "_migrate_all_backwards")

_originals: dict[str, Callable] = {}


def django_version() -> tuple[int, int]:
    return django.VERSION[:2]


def is_supported() -> bool:
    return django_version() in SUPPORTED


def supported_text() -> str:
    return ", ".join(f"{major}.{minor}" for major, minor in SUPPORTED)


def original(name: str) -> Callable:
    return _originals.get(name) or getattr(MigrationExecutor, name)


def install() -> bool:
    """Replace the executor's methods (once); False on an unsupported Django."""
    if _originals:
        return True
    if not is_supported():
        return False
    from . import executor

    replacements = {
        "_create_project_state": executor.create_project_state,
        "_migrate_all_backwards": executor.migrate_all_backwards,
    }
    for name in PATCHED:
        _originals[name] = getattr(MigrationExecutor, name)
        setattr(MigrationExecutor, name, replacements[name])
    return True


def uninstall() -> None:
    for name, function in _originals.items():
        setattr(MigrationExecutor, name, function)
    _originals.clear()
