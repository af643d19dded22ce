from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("testapp", "0002_more")]
    operations = [
        migrations.RenameField("book", "pages", "page_count"),
        migrations.AlterField("author", "name", models.CharField(max_length=80)),
        migrations.RunSQL("SELECT 1", "SELECT 1"),
    ]
