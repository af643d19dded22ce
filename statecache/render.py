"""Render only the models a migration's database operations can reach.

For a migration whose operations we can see through, the registry handed to Django holds:
the models the operations name or point to, every model that references one of the named
models (foreign keys, many-to-many and their through models, subclasses and proxies: the
schema editor follows `_meta.related_objects` to alter or rebuild them), and everything those
need to render (the forward closure over relations, through models and bases). Anything else,
or a registry that fails to build, gets Django's own full render.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.db.migrations.state import ProjectState, StateApps

from . import operations
from .operations import ModelKey

logger = logging.getLogger("statecache")


def _edges(
    state: ProjectState,
) -> tuple[dict[ModelKey, set[ModelKey]], dict[ModelKey, set[ModelKey]]]:
    forward: dict[ModelKey, set[ModelKey]] = defaultdict(set)
    reverse: dict[ModelKey, set[ModelKey]] = defaultdict(set)
    for key, model_state in state.models.items():
        app_label, model_name = key
        targets = operations.base_keys(model_state.bases, app_label)
        for field in model_state.fields.values():
            targets |= operations.field_targets(field, app_label, model_name)
        targets.discard(key)
        forward[key] = targets
        for target in targets:
            reverse[target].add(key)
    return forward, reverse


def needed_models(state: ProjectState, migration) -> set[ModelKey] | None:
    """The models to render for unapplying `migration` from `state`; None: all of them."""
    named = operations.migration_models(migration)
    if named is None:
        return None
    if not named:
        return set()
    forward, reverse = _edges(state)
    queue = list(named)
    for key in named:
        queue.extend(reverse.get(key, ()))
    needed: set[ModelKey] = set()
    while queue:
        key = queue.pop()
        if key in needed or key not in state.models:
            continue
        needed.add(key)
        queue.extend(forward.get(key, ()))
    # Targets of models the migration creates are not in `state` yet; they came from `named`.
    return needed


def render(state: ProjectState, migration) -> int:
    """Give `state` its `apps` for unapplying `migration`; return how many models it rendered."""
    needed = needed_models(state, migration)
    if needed is not None and len(needed) < len(state.models):
        subset = {key: value for key, value in state.models.items() if key in needed}
        try:
            state.apps = StateApps(state.real_apps, subset)
            return len(subset)
        except Exception as exc:  # a registry Django would refuse: let Django do it all
            logger.info(
                "statecache: partial render for %s failed (%s); rendering every model",
                migration,
                exc,
            )
            state.__dict__.pop("apps", None)
    state.apps  # noqa: B018 - Django's own full render
    return len(state.models)
