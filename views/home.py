"""The start page: each role's own counts."""

from flask_appbuilder import IndexView


class HomeView(IndexView):
    index_template = "home.html"


def register(appbuilder) -> None:
    """The index view is registered by AppBuilder itself (FAB_INDEX_VIEW)."""
