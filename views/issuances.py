"""Issuances for Servicecenter: the list and detail with its history and actions, receipts that
arrive by post, and cards that come back."""


from flask import abort, current_app, flash, redirect, request, send_file, session, url_for
from flask_appbuilder import BaseView, ModelView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, lazyload

from app import clock, display, history, labels
from app.access import person_label
from app.display import channel_label, status_label, with_dash
from app.extensions import db
from app.workflow.queries import OPEN
from models import Issuance, Person, ReserveCard
from views.listing import CursorPagerMixin, ListInterface, SearchBoxMixin
from views.registers import STEP_ERRORS, flash_refusal, step_message
from views.stock import active_pickup_points

PAGE_SIZE = 25
ACTIONS = {"receipt": "register_receipt", "block": "block", "extend": "extend",
           "return": "return_card", "lost": "report_lost"}
# The actions offered at the top of an issuance's page, each leading to its form below.
ACTION_TITLES = {"receipt": _l("Register receipt"), "block": _l("Block"),
                 "extend": _l("Extend"), "return": _l("Return"), "lost": _l("Report lost")}


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


TIME_COLUMNS = ("created_at", "issued_at", "approved_at", "blocked_at", "returned_at", "lost_at",
                "certificate_block_requested_at")


# The status filter's choice for every issuance whose card is out (the start page's count).
CARDS_OUT = "out"


class IssuanceView(CursorPagerMixin, SearchBoxMixin, ModelView):
    route_base = "/issuances"
    # The list shows the card and the recipient: their own further relations and the
    # issuance's attesters, extension and receipt are not read with the page (loaded when a
    # show page touches them).
    datamodel = ListInterface(
        Issuance, lazyload(Issuance.attesters), lazyload(Issuance.extension),
        lazyload(Issuance.receipt), joinedload(Issuance.card).lazyload(ReserveCard.pickup_point),
        joinedload(Issuance.recipient).lazyload(Person.unit),
        joinedload(Issuance.recipient).lazyload(Person.kobe),
        code_columns={"status": "issuance_status", "reason": "reason", "channel": "channel"},
        code_groups={"status": {CARDS_OUT: OPEN}})
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
        "status": labels.search_field("issuance_status", _l("Status"), groups=[
            (CARDS_OUT, _l("Card out (every open issuance)"))]),
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

    @expose("/show/<int:pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        from app.workflow import lifecycle, queries

        widgets = self._show(pk)
        issuance = db.session.get(Issuance, pk)
        allowed, possible = self._allowed(), lifecycle.possible_steps(issuance)
        return self.render_template(
            self.show_template, pk=pk, title=self.show_title, widgets=widgets,
            issuance=issuance, history=history.issuance_history(pk), allowed=allowed,
            possible=possible, offered=[name for name in ACTIONS
                                        if allowed[name] and possible[name]],
            action_titles=ACTION_TITLES,
            due=[labels.due_text(item) for item in queries.due_next(issuance)],
            attesters=[person_label(a.person) for a in issuance.attesters],
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
        from app.workflow import queries

        due_soon, overdue = receipts_due_lists()
        pending_count, overdue_count = queries.receipts_due_count(clock.now())
        return self.render_template("backoffice/issuance_receipts.html", due_soon=due_soon,
                                    overdue=overdue, serial=request.args.get("serial", ""),
                                    person_label=person_label, pending_count=pending_count,
                                    overdue_count=overdue_count)

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


RECEIPTS_SHOWN = 200


def receipts_due_lists(limit=None):
    """(pending, overdue): the receipts not yet in, as (issuance, days left or over) pairs,
    most urgent first; at most `limit` (the page says how many there are in all)."""
    from app.workflow import queries

    rows = db.session.execute(queries.receipts_due(clock.now()).limit(
        limit or RECEIPTS_SHOWN)).unique().all()
    due_soon = [(issuance, days) for issuance, days in rows if days >= 0]
    overdue = [(issuance, -days) for issuance, days in rows if days < 0]
    return due_soon, overdue


SCAN_BATCH = "rk_return_batch"
SCAN_BATCH_KEPT = 40
SCAN_THEN = {"restock": _l("The cards go back into stock"),
             "destroy": _l("The cards are destroyed")}


def scan_outcome(then, follow_up) -> str:
    """What became of one returned card of the batch, in words."""
    if follow_up is not None:
        return _("Returned, but not %(step)s: %(why)s The card waits under Returns.",
                 step=_("restocked") if then == "restock" else _("destroyed"),
                 why=step_message(follow_up))
    if then == "restock":
        return _("Returned and back in stock.")
    return _("Returned and registered as destroyed.")


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

    # --- scan mode: one card after another, restock or destroy chosen once for the batch ----

    @expose("/scan/", methods=["GET"])
    @has_access
    @permission_name("list")
    def scan(self):
        batch = session.get(SCAN_BATCH)
        return self.render_template(
            "backoffice/return_scan.html", batch=batch, then_labels=SCAN_THEN,
            returned=sum(1 for entry in (batch or {}).get("entries", ()) if entry["ok"]),
            refused=sum(1 for entry in (batch or {}).get("entries", ()) if not entry["ok"]),
        )

    @expose("/scan/start", methods=["POST"])
    @has_access
    @permission_name("return")
    def scan_start(self):
        then = request.form.get("then")
        if then not in SCAN_THEN:
            flash(_("Choose whether the cards of this batch are restocked or destroyed."),
                  "danger")
        else:
            session[SCAN_BATCH] = {"then": then, "entries": []}
        return redirect(url_for("ReturnsView.scan"))

    @expose("/scan/", methods=["POST"])
    @has_access
    @permission_name("return")
    def scan_card(self):
        from app.workflow import lifecycle

        batch = session.get(SCAN_BATCH)
        if not batch:
            flash(_("Start a batch first: choose restock or destroy."), "danger")
            return redirect(url_for("ReturnsView.scan"))
        serial = request.form.get("serial", "").strip()
        try:
            issuance, follow_up = lifecycle.return_scanned(serial, batch["then"])
        except STEP_ERRORS as exc:
            entry = {"serial": serial, "ok": False, "text": step_message(exc)}
        else:
            entry = {"serial": issuance.card.serial, "ok": True, "issuance_id": issuance.id,
                     "text": scan_outcome(batch["then"], follow_up)}
        # Newest first; a long batch keeps its latest cards (the session is a cookie).
        batch["entries"] = [entry, *batch["entries"]][:SCAN_BATCH_KEPT]
        session[SCAN_BATCH] = batch
        return redirect(url_for("ReturnsView.scan"))

    @expose("/scan/end", methods=["POST"])
    @has_access
    @permission_name("list")
    def scan_end(self):
        session.pop(SCAN_BATCH, None)
        return redirect(url_for("ReturnsView.scan"))

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
