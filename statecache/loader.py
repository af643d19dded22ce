"""The hook on MigrationLoader: the state at the end of the whole graph, from the cache.

`MigrationLoader.project_state()` (no arguments) replays every migration of the graph. `migrate`
calls it on every run with nothing to apply (the check for model changes that have no
migration), and `makemigrations` for the autodetector's starting state. It is the state after
the full plan with everything applied, which the cache holds under the same key as the state
`migrate` builds for a fully migrated database. Any other call is Django's.
"""

from __future__ import annotations

import logging

from django.db.migrations.loader import MigrationLoader

from . import conf, executor
from .plans import full_plan
from .replay import StatePlan

logger = logging.getLogger("statecache")


def project_state(original, self: MigrationLoader, nodes=None, at_end=True):
    if nodes is not None or not at_end or not conf.enabled():
        return original(self, nodes, at_end)
    try:
        plan = full_plan(self)
        if not plan:
            return original(self, nodes, at_end)
        states = StatePlan(self, plan)
        end = len(states.migrations)
        return states.states_at([True] * end, [end])[end].state
    except Exception:
        executor.fallback("statecache: cannot build the graph's end state; using Django's")
        return original(self, nodes, at_end)
