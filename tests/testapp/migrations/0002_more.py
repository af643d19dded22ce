from django.db import migrations, models


def forwards(apps, schema_editor):
    apps.get_model("testapp", "Book").objects.filter(title="").update(title="untitled")


class Migration(migrations.Migration):
    dependencies = [("testapp", "0001_initial")]
    operations = [
        migrations.AddField("book", "pages", models.IntegerField(default=0)),
        migrations.AddIndex("book", models.Index(fields=["title"], name="book_title_idx")),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
