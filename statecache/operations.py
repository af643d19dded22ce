"""Which models a migration operation names, and which operations we can see through.

Only Django's own operation classes (the exact classes, not subclasses) are understood; for any
other class, and for RunPython (its code may use any model), the answer is None: "could be
anything", and callers then do what Django does with the whole project.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db import models
from django.db.migrations import operations as ops

from .compat import ModelKey, operation_classes, relation_key

# Operation classes that name their model with `name` / `model_name` (those this Django has).
_BY_NAME = operation_classes(
    (
        "CreateModel",
        "DeleteModel",
        "AlterModelTable",
        "AlterModelTableComment",
        "AlterUniqueTogether",
        "AlterIndexTogether",
        "AlterOrderWithRespectTo",
        "AlterModelOptions",
        "AlterModelManagers",
    )
)
_BY_MODEL_NAME = operation_classes(
    (
        "AddField",
        "RemoveField",
        "AlterField",
        "RenameField",
        "AddIndex",
        "RemoveIndex",
        "RenameIndex",
        "AddConstraint",
        "RemoveConstraint",
        "AlterConstraint",
    )
)
# Operations whose state change reaches into the models that reference theirs.
RENAMES = {ops.RenameModel, ops.RenameField}


def _state_operations(operation) -> list | None:
    """The operations that make up a wrapper's state change; None if it is not a wrapper."""
    if type(operation) in (ops.RunSQL, ops.SeparateDatabaseAndState):
        return list(operation.state_operations)
    return None


def flatten(operations: Iterable) -> Iterator:
    """Operations with the state parts of RunSQL and SeparateDatabaseAndState spelled out."""
    for operation in operations:
        inner = _state_operations(operation)
        if inner is None:
            yield operation
        else:
            yield from flatten(inner)


def named_models(operation, app_label: str) -> set[ModelKey] | None:
    """The models an operation names (both names of a RenameModel); None if it is opaque."""
    kind = type(operation)
    if kind in _BY_NAME:
        return {(app_label, operation.name_lower)}
    if kind in _BY_MODEL_NAME:
        return {(app_label, operation.model_name_lower)}
    if kind is ops.RenameModel:
        return {(app_label, operation.old_name_lower), (app_label, operation.new_name_lower)}
    return None


def state_scope(operation, app_label: str) -> tuple[set[ModelKey], bool] | None:
    """The models whose state an operation may change, and whether models referencing them
    may change too (renames repoint them). None: it may change anything."""
    found: set[ModelKey] = set()
    renames = False
    for inner in flatten([operation]):
        if type(inner) is ops.RunPython or type(inner) is ops.RunSQL:
            continue  # no state change (RunSQL's state_operations were flattened)
        keys = named_models(inner, app_label)
        if keys is None:
            return None
        found |= keys
        renames = renames or type(inner) in RENAMES
    return found, renames


# migration -> what migration_scope found, kept with the migration object (the loader keeps
# it alive; the identity check guards against a reused id).
_scopes: dict[int, tuple[object, tuple[set[ModelKey], set[ModelKey]] | None]] = {}


def migration_scope(migration) -> tuple[set[ModelKey], set[ModelKey]] | None:
    """The models whose state a migration may change, and those of them that a renaming
    operation names (the models that reference those change too: renames repoint them).
    None: it may change anything. The one answer replay.py and render.py both use."""
    memo = _scopes.get(id(migration))
    if memo is not None and memo[0] is migration:
        return memo[1]
    found: set[ModelKey] = set()
    renamed: set[ModelKey] = set()
    result: tuple[set[ModelKey], set[ModelKey]] | None = (found, renamed)
    for operation in migration.operations:
        scope = state_scope(operation, migration.app_label)
        if scope is None:
            result = None
            break
        found |= scope[0]
        if scope[1]:
            renamed |= scope[0]
    _scopes[id(migration)] = (migration, result)
    return result


class Links:
    """What a set of fields and bases point to: the models a field targets (`weak`: rendering
    needs only their primary key and the columns named in `columns`), and explicit through
    models and model bases (`strong`: needed in full)."""

    def __init__(self) -> None:
        self.weak: set[ModelKey] = set()
        self.strong: set[ModelKey] = set()
        self.columns: dict[ModelKey, set[str]] = {}

    def add_field(self, field, app_label: str, model_name: str) -> None:
        remote = getattr(field, "remote_field", None)
        if remote is None:
            return
        target = relation_key(remote.model, app_label, model_name)
        self.weak.add(target)
        names = {name for name in getattr(field, "to_fields", None) or () if name}
        if names:
            self.columns.setdefault(target, set()).update(names)
        through = getattr(remote, "through", None)
        if through is not None:
            self.strong.add(relation_key(through, app_label, model_name))

    def add_bases(self, bases: Iterable, app_label: str) -> None:
        self.strong |= base_keys(bases, app_label)

    @property
    def models(self) -> set[ModelKey]:
        return self.weak | self.strong


def base_keys(bases: Iterable, app_label: str) -> set[ModelKey]:
    keys: set[ModelKey] = set()
    for base in bases:
        if isinstance(base, str):
            keys.add(relation_key(base, app_label))
        elif isinstance(base, type) and issubclass(base, models.Model) and base is not models.Model:
            if not base._meta.abstract:
                keys.add((base._meta.app_label, base._meta.model_name))
    return keys


def referenced_models(operation, app_label: str, links: Links) -> None:
    """Add to `links` what an operation's own content points to (field targets, bases of a
    CreateModel)."""
    for inner in flatten([operation]):
        kind = type(inner)
        if kind is ops.CreateModel:
            for _, field in inner.fields:
                links.add_field(field, app_label, inner.name_lower)
            links.add_bases(inner.bases or (), app_label)
        elif kind in (ops.AddField, ops.AlterField):
            links.add_field(inner.field, app_label, inner.model_name_lower)


def migration_models(
    migration, run_python_renders: bool = False
) -> tuple[set[ModelKey], Links] | None:
    """The models a migration's operations name (whose tables they write), and what their
    fields and bases point to.

    None when Django's database side could reach any model: RunPython, RunSQL with state
    operations, SeparateDatabaseAndState and any operation class outside Django.
    `run_python_renders`: RunPython needs nothing from the registry handed to the migration,
    because Django renders every model afresh for it (applying it from a delayed state).
    """
    named: set[ModelKey] = set()
    pointed = Links()
    for operation in migration.operations:
        if type(operation) is ops.RunSQL and not operation.state_operations:
            continue
        if run_python_renders and type(operation) is ops.RunPython:
            continue
        keys = named_models(operation, migration.app_label)
        if keys is None:
            return None
        named |= keys
        referenced_models(operation, migration.app_label, pointed)
    return named, pointed
