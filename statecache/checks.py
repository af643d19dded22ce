"""System checks for statecache's settings (run by `manage.py check` and before `migrate`).

Django runs the checks of installed apps only, and nothing of statecache is imported unless
`statecache` is in INSTALLED_APPS, so "the flag is on but the app is not installed" cannot be
reported by statecache itself: without the app the flag is inert, the cache untouched and the
`statecache` command unknown (which is the visible symptom). The README says so where the flag
is documented.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core import checks

from . import compat, conf
from .store import STORE_VERSION


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
    for setting, parse, ident, hint in (
        ("STATECACHE_UMASK", conf.parse_umask, "statecache.E005", "The umask is not applied."),
        (
            "STATECACHE_SIGNING_KEY",
            conf.parse_signing_key,
            "statecache.E006",
            "statecache is off until this is fixed.",
        ),
    ):
        for name, value in (
            (setting, getattr(settings, setting, None)),
            (f"{setting} (environment)", os.environ.get(setting)),
        ):
            try:
                parse(value, name)
            except conf.SettingError as exc:
                errors.append(checks.Error(str(exc), hint=hint, id=ident))
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
    return errors


def _creatable(directory: Path) -> bool:
    """Whether the directory (and its format directory, if there) can be written, or its
    nearest existing ancestor can receive it."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if not (probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)):
        return False
    base = directory / f"v{STORE_VERSION}"
    return not base.exists() or (base.is_dir() and os.access(base, os.W_OK | os.X_OK))
