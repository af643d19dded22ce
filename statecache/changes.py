"""Which models of a state a migration may change, by model key: what a delta snapshot re-encodes.

A replay that starts from a stored snapshot stores the states after it as deltas: only the
models a migration may have changed are encoded again (snapshots.Snapshots.save `changed`).
"""

from __future__ import annotations

from django.db.migrations.state import ProjectState

from . import compat, operations
from .operations import ModelKey


def before(migration, state: ProjectState) -> set[ModelKey] | None:
    """The models a migration may change, seen before it runs (None: any model)."""
    scope = operations.migration_scope(migration)
    if scope is None:
        return None
    return set(scope[0]) | rename_referrers(migration, state)


def rename_referrers(migration, state: ProjectState) -> set[ModelKey]:
    """Models that reference what a renaming operation names: renames repoint their fields.

    Called before and after the migration runs, to see the references under both names. This
    scans the fields rather than `state.relations`: resolving the relations would change how
    later AlterFields order a model's fields (ProjectState.alter_field moves the field to the
    end once relations exist), and so the column order of rebuilt tables.
    """
    scope = operations.migration_scope(migration)
    found: set[ModelKey] = set()
    for key in scope[1] if scope else ():
        found.update(compat.references(state, key))
    return found
