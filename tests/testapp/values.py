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


_WRAPPED: dict[type, type] = {}


class WrappedMixin:
    """As django-cryptography's fields: the class is made by `wrap()`, is not importable, and
    deconstructs to `wrap` and a new base field each time."""

    def deconstruct(self):
        name, _, args, kwargs = super().deconstruct()
        return name, "tests.testapp.values.wrap", [type(self).__mro__[2](*args, **kwargs)], {}

    def clone(self):
        _, _, args, kwargs = super().deconstruct()
        return wrap(type(self).__mro__[2](*args, **kwargs))


def wrap(field: models.Field) -> models.Field:
    base = type(field)
    if base not in _WRAPPED:
        _WRAPPED[base] = type("Wrapped" + base.__name__, (WrappedMixin, base), {})
    _, _, args, kwargs = field.deconstruct()
    return _WRAPPED[base](*args, **kwargs)
