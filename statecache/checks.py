"""System checks for statecache's settings (run by `manage.py check` and before `migrate`)."""

from __future__ import annotations

import os

from django.apps import apps
from django.conf import settings
from django.core import checks

from . import compat, conf


@checks.register()
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for name, value in (
        ("STATECACHE_ENABLED", getattr(settings, "STATECACHE_ENABLED", False)),
        ("STATECACHE_ENABLED (environment)", os.environ.get("STATECACHE_ENABLED")),
    ):
        if value is None:
            continue
        try:
            conf.parse_flag(value, name)
        except conf.SettingError as exc:
            errors.append(
                checks.Error(
                    str(exc), hint="statecache is off until this is fixed.", id="statecache.E001"
                )
            )
    try:
        directory = conf.cache_dir()
    except conf.SettingError as exc:
        errors.append(checks.Error(str(exc), id="statecache.E002"))
        return errors
    if conf.enabled():
        if directory.exists() and not directory.is_dir():
            errors.append(
                checks.Error(
                    f"STATECACHE_DIR {directory} exists and is not a directory.",
                    hint="Point STATECACHE_DIR (or the environment variable) at a directory.",
                    id="statecache.E003",
                )
            )
        elif not _creatable(directory):
            errors.append(
                checks.Warning(
                    f"STATECACHE_DIR {directory} cannot be created or written.",
                    hint="statecache will read what is there and store nothing.",
                    id="statecache.W001",
                )
            )
        if not compat.is_supported():
            errors.append(
                checks.Error(
                    f"statecache does not support this Django version "
                    f"(supported: {compat.supported_text()}).",
                    id="statecache.E004",
                )
            )
        if not apps.is_installed("statecache"):  # pragma: no cover - checks need the app
            errors.append(checks.Error("statecache is not in INSTALLED_APPS", id="statecache.E005"))
    return errors


def _creatable(directory) -> bool:
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)
