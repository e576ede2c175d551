"""Issuances for Servicecenter: the list and detail with its history and actions, receipts that
arrive by post, and cards that come back."""


from flask import abort, current_app, flash, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, ModelView, expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload, lazyload

from app import clock, display, labels
from app.access import person_label
from app.display import channel_label, status_label, with_dash
from app.extensions import db
from models import AuditEvent, Issuance, Person, ReserveCard
from views.listing import ListInterface
from views.registers import STEP_ERRORS, flash_refusal
from views.stock import active_pickup_points

PAGE_SIZE = 25
ACTIONS = {"receipt": "register_receipt", "block": "block", "extend": "extend",
           "return": "return_card", "lost": "report_lost"}


def reason_label(reason) -> str:
    return labels.reason(reason)


def uploaded_scan():
    """(bytes, filename) of an uploaded scan, or (None, None). Reads at most one byte more than
    allowed, so the workflow can refuse a file that is too large."""
    upload = request.files.get("scan")
    if upload is None or not upload.filename:
        return None, None
    return upload.read(current_app.config["MAX_UPLOAD_BYTES"] + 1), upload.filename


def confirmed() -> bool:
    if request.form.get("confirm"):
        return True
    flash(_("Tick the confirmation box to go ahead."), "warning")
    return False


class SerialOrHsaIdFilter(BaseFilter):
    """Search by the card serial or the recipient's HSA-id without listing every row."""

    name = _l("Card serial or HSA-id")
    arg_name = "serial_or_hsa"

    def apply(self, query, value):
        text = (value or "").strip().upper()
        return query.filter(or_(
            Issuance.card_id.in_(select(ReserveCard.id).where(ReserveCard.serial == text)),
            Issuance.recipient_id.in_(select(Person.id).where(Person.hsa_id == text)),
        ))


TIME_COLUMNS = ("created_at", "issued_at", "approved_at", "blocked_at", "returned_at", "lost_at",
                "certificate_block_requested_at")


class IssuanceView(ModelView):
    route_base = "/issuances"
    # The list shows the card and the recipient: their own further relations and the
    # issuance's attesters, extension and receipt are not read with the page (loaded when a
    # show page touches them).
    datamodel = ListInterface(
        Issuance, lazyload(Issuance.attesters), lazyload(Issuance.extension),
        lazyload(Issuance.receipt), joinedload(Issuance.card).lazyload(ReserveCard.pickup_point),
        joinedload(Issuance.recipient).lazyload(Person.unit),
        joinedload(Issuance.recipient).lazyload(Person.kobe),
        code_columns={"status": "issuance_status", "reason": "reason", "channel": "channel"})
    base_permissions = ["can_list", "can_show", "can_receipt", "can_scan", "can_block",
                        "can_extend", "can_return", "can_lost"]
    page_size = PAGE_SIZE
    list_title = _l("All issuances")
    show_title = _l("Issuance")
    list_columns = ["id", "card", "recipient", "reason", "channel", "status", "valid_until",
                    "receipt_due", "created_at"]
    show_columns = ["id", "card", "recipient", "reason", "assignment", "channel", "status",
                    "created_at", "issued_at", "valid_until", "original_days", "receipt_due",
                    "kobe_reference", "approved_at", "rejection_reason", "block_reason",
                    "blocked_at", "returned_at", "lost_at", "lost_note",
                    "certificate_block_requested_at", "registered_mail_number", "justification"]
    search_columns = ["status", "reason", "channel", "created_at", "valid_until", "receipt_due"]
    # Choose status, reason and channel by their Swedish names instead of typing the codes.
    search_form_extra_fields = {
        "status": labels.search_field("issuance_status", _l("Status")),
        "reason": labels.search_field("reason", _l("Reason")),
        "channel": labels.search_field("channel", _l("Channel")),
    }
    order_columns = ["id", "reason", "channel", "status", "valid_until", "receipt_due",
                     "created_at"]
    base_order = ("created_at", "desc")
    label_columns = {
        "id": _l("No."),
        "card": _l("Card"),
        "recipient": _l("Recipient"),
        "reason": _l("Reason"),
        "assignment": _l("Assignment"),
        "channel": _l("Channel"),
        "status": _l("Status"),
        "created_at": _l("Created"),
        "issued_at": _l("Issued"),
        "valid_until": _l("Valid until"),
        "original_days": _l("Days"),
        "receipt_due": _l("Receipt due"),
        "kobe_reference": _l("Kobe reference"),
        "approved_at": _l("Approved"),
        "rejection_reason": _l("Reason for rejection"),
        "block_reason": _l("Reason for blocking"),
        "blocked_at": _l("Blocked"),
        "returned_at": _l("Returned"),
        "lost_at": _l("Reported lost"),
        "lost_note": _l("How the card was lost"),
        "certificate_block_requested_at": _l("Certificate to be blocked"),
        "registered_mail_number": _l("Registered mail number"),
        "justification": _l("Why registered mail"),
    }
    # Every column gets a formatter, so an empty value reads "–", never "None".
    formatters_columns = {
        **{column: display.dash for column in show_columns},
        **{column: display.local_time for column in TIME_COLUMNS},
        "recipient": with_dash(person_label), "reason": with_dash(reason_label),
        "status": status_label, "channel": channel_label,
    }
    list_template = "backoffice/issuance_list.html"
    show_template = "backoffice/issuance_show.html"

    def _get_list_widget(self, filters, **kwargs):
        query = request.args.get("q", "").strip()
        if query:
            filters = filters.copy()
            filters.add_filter("id", SerialOrHsaIdFilter, query)
        return super()._get_list_widget(filters, **kwargs)

    @expose("/show/<int:pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        widgets = self._show(pk)
        issuance = db.session.get(Issuance, pk)
        from app.workflow import lifecycle

        possible = {name: lifecycle.can_transition(issuance.status, step)
                    for name, step in ACTIONS.items()}
        possible["receipt"] = possible["receipt"] and lifecycle.receipt_pending(issuance)
        return self.render_template(
            self.show_template, pk=pk, title=self.show_title, widgets=widgets,
            issuance=issuance, history=issuance_history(pk), allowed=self._allowed(),
            possible=possible, attesters=[person_label(a.person) for a in issuance.attesters],
            has_scan=lifecycle.scan_file(issuance) is not None,
        )

    def _allowed(self) -> dict:
        sm = self.appbuilder.sm
        return {name: sm.has_access(f"can_{name}", self.class_permission_name)
                for name in ACTIONS}

    @expose("/<int:pk>/receipt", methods=["POST"])
    @has_access
    @permission_name("receipt")
    def receipt(self, pk):
        from app.workflow import lifecycle

        scan, filename = uploaded_scan()
        return self._step(pk, lifecycle.register_receipt, pk, scan, filename,
                          success=_("The receipt is registered."))

    @expose("/<int:pk>/scan", methods=["GET"])
    @has_access
    @permission_name("scan")  # reading the scan, apart from registering a receipt
    def scan(self, pk):
        from app.workflow import lifecycle

        issuance = db.session.get(Issuance, pk) or abort(404)
        path = lifecycle.scan_file(issuance)
        if path is None or not path.exists():
            abort(404)
        return send_file(path, mimetype=issuance.receipt.scan_mime)

    @expose("/<int:pk>/block", methods=["POST"])
    @has_access
    @permission_name("block")
    def block(self, pk):
        from app.workflow import lifecycle

        if not confirmed():
            return redirect(url_for("IssuanceView.show", pk=pk))
        return self._step(pk, lifecycle.block, pk, request.form.get("reason", ""),
                          success=_("The card is blocked."))

    @expose("/<int:pk>/lost", methods=["POST"])
    @has_access
    @permission_name("lost")
    def lost(self, pk):
        from app.workflow import lifecycle

        if not confirmed():
            return redirect(url_for("IssuanceView.show", pk=pk))
        return self._step(pk, lifecycle.report_lost, pk, request.form.get("note", ""),
                          success=_("The card is reported lost; its certificate is to be "
                                    "blocked and a deviation is filed."))

    @expose("/<int:pk>/extend", methods=["POST"])
    @has_access
    @permission_name("extend")
    def extend(self, pk):
        from app.workflow import lifecycle

        same_reason = bool(request.form.get("same_reason"))
        return self._step(pk, lifecycle.extend, pk, same_reason,
                          success=_("The validity is extended."))

    @expose("/<int:pk>/return", methods=["POST"])
    @has_access
    @permission_name("return")
    def return_card(self, pk):
        from app.workflow import lifecycle

        if not confirmed():
            return redirect(url_for("IssuanceView.show", pk=pk))
        then = request.form.get("then") or None
        return self._step(pk, lifecycle.return_card, pk, then,
                          success=_("The card is registered as returned."))

    def _step(self, pk, function, *args, success):
        try:
            function(*args)
        except STEP_ERRORS as exc:
            flash_refusal(exc)
        else:
            flash(success, "success")
        return redirect(url_for("IssuanceView.show", pk=pk))


def issuance_history(issuance_id) -> list:
    """Who did what when to one issuance, from the audit log."""
    return db.session.execute(
        select(AuditEvent).where(AuditEvent.entity == "issuance",
                                 AuditEvent.entity_id == issuance_id)
        .order_by(AuditEvent.at, AuditEvent.id)
    ).scalars().all()


def _page() -> int:
    try:
        return max(int(request.args.get("page", 0)), 0)
    except ValueError:
        return 0


class ReceiptsView(BaseView):
    """Register a signed receipt that came by post: scan the card serial, optionally the scan."""

    route_base = "/receipts"
    default_view = "index"

    @expose("/", methods=["GET"])
    @has_access
    @permission_name("list")
    def index(self):
        due_soon, overdue = receipts_due_lists()
        return self.render_template("backoffice/issuance_receipts.html", due_soon=due_soon,
                                    overdue=overdue, serial=request.args.get("serial", ""),
                                    person_label=person_label)

    @expose("/", methods=["POST"])
    @has_access
    @permission_name("register")
    def register(self):
        from app.workflow import lifecycle

        serial = request.form.get("serial", "")
        scan, filename = uploaded_scan()
        try:
            issuance = lifecycle.find_open_issuance_by_serial(serial)
            lifecycle.register_receipt(issuance.id, scan, filename)
        except STEP_ERRORS as exc:
            flash_refusal(exc)
            return redirect(url_for("ReceiptsView.index", serial=serial.strip()))
        flash(_("The receipt for card %(serial)s is registered.", serial=issuance.card.serial),
              "success")
        return redirect(url_for("ReceiptsView.index"))


def receipts_due_lists(limit=200):
    """(pending, overdue): every receipt not yet in, as (issuance, days left or over) pairs,
    most urgent first."""
    from app.workflow import queries

    rows = db.session.execute(queries.receipts_due(clock.now()).limit(limit)).unique().all()
    due_soon = [(issuance, days) for issuance, days in rows if days >= 0]
    overdue = [(issuance, -days) for issuance, days in rows if days < 0]
    return due_soon, overdue


class ReturnsView(BaseView):
    """Cards that come back: register the return by serial; then restock or destroy."""

    route_base = "/returns"
    default_view = "index"

    @expose("/", methods=["GET"])
    @has_access
    @permission_name("list")
    def index(self):
        page = _page()
        returned = select(ReserveCard).where(ReserveCard.status == "returned")
        count = db.session.execute(
            select(func.count()).select_from(returned.subquery())).scalar()
        cards = db.session.execute(
            returned.order_by(ReserveCard.expires_on, ReserveCard.serial)
            .limit(PAGE_SIZE).offset(page * PAGE_SIZE)
        ).scalars().all()
        return self.render_template(
            "backoffice/issuance_returns.html", cards=cards, count=count, page=page,
            page_size=PAGE_SIZE, pickup_points=active_pickup_points(),
            serial=request.args.get("serial", ""),
        )

    @expose("/", methods=["POST"])
    @has_access
    @permission_name("return")
    def register_return(self):
        from app.workflow import lifecycle

        serial = request.form.get("serial", "")
        then = request.form.get("then") or None
        try:
            issuance = lifecycle.find_open_issuance_by_serial(serial)
            lifecycle.return_card(issuance.id, then)
        except STEP_ERRORS as exc:
            flash_refusal(exc)
            return redirect(url_for("ReturnsView.index", serial=serial.strip()))
        flash(_("Card %(serial)s is registered as returned.", serial=issuance.card.serial),
              "success")
        return redirect(url_for("ReturnsView.index"))

    @expose("/<int:card_id>/restock", methods=["POST"])
    @has_access
    @permission_name("restock")
    def restock(self, card_id):
        from app.workflow import stock

        card = db.session.get(ReserveCard, card_id) or abort(404)
        point_id = request.form.get("pickup_point_id", type=int)
        return self._step(stock.restock, card.serial, point_id,
                          success=_("Card %(serial)s is back in stock.", serial=card.serial))

    @expose("/<int:card_id>/destroy", methods=["POST"])
    @has_access
    @permission_name("destroy")
    def destroy(self, card_id):
        from app.workflow import stock

        card = db.session.get(ReserveCard, card_id) or abort(404)
        if not confirmed():
            return redirect(url_for("ReturnsView.index"))
        return self._step(stock.destroy, card.serial, request.form.get("note") or None,
                          success=_("Card %(serial)s is registered as destroyed.",
                                    serial=card.serial))

    def _step(self, function, *args, success):
        try:
            function(*args)
        except STEP_ERRORS as exc:
            flash_refusal(exc)
        else:
            flash(success, "success")
        return redirect(url_for("ReturnsView.index"))


def register(appbuilder) -> None:
    display.install()
    appbuilder.add_view(IssuanceView, "All issuances", label=_l("All issuances"),
                        category="Issuances", category_label=_l("Issuances"), icon="fa-list")
    appbuilder.add_view(ReceiptsView, "Receipts", label=_l("Receipts"), category="Issuances",
                        icon="fa-file-text-o")
    appbuilder.add_view(ReturnsView, "Returns", label=_l("Returns"), category="Issuances",
                        icon="fa-undo")
