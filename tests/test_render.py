"""Which models the registry handed to a migration holds (render.py); that Django gets the
same results with it is the differential tests' job."""

from __future__ import annotations

from django.db.migrations.loader import MigrationLoader

from statecache import render


def test_a_migration_s_registry_renders_its_targets_as_stand_ins():
    """testapp's 0003 alters Author and Book. Book points to Author, so Author's referrers come
    in full; Author points to auth's User, which comes as a stand-in (its primary key), not with
    the groups, permissions and content types it points to in turn."""
    loader = MigrationLoader(None)
    state = loader.project_state(("testapp", "0002_more"))
    migration = loader.graph.nodes[("testapp", "0003_rename")]
    models = render.registry_models(state, migration)
    assert set(models) == {("testapp", "author"), ("testapp", "book"), ("auth", "user")}
    assert models["testapp", "book"] is state.models["testapp", "book"]
    assert list(models["auth", "user"].fields) == ["id"]
    assert render.render(state, migration) == 3
    user = state.apps.get_model("auth", "user")
    assert user._meta.db_table == "auth_user"
    author = state.apps.get_model("testapp", "author")
    assert author._meta.get_field("user").remote_field.model is user


def test_a_to_field_target_keeps_the_column_it_is_pointed_at_by():
    loader = MigrationLoader(None)
    state = loader.project_state(("testapp", "0002_more"))
    migration = loader.graph.nodes[("testapp", "0003_rename")]
    # Make Book's foreign key point at Author's `code`, and the migration only about Book.
    from django.db import migrations, models

    book = state.models["testapp", "book"]
    book.fields["author"] = models.ForeignKey("testapp.author", models.CASCADE, to_field="code")
    only_book = migrations.Migration("0003_rename", "testapp")
    only_book.operations = [migration.operations[0]]  # RenameField on Book
    registry = render.registry_models(state, only_book)
    assert list(registry["testapp", "author"].fields) == ["id", "code"]
