from django.db import models

from .fields import SKUField


class Category(models.Model):
    name = models.CharField(max_length=50, unique=True)


class Tag(models.Model):
    label = models.SlugField(unique=True)


class Product(models.Model):
    title = models.CharField(max_length=100)
    sku = SKUField(unique=True, null=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    discontinued = models.BooleanField(default=False)
    tags = models.ManyToManyField(Tag, through="ProductTag", related_name="products")


class ProductTag(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE)
    weight = models.SmallIntegerField(default=0)
