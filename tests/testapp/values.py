"""Module-level values for codec tests: what migrations reference by import path."""

import enum

from django.db import models


class Color(models.TextChoices):
    RED = "r", "Red"
    BLUE = "b", "Blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def default_code() -> str:
    return "x"


def make_code(prefix: str, size: int = 4) -> str:
    return prefix * size


class TimestampMixin:
    """A plain mixin used as a model base."""


class ShoutingQuerySet(models.QuerySet):
    pass


class NamedManager(models.Manager):
    use_in_migrations = True

    def __init__(self, label="default"):
        super().__init__()
        self.label = label


class Upper(models.Func):
    function = "UPPER"
