"""The seam: the one module that touches Django's private migration internals.

Everything else in statecache calls the named functions here, never a private Django name
(tests/test_seam.py greps for them). They are the same on every supported Django; a new
Django release is refused (`is_supported`) until they have been checked against it.

The hooks. statecache replaces four methods of `MigrationExecutor`, two of `MigrationLoader`
and one of `MigrationGraph`, whose signatures and meaning are the same on every supported
Django:

- `MigrationExecutor.migrate(self, targets, plan=None, state=None, fake=False, fake_initial=False)`
- `MigrationExecutor._create_project_state(self, with_applied_migrations=False)`
- `MigrationExecutor._migrate_all_forwards(self, state, plan, full_plan, fake, fake_initial)`
- `MigrationExecutor._migrate_all_backwards(self, plan, full_plan, fake)`
- `MigrationLoader.project_state(self, nodes=None, at_end=True)`
- `MigrationLoader.build_graph(self)` and `MigrationGraph.root_nodes(self, app=None)` (graph.py)

`install(hooks)` is given the replacements by statecache's own names (`HOOKED`); each is called
as `hook(original, self, *args)` with Django's original method, so nothing imports back into
this module for it. The patch is global, on the classes, and stays installed while the flag is
off (each hook then calls the original and nothing else): `migrate`'s command, test-database
creation and third-party tools that build their own executor all reach the executor through
the class, and the flag can change within a process (the environment variable, tests).

What differs between versions is what Django does inside the replaced methods (4.2 computes the
post-migrate state with every model rendered and re-rendered on each mutation; 5.1+ drops the
render first; 6.1 keeps unique_together as a set of tuples after a removal), and statecache
replaces that whole part, so no branch is needed yet.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial

import django
from django.db import models
from django.db.migrations import operations as ops
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import (
    AppConfigStub,
    ProjectState,
    StateApps,
    get_related_models_recursive,
)
from django.db.migrations.utils import get_references
from django.db.migrations.utils import resolve_relation as _resolve_relation

SUPPORTED = ((4, 2), (5, 2), (6, 0), (6, 1))

ModelKey = tuple[str, str]

# ---------------------------------------------------------------------------------------------
# Versions and hooks

# statecache's name for each method it replaces.
HOOKED: dict[str, tuple[type, str]] = {
    "migrate": (MigrationExecutor, "migrate"),
    "create_project_state": (MigrationExecutor, "_create_project_state"),
    "migrate_all_forwards": (MigrationExecutor, "_migrate_all_forwards"),
    "migrate_all_backwards": (MigrationExecutor, "_migrate_all_backwards"),
    "project_state": (MigrationLoader, "project_state"),
    "build_graph": (MigrationLoader, "build_graph"),
    "root_nodes": (MigrationGraph, "root_nodes"),
}

_originals: dict[str, Callable] = {}


def django_version() -> tuple[int, int]:
    return django.VERSION[:2]


def is_supported() -> bool:
    return django_version() in SUPPORTED


def supported_text() -> str:
    return ", ".join(f"{major}.{minor}" for major, minor in SUPPORTED)


def original(name: str) -> Callable:
    """Django's own method behind the hook `name` (a key of HOOKED)."""
    owner, attribute = HOOKED[name]
    return _originals.get(name) or getattr(owner, attribute)


def _method(hook: Callable, django_method: Callable, attribute: str) -> Callable:
    @functools.wraps(hook)
    def method(self, *args, **kwargs):
        return hook(django_method, self, *args, **kwargs)

    method.__name__ = attribute
    method.statecache_hook = hook  # type: ignore[attr-defined]
    return method


def install(hooks: Mapping[str, Callable]) -> bool:
    """Replace the methods named in `hooks` (once); False on an unsupported Django."""
    if _originals:
        return True
    if not is_supported():
        return False
    for name, hook in hooks.items():
        owner, attribute = HOOKED[name]
        _originals[name] = getattr(owner, attribute)
        setattr(owner, attribute, _method(hook, _originals[name], attribute))
    return True


def uninstall() -> None:
    for name, function in _originals.items():
        owner, attribute = HOOKED[name]
        setattr(owner, attribute, function)
    _originals.clear()


def command_of(progress_callback: Callable | None) -> object | None:
    """The management command behind an executor's progress callback, if it is one's bound
    method (`migrate` hands the executor `self.migration_progress_callback`): the only way to
    reach `migrate`'s verbosity and stdout from inside the executor."""
    return getattr(progress_callback, "__self__", None)


# ---------------------------------------------------------------------------------------------
# A state's registry (ProjectState.apps, a cached property)


def rendered_registry(state: ProjectState) -> StateApps | None:
    """The registry `state` has rendered, or None (without rendering one)."""
    apps = state.__dict__.get("apps")
    return apps if isinstance(apps, StateApps) else None


def give_registry(state: ProjectState, apps: StateApps) -> None:
    state.__dict__["apps"] = apps


def drop_registry(state: ProjectState) -> None:
    """Forget `state`'s registry: the next look at `state.apps` renders every model."""
    state.__dict__.pop("apps", None)


def render_all(state: ProjectState) -> None:
    """Django's own full render of `state`, if it has no registry yet."""
    state.apps  # noqa: B018 - the cached property renders


def delayed(state: ProjectState) -> bool:
    """Whether a mutation left `state` delayed: Django renders afresh when its registry is next
    needed (RunPython, the post-migrate state)."""
    return state.is_delayed


def registered_count(apps: StateApps) -> int:
    return sum(len(models) for models in apps.all_models.values())


def real_model_keys(apps: StateApps) -> set[ModelKey]:
    """The models of apps without migrations, which every registry renders."""
    return {(model.app_label, model.name_lower) for model in apps.real_models}


class PartialApps(StateApps):
    """A registry of some of a state's models (render.py), that lets go of what it replaces.

    Django's reloads during a migration (`ProjectState._reload`) re-render models from the
    full state, and their relations may point to models this registry does not hold. Each such
    render leaves a pending lazy operation (`Apps._pending_operations`, keyed by the missing
    model) holding the re-rendered class; the next reload replaces the class but the operation
    stays, so a migration of 500 operations kept 20,000 dead model classes alive until it
    ended. After every render, pending operations whose model has been replaced or removed
    since are dropped: they could only ever run on a class no one uses. Django's own clones
    (`StateApps.clone`) are plain StateApps with no pending operations.
    """

    def render_multiple(self, model_states) -> None:
        super().render_multiple(model_states)
        for key, pending in list(self._pending_operations.items()):
            live = [operation for operation in pending if not self._stale(operation)]
            if live:
                pending[:] = live
            else:
                del self._pending_operations[key]

    def _stale(self, operation) -> bool:
        for model in _models_bound(operation):
            meta = getattr(model, "_meta", None)
            if meta is None:
                continue
            if self.all_models.get(meta.app_label, {}).get(meta.model_name) is not model:
                return True
        return False


def _models_bound(operation) -> Iterator[type]:
    """The model classes a pending lazy operation was given (Apps.lazy_model_operation wraps
    the function in partials; a field argument stands for its model)."""
    function = getattr(operation, "func", None)
    while function is not None:
        if isinstance(function, partial):
            for value in (*function.args, *function.keywords.values()):
                if isinstance(value, type) and issubclass(value, models.Model):
                    yield value
                elif isinstance(value, models.Field) and hasattr(value, "model"):
                    yield value.model
        function = getattr(function, "func", None)


def render_partial(state: ProjectState, model_states: dict) -> None:
    """Give `state` a registry of `model_states` only (raises what StateApps raises)."""
    give_registry(state, PartialApps(state.real_apps, model_states))


# ---------------------------------------------------------------------------------------------
# Registry surgery (registry.py): a post-migrate registry made from a pre-migrate one


def clone_registry(apps: StateApps) -> StateApps:
    return apps.clone()


def related_recursive(apps: StateApps, key: ModelKey) -> set[ModelKey]:
    """Every model related to `key` in `apps`, recursively (LookupError if not registered)."""
    return get_related_models_recursive(apps.get_model(*key))


def unregister(apps: StateApps, keys: Iterable[ModelKey]) -> None:
    with apps.bulk_update():
        for app_label, model_name in keys:
            if model_name in apps.all_models.get(app_label, {}):
                apps.unregister_model(app_label, model_name)


def set_app_labels(apps: StateApps, labels: set[str]) -> None:
    """The app stubs a fresh render has: one per label, sorted (StateApps.__init__)."""
    stubs = {}
    for label in sorted(labels):
        stub = apps.app_configs.get(label)
        if stub is None:
            stub = AppConfigStub(label)
            stub.apps = apps
            stub.import_models()
        stubs[label] = stub
    for label in set(apps.app_configs) - labels:
        apps.all_models.pop(label, None)
    apps.app_configs = stubs
    apps.clear_cache()


def reorder(apps: StateApps, order: list[ModelKey]) -> None:
    """List each app's models in `order` (the rest after, as they were)."""
    for app_label, models_ in apps.all_models.items():
        wanted = [name for label, name in order if label == app_label and name in models_]
        placed = set(wanted)
        rest = [name for name in models_ if name not in placed]
        items = [(name, models_[name]) for name in [*wanted, *rest]]
        models_.clear()  # in place: the app config stub holds this very dict
        models_.update(items)
    apps.clear_cache()


def reload_scope(state: ProjectState, key: ModelKey) -> set[ModelKey]:
    """What `ProjectState.reload_models([key], delay=False)` would re-render: the model and
    everything related to it, recursively, in `state`'s registry."""
    return state._find_reload_model(*key, delay=False)


def rerender(state: ProjectState, keys: set[ModelKey]) -> None:
    """The second half of `reload_models`: re-render `keys` in `state`'s registry."""
    state._reload(keys)


# ---------------------------------------------------------------------------------------------
# Operations and states


def relation_key(model: object, app_label: str, model_name: str | None = None) -> ModelKey:
    """The (app_label, model_name) a relation's `to` names, as Django's state resolves it."""
    return _resolve_relation(model, app_label, model_name)


def operation_classes(names: Iterable[str]) -> set[type]:
    """Django's operation classes of these names that this Django has (AlterConstraint: 5.2+)."""
    return {getattr(ops, name) for name in names if hasattr(ops, name)}


def references(state: ProjectState, key: ModelKey) -> Iterator[ModelKey]:
    """The models whose fields reference `key`, scanned field by field (not through
    `state.relations`, whose resolution changes how later AlterFields order fields)."""
    for model_state, *_ in get_references(state, key):
        yield (model_state.app_label, model_state.name_lower)


def constructor_args(operation: object) -> tuple[tuple, dict] | None:
    """The arguments an operation was constructed with (Operation.__new__ keeps them)."""
    return getattr(operation, "_constructor_args", None)
