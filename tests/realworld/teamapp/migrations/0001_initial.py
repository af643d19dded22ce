# Hand-written, as the team's own migrations often are: values computed at import time.
import datetime
import uuid

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

import teamapp.values


class Migration(migrations.Migration):
    initial = True
    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("taggit", "0006_rename_taggeditem_content_type_object_id_taggit_tagg_content_8fc721_idx"),
    ]
    operations = [
        migrations.CreateModel(
            name="Ticket",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=models.SET(teamapp.values.sentinel_user),
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                # Import-time values: different in every process that loads this migration.
                ("created", models.DateTimeField(default=timezone.now())),
                ("token", models.CharField(default=uuid.uuid4().hex, max_length=32)),
                (
                    "since",
                    models.DateField(default=datetime.date.today() - datetime.timedelta(days=1)),
                ),
            ],
        ),
    ]
