"""Real migrations hold values a deconstruction cannot store exactly: a field class made by a
factory, `models.SET(callable)`, a validator without `__eq__`, values computed at import time.
On a hand-written project holding each of them (tests/fixtures/wild), every state must still
be cached, keys must not change between processes, and every command must give exactly what
vanilla Django gives, states holding this process's own values (tests/harness.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.harness import LIVE
from tests.helpers import assert_same
from tests.projects import FIXTURES, environment, manage, observe_all, walk


@pytest.fixture
def wild(tmp_path):
    return shutil.copytree(FIXTURES / "wild", tmp_path / "wild")


def commands_for(project) -> list[list[str]]:
    return [
        ["migrate"],
        # One step back on a leaf app, and forwards again.
        ["migrate", "notes", "0001_initial"],
        *walk(project, "vault"),
        ["migrate", "notes", "zero"],
        ["migrate"],
        # Across apps: notes depends on vault.0002 and vault.0006, so both of notes' go too.
        ["migrate", "vault", "0001"],
        ["migrate"],
    ]


def status(project, env) -> dict:
    result = manage(project, env, "statecache", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_state_of_the_wild_project_is_cached_and_a_second_warm_does_nothing(wild, tmp_path):
    env = environment(tmp_path / "db.sqlite3", tmp_path / "cache")
    first = manage(wild, env, "statecache", "warm")
    assert first.returncode == 0, first.stderr
    info = status(wild, env)
    assert info["states_covered"] == info["states_total"] == 24, info
    assert info["rollback_states_covered"] == info["rollback_states_total"] == 4, info
    assert info["keyless_states"] == 0 and info["first_uncovered"] is None, info
    assert info["counters"]["uncacheable"] == 0, info
    reasons = info["from_migrations"]
    assert reasons["import-time value"] == [
        "vault.0001_initial: datetime",
        "vault.0001_initial: UUID",
        "vault.0005_joined: date",
    ]
    assert "vault.0001_initial: vault.validators.MaxWordsValidator" in reasons["no __eq__"]
    assert "vault.0003_token_longer: vault.fields.EncryptedCharField" in reasons["not importable"]
    refs = info["refs"]
    # Another process imports the migrations again (new timezone.now(), new uuid4()): the
    # same keys, nothing to compute, nothing written.
    second = manage(wild, env, "statecache", "warm")
    assert " 0 states computed, 24 already cached" in second.stdout, second.stdout
    assert "0 states computed, 4 already cached" in second.stdout, second.stdout
    assert status(wild, env)["refs"] == refs


@pytest.mark.parametrize("variant", ["cold", "warm"])
def test_the_wild_project_migrates_exactly_as_vanilla(wild, tmp_path, variant):
    commands = commands_for(wild)
    vanilla = observe_all(wild, environment(tmp_path / "vanilla.sqlite3", None), commands)
    env = environment(tmp_path / "cached.sqlite3", tmp_path / "cache")
    if variant == "warm":
        assert manage(wild, env, "statecache", "warm").returncode == 0
    cached = observe_all(wild, env, commands)
    # The import-time values are compared for what they are (this process's own objects).
    assert LIVE in json.dumps([record["returned"] for record in vanilla])
    for command, expected, actual in zip(commands, vanilla, cached):
        assert_same(expected, actual, " ".join(command))
    if variant == "warm":
        # One step back on an app and forwards again: served from the cache.
        one_back = cached[1]
        assert one_back["command"] == ["migrate", "notes", "0001_initial"]
        assert one_back["statecache"]["misses"] == 0, one_back
        assert one_back["statecache"]["hits"] >= 1, one_back


def test_migrate_v3_says_which_states_were_stored(wild, tmp_path, read_only):
    env = environment(tmp_path / "db.sqlite3", tmp_path / "cache")
    assert manage(wild, env, "migrate").returncode == 0
    result = manage(wild, env, "migrate", "vault", "0004", "-v", "3")
    assert result.returncode == 0, result.stderr
    assert "pre-state miss, replayed in" in result.stdout and "and stored" in result.stdout
    # A directory nobody may write (root included): the same kind of run says so instead.
    read_only(tmp_path / "cache")
    result = manage(wild, env, "migrate", "vault", "0003", "-v", "3")
    assert result.returncode == 0, result.stderr
    assert "and stored" not in result.stdout, result.stdout
    assert "miss, replayed in" in result.stdout and "; not stored: " in result.stdout


def write_migration(wild, name: str, operation: str) -> None:
    (wild / "notes" / "migrations" / f"{name}.py").write_text(
        "import secrets\n\n"
        "from django.db import migrations, models\n\n\n"
        "class Migration(migrations.Migration):\n"
        '    dependencies = [("notes", "0003_sealed")]\n'
        f"    operations = [{operation}]\n"
    )


def test_warm_records_a_field_argument_computed_at_import_time(wild, tmp_path):
    """A value computed at import time that is not a date, time or UUID (a random string)
    cannot be recognised by its type: warm imports the migrations twice, records the argument
    that differs, and from then on every process takes it from its own migrations."""
    write_migration(
        wild,
        "0004_code",
        'migrations.AddField("note", "code",'
        " models.CharField(max_length=12, default='rnd-' + secrets.token_hex(4)))",
    )
    env = environment(tmp_path / "db.sqlite3", tmp_path / "cache")
    first = manage(wild, env, "statecache", "warm")
    assert first.returncode == 0, first.stderr
    assert "recorded: notes.0004_code: CharField default computed at import time" in first.stdout
    assert "volatile:" not in first.stdout, first.stdout
    second = manage(wild, env, "statecache", "warm")
    assert " 0 states computed, 25 already cached" in second.stdout, second.stdout
    assert "0 states computed, 4 already cached" in second.stdout, second.stdout
    assert "recorded:" not in second.stdout and "volatile:" not in second.stdout
    # Each process's own value, exactly as vanilla: the differential harness compares the
    # states handed to the signals and the schema after each command.
    commands = [["migrate"], ["migrate", "notes", "0003"], ["migrate"]]
    vanilla = observe_all(wild, environment(tmp_path / "vanilla.sqlite3", None), commands)
    cached = observe_all(wild, env, commands)
    for command, expected, actual in zip(commands, vanilla, cached):
        assert_same(expected, actual, " ".join(command))
    assert cached[1]["statecache"]["misses"] == 0, cached[1]


def test_warm_names_a_migration_whose_key_still_changes_with_every_import(wild, tmp_path):
    """A random value outside a field's arguments cannot be recorded: warm says so."""
    write_migration(
        wild, "0004_sql", 'migrations.RunSQL("SELECT " + repr(secrets.token_hex(4)), "")'
    )
    env = environment(tmp_path / "db.sqlite3", tmp_path / "cache")
    result = manage(wild, env, "statecache", "warm")
    assert result.returncode == 0, result.stderr
    assert "volatile: notes.0004_sql: its fingerprint differs" in result.stdout, result.stdout
    assert result.stdout.count("volatile:") == 1, result.stdout
