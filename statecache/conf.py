"""The settings statecache reads, with their environment overrides."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class SettingError(ValueError):
    pass


def parse_flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise SettingError(f"{name} must be a boolean (or 0/1 in the environment), not {value!r}")


def enabled() -> bool:
    """STATECACHE_ENABLED, overridden for one run by the environment variable of that name.

    An invalid value means "off": the system check reports it.
    """
    try:
        env = os.environ.get("STATECACHE_ENABLED")
        if env is not None:
            return parse_flag(env, "STATECACHE_ENABLED (environment)")
        return parse_flag(getattr(settings, "STATECACHE_ENABLED", False), "STATECACHE_ENABLED")
    except SettingError:
        return False


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "django-statecache"


def cache_dir() -> Path:
    """STATECACHE_DIR, overridden by the environment variable of that name."""
    env = os.environ.get("STATECACHE_DIR")
    if env:
        return Path(env).expanduser()
    value = getattr(settings, "STATECACHE_DIR", None)
    if value is None or value == "":
        return default_dir()
    if not isinstance(value, (str, os.PathLike)):
        raise SettingError(f"STATECACHE_DIR must be a path, not {value!r}")
    return Path(value).expanduser()
