"""No views are served: the corpus exists for its migrations. Some apps' checks want a root URLconf."""

urlpatterns: list = []
