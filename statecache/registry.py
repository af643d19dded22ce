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


def _differing(source: ProjectState, target: ProjectState) -> set[ModelKey]:
    """The models in both states whose state differs: a deconstruction of every field."""
    return {
        key
        for key, model_state in source.models.items()
        if key in target.models and model_state != target.models[key]
    }


def _within(
    target: ProjectState, rendered, keys: list[ModelKey], limit: float, seen: set[ModelKey]
) -> bool:
    """Add to `seen` what re-rendering `keys` (models of `target`) would re-render, estimated
    on the pre-migrate registry before it is cloned; False as soon as that passes `limit` (on a
    project connected through a heavily referenced model the first changed model decides it)."""
    if len(seen) > limit:
        return False
    compat.give_registry(target, rendered)
    try:
        for key in keys:
            seen |= compat.reload_scope(target, key)
            if len(seen) > limit:
                return False
        return True
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
    weigh = share < 1  # 1: reuse it whatever it re-renders (the differential tests)
    limit = share * compat.registered_count(rendered)
    order = list(dict.fromkeys([*source.models, *target.models]))
    # The models added or gone first: telling them costs a set difference, where comparing the
    # others costs a deconstruction of every field of the project; on a project connected
    # through a heavily referenced model one of them usually settles it. What is related to a
    # gone model and stays is re-rendered.
    gone = [key for key in order if key not in target.models]
    added = [key for key in order if key not in source.models]
    related: set[ModelKey] = set()
    for key in gone:
        try:
            related |= compat.related_recursive(rendered, key)
        except LookupError:
            pass
    seen = {key for key in related if key in target.models}
    if weigh and not _within(target, rendered, added, limit, seen):
        return None
    differing = _differing(source, target)
    if weigh and not _within(
        target, rendered, [key for key in order if key in differing], limit, seen
    ):
        return None
    changed = [
        key
        for key in order
        if key in differing or key not in source.models or key not in target.models
    ]
    apps = compat.clone_registry(rendered)
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
        if weigh and len(scope) > limit:
            compat.drop_registry(target)
            return None
        compat.rerender(target, scope)
        compat.reorder(apps, fresh_render_order(target, apps))
    except Exception:
        compat.drop_registry(target)
        raise
    return len(scope)
