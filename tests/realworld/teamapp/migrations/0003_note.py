from django.db import migrations, models


def add_ticket(apps, schema_editor):
    User = apps.get_model("auth", "User")
    owner, _ = User.objects.get_or_create(username="teamapp")
    apps.get_model("teamapp", "Ticket").objects.create(owner=owner, code="T-1")


def remove_ticket(apps, schema_editor):
    apps.get_model("teamapp", "Ticket").objects.filter(code="T-1").delete()


class Migration(migrations.Migration):
    dependencies = [("teamapp", "0002_tag_code"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [
        # The table exists before the model: created by SQL, then declared in the state only.
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'CREATE TABLE "teamapp_ticket_note" ('
                    '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "text" text NOT NULL, '
                    '"ticket_id" char(32) NOT NULL REFERENCES "teamapp_ticket" ("id") '
                    "DEFERRABLE INITIALLY DEFERRED)",
                    reverse_sql='DROP TABLE "teamapp_ticket_note"',
                ),
            ],
            state_operations=[
                migrations.CreateModel(
                    name="Note",
                    fields=[
                        (
                            "id",
                            models.AutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("text", models.TextField()),
                        (
                            "ticket",
                            models.ForeignKey(
                                on_delete=models.CASCADE,
                                related_name="notes",
                                to="teamapp.ticket",
                            ),
                        ),
                    ],
                    options={"db_table": "teamapp_ticket_note"},
                ),
            ],
        ),
        migrations.RunPython(add_ticket, remove_ticket),
        migrations.RunSQL(
            "UPDATE teamapp_ticket SET priority = 5 WHERE code = 'T-1'", migrations.RunSQL.noop
        ),
    ]
