from django.apps import AppConfig


class Config(AppConfig):
    name = "shop.catalog"
    label = "catalog"
