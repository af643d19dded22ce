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


def test_a_partial_registry_lets_go_of_the_models_its_reloads_replace():
    """Django's reloads re-render a stand-in from the full state: auth's User, with its
    many-to-many fields to Group and Permission, which this registry does not hold. The lazy
    operations waiting for those would keep every replaced User class alive until the
    migration ends (20,000 classes during a 500-operation migration of the corpus)."""
    import gc
    import weakref

    loader = MigrationLoader(None)
    state = loader.project_state(("testapp", "0002_more"))
    migration = loader.graph.nodes[("testapp", "0003_rename")]
    assert render.render(state, migration) == 3
    replaced = []
    for _ in range(5):
        replaced.append(weakref.ref(state.apps.get_model("auth", "user")))
        state.reload_model("auth", "user", delay=True)  # what ProjectState.alter_field does
    gc.collect()
    # The first, the stand-in, is still what Book's Author points to: a delayed reload leaves
    # Book alone, as Django does. The Users the reloads rendered are gone.
    assert [ref() for ref in replaced[1:]] == [None] * 4
    user = state.apps.get_model("auth", "user")
    assert [field.name for field in user._meta.local_many_to_many] == [
        "groups",
        "user_permissions",
    ]
