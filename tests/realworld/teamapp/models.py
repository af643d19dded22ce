"""The team's own app in the corpus (see ../README.md): its migrations are hand-written to hold
what the third-party packages' histories have only on some Django versions."""

import uuid

from django.conf import settings
from django.db import models

from . import values


class Ticket(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET(values.sentinel_user), related_name="+"
    )
    tag = models.ForeignKey("taggit.Tag", null=True, on_delete=models.SET_NULL, related_name="+")
    code = models.CharField(max_length=20, validators=[values.PrefixValidator("T-")])
    priority = models.IntegerField(default=values.priority_default)
    attachment = models.FileField(upload_to=values.attachment_path, blank=True)
    currency = models.CharField(max_length=3, default=settings.OSCAR_DEFAULT_CURRENCY)


class Note(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="notes")
    text = models.TextField()

    class Meta:
        db_table = "teamapp_ticket_note"
