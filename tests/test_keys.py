from __future__ import annotations

import importlib
import sys

from django.db import connection, migrations, models
from django.db.migrations.executor import MigrationExecutor

from statecache import codec, keys


def make(name="0001_x", max_length=10, app="testapp"):
    migration = migrations.Migration(name, app)
    migration.operations = [
        migrations.AddField("book", "extra", models.CharField(max_length=max_length, default="")),
    ]
    return migration


def test_in_memory_migrations_are_fingerprinted_by_content():
    assert keys.migration_fingerprint(make()) == keys.migration_fingerprint(make())
    assert keys.migration_fingerprint(make()) != keys.migration_fingerprint(make(max_length=11))
    assert keys.migration_fingerprint(make()) != keys.migration_fingerprint(make("0002_x"))
    assert keys.migration_fingerprint(make()) != keys.migration_fingerprint(make(app="other"))


def test_operations_from_outside_django_bring_their_source(tmp_path, monkeypatch):
    module = tmp_path / "custom_ops.py"
    source = (
        "from django.db import migrations\n"
        "class Touch(migrations.operations.base.Operation):\n"
        "    def state_forwards(self, app_label, state):\n"
        "        pass{}\n"
    )
    module.write_text(source.format(""))
    monkeypatch.syspath_prepend(str(tmp_path))
    custom = importlib.import_module("custom_ops")

    def fingerprint():
        migration = migrations.Migration("0001_x", "testapp")
        migration.operations = [custom.Touch()]
        keys.module_source_hash.cache_clear()
        return keys.migration_fingerprint(migration)

    before = fingerprint()
    module.write_text(source.format("  # changed"))
    assert fingerprint() != before
    sys.modules.pop("custom_ops")


class CreateThing(migrations.operations.base.Operation):
    """As django-two-factor-auth's CreatePhoneDevice: the CreateModel it runs is an attribute
    of its class, not a constructor argument."""

    inner = migrations.CreateModel(
        "Thing",
        [("id", models.AutoField(primary_key=True)), ("code", models.CharField(default=make))],
    )

    def state_forwards(self, app_label, state):
        self.inner.state_forwards(app_label, state)


def test_operations_held_by_custom_operations_are_walked_for_their_import_paths():
    migration = migrations.Migration("0001_x", "testapp")
    migration.operations = [CreateThing()]
    codec._allowed.discard("tests.test_keys:make")
    fingerprint, leaves = keys.fingerprint_and_leaves(migration)
    assert fingerprint is not None
    # What a cached state of it names may be imported when another process decodes it.
    assert codec.is_allowed("tests.test_keys:make")
    assert [type(f) for f in leaves.fields] == [models.AutoField, models.CharField]


def test_values_without_an_exact_encoding_still_give_a_stable_fingerprint():
    def make_migration():
        migration = migrations.Migration("0001_x", "testapp")
        migration.operations = [migrations.AddField("book", "x", models.Field(default=object()))]
        return migration

    first, leaves = keys.fingerprint_and_leaves(make_migration())
    assert first is not None and first == keys.migration_fingerprint(make_migration())
    assert leaves.reasons == ["no exact encoding"]
    assert keys.step(b"k" * 16, None) is None
    assert keys.step(None, b"f" * 16) is None


def test_base_key_depends_on_django_version_and_unmigrated_apps():
    assert keys.base_key({"a"}) == keys.base_key({"a"})
    assert keys.base_key({"a"}) != keys.base_key({"a", "b"})
    assert keys.base_key({"a"}, "4.2.1") != keys.base_key({"a"}, "4.2.2")


def test_running_keys_follow_what_is_applied_before_each_node():
    executor = MigrationExecutor(connection)
    full_plan = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
    plan = keys.PlanKeys(executor.loader, full_plan)
    n = len(plan.migrations)
    everything = plan.running([True] * n)
    assert len(everything) == n + 1 and len(set(everything)) == n + 1
    # Leaving out migration 3 changes every key after it and none before.
    mask = [True] * n
    mask[3] = False
    partial = plan.running(mask)
    assert partial[:4] == everything[:4]
    assert all(a != b for a, b in zip(partial[4:], everything[4:]))
    # A migration not applied adds nothing: the keys on both sides of it are equal.
    assert partial[3] == partial[4]
