"""The settings statecache reads, with their environment overrides."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from django.conf import settings

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}
# hashlib.blake2b takes keys of at most 64 bytes; longer ones are hashed down to 64.
MAX_KEY = 64


class SettingError(ValueError):
    pass


def _setting(name: str, default: object = None) -> object:
    if not settings.configured:
        return default
    return getattr(settings, name, default)


def parse_flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise SettingError(f"{name} must be a boolean (or 0/1 in the environment), not {value!r}")


def enabled() -> bool:
    """STATECACHE_ENABLED, overridden for one run by the environment variable of that name.

    An invalid value means "off", and so does any other problem `off_reason` names (an
    unusable directory setting, an invalid signing key: a team that asked for signed entries
    must never silently read unsigned ones): the system checks report why, as warnings, and
    Django's own code runs.
    """
    try:
        return flag() and off_reason() is None
    except SettingError:
        return False


def flag() -> bool:
    """The flag alone (raises SettingError for a value that is not a boolean)."""
    env = os.environ.get("STATECACHE_ENABLED")
    if env is not None:
        return parse_flag(env, "STATECACHE_ENABLED (environment)")
    return parse_flag(_setting("STATECACHE_ENABLED", False), "STATECACHE_ENABLED")


def off_reason() -> str | None:
    """Why statecache cannot run with these settings (the flag aside), or None."""
    try:
        signing_key()
        directory = cache_dir()
    except SettingError as exc:
        return str(exc)
    try:
        if directory.exists() and not directory.is_dir():
            return f"STATECACHE_DIR {directory} exists and is not a directory"
    except OSError as exc:
        return f"STATECACHE_DIR {directory} cannot be examined ({exc})"
    return None


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "django-statecache"


def _absolute(path: Path, base: object, name: str) -> Path:
    """`path` with ~ expanded, made absolute against `base` (the current directory if None)."""
    try:
        path = path.expanduser()
    except RuntimeError as exc:  # ~user that does not exist, or no home directory
        raise SettingError(f"{name} {str(path)!r} cannot be expanded: {exc}")
    if path.is_absolute():
        return path
    try:
        return Path(base if base is not None else os.getcwd()) / path
    except (OSError, TypeError) as exc:
        raise SettingError(f"{name} {str(path)!r} is relative and has no base: {exc}")


def cache_dir() -> Path:
    """STATECACHE_DIR, overridden by the environment variable of that name. A relative setting
    is taken from settings.BASE_DIR when the project defines one (where Django projects keep
    their paths), else from the current directory; a relative environment variable, like any
    path typed in a shell, from the current directory."""
    env = os.environ.get("STATECACHE_DIR")
    if env:
        return _absolute(Path(env), None, "STATECACHE_DIR (environment)")
    value = _setting("STATECACHE_DIR")
    if value is None or value == "":
        try:
            return default_dir()
        except RuntimeError as exc:
            raise SettingError(f"the default STATECACHE_DIR cannot be found: {exc}")
    if not isinstance(value, (str, os.PathLike)):
        raise SettingError(f"STATECACHE_DIR must be a path, not {value!r}")
    base = _setting("BASE_DIR")
    if not isinstance(base, (str, os.PathLike)):
        base = None
    return _absolute(Path(value), base, "STATECACHE_DIR")


# Directories the system check found unwritable in this process: the store starts read-only
# there, so that the problem is reported once (statecache.W001), not again at the first write.
reported_unwritable: set[str] = set()


def parse_umask(value: object, name: str) -> int | None:
    """An int (0o002) or an octal string ("002", "0o002"); None or "" means unset."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SettingError(f"{name} must be an octal umask such as 0o002 or '002', not {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        try:
            number = int(text, 8)
        except ValueError:
            raise SettingError(f"{name} must be an octal umask such as '002', not {value!r}")
    else:
        raise SettingError(f"{name} must be an octal umask such as 0o002 or '002', not {value!r}")
    if not 0 <= number <= 0o777:
        raise SettingError(f"{name} must be between 0 and 0o777, not {value!r}")
    return number


def umask() -> int | None:
    """STATECACHE_UMASK (environment first): the group-shared mode, as ccache's `umask`."""
    env = os.environ.get("STATECACHE_UMASK")
    if env is not None and env != "":
        return parse_umask(env, "STATECACHE_UMASK (environment)")
    return parse_umask(_setting("STATECACHE_UMASK"), "STATECACHE_UMASK")


def parse_signing_key(value: object, name: str) -> bytes | None:
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, str):
        key = value.encode()
    elif isinstance(value, bytes):
        key = value
    else:
        raise SettingError(f"{name} must be a string or bytes, not {type(value).__name__}")
    if len(key) < 16:
        raise SettingError(f"{name} is too short ({len(key)} bytes; use at least 16)")
    if len(key) > MAX_KEY:
        key = hashlib.blake2b(key).digest()
    return key


def signing_key() -> bytes | None:
    """STATECACHE_SIGNING_KEY (environment first): entries carry a keyed BLAKE2 tag."""
    env = os.environ.get("STATECACHE_SIGNING_KEY")
    if env:
        return parse_signing_key(env, "STATECACHE_SIGNING_KEY (environment)")
    return parse_signing_key(_setting("STATECACHE_SIGNING_KEY"), "STATECACHE_SIGNING_KEY")
