"""In-process tests run against these settings; the differential tests start their own
processes with the settings of the project they test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import django
import pytest
from django.conf import settings


def pytest_configure() -> None:
    if settings.configured:
        return
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.admin",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.sites",
            "django.contrib.flatpages",
            "django.contrib.redirects",
            "statecache",
            "tests.testapp",
        ],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        },
        SITE_ID=1,
        USE_TZ=True,
        SECRET_KEY="tests",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        STATECACHE_ENABLED=False,
    )
    django.setup()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache directory, for this test only."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("STATECACHE_DIR", str(directory))
    return directory


@pytest.fixture
def project_state():
    """The state of the in-process test graph (contrib apps and tests.testapp)."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    from statecache import keys

    loader = MigrationLoader(connection)
    # As every run does before it reads the cache: fingerprinting the graph is what lets
    # decoding import the classes its migrations use.
    keys.fingerprints(loader, loader.graph.nodes.values())
    return loader.project_state()


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def read_only(tmp_path):
    """Make a directory read-only for every process, root included (a read-only bind mount)."""
    from tests.sharedcache import can_mount

    if not can_mount():
        pytest.skip("needs root and mount for a read-only bind mount (chmod does not stop root)")
    mounted = []

    def make(directory: Path) -> None:
        _mount("--bind", str(directory), str(directory))
        mounted.append(directory)
        _mount("-o", "remount,ro,bind", str(directory))

    yield make
    for directory in reversed(mounted):
        subprocess.run(["umount", str(directory)], check=True)
