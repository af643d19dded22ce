"""The post-migrate registry of a backwards `migrate`, from the pre-migrate one.

`migrate` renders every model for `pre_migrate`, and after a rollback it renders every model
again for `post_migrate`. The two states differ only in the models the unapplied migrations
changed, so the post-migrate registry here is a clone of the pre-migrate one in which Django's
own `ProjectState.reload_models` re-renders the models whose state differs (with everything
related to them, recursively, as Django does during a migration), and the models that are gone
are unregistered. Each app's models are then put in the order a fresh render lists them (state
order, auto-created through models before their model, models waiting for a base after the
rest), because receivers such as contenttypes and auth create rows in that order. When the
re-render would cover most of the project (everything connected to a heavily referenced model
is related to everything else), `migrate` renders afresh instead, as Django does.
"""

from __future__ import annotations

import os

from django.db.migrations.state import (
    AppConfigStub,
    ProjectState,
    StateApps,
    get_related_models_recursive,
)

from . import operations
from .operations import ModelKey

# Above this share of the models to re-render, a fresh render costs no more: leave it to Django.
# The environment variable STATECACHE_REGISTRY_MAX_SHARE overrides it (1: always reuse; the
# differential tests set it to check the reuse on every rollback).
MAX_SHARE = 0.5


def max_share() -> float:
    try:
        return float(os.environ.get("STATECACHE_REGISTRY_MAX_SHARE", MAX_SHARE))
    except ValueError:
        return MAX_SHARE


def _labels(state: ProjectState) -> set[str]:
    return {app_label for app_label, _ in state.models}


def fresh_render_order(state: ProjectState, apps: StateApps) -> list[ModelKey]:
    """The order in which `StateApps(real_apps, state.models)` registers the state's models."""
    order: list[ModelKey] = []
    pending = list(state.models.items())
    known = set(state.models)
    done: set[ModelKey] = set()
    while pending:
        waiting = []
        for key, model_state in pending:
            bases = operations.base_keys(model_state.bases, model_state.app_label)
            if not (bases & known) <= done:
                waiting.append((key, model_state))
                continue
            model = apps.all_models[key[0]][key[1]]
            for field in model._meta.local_many_to_many:
                through = field.remote_field.through
                if isinstance(through, type) and through._meta.auto_created:
                    order.append((through._meta.app_label, through._meta.model_name))
            order.append(key)
            done.add(key)
        if len(waiting) == len(pending):
            raise ValueError("cannot order models whose bases never render")
        pending = waiting
    return order


def _reorder(apps: StateApps, order: list[ModelKey]) -> None:
    for app_label, models in apps.all_models.items():
        wanted = [name for label, name in order if label == app_label and name in models]
        placed = set(wanted)
        rest = [name for name in models if name not in placed]
        items = [(name, models[name]) for name in [*wanted, *rest]]
        models.clear()  # in place: the app config stub holds this very dict
        models.update(items)
    apps.clear_cache()


def _restub(apps: StateApps, labels: set[str]) -> None:
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


def _changed(source: ProjectState, target: ProjectState) -> list[ModelKey]:
    return [
        key
        for key in dict.fromkeys([*source.models, *target.models])
        if key not in source.models
        or key not in target.models
        or source.models[key] != target.models[key]
    ]


def _over(target: ProjectState, rendered: StateApps, changed: list[ModelKey], limit: float) -> bool:
    """Whether re-rendering the changed models would pass `limit`, estimated on the pre-migrate
    registry before it is cloned and stopping as soon as it does: on a project connected through
    a heavily referenced model the first changed model decides it."""
    target.__dict__["apps"] = rendered
    try:
        seen: set[ModelKey] = set()
        for key in changed:
            if key in target.models:
                seen |= target._find_reload_model(*key, delay=False)
                if len(seen) > limit:
                    return True
        return False
    finally:
        del target.__dict__["apps"]


def adopt(source: ProjectState, target: ProjectState) -> int | None:
    """Give `target` a registry built from `source`'s rendered one; return how many models
    were re-rendered, or None when `source` has no registry to offer or reusing it would
    re-render most models anyway (`target` then renders as Django does)."""
    rendered = source.__dict__.get("apps")
    if not isinstance(rendered, StateApps) or source.real_apps != target.real_apps:
        return None
    share = max_share()
    registered = sum(len(models) for models in rendered.all_models.values())
    changed = _changed(source, target)
    if share < 1 and _over(target, rendered, changed, share * registered):
        return None
    apps = rendered.clone()
    gone = [key for key in changed if key not in target.models]
    related: set[ModelKey] = set()
    for key in gone:
        try:
            related |= get_related_models_recursive(apps.get_model(*key))
        except LookupError:
            pass
    # What the gone models leave behind that no state model will render again: themselves and
    # the auto-created many-to-many models tied to them (an owner that stays is re-rendered
    # below, with its own).
    real = {(model.app_label, model.name_lower) for model in apps.real_models}
    stale = {key for key in {*gone, *related} if key not in target.models and key not in real}
    with apps.bulk_update():
        for key in stale:
            if key[1] in apps.all_models.get(key[0], {}):
                apps.unregister_model(*key)
        _restub(apps, {*target.real_apps, *_labels(target)})
    target.__dict__["apps"] = apps
    try:
        reload = [key for key in changed if key in target.models]
        reload += [key for key in related if key in target.models and key not in reload]
        # ProjectState.reload_models(reload, delay=False), in its two steps: what it would
        # re-render first (everything related, recursively: across a heavily referenced model
        # that is most of the project), then the re-render, only if it is the cheaper way.
        rerender: set[ModelKey] = set()
        for key in reload:
            rerender |= target._find_reload_model(*key, delay=False)
        if share < 1 and len(rerender) > share * registered:
            del target.__dict__["apps"]
            return None
        target._reload(rerender)
        _reorder(apps, fresh_render_order(target, apps))
    except Exception:
        del target.__dict__["apps"]
        raise
    return len(rerender)
