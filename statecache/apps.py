from __future__ import annotations

import logging

from django.apps import AppConfig

logger = logging.getLogger("statecache")


class StatecacheConfig(AppConfig):
    name = "statecache"
    verbose_name = "statecache"

    def ready(self) -> None:
        from . import checks, compat  # noqa: F401 - registers the system checks

        if not compat.install():
            # Said once, by the system check (statecache.W004), when the flag is on.
            logger.debug(
                "statecache: Django %s is not supported (supported: %s); statecache is off",
                ".".join(map(str, compat.django_version())),
                compat.supported_text(),
            )
