from __future__ import annotations

import logging

from django.apps import AppConfig

logger = logging.getLogger("statecache")


class StatecacheConfig(AppConfig):
    name = "statecache"
    verbose_name = "statecache"

    def ready(self) -> None:
        from . import checks, compat, executor, graph, loader  # noqa: F401 - checks register

        hooks = {
            "migrate": executor.migrate,
            "create_project_state": executor.create_project_state,
            "migrate_all_forwards": executor.migrate_all_forwards,
            "migrate_all_backwards": executor.migrate_all_backwards,
            "project_state": loader.project_state,
            "build_graph": graph.build_graph,
            "root_nodes": graph.root_nodes,
        }
        if not compat.install(hooks):
            # Said once, by the system check (statecache.W004), when the flag is on.
            logger.debug(
                "statecache: Django %s is not supported (supported: %s); statecache is off",
                ".".join(map(str, compat.django_version())),
                compat.supported_text(),
            )
