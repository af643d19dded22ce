"""Values the team's own migrations use, as hand-written migrations in real projects do: a
closure made at import, a validator without __eq__, a sentinel for models.SET(...)."""

from __future__ import annotations

import functools

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible


def make_default(value: int):
    def default() -> int:
        return value

    return default


# A closure: importable by no path (its __qualname__ has <locals>), different in every process.
priority_default = make_default(3)


@deconstructible
class PrefixValidator:
    """Deconstructible but without __eq__ (as django-machina's validators): two instances made
    from the same arguments compare unequal."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, value: str) -> None:
        if not value.startswith(self.prefix):
            raise ValidationError(f"must start with {self.prefix}")


def upload_path(kind: str, instance, filename: str) -> str:
    return f"{kind}/{filename}"


attachment_path = functools.partial(upload_path, "attachments")


def sentinel_user():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get_or_create(username="deleted")[0]
