"""The navbar's menu, made once per process for each language, site root and set of
permissions. FAB's template asks for every entry whether the login may see it, builds its link
and translates its label: about a tenth of a list page's time, and the same for every login
that sees the same entries."""

from flask import current_app, render_template, request
from flask_babel import get_locale
from markupsafe import Markup

MENU_TEMPLATE = "appbuilder/navbar_menu.html"
KEPT = 256  # menus kept per process; past that the cache starts over


def navbar_menu() -> Markup:
    appbuilder = current_app.appbuilder
    access = appbuilder.sm.access_key()
    if access is None:  # no login (the sign-in page): made each time
        return Markup(render_template(MENU_TEMPLATE, menu=appbuilder.menu))
    menus = current_app.extensions.setdefault("reservkort_menus", {})
    key = (str(get_locale()), request.script_root, access)
    found = menus.get(key)
    if found is None:
        if len(menus) >= KEPT:
            menus.clear()
        found = menus[key] = Markup(render_template(MENU_TEMPLATE, menu=appbuilder.menu))
    return found


def register(appbuilder) -> None:
    current_app.jinja_env.globals["navbar_menu"] = navbar_menu
