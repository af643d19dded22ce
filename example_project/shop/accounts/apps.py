from django.apps import AppConfig


class Config(AppConfig):
    name = "shop.accounts"
    label = "accounts"
