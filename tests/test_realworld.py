"""Differential runs on the real-world corpus (tests/realworld/: popular third-party packages
with long migration histories, pinned in its requirements files; see its README.md).

The same commands with and without statecache, compared with tests/test_differential.py's
assert_same: output, errors, schema, the rows of django_migrations, django_content_type and
auth_permission, the states handed to pre_migrate and post_migrate and the state
MigrationExecutor.migrate returns. The fully migrated database is built once per session (by
vanilla Django, side by side with statecache's full migrate from an empty cache, which is the
first differential run), then `statecache warm` fills that cache; every other run starts from a
copy of the database and of the warmed cache. The two variants of a command run side by side.

Run by the `realworld` nox session (`-m realworld`), which installs the corpus; elsewhere these
tests are skipped when the corpus's packages are not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import assert_same
from tests.projects import environment, fresh_copy, manage, start_observing

pytestmark = pytest.mark.realworld

CORPUS = Path(__file__).resolve().parent / "realworld"
SETTINGS = {"DJANGO_SETTINGS_MODULE": "corpus.settings"}


def corpus_env(db: Path, cache: Path | None) -> dict:
    return environment(db, cache, SETTINGS)


def app_migrations(env: dict) -> dict[str, list[str]]:
    """Each app's migrations in the graph (squashed ones replace what they replace), from
    `showmigrations --list`, in order."""
    listed = manage(CORPUS, env, "showmigrations", "--list")
    assert listed.returncode == 0, listed.stderr
    result: dict[str, list[str]] = {}
    app = None
    for line in listed.stdout.splitlines():
        if line and not line.startswith(" "):
            app = line.strip()
            result[app] = []
        elif match := re.match(r"\s+\[[X ]\] (\S+)", line):
            result[app].append(match.group(1))
    return result


class Corpus:
    """The session's fully migrated database, its vanilla and statecache records, the warmed
    cache and each app's migrations."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.db = base / "vanilla.sqlite3"
        self.cache = base / "cache"
        started = time.monotonic()
        vanilla = start_observing(CORPUS, corpus_env(self.db, None), [["migrate"]])
        cached = start_observing(
            CORPUS, corpus_env(base / "statecache.sqlite3", self.cache), [["migrate"]]
        )
        self.vanilla, self.cached = vanilla()[0], cached()[0]
        self.migrate_seconds = time.monotonic() - started
        env = corpus_env(base / "statecache.sqlite3", self.cache)
        started = time.monotonic()
        self.warm = manage(CORPUS, env, "statecache", "warm")
        self.warm_seconds = time.monotonic() - started
        self.migrations = app_migrations(corpus_env(self.db, None))

    def target(self, app: str, back: int | str) -> str:
        """The migration `back` steps before the app's latest, or `back` itself (a name or
        "zero")."""
        if app not in self.migrations:
            pytest.skip(f"{app} is not in this corpus (5.2-only, see tests/realworld/README.md)")
        if isinstance(back, str):
            assert back == "zero" or back in self.migrations[app], (app, back)
            return back
        return self.migrations[app][-1 - back]

    def run(self, tmp_path: Path, commands: list[list[str]]) -> tuple[list[dict], list[dict]]:
        """Each command in a fresh process, vanilla and statecache side by side, from copies of
        the fully migrated database and of the warmed cache."""
        cache = tmp_path / "cache"
        shutil.copytree(self.cache, cache)
        envs = []
        for variant, variant_cache in (("vanilla", None), ("statecache", cache)):
            db = fresh_copy(self.db, tmp_path / f"{variant}.sqlite3")
            envs.append(corpus_env(db, variant_cache))
        vanilla, cached = [], []
        for command in commands:
            finish = [start_observing(CORPUS, env, [command]) for env in envs]
            vanilla += finish[0]()
            cached += finish[1]()
        return vanilla, cached


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    for module in ("wagtail", "cms", "oscar", "helpdesk", "machina", "explorer"):
        pytest.importorskip(module, reason="the corpus is not installed (nox -s realworld)")
    return Corpus(tmp_path_factory.mktemp("realworld"))


def test_full_migrate_from_empty_matches_vanilla(corpus):
    assert corpus.vanilla["error"] is None, corpus.vanilla["error"]
    assert_same(corpus.vanilla, corpus.cached, "migrate from empty")
    assert corpus.warm.returncode == 0, corpus.warm.stderr
    # For the log (pytest -rA): what the cache holds after a full migrate and a warm.
    print(f"migrate from empty, both variants side by side: {corpus.migrate_seconds:.0f} s")
    print(f"statecache warm after it ({corpus.warm_seconds:.0f} s):\n{corpus.warm.stdout}")


# (app, steps back or a target), why. Each is a round trip: back, then `migrate`.
ROUND_TRIPS = [
    ("wagtailcore", 1, "longest history; Page has on_delete=models.SET(callable)"),
    ("wagtailcore", 5, "several steps in the longest history"),
    ("helpdesk", 5, "settings-dependent foreign key target (HELPDESK_TEAMS_MODEL), RunPython"),
    ("cms", 1, "django CMS: squashed histories, treebeard"),
    ("catalogue", 5, "Oscar: RunPython, callable defaults, validators"),
    ("forum_conversation", 5, "machina: validators without __eq__"),
    ("oauth2_provider", 5, "swappable models by setting, callable defaults"),
    ("explorer", "0024_auto_20240803_1135", "back to a state with encrypt() fields, whose class "
     "a factory made (0024 itself is irreversible)"),
    ("wagtailsearch", "0002_add_verbose_names", "cross-app: unapplies wagtailsearchpromotions "
     "too; RunSQL and SeparateDatabaseAndState"),
    ("django_nyt", "0006_auto_20141229_1630", "cross-app: wiki_notifications depends on it; "
     "unapplies the migration with default=timezone.now() (5.2 only)"),
    ("teamapp", "zero", "the team's app to zero: import-time values, a closure, SET(callable), "
     "SeparateDatabaseAndState, RunSQL with a no-op reverse"),
]  # fmt: skip


@pytest.mark.parametrize(
    "app,back",
    [pytest.param(app, back, id=f"{app}-{back}") for app, back, _ in ROUND_TRIPS],
)
def test_round_trip_matches_vanilla(corpus, tmp_path, app, back):
    target = corpus.target(app, back)
    commands = [["migrate", app, target], ["migrate"]]
    vanilla, cached = corpus.run(tmp_path, commands)
    for command, expected, actual in zip(commands, vanilla, cached):
        assert_same(expected, actual, " ".join(command))
    assert [r["error"] for r in vanilla] == [None, None], [r["error"] for r in vanilla]


def test_irreversible_rollback_fails_like_vanilla(corpus, tmp_path):
    """Unapplying filer's history reaches djangocms_file's data migration to filer, a RunPython
    without a reverse: both variants must refuse it the same way, and leave the same
    database."""
    commands = [["migrate", "filer", corpus.target("filer", "zero")], ["migrate"]]
    vanilla, cached = corpus.run(tmp_path, commands)
    for command, expected, actual in zip(commands, vanilla, cached):
        assert_same(expected, actual, " ".join(command))
    assert "IrreversibleError" in (vanilla[0]["error"] or ""), vanilla[0]["error"]


def test_inventory_runs(corpus):
    """The README's figures come from this script: it keeps working with the pins."""
    result = subprocess.run(
        [sys.executable, "inventory.py"],
        cwd=CORPUS,
        env=corpus_env(corpus.db, None),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "migrations:" in result.stdout
