"""Televäxeln's approval queue: check each new issuance in Kobe, then approve or reject."""

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app import labels
from app.access import person_label
from app.display import install as install_display
from app.extensions import db
from models import Issuance
from views.issuances import reason_label, status_label
from views.registers import STEP_ERRORS, flash_refusal

PAGE_SIZE = 25


def _page() -> int:
    try:
        return max(int(request.args.get("page", 0)), 0)
    except ValueError:
        return 0


def register_says_text(value) -> str:
    if isinstance(value, bool):
        return labels.yes_no(value)
    return labels.label("ordinary_card", value)


class ApprovalQueueView(BaseView):
    route_base = "/approval"
    default_view = "index"

    @expose("/", methods=["GET"])
    @has_access
    @permission_name("list")
    def index(self):
        from app.workflow import queries

        queue = queries.approval_queue()
        count = db.session.execute(select(func.count()).select_from(queue.subquery())).scalar()
        page = _page()
        issuances = db.session.execute(
            queue.limit(PAGE_SIZE).offset(page * PAGE_SIZE)
        ).unique().scalars().all()
        return self.render_template(
            "backoffice/approval_queue.html", issuances=issuances, count=count, page=page,
            page_size=PAGE_SIZE, person_label=person_label, reason_label=reason_label,
        )

    @expose("/<int:pk>", methods=["GET"])
    @has_access
    @permission_name("approve")
    def item(self, pk):
        return self._item(pk, confirmed=set(), kobe_reference="", rejection="")

    @expose("/<int:pk>/approve", methods=["POST"])
    @has_access
    @permission_name("approve")
    def approve(self, pk):
        from app.workflow import approval

        issuance = self._issuance(pk)
        keys = [check["key"] for check in approval.approval_checks(issuance)]
        checks = {key: bool(request.form.get(f"check_{key}")) for key in keys}
        reference = request.form.get("kobe_reference", "")
        try:
            approval.approve(pk, reference, checks)
        except STEP_ERRORS as exc:
            flash_refusal(exc)
            confirmed = {key for key, ok in checks.items() if ok}
            return self._item(pk, confirmed=confirmed, kobe_reference=reference,
                              rejection="")
        flash(_("Issuance %(id)s is approved; the recipient and attesters are told.", id=pk),
              "success")
        return redirect(url_for("ApprovalQueueView.index"))

    @expose("/<int:pk>/reject", methods=["POST"])
    @has_access
    @permission_name("reject")
    def reject(self, pk):
        from app.workflow import approval

        self._issuance(pk)
        reason = request.form.get("reason", "")
        try:
            approval.reject(pk, reason)
        except STEP_ERRORS as exc:
            flash_refusal(exc)
            return self._item(pk, confirmed=set(), kobe_reference="", rejection=reason)
        flash(_("Issuance %(id)s is rejected; the recipient and attesters are told.", id=pk),
              "success")
        return redirect(url_for("ApprovalQueueView.index"))

    def _issuance(self, pk) -> Issuance:
        issuance = db.session.get(Issuance, pk)
        if issuance is None:
            abort(404)
        return issuance

    def _item(self, pk, confirmed, kobe_reference, rejection):
        from app.workflow import approval

        issuance = self._issuance(pk)
        if issuance.status != "awaiting_approval":
            flash(_("Issuance %(id)s is not waiting for approval (it is %(status)s).", id=pk,
                    status=status_label(issuance.status)), "warning")
            return redirect(url_for("ApprovalQueueView.index"))
        checks = approval.approval_checks(issuance)
        return self.render_template(
            "backoffice/approval_item.html", issuance=issuance, checks=checks,
            confirmed=confirmed, kobe_reference=kobe_reference, rejection=rejection,
            person_label=person_label, reason_label=reason_label,
            register_says_text=register_says_text,
        )


def register(appbuilder) -> None:
    install_display()
    appbuilder.add_view(ApprovalQueueView, "Approval queue", label=_l("Approval queue"),
                        category="Issuances", category_label=_l("Issuances"),
                        icon="fa-check-square-o")
