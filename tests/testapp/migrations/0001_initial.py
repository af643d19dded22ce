import functools

import django.db.models.deletion
from django.db import migrations, models

import tests.testapp.values


class Migration(migrations.Migration):
    initial = True
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]
    operations = [
        migrations.CreateModel(
            name="Author",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                (
                    "name",
                    models.CharField(max_length=50, default=tests.testapp.values.default_code),
                ),
                (
                    "code",
                    models.CharField(
                        max_length=20,
                        default=functools.partial(tests.testapp.values.make_code, "a"),
                    ),
                ),
                (
                    "color",
                    models.CharField(
                        choices=tests.testapp.values.Color.choices,
                        default=tests.testapp.values.Color.RED,
                        max_length=1,
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        null=True, on_delete=django.db.models.deletion.SET_NULL, to="auth.user"
                    ),
                ),
            ],
            bases=(tests.testapp.values.TimestampMixin, models.Model),
            managers=[("objects", tests.testapp.values.NamedManager("authors"))],
        ),
        migrations.CreateModel(
            name="Book",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("title", models.CharField(max_length=100)),
                (
                    "author",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, to="testapp.author"
                    ),
                ),
            ],
            options={"ordering": ["title"]},
        ),
    ]
