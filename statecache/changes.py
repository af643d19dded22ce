"""Which models of a state a migration may change, by name: what a delta snapshot re-encodes.

A replay that starts from a stored snapshot stores the states after it as deltas: only the
models a migration may have changed are encoded again (snapshots.Snapshots.save `changed`).
Names are the snapshots' "app_label.model_name" strings.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.migrations.state import ProjectState

from . import compat, operations


def names(keys: Iterable[tuple[str, str]]) -> set[str]:
    return {f"{app_label}.{model_name}" for app_label, model_name in keys}


def before(migration, state: ProjectState) -> set[str] | None:
    """Model names a migration may change, seen before it runs (None: any model)."""
    scope = operations.migration_scope(migration)
    if scope is None:
        return None
    return names(scope[0]) | rename_referrers(migration, state)


def rename_referrers(migration, state: ProjectState) -> set[str]:
    """Models that reference what a renaming operation names: renames repoint their fields.

    Called before and after the migration runs, to see the references under both names. This
    scans the fields rather than `state.relations`: resolving the relations would change how
    later AlterFields order a model's fields (ProjectState.alter_field moves the field to the
    end once relations exist), and so the column order of rebuilt tables.
    """
    scope = operations.migration_scope(migration)
    found: set[tuple[str, str]] = set()
    for key in scope[1] if scope else ():
        found.update(compat.references(state, key))
    return names(found)
