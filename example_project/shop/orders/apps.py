from django.apps import AppConfig


class Config(AppConfig):
    name = "shop.orders"
    label = "orders"
