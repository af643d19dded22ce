"""No views are served: the corpus exists for its migrations (some checks want a URLconf)."""

urlpatterns: list = []
