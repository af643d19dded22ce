"""The system checks, one test per check ID (id and message), and the configuration they
report: read once, again when a setting or its environment variable changes."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from statecache import compat, conf


def ours() -> list[tuple[str, str]]:
    return [
        (message.id, message.msg)
        for message in checks.run_checks()
        if (message.id or "").startswith("statecache.")
    ]


@pytest.fixture
def on(cache_dir, monkeypatch):
    monkeypatch.setenv("STATECACHE_ENABLED", "1")
    return cache_dir


def test_no_warning_with_good_settings(on):
    assert ours() == []
    assert conf.enabled() is True


def test_w001_a_directory_that_cannot_be_written(on, monkeypatch):
    monkeypatch.setenv("STATECACHE_DIR", "/proc/statecache")
    try:
        [(ident, message)] = ours()
    finally:
        conf.reported_unwritable.discard("/proc/statecache")
    assert ident == "statecache.W001"
    assert message.startswith("STATECACHE_DIR /proc/statecache cannot be created or written (")


def test_w002_a_directory_setting_that_is_not_a_path(on, monkeypatch):
    monkeypatch.delenv("STATECACHE_DIR")
    with override_settings(STATECACHE_DIR=42):
        assert ours() == [("statecache.W002", "STATECACHE_DIR must be a path, not 42")]
        assert conf.enabled() is False


def test_w003_a_directory_that_is_a_file(on, monkeypatch, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    monkeypatch.setenv("STATECACHE_DIR", str(a_file))
    assert ours() == [
        ("statecache.W003", f"STATECACHE_DIR {a_file} exists and is not a directory.")
    ]
    assert conf.enabled() is False


def test_w004_an_unsupported_django(on, monkeypatch):
    monkeypatch.setattr(compat, "django_version", lambda: (9, 9))
    assert ours() == [
        (
            "statecache.W004",
            f"statecache does not support Django 9.9 (supported: {compat.supported_text()}).",
        )
    ]


def test_w005_an_invalid_umask(on, monkeypatch):
    monkeypatch.setenv("STATECACHE_UMASK", "rwx")
    assert ours() == [
        (
            "statecache.W005",
            "STATECACHE_UMASK (environment) must be an octal umask such as '002', not 'rwx'",
        )
    ]
    assert conf.enabled() is True and conf.current().umask is None, "on, without the umask"


def test_w006_a_signing_key_too_short(on, monkeypatch):
    monkeypatch.setenv("STATECACHE_SIGNING_KEY", "short")
    assert ours() == [
        (
            "statecache.W006",
            "STATECACHE_SIGNING_KEY (environment) is too short (5 bytes; use at least 16)",
        )
    ]
    assert conf.enabled() is False


def test_w007_a_flag_that_is_not_a_boolean(cache_dir, monkeypatch):
    monkeypatch.setenv("STATECACHE_ENABLED", "maybe")
    assert ours() == [
        (
            "statecache.W007",
            "STATECACHE_ENABLED (environment) must be a boolean (or 0/1 in the environment), "
            "not 'maybe'",
        )
    ]
    assert conf.enabled() is False


def test_w008_a_check_that_fails(on, monkeypatch):
    def broken() -> conf.Config:
        raise RuntimeError("boom")

    monkeypatch.setattr(conf, "current", broken)
    assert ours() == [
        ("statecache.W008", "statecache could not check its settings (RuntimeError: boom).")
    ]


def test_the_environment_decides_over_a_broken_setting(on, monkeypatch):
    """A bad signing key in settings is reported, but a good one in the environment wins."""
    monkeypatch.setenv("STATECACHE_SIGNING_KEY", "k" * 16)
    with override_settings(STATECACHE_SIGNING_KEY="short"):
        assert [ident for ident, _ in ours()] == ["statecache.W006"]
        assert conf.enabled() is True and conf.current().signing_key == b"k" * 16


def test_settings_are_read_once(on, monkeypatch):
    first = conf.current()
    assert conf.current() is first
    with override_settings(STATECACHE_UMASK="027"):  # setting_changed
        assert conf.current() is not first and conf.current().umask == 0o027
        assert conf.current() is conf.current()
    assert conf.current().umask is None
    monkeypatch.setenv("STATECACHE_REGISTRY_MAX_SHARE", "1")
    assert conf.current().max_share == 1.0
