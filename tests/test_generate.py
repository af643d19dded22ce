"""The project generator makes valid projects: models match the migrations, and the whole
history migrates forwards and back to zero."""

from __future__ import annotations

import pytest

from tests.projects import app_migrations, environment, generate, manage


# Seed 3 of the benchmark mix was not reversible before the generator ordered the migrations
# that write the same table: unapplying an AlterUniqueTogether left its index behind, because a
# migration of another app that rebuilt the table was unapplied later from a state without it.
@pytest.mark.slow
@pytest.mark.parametrize(
    "stress,seed", [(False, 3), (True, 1)], ids=["benchmark-mix", "stress-mix"]
)
def test_a_generated_small_project_is_valid(tmp_path, stress, seed):
    project = generate(tmp_path / "p", seed, apps=5, models=50, migrations=300, stress=stress)
    env = environment(tmp_path / "db.sqlite3", None)
    migrations = sum(len(list(p.glob("0*.py"))) for p in project.glob("*/migrations"))
    assert migrations >= 300
    checked = manage(project, env, "makemigrations", "--check", "--dry-run")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No changes detected" in checked.stdout
    forwards = manage(project, env, "migrate")
    assert forwards.returncode == 0, forwards.stderr
    assert "Applying" in forwards.stdout
    # Not `accounts`: Django cannot unapply the swapped-in user model while the models that
    # point to it exist (a lazy reference to a model that is gone), with or without statecache.
    for app in sorted(a for a in app_migrations(project) if a != "accounts"):
        backwards = manage(project, env, "migrate", app, "zero")
        assert backwards.returncode == 0, (app, backwards.stderr)


def test_generation_is_deterministic(tmp_path):
    first = generate(tmp_path / "a", 7, apps=3, models=12, migrations=40)
    second = generate(tmp_path / "b", 7, apps=3, models=12, migrations=40)
    files = sorted(p.relative_to(first) for p in first.rglob("*.py"))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.py"))
    for name in files:
        assert (first / name).read_text() == (second / name).read_text(), name
