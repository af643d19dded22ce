from django.db import migrations


def create_default(apps, schema_editor):
    Category = apps.get_model("catalog", "Category")
    Category.objects.using(schema_editor.connection.alias).get_or_create(name="uncategorized")


def delete_default(apps, schema_editor):
    Category = apps.get_model("catalog", "Category")
    Category.objects.using(schema_editor.connection.alias).filter(name="uncategorized").delete()


class Migration(migrations.Migration):
    dependencies = [("catalog", "0002_tags_and_sku")]
    operations = [migrations.RunPython(create_default, delete_default)]
