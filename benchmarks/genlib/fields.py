from django.db import models


class UpperCharField(models.CharField):
    """A custom field class, as real projects have: stores its value upper-cased."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value.upper() if isinstance(value, str) else value
