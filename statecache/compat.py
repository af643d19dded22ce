"""Everything that depends on the Django version lives here.

statecache replaces three private methods of `MigrationExecutor` and one public method of
`MigrationLoader`, and wraps `MigrationExecutor.migrate`, whose signatures and meaning are the
same on every supported Django:

- `MigrationExecutor.migrate(self, targets, plan=None, state=None, fake=False, fake_initial=False)`
- `MigrationExecutor._create_project_state(self, with_applied_migrations=False)`
- `MigrationExecutor._migrate_all_forwards(self, state, plan, full_plan, fake, fake_initial)`
- `MigrationExecutor._migrate_all_backwards(self, plan, full_plan, fake)`
- `MigrationLoader.project_state(self, nodes=None, at_end=True)`

What differs between versions is what Django does inside them (4.2 computes the post-migrate
state with every model rendered and re-rendered on each mutation; 5.1+ drops the render first;
6.1 keeps unique_together as a set of tuples after a removal), and statecache replaces that
whole part (and its codec keeps sets and tuples exactly), so no branch is needed yet. Other
private API used, also the same on every supported version: `ProjectState._find_reload_model`
and `ProjectState._reload`, the two halves of `reload_models` (registry.py). New Django
releases are refused until they have been checked, because the executor is private API.
"""

from __future__ import annotations

from collections.abc import Callable

import django
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

SUPPORTED = ((4, 2), (5, 2), (6, 0), (6, 1))

_originals: dict[tuple[type, str], Callable] = {}


def django_version() -> tuple[int, int]:
    return django.VERSION[:2]


def is_supported() -> bool:
    return django_version() in SUPPORTED


def supported_text() -> str:
    return ", ".join(f"{major}.{minor}" for major, minor in SUPPORTED)


def original(name: str, owner: type = MigrationExecutor) -> Callable:
    return _originals.get((owner, name)) or getattr(owner, name)


def _replacements() -> dict[tuple[type, str], Callable]:
    from . import executor, loader

    return {
        (MigrationExecutor, "migrate"): executor.migrate,
        (MigrationExecutor, "_create_project_state"): executor.create_project_state,
        (MigrationExecutor, "_migrate_all_forwards"): executor.migrate_all_forwards,
        (MigrationExecutor, "_migrate_all_backwards"): executor.migrate_all_backwards,
        (MigrationLoader, "project_state"): loader.project_state,
    }


def install() -> bool:
    """Replace the methods (once); False on an unsupported Django."""
    if _originals:
        return True
    if not is_supported():
        return False
    for (owner, name), function in _replacements().items():
        _originals[(owner, name)] = getattr(owner, name)
        setattr(owner, name, function)
    return True


def uninstall() -> None:
    for (owner, name), function in _originals.items():
        setattr(owner, name, function)
    _originals.clear()
