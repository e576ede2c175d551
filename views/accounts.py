"""Administration: which person each login account belongs to, and whether it is cleared to see
people with protected identity. The workflow (app.accounts) checks and audits every change."""

from flask import flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from app import accounts
from app.errors import NotFound
from app.roles import MENU
from views.registers import STEP_ERRORS, flash_refusal

PAGE_SIZE = 25


def _page() -> int:
    try:
        return max(int(request.values.get("page", 0)), 0)
    except ValueError:
        return 0


def _query() -> str:
    return (request.values.get("q") or "").strip()


class AccountLinkView(BaseView):
    route_base = "/admin/user-links"
    default_view = "index"

    @expose("/", methods=["GET"])
    @has_access
    @permission_name("list")
    def index(self):
        search, page = _query(), _page()
        count, users = accounts.login_page(search, page, PAGE_SIZE)
        pages = max((count + PAGE_SIZE - 1) // PAGE_SIZE, 1)
        return self.render_template("admin/user_links.html", users=users, count=count,
                                    page=page, pages=pages, q=search)

    @expose("/<int:user_id>/link", methods=["POST"])
    @has_access
    @permission_name("link")
    def link(self, user_id):
        hsa_id = request.form.get("hsa_id", "")
        clearance = bool(request.form.get("protected_identity_clearance"))
        try:
            link = accounts.set_link(user_id, hsa_id, protected_identity_clearance=clearance)
        except STEP_ERRORS as exc:
            self._refused(exc)
        except IntegrityError:
            # Another admin linked the same person at the same moment.
            flash(_("Not saved: the person was linked to another login account at the same "
                    "moment."), "danger")
        else:
            flash(_("%(username)s is linked to %(hsa_id)s.", username=link.user.username,
                    hsa_id=link.person.hsa_id), "success")
        return self._back()

    @expose("/<int:user_id>/remove", methods=["POST"])
    @has_access
    @permission_name("remove")
    def remove(self, user_id):
        if not request.form.get("confirm"):
            flash(_("Tick the box to confirm that the link is to be removed."), "danger")
            return self._back()
        try:
            accounts.remove_link(user_id)
        except STEP_ERRORS as exc:
            self._refused(exc)
        else:
            flash(_("The link is removed."), "success")
        return self._back()

    @staticmethod
    def _refused(exc) -> None:
        if isinstance(exc, NotFound) and exc.what == "user":
            flash(_("No login account %(id)s was found.", id=exc.key), "danger")
        else:
            flash_refusal(exc)

    @staticmethod
    def _back():
        # Back to the page and search the form was sent from.
        return redirect(url_for("AccountLinkView.index", q=_query() or None,
                                page=_page() or None))


def register(appbuilder) -> None:
    appbuilder.add_view(
        AccountLinkView, MENU["user_links"], label=_l("User links"), category=MENU["admin"],
        category_label=_l("Administration"), icon="fa-link",
    )
