"""The registered-mail flow for card handlers, step by step: prepare, print the letters, dispatch,
receipt returned, certificate issued in the SITHS portal; blocking on the way.

Each step is one workflow call; a refusal comes back as a message on the same page.
"""

from flask import Response, abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app import labels
from app.access import person_label_with_number as person_label
from app.display import install as install_display
from app.errors import NotFound, RuleViolation
from app.extensions import db
from app.roles import MENU
from app.validation import FieldError
from models import REASONS, Issuance
from views.deviations import flash_refusal
from views.registers import name_for_hsa_id

OPEN_STATUSES = ("prepared", "sent", "receipt_received", "active")
RECENT_CLOSED = 20
# The words of the one table (app/labels.py); the mail flow names two statuses by what they
# mean in this flow.
STATUS_LABELS = {**labels.ISSUANCE_STATUS, "sent": labels.ACTION["issuance.dispatch"],
                 "receipt_received": labels.ACTION["issuance.mail_receipt"]}
REASON_LABELS = labels.REASON
# The step forms an issuance page offers, in the order of the flow (step name of TRANSITIONS).
STEPS = ("dispatched", "receipt_returned", "certificate_issued", "block")


def _workflow():
    # Imported on use: the screens register before the workflow module is first needed.
    from app.workflow import lifecycle, mail_flow

    return mail_flow, lifecycle


def _issuance(issuance_id) -> Issuance:
    issuance = db.session.get(Issuance, issuance_id)
    if issuance is None or issuance.channel != "registered_mail":
        abort(404)
    return issuance


class MailFlowView(BaseView):
    route_base = "/mail-flow"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self, form=None):
        return self.render_template(
            "backoffice_b/mail_flow.html", title=_("Registered mail"),
            form=request.form if form is None else form,
            groups=self._groups(), reasons=[(code, REASON_LABELS[code]) for code in REASONS],
            status_labels=STATUS_LABELS, person_label=person_label,
        )

    def _groups(self):
        """The open mail issuances per status, then the latest closed ones."""
        base = select(Issuance).where(Issuance.channel == "registered_mail")
        open_rows = db.session.execute(
            base.where(Issuance.status.in_(OPEN_STATUSES)).order_by(Issuance.created_at)
        ).unique().scalars().all()
        closed = db.session.execute(
            base.where(Issuance.status.not_in(OPEN_STATUSES))
            .order_by(Issuance.created_at.desc()).limit(RECENT_CLOSED)
        ).unique().scalars().all()
        groups = [(status, [i for i in open_rows if i.status == status])
                  for status in OPEN_STATUSES]
        return groups + [("closed", closed)]

    @expose("/prepare", methods=["POST"])
    @has_access
    def prepare(self):
        mail_flow, _lifecycle = _workflow()
        form = request.form.to_dict()
        if name_for_hsa_id(form, "recipient_hsa_id"):
            return self.index(form)
        try:
            issuance = mail_flow.prepare(
                form.get("card_serial", ""), form.get("recipient_hsa_id", ""),
                form.get("reason", ""), form.get("address", ""), form.get("justification", ""),
            )
        except (RuleViolation, FieldError) as exc:
            flash_refusal(exc)
            return self.index(form)
        except NotFound:
            flash(_("No person with that HSA-id."), "danger")
            return self.index(form)
        flash(_("The mail issuance is prepared. Print the receipt and the information letter."),
              "success")
        return redirect(url_for(".issuance", issuance_id=issuance.id))

    @expose("/issuance/<int:issuance_id>")
    @has_access
    def issuance(self, issuance_id):
        _mail_flow, lifecycle = _workflow()
        item = _issuance(issuance_id)
        steps = [name for name in STEPS if lifecycle.can_transition(item.status, name)]
        return self.render_template(
            "backoffice_b/mail_issuance.html", title=_("Registered mail"), issuance=item,
            steps=steps, status_labels=STATUS_LABELS, reason_labels=REASON_LABELS,
            person_label=person_label,
        )

    @expose("/issuance/<int:issuance_id>/letter.pdf")
    @has_access
    def letter(self, issuance_id):
        from app.pdf import render_mail_letter

        item = _issuance(issuance_id)
        return Response(
            render_mail_letter(item), mimetype="application/pdf",
            headers={"Content-Disposition":
                     f'inline; filename="rekommenderad-post-{item.id}.pdf"'},
        )

    @expose("/issuance/<int:issuance_id>/dispatched", methods=["POST"])
    @has_access
    def dispatched(self, issuance_id):
        number = request.form.get("registered_mail_number", "")
        return self._step(issuance_id, "dispatched", number,
                          done=_l("Recorded as sent by registered mail."))

    @expose("/issuance/<int:issuance_id>/receipt-returned", methods=["POST"])
    @has_access
    def receipt_returned(self, issuance_id):
        return self._step(issuance_id, "receipt_returned",
                          done=_l("The signed receipt is recorded as returned."))

    @expose("/issuance/<int:issuance_id>/certificate-issued", methods=["POST"])
    @has_access
    def certificate_issued(self, issuance_id):
        if request.form.get("confirm") != "yes":
            flash(_("Tick the box \u201cI have created the certificate ...\u201d to confirm that "
                    "the certificate was issued in the SITHS portal."), "danger")
            return redirect(url_for(".issuance", issuance_id=issuance_id))
        return self._step(issuance_id, "certificate_issued",
                          done=_l("The certificate is recorded as issued; the card is active."))

    @expose("/issuance/<int:issuance_id>/block", methods=["POST"])
    @has_access
    def block(self, issuance_id):
        _mail_flow, lifecycle = _workflow()
        _issuance(issuance_id)
        try:
            lifecycle.block(issuance_id, request.form.get("reason", ""))
            flash(_("The card is blocked."), "success")
        except (RuleViolation, FieldError) as exc:
            flash_refusal(exc)
        return redirect(url_for(".issuance", issuance_id=issuance_id))

    def _step(self, issuance_id, name, *args, done):
        mail_flow, _lifecycle = _workflow()
        _issuance(issuance_id)
        try:
            getattr(mail_flow, name)(issuance_id, *args)
            flash(str(done), "success")
        except (RuleViolation, FieldError) as exc:
            flash_refusal(exc)
        return redirect(url_for(".issuance", issuance_id=issuance_id))


def register(appbuilder) -> None:
    install_display()
    appbuilder.add_view(
        MailFlowView, MENU["mail_flow"], label=_l("Registered mail"),
        category=MENU["issuances_cat"], category_label=_l("Issuances"), icon="fa-envelope",
    )
