def touch(app_label, model_name, apps, schema_editor):
    """A data migration step: uses the historical model, as RunPython code does."""
    model = apps.get_model(app_label, model_name)
    model.objects.using(schema_editor.connection.alias).filter(pk__lt=0).count()
