"""The database servers the differential tests run against, found through environment variables.

    STATECACHE_TEST_POSTGRES=postgresql://postgres@127.0.0.1:5432/test
    STATECACHE_TEST_MARIADB=mysql://root@127.0.0.1:3306/test

SQLite always runs. A server whose variable is unset is skipped with the reason; a server whose
variable is set but that cannot be reached fails the test (CI sets them: a server that is down
must not pass as "skipped"). Every test gets databases of its own, created on the server and
dropped afterwards, so tests can run in parallel.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest


@dataclass(frozen=True)
class Backend:
    name: str
    variable: str | None = None
    engine: str = "django.db.backends.sqlite3"

    @property
    def url(self) -> str | None:
        return os.environ.get(self.variable) if self.variable else None

    def server(self) -> dict[str, str]:
        parts = urlsplit(self.url or "")
        return {
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "NAME": parts.path.lstrip("/"),
        }

    def connect(self, database: str | None = None):
        server = self.server()
        name = database or server["NAME"]
        if self.name == "postgresql":
            import psycopg

            return psycopg.connect(
                host=server["HOST"],
                port=server["PORT"] or None,
                user=server["USER"] or None,
                password=server["PASSWORD"] or None,
                dbname=name,
                autocommit=True,
            )
        import MySQLdb

        return MySQLdb.connect(
            host=server["HOST"],
            port=int(server["PORT"] or 3306),
            user=server["USER"],
            password=server["PASSWORD"],
            database=name,
            autocommit=True,
        )

    def execute(self, sql: str) -> None:
        connection = self.connect()
        try:
            connection.cursor().execute(sql)
        finally:
            connection.close()


SQLITE = Backend("sqlite")
POSTGRESQL = Backend("postgresql", "STATECACHE_TEST_POSTGRES", "django.db.backends.postgresql")
MARIADB = Backend("mariadb", "STATECACHE_TEST_MARIADB", "django.db.backends.mysql")
BACKENDS = [SQLITE, POSTGRESQL, MARIADB]


class Databases:
    """Creates databases on one backend for one test; `env(label)` is what a project's settings
    read (GEN_DB_* variables) to use it."""

    def __init__(self, backend: Backend, directory: Path) -> None:
        self.backend = backend
        self.directory = directory
        self.created: list[str] = []

    def env(self, label: str) -> dict[str, str]:
        if self.backend is SQLITE:
            return {"GEN_DB": str(self.directory / f"{label}.sqlite3")}
        name = f"statecache_{uuid.uuid4().hex[:12]}_{label}".replace("-", "_")
        self.backend.execute(f"CREATE DATABASE {name}")
        self.created.append(name)
        server = self.backend.server()
        return {
            "GEN_DB_ENGINE": self.backend.engine,
            "GEN_DB": name,
            "GEN_DB_HOST": server["HOST"],
            "GEN_DB_PORT": server["PORT"],
            "GEN_DB_USER": server["USER"],
            "GEN_DB_PASSWORD": server["PASSWORD"],
        }

    def drop_all(self) -> None:
        for name in self.created:
            self.backend.execute(f"DROP DATABASE IF EXISTS {name}")


def available(backend: Backend) -> None:
    """Skip when the server is not configured; fail when it is configured but unreachable."""
    if backend is SQLITE:
        return
    if not backend.url:
        pytest.skip(f"{backend.name}: set {backend.variable} to run against a server")
    try:
        backend.connect().close()
    except Exception as exc:  # any driver error: the configured server is not usable
        pytest.fail(f"{backend.name} at {backend.url} is configured but unreachable: {exc}")
