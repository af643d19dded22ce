"""Render only the models a migration's database operations can reach.

For a migration whose operations we can see through, the registry handed to Django holds, in
full: the models the operations name, every model that references one of them (foreign keys,
many-to-many and their through models, subclasses and proxies: the schema editor follows
`_meta.related_objects` to alter or rebuild them), and the bases and explicit through models
those need. The models they only point to are stand-ins with their primary key and the columns
foreign keys name: that is what the schema editor reads of a target. Anything else, or a
registry that fails to build, gets Django's own full render.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.db.migrations.state import ModelState, ProjectState

from . import compat, operations
from .operations import ModelKey

logger = logging.getLogger("statecache")


def _links(key: ModelKey, model_state) -> operations.Links:
    app_label, model_name = key
    links = operations.Links()
    links.add_bases(model_state.bases, app_label)
    for field in model_state.fields.values():
        links.add_field(field, app_label, model_name)
    links.weak.discard(key)
    links.strong.discard(key)
    return links


class Edges:
    """A state's relation graph (what each model points to, and what points to it). A forwards
    run keeps one up to date migration by migration: computing it afresh for every migration of
    a long plan would cost more than the partial renders save."""

    def __init__(self, state: ProjectState) -> None:
        self.forward: dict[ModelKey, operations.Links] = {}
        self.reverse: dict[ModelKey, set[ModelKey]] = defaultdict(set)
        for key in state.models:
            self._set(state, key)

    def _set(self, state: ProjectState, key: ModelKey) -> None:
        old = self.forward.pop(key, None)
        for target in old.models if old else ():
            self.reverse[target].discard(key)
        model_state = state.models.get(key)
        if model_state is None:
            return
        links = self.forward[key] = _links(key, model_state)
        for target in links.models:
            self.reverse[target].add(key)

    def before(self, migration) -> set[ModelKey] | None:
        """The models whose edges `migration` may change (call before applying it); None: any."""
        scope = operations.migration_scope(migration)
        if scope is None:
            return None
        found, renamed = scope
        keys = set(found)
        for key in renamed:  # a renamed model: the fields that pointed to it now point elsewhere
            keys |= self.reverse.get(key, set())
        return keys

    def after(self, state: ProjectState, keys: set[ModelKey] | None) -> None:
        """Bring the graph up to date with `state` for the models `before` named."""
        if keys is None:
            keys = {*self.forward, *state.models}
        for key in keys:
            self._set(state, key)


# What a stand-in keeps of a model's options: what decides its table.
_STUB_OPTIONS = {"db_table", "db_tablespace", "managed", "swappable"}


def _stub(model_state: ModelState, columns: set[str]) -> ModelState | None:
    """A stand-in for a model that is only pointed to: its primary key and the columns foreign
    keys name, which is all the schema editor reads of a target. None if it cannot be one (it
    has model bases, or a key that is itself a relation)."""
    if operations.base_keys(model_state.bases, model_state.app_label):
        return None
    fields = {}
    for name, field in model_state.fields.items():
        if field.primary_key or name in columns:
            if field.is_relation:
                return None
            fields[name] = field
    if not columns <= set(fields):
        return None
    options = {k: v for k, v in model_state.options.items() if k in _STUB_OPTIONS}
    return ModelState(
        model_state.app_label, model_state.name, fields, options, model_state.bases, []
    )


def registry_models(
    state: ProjectState, migration, edges: Edges | None = None, run_python_renders: bool = False
) -> dict[ModelKey, ModelState] | None:
    """The model states to render for applying or unapplying `migration` from `state`, in
    state order; None: all of them.

    In full: the models the operations name, every model that references those (their tables
    are altered or rebuilt with them), and what those need in full (bases, explicit through
    models). The models they merely point to (foreign-key targets) are rendered as stand-ins
    (`_stub`): following every target's own relations would reach most of a project that is
    connected through a heavily referenced model or the user model."""
    scope = operations.migration_models(migration, run_python_renders)
    if scope is None:
        return None
    named, pointed = scope
    if not named:
        return {}
    edges = edges or Edges(state)
    full: set[ModelKey] = set()
    weak = set(pointed.weak)
    columns = {key: set(names) for key, names in pointed.columns.items()}
    queue = [*named, *pointed.strong]
    for key in named:
        queue.extend(edges.reverse.get(key, ()))
    while True:
        while queue:
            key = queue.pop()
            if key in full or key not in state.models:
                continue
            full.add(key)
            links = edges.forward[key]
            queue.extend(links.strong)
            weak |= links.weak
            for target, names in links.columns.items():
                columns.setdefault(target, set()).update(names)
        stubs: dict[ModelKey, ModelState] = {}
        for key in weak - full:
            if key not in state.models:
                continue
            stub = _stub(state.models[key], columns.get(key, set()))
            if stub is None:
                queue.append(key)  # needed in full after all
            else:
                stubs[key] = stub
        if not queue:
            break
    return {
        key: stubs.get(key) or model_state
        for key, model_state in state.models.items()
        if key in full or key in stubs
    }


def render(
    state: ProjectState, migration, edges: Edges | None = None, run_python_renders: bool = False
) -> int:
    """Give `state` the `apps` to (un)apply `migration` with; return how many models it
    rendered."""
    subset = registry_models(state, migration, edges, run_python_renders)
    if subset is not None and len(subset) < len(state.models):
        try:
            compat.render_partial(state, subset)
            return len(subset)
        except Exception as exc:  # a registry Django would refuse: let Django do it all
            logger.info(
                "statecache: partial render for %s failed (%s); rendering every model",
                migration,
                exc,
            )
            compat.drop_registry(state)
    compat.render_all(state)
    return len(state.models)
