"""The accessibility statement (tillgänglighetsredogörelse) that the Swedish law on the
accessibility of digital public services asks for, open to everyone, with a way to report a
problem; every page's footer links it."""

from flask import current_app
from flask_appbuilder import BaseView, expose


class AccessibilityView(BaseView):
    route_base = "/tillganglighet"
    default_view = "statement"

    @expose("/")
    def statement(self):
        cfg = current_app.config
        return self.render_template("accessibility.html",
                                    contact=cfg["ACCESSIBILITY_CONTACT"],
                                    reviewed_on=cfg["ACCESSIBILITY_REVIEWED_ON"])


def register(appbuilder) -> None:
    appbuilder.add_view_no_menu(AccessibilityView())
