"""Administration: accounts locked after repeated failed sign-ins, and unlocking them. The
counting and the unlock (with its audit row) are app.signin_limits."""

from flask import flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app import signin_limits
from app.roles import MENU


class SigninLockView(BaseView):
    route_base = "/admin/signin-locks"
    default_view = "index"

    @expose("/", methods=["GET"])
    @has_access
    @permission_name("list")
    def index(self):
        return self.render_template("admin/signin_locks.html",
                                    locks=signin_limits.locked_accounts())

    @expose("/unlock", methods=["POST"])
    @has_access
    @permission_name("unlock")
    def unlock(self):
        username = request.form.get("username", "")
        if signin_limits.unlock(username):
            flash(_("%(username)s is unlocked and may sign in again.", username=username),
                  "success")
        else:
            flash(_("%(username)s was not locked.", username=username), "warning")
        return redirect(url_for("SigninLockView.index"))


def register(appbuilder) -> None:
    appbuilder.add_view(
        SigninLockView, MENU["signin_locks"], label=_l("Locked accounts"),
        category=MENU["admin"], category_label=_l("Administration"), icon="fa-lock",
    )
