from django.conf import settings
from django.db import migrations, models

import teamapp.values


class Migration(migrations.Migration):
    dependencies = [("teamapp", "0001_initial")]
    operations = [
        migrations.AddField(
            "ticket",
            "tag",
            models.ForeignKey("taggit.Tag", null=True, on_delete=models.SET_NULL, related_name="+"),
        ),
        migrations.AddField(
            "ticket",
            "code",
            models.CharField(
                default="T-0",
                max_length=20,
                validators=[teamapp.values.PrefixValidator("T-")],
            ),
            preserve_default=False,
        ),
        # A settings-dependent default, and a closure made at import time.
        migrations.AddField(
            "ticket",
            "currency",
            models.CharField(default=settings.OSCAR_DEFAULT_CURRENCY, max_length=3),
        ),
        migrations.AddField(
            "ticket", "priority", models.IntegerField(default=teamapp.values.priority_default)
        ),
        migrations.AddField(
            "ticket",
            "attachment",
            models.FileField(blank=True, upload_to=teamapp.values.attachment_path),
        ),
    ]
