"""Stock: the sealed cards per pickup point, batch registration of envelopes, pickup points."""

from datetime import date, timedelta

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_appbuilder import BaseView, ModelView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from sqlalchemy import select
from wtforms import BooleanField
from wtforms.validators import NumberRange

from app import clock, labels
from app.access import AccessInterface
from app.display import install as install_display
from app.extensions import db
from models import LOA_LEVELS, PickupPoint, ReserveCard
from views.listing import ListInterface
from views.registers import STEP_ERRORS, AuditedModelView, flash_refusal

PRODUCT_CODES = ("473", "573")
MAX_SERIAL_FILE_BYTES = 1024 * 1024
CARD_STATUS_LABELS = {
    "in_stock": _l("In stock"),
    "issued": _l("Issued"),
    "returned": _l("Returned, awaiting restock or destruction"),
    "lost": _l("Lost"),
    "destroyed": _l("Destroyed"),
}


def card_status_label(status) -> str:
    return str(CARD_STATUS_LABELS.get(status, status))


def expires_soon(expires_on) -> bool:
    """Whether a card is within CARD_EXPIRY_WARNING_DAYS of its own expiry (or past it)."""
    if expires_on is None:
        return False
    limit = clock.today() + timedelta(days=current_app.config["CARD_EXPIRY_WARNING_DAYS"])
    return expires_on <= limit


def expiry_with_warning(expires_on):
    """The expiry date; past it marked expired, near it marked expires soon."""
    if not expires_soon(expires_on):
        return expires_on
    if expires_on < clock.today():
        return Markup('<span class="text-danger rk-danger card-expired" title="{t}">'
                      '<i class="fa fa-ban"></i> {d} ({label})</span>').format(
            t=_("The card is past its own expiry date"), d=escape(expires_on),
            label=_("expired, do not lend"))
    title = _("Expires within %(days)s days", days=current_app.config["CARD_EXPIRY_WARNING_DAYS"])
    return Markup('<span class="text-warning card-expiry-warning" title="{t}">'
                  '<i class="fa fa-exclamation-triangle"></i> {d} ({label})</span>').format(
        t=title, d=escape(expires_on), label=_("expires soon"))


JUST_REGISTERED_SHOWN = 50


def _just_registered():
    """The cards the last batch registration saved (once, after its redirect), or None."""
    batch = session.pop("rk_just_registered", None)
    if not batch:
        return None
    cards = db.session.execute(
        select(ReserveCard).where(ReserveCard.serial.in_(batch["serials"]))
        .order_by(ReserveCard.serial)
    ).scalars().all()
    return {"cards": cards, "count": batch["count"]}


def active_pickup_points():
    return db.session.execute(
        select(PickupPoint).where(PickupPoint.active.is_(True)).order_by(PickupPoint.name)
    ).scalars().all()


def _card_or_404(pk) -> ReserveCard:
    card = db.session.get(ReserveCard, pk)
    if card is None:
        abort(404)
    return card


def _int_or_none(value):
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


class CardView(ModelView):
    """The stock: oldest expiry first, with a warning near a card's own expiry and a summary
    per pickup point against its minimum stock."""

    route_base = "/stock/cards"
    datamodel = ListInterface(ReserveCard)
    base_permissions = ["can_list", "can_show", "can_move", "can_lost", "can_restock",
                        "can_destroy"]
    page_size = 25
    list_title = _l("Cards in stock")
    show_title = _l("Card")
    list_columns = ["serial", "product_code", "loa", "expires_on", "status", "pickup_point"]
    show_columns = ["serial", "product_code", "loa", "expires_on", "status", "pickup_point",
                    "created_at"]
    search_columns = ["serial", "product_code", "loa", "status", "expires_on", "pickup_point"]
    search_form_extra_fields = {
        "loa": labels.search_field("loa", _l("LOA")),
        "status": labels.search_field("card_status", _l("Status")),
    }
    order_columns = ["serial", "product_code", "loa", "expires_on", "status"]
    base_order = ("expires_on", "asc")
    label_columns = {
        "serial": _l("Card serial"),
        "product_code": _l("Product"),
        "loa": _l("LOA"),
        "expires_on": _l("Card expires"),
        "status": _l("Status"),
        "pickup_point": _l("Pickup point"),
        "created_at": _l("Registered"),
    }
    formatters_columns = {"expires_on": expiry_with_warning, "status": card_status_label}
    list_template = "backoffice/stock_card_list.html"
    show_template = "backoffice/stock_card_show.html"

    def render_template(self, template, **kwargs):
        if template == self.list_template:
            from app.workflow import stock

            kwargs["stock_summary"] = stock.stock_summary()
            kwargs["just_registered"] = _just_registered()
        return super().render_template(template, **kwargs)

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        widgets = self._show(pk)
        card = _card_or_404(pk)
        return self.render_template(
            self.show_template, pk=pk, title=self.show_title, widgets=widgets,
            card=card, pickup_points=active_pickup_points(), allowed=self._allowed(),
            expires_soon=expires_soon(card.expires_on),
        )

    def _allowed(self) -> dict:
        sm = self.appbuilder.sm
        return {name: sm.has_access(f"can_{name}", self.class_permission_name)
                for name in ("move", "lost", "restock", "destroy")}

    @expose("/<int:pk>/move", methods=["POST"])
    @has_access
    @permission_name("move")
    def move(self, pk):
        card = _card_or_404(pk)
        point_id = _int_or_none(request.form.get("pickup_point_id"))
        return self._step(pk, "move_card", card.serial, point_id,
                          success=_("The card was moved."))

    @expose("/<int:pk>/lost", methods=["POST"])
    @has_access
    @permission_name("lost")
    def lost(self, pk):
        card = _card_or_404(pk)
        if not _confirmed():
            return redirect(url_for("CardView.show", pk=pk))
        return self._step(pk, "mark_lost", card.serial, request.form.get("note") or None,
                          success=_("The card is marked as lost."))

    @expose("/<int:pk>/restock", methods=["POST"])
    @has_access
    @permission_name("restock")
    def restock(self, pk):
        card = _card_or_404(pk)
        point_id = _int_or_none(request.form.get("pickup_point_id"))
        return self._step(pk, "restock", card.serial, point_id,
                          success=_("The card is back in stock."))

    @expose("/<int:pk>/destroy", methods=["POST"])
    @has_access
    @permission_name("destroy")
    def destroy(self, pk):
        card = _card_or_404(pk)
        if not _confirmed():
            return redirect(url_for("CardView.show", pk=pk))
        return self._step(pk, "destroy", card.serial, request.form.get("note") or None,
                          success=_("The card is registered as destroyed."))

    def _step(self, pk, name, *args, success):
        from app.workflow import stock

        try:
            getattr(stock, name)(*args)
        except STEP_ERRORS as exc:
            flash_refusal(exc)
        else:
            flash(success, "success")
        return redirect(url_for("CardView.show", pk=pk))


def _confirmed() -> bool:
    """Destructive steps need the confirmation box ticked."""
    if request.form.get("confirm"):
        return True
    flash(_("Tick the confirmation box to go ahead."), "warning")
    return False


class CardBatchView(BaseView):
    """Register a batch of sealed envelopes: all of them, or none if any serial is wrong."""

    route_base = "/stock/register"
    default_view = "index"

    @expose("/", methods=["GET"])
    @has_access
    @permission_name("register")
    def index(self):
        return self._form({})

    @expose("/", methods=["POST"])
    @has_access
    @permission_name("register")
    def submit(self):
        from app.workflow import stock

        values = request.form.to_dict()
        try:
            serials = self._serials(stock)
            expires_on = _date_field(values.get("expires_on"), "expires_on",
                                     _("Card expires"))
            count = stock.register_batch(
                serials, values.get("product_code", "").strip(), values.get("loa", ""),
                expires_on, _int_or_none(values.get("pickup_point_id")),
            )
        except STEP_ERRORS as exc:
            flash_refusal(exc)
            return self._form(values)
        flash(_("%(count)s envelopes registered.", count=count), "success")
        # The stock list shows the new cards on top (at most JUST_REGISTERED_SHOWN of them).
        from app.validation import card_serial

        session["rk_just_registered"] = {"count": count, "serials": list(dict.fromkeys(
            card_serial(s, field="serials") for s in serials))[:JUST_REGISTERED_SHOWN]}
        return redirect(url_for("CardView.list"))

    def _serials(self, stock) -> list:
        serials = []
        if request.form.get("serials", "").strip():
            serials += stock.parse_serials(request.form["serials"])
        upload = request.files.get("serial_file")
        if upload is not None and upload.filename:
            serials += stock.parse_serials(_read_text_file(upload), field="serial_file")
        first, last = request.form.get("first", "").strip(), request.form.get("last", "").strip()
        if first or last:
            serials += stock.serial_range(first, last)
        if not serials:
            from app.validation import FieldError

            raise FieldError("serials", _l("Give the serials: paste a list, choose a file or "
                                           "give the first and last serial of a range."))
        return serials

    def _form(self, values):
        return self.render_template(
            "backoffice/stock_batch.html", values=values, pickup_points=active_pickup_points(),
            products=PRODUCT_CODES, loa_levels=LOA_LEVELS,
        )


def _read_text_file(upload) -> str:
    from app.validation import FieldError

    raw = upload.read(MAX_SERIAL_FILE_BYTES + 1)
    if len(raw) > MAX_SERIAL_FILE_BYTES:
        raise FieldError("serial_file", _l("The file is too large for a list of serials."))
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FieldError("serial_file", _l("The file is not a text or CSV file."))


def _date_field(value, field, label):
    from app.validation import FieldError

    try:
        return date.fromisoformat((value or "").strip())
    except ValueError as exc:
        raise FieldError(field, _("%(field)s: give a date as YYYY-MM-DD.", field=label)) from exc


class PickupPointView(AuditedModelView):
    route_base = "/stock/pickup-points"
    datamodel = AccessInterface(PickupPoint)
    audit_entity = "pickup_point"
    base_permissions = ["can_list", "can_show", "can_add", "can_edit"]
    list_title = _l("Pickup points")
    show_title = _l("Pickup point")
    add_title = _l("Add pickup point")
    edit_title = _l("Edit pickup point")
    list_columns = show_columns = add_columns = edit_columns = [
        "name", "address", "min_stock", "active"]
    search_columns = ["name", "address", "active"]
    base_order = ("name", "asc")
    label_columns = {
        "name": _l("Name"),
        "address": _l("Address"),
        "min_stock": _l("Minimum stock"),
        "active": _l("Active"),
    }
    description_columns = {
        "min_stock": _l("The stock view warns when fewer sealed envelopes than this are left."),
    }

    validators_columns = {"min_stock": [NumberRange(min=0)]}
    add_form_extra_fields = edit_form_extra_fields = {
        "active": BooleanField(_l("Active"), default=True),  # unticked is a valid answer
    }


def register(appbuilder) -> None:
    install_display()
    appbuilder.add_view(CardView, "Cards", label=_l("Cards"), category="Stock",
                        category_label=_l("Stock"), icon="fa-credit-card")
    appbuilder.add_view(CardBatchView, "Register envelopes", label=_l("Register envelopes"),
                        category="Stock", icon="fa-plus-square")
    appbuilder.add_view(PickupPointView, "Pickup points", label=_l("Pickup points"),
                        category="Stock", icon="fa-map-marker")
