"""statecache's settings, read once into one frozen `Config`.

`current()` reads the settings and their environment overrides the first time it is called and
keeps the result; a `setting_changed` signal (override_settings in tests) about one of them
drops it, and so does a change of one of the environment variables below (read on every call:
a few dictionary lookups, so that a shell or a test can switch statecache for one run). Every
module asks `current()`; the system checks report its `problems`.

Settings (each also an environment variable of the same name, which wins):
STATECACHE_ENABLED, STATECACHE_DIR, STATECACHE_UMASK, STATECACHE_SIGNING_KEY, and the tuning
knob STATECACHE_REGISTRY_MAX_SHARE (environment only; registry.py).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}
# hashlib.blake2b takes keys of at most 64 bytes; longer ones are hashed down to 64.
MAX_KEY = 64
# Above this share of the models to re-render, a fresh render costs no more (registry.py).
MAX_SHARE = 0.5

SETTINGS = ("STATECACHE_ENABLED", "STATECACHE_DIR", "STATECACHE_UMASK", "STATECACHE_SIGNING_KEY")
# What the configuration depends on besides the settings: the overrides, and what the default
# and relative directories are resolved against.
ENVIRONMENT = (*SETTINGS, "STATECACHE_REGISTRY_MAX_SHARE", "XDG_CACHE_HOME", "HOME")


class SettingError(ValueError):
    pass


@dataclass(frozen=True)
class Problem:
    """A setting that cannot be used: the system check `id` reports `message`."""

    id: str
    message: str


@dataclass(frozen=True)
class Config:
    flag: bool  # STATECACHE_ENABLED (False when invalid)
    cache_dir: Path | None  # None when the setting is unusable (a problem says why)
    signing_key: bytes | None
    umask: int | None
    max_share: float
    problems: tuple[Problem, ...]  # in the order the system checks report them
    # Why statecache cannot run with these settings (the flag aside): the signing key or the
    # directory that decides is unusable (a team that asked for signed entries must never
    # silently read unsigned ones). None: it can.
    setting_off_reason: str | None


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


def _cache_dir() -> Path:
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


def _max_share() -> float:
    try:
        return float(os.environ.get("STATECACHE_REGISTRY_MAX_SHARE", MAX_SHARE))
    except ValueError:
        return MAX_SHARE


def _sources(name: str, default: object = None) -> list[tuple[str, object]]:
    """A setting's two sources, the environment (which wins) last."""
    return [(name, _setting(name, default)), (f"{name} (environment)", os.environ.get(name))]


def _parsed(name: str, parse, check_id: str, problems: list[Problem], default=None):
    """The value of setting `name` and the error of the source that decides it (the
    environment when set, else the setting); every invalid source is a problem."""
    value, error = None, None
    for label, raw in _sources(name, default):
        if raw is None or (raw == "" and label.endswith("(environment)") and name != SETTINGS[0]):
            continue  # unset (an empty environment variable unsets all but the flag)
        try:
            value, error = parse(raw, label), None
        except SettingError as exc:
            problems.append(Problem(check_id, str(exc)))
            value, error = _INVALID, str(exc)
    return value, error


_INVALID = object()


def read() -> Config:
    """The configuration, read now from settings and environment."""
    problems: list[Problem] = []
    flag, _ = _parsed("STATECACHE_ENABLED", parse_flag, "statecache.W007", problems, False)
    umask, _ = _parsed("STATECACHE_UMASK", parse_umask, "statecache.W005", problems)
    signing_key, off = _parsed(
        "STATECACHE_SIGNING_KEY", parse_signing_key, "statecache.W006", problems
    )
    try:
        cache_dir: Path | None = _cache_dir()
    except SettingError as exc:
        cache_dir = None
        problems.append(Problem("statecache.W002", str(exc)))
        off = off or str(exc)
    return Config(
        flag=flag is True,
        cache_dir=cache_dir,
        signing_key=None if signing_key is _INVALID else signing_key,
        umask=None if umask is _INVALID else umask,
        max_share=_max_share(),
        problems=tuple(problems),
        setting_off_reason=off,
    )


_current: tuple[tuple, Config] | None = None


def _environment() -> tuple:
    return tuple(os.environ.get(name) for name in ENVIRONMENT)


def current() -> Config:
    """The configuration of this process (read once; again after a change, see above)."""
    global _current
    environment = _environment()
    if _current is None or _current[0] != environment:
        _current = (environment, read())
    return _current[1]


def forget() -> None:
    global _current
    _current = None


@receiver(setting_changed)
def _setting_changed(*, setting: str, **kwargs) -> None:
    if setting.startswith("STATECACHE_") or setting == "BASE_DIR":
        forget()


# -- what the rest of statecache asks ----------------------------------------------------------


def enabled() -> bool:
    """STATECACHE_ENABLED, overridden for one run by the environment variable of that name.

    An invalid value means "off", and so does any other problem `off_reason` names (an
    unusable directory setting, an invalid signing key: a team that asked for signed entries
    must never silently read unsigned ones): the system checks report why, as warnings, and
    Django's own code runs.
    """
    config = current()
    return config.flag and off_reason(config) is None


def off_reason(config: Config | None = None) -> str | None:
    """Why statecache cannot run with these settings (the flag aside), or None. The directory
    is looked at on every call: a file put where it should be turns statecache off."""
    config = config or current()
    if config.setting_off_reason is not None:
        return config.setting_off_reason
    directory = config.cache_dir
    try:
        if directory.exists() and not directory.is_dir():
            return f"STATECACHE_DIR {directory} exists and is not a directory"
    except OSError as exc:
        return f"STATECACHE_DIR {directory} cannot be examined ({exc})"
    return None


def cache_dir() -> Path:
    """The cache directory (SettingError when the setting cannot be used)."""
    config = current()
    if config.cache_dir is None:
        raise SettingError(next(p.message for p in config.problems if p.id == "statecache.W002"))
    return config.cache_dir


# Directories the system check found unwritable in this process: the store starts read-only
# there, so that the problem is reported once (statecache.W001), not again at the first write.
reported_unwritable: set[str] = set()
