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

from django.db.migrations.state import ProjectState

from . import compat, conf, operations
from .operations import ModelKey


def max_share() -> float:
    """Above this share of the models to re-render, a fresh render costs no more: leave it to
    Django. STATECACHE_REGISTRY_MAX_SHARE (environment) overrides conf.MAX_SHARE (1: always
    reuse; the differential tests set it to check the reuse on every rollback)."""
    return conf.current().max_share


def _labels(state: ProjectState) -> set[str]:
    return {app_label for app_label, _ in state.models}


def fresh_render_order(state: ProjectState, apps) -> list[ModelKey]:
    """The order in which a fresh render of `state` registers its models."""
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
            model = apps.get_model(*key)
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


def _changed(source: ProjectState, target: ProjectState) -> list[ModelKey]:
    return [
        key
        for key in dict.fromkeys([*source.models, *target.models])
        if key not in source.models
        or key not in target.models
        or source.models[key] != target.models[key]
    ]


def _over(target: ProjectState, rendered, changed: list[ModelKey], limit: float) -> bool:
    """Whether re-rendering the changed models would pass `limit`, estimated on the pre-migrate
    registry before it is cloned and stopping as soon as it does: on a project connected through
    a heavily referenced model the first changed model decides it. A model that is gone is
    counted by what is related to it: those of them that stay are re-rendered."""
    compat.give_registry(target, rendered)
    try:
        seen: set[ModelKey] = set()
        for key in changed:
            if key in target.models:
                seen |= compat.reload_scope(target, key)
            else:
                try:
                    related = compat.related_recursive(rendered, key)
                except LookupError:
                    continue
                seen |= {other for other in related if other in target.models}
            if len(seen) > limit:
                return True
        return False
    finally:
        compat.drop_registry(target)


def adopt(source: ProjectState, target: ProjectState) -> int | None:
    """Give `target` a registry built from `source`'s rendered one; return how many models
    were re-rendered, or None when `source` has no registry to offer or reusing it would
    re-render most models anyway (`target` then renders as Django does)."""
    rendered = compat.rendered_registry(source)
    if rendered is None or source.real_apps != target.real_apps:
        return None
    share = max_share()
    registered = compat.registered_count(rendered)
    # The models added or gone first: telling them costs a set difference, where comparing the
    # others costs a deconstruction of every field of the project; on a project connected
    # through a heavily referenced model one of them usually settles it.
    added_or_gone = list(source.models.keys() ^ target.models.keys())
    if share < 1 and _over(target, rendered, added_or_gone, share * registered):
        return None
    changed = _changed(source, target)
    if share < 1 and _over(target, rendered, changed, share * registered):
        return None
    apps = compat.clone_registry(rendered)
    gone = [key for key in changed if key not in target.models]
    related: set[ModelKey] = set()
    for key in gone:
        try:
            related |= compat.related_recursive(apps, key)
        except LookupError:
            pass
    # What the gone models leave behind that no state model will render again: themselves and
    # the auto-created many-to-many models tied to them (an owner that stays is re-rendered
    # below, with its own).
    real = compat.real_model_keys(apps)
    compat.unregister(
        apps, {key for key in {*gone, *related} if key not in target.models and key not in real}
    )
    compat.set_app_labels(apps, {*target.real_apps, *_labels(target)})
    compat.give_registry(target, apps)
    try:
        reload = [key for key in changed if key in target.models]
        reload += [key for key in related if key in target.models and key not in reload]
        # ProjectState.reload_models(reload, delay=False), in its two steps: what it would
        # re-render first (everything related, recursively: across a heavily referenced model
        # that is most of the project), then the re-render, only if it is the cheaper way.
        scope: set[ModelKey] = set()
        for key in reload:
            scope |= compat.reload_scope(target, key)
        if share < 1 and len(scope) > share * registered:
            compat.drop_registry(target)
            return None
        compat.rerender(target, scope)
        compat.reorder(apps, fresh_render_order(target, apps))
    except Exception:
        compat.drop_registry(target)
        raise
    return len(scope)
