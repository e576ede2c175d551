"""Deviations: the list a manager or Servicecenter follows up, notes, closing, manual deviations,
and the CSV/XLSX export of the deviation report (written by app.exports; a big one by a job).

Which deviations a user sees is the access policy's scope (app.access.scope, through
`deviations.visible_deviations`): another unit's deviation answers 404 for a manager, and the
workflow refuses a note, a closing or a new deviation outside it (a message here).
"""

from flask import abort, flash, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, ModelView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import false, select
from sqlalchemy.orm import joinedload, lazyload
from wtforms import SelectField

from app import access, clock, exports, labels
from app.display import install as install_display
from app.display import local_time
from app.errors import NotFound, RuleViolation, ScopeRefusal
from app.extensions import db
from app.roles import MENU
from app.validation import FieldError
from models import DEVIATION_STATUSES, DEVIATION_TYPES, Deviation, ExportJob, Person, Unit
from views.api.deviations import VisibleToUser
from views.listing import (
    CursorPagerMixin,
    ListInterface,
    SearchBoxMixin,
    UnitLookupField,
    unit_choices,
)
from views.registers import name_for_hsa_id

# The words of the one table (app/labels.py).
TYPE_LABELS = labels.DEVIATION_TYPE
STATUS_LABELS = labels.DEVIATION_STATUS


# --- who sees what --------------------------------------------------------------------------

def _workflow():
    # Imported on use: the screens register before the workflow module is first needed.
    from app.workflow import deviations

    return deviations


def _current_user():
    from flask_login import current_user

    return current_user._get_current_object()


def visible_unit_ids():
    """Units whose deviations the user may see, as a select: what the report offers."""
    scope = _workflow().visible_unit_ids(_current_user())
    query = select(Unit.id)
    if scope is not None:
        query = query.where(Unit.id.in_(sorted(scope)) if scope else false())
    return query


def type_label(value) -> str:
    return labels.label("deviation_type", value)


def status_label(value) -> str:
    return labels.label("deviation_status", value)


def flash_refusal(exc) -> None:
    """A refusal or a malformed value as a message; the field is named (in words) when there
    is one."""
    field = getattr(exc, "field", None)
    message = exc.message
    flash(f"{labels.field(field)}: {message}" if field else message, "danger")


# --- the list, show page, notes, closing, manual deviations -------------------------------

class DeviationView(CursorPagerMixin, SearchBoxMixin, ModelView):
    # The list shows the unit and the person by name: their own further relations and the
    # notes are not read with the page (loaded when a show page touches them).
    datamodel = ListInterface(
        Deviation, lazyload(Deviation.notes), joinedload(Deviation.unit).lazyload(Unit.org_type),
        joinedload(Deviation.person).lazyload(Person.unit),
        joinedload(Deviation.person).lazyload(Person.kobe))
    route_base = "/deviations"
    # State changes go through the workflow (audit rows): no FAB add/edit/delete.
    include_route_methods = {"list", "show", "note", "close", "create", "unit_lookup"}
    # The workflow's row-level rule as a condition on the unit column (no id IN subquery).
    base_filters = [["id", VisibleToUser, None]]
    base_order = ("created_at", "desc")
    list_title = _l("Deviations")
    show_title = _l("Deviation")
    list_template = "backoffice_b/deviation_list.html"
    show_template = "backoffice_b/deviation_show.html"
    list_columns = ["id", "created_at", "type", "status", "unit", "person", "card_serial"]
    show_columns = ["id", "type", "status", "unit", "person", "card_serial", "issuance",
                    "description", "created_at", "closed_at"]
    search_columns = ["type", "status", "created_at", "unit", "card_serial"]
    # Choose type and status by their Swedish names instead of typing the codes; the unit is
    # looked up as you type (the page never holds every unit).
    search_form_extra_fields = {
        "unit": UnitLookupField(_l("Unit"), lookup_endpoint="DeviationView.unit_lookup"),
        "type": SelectField(_l("Type"), choices=list(TYPE_LABELS.items())),
        "status": SelectField(_l("Status"), choices=list(STATUS_LABELS.items())),
    }
    order_columns = ["id", "created_at", "type", "status", "card_serial"]
    label_columns = {
        "id": _l("No."),
        "created_at": _l("Created"),
        "closed_at": _l("Closed at"),
        "type": _l("Type"),
        "status": _l("Status"),
        "unit": _l("Unit"),
        "person": _l("Person"),
        "card_serial": _l("Card serial"),
        "issuance": _l("Issuance"),
        "description": _l("Description"),
    }
    formatters_columns = {"type": type_label, "status": status_label,
                          "person": access.person_label_with_number,
                          "created_at": local_time, "closed_at": local_time}
    page_size = 50

    @expose("/units", methods=["GET"])
    @has_access
    @permission_name("list")
    def unit_lookup(self):
        """Units for the filter, looked up as you type: the user's own units whose name or
        HSA-id holds the typed text, at most LOOKUP_LIMIT of them."""
        return jsonify(results=unit_choices(request.args.get("q", ""), visible_unit_ids()))

    def _visible(self, pk) -> Deviation:
        deviation = self.datamodel.get(pk, self._base_filters)
        if deviation is None:
            abort(404)
        return deviation

    @expose("/show/<int:pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        deviation = self._visible(pk)
        widgets = self._get_show_widget(pk, deviation)
        self.update_redirect()
        return self.render_template(
            self.show_template, pk=pk, title=self.show_title, widgets=widgets,
            deviation=deviation, notes=access.shown_rows(deviation.notes),
        )

    @expose("/note/<int:pk>", methods=["POST"])
    @has_access
    def note(self, pk):
        return self._step(pk, lambda: _workflow().add_note(pk, request.form.get("text", "")),
                          _("The note was saved."))

    @expose("/close/<int:pk>", methods=["POST"])
    @has_access
    def close(self, pk):
        return self._step(pk, lambda: _workflow().close(pk), _("The deviation was closed."))

    def _step(self, pk, run, done):
        """A workflow step on deviation `pk`; the workflow decides (scope included)."""
        try:
            run()
            flash(done, "success")
        except NotFound:
            abort(404)
        except ScopeRefusal as exc:
            flash_refusal(exc)
            return redirect(url_for(".list"))
        except (RuleViolation, FieldError) as exc:
            flash_refusal(exc)
        return redirect(url_for(".show", pk=pk))

    @expose("/create", methods=["GET", "POST"])
    @has_access
    def create(self):
        form = request.form.to_dict()
        if request.method == "POST" and not name_for_hsa_id(form, "person_hsa_id"):
            try:
                deviation = _workflow().create(
                    form.get("type") or "manual",
                    form.get("description", ""),
                    issuance_id=_optional_int(form.get("issuance_id")),
                    person_hsa_id=form.get("person_hsa_id") or None,
                )
                flash(_("The deviation was registered."), "success")
                return redirect(url_for(".show", pk=deviation.id))
            except (RuleViolation, FieldError) as exc:
                flash_refusal(exc)
            except NotFound:
                flash(_("No such person or issuance."), "danger")
        return self.render_template(
            "backoffice_b/deviation_create.html", title=_("New deviation"), form=form,
            types=[(code, TYPE_LABELS[code]) for code in DEVIATION_TYPES],
        )


def _optional_int(value):
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise FieldError("issuance_id", _l("Give the issuance number as digits."))
    return int(value)


# --- the report export --------------------------------------------------------------------

def report_filters() -> dict:
    """The export's filters from the query string, checked by the workflow (FieldError)."""
    return _workflow().report_filters(
        {key: request.args.get(key) for key in ("from", "to", "unit_id", "type", "status")})


class DeviationReportView(BaseView):
    route_base = "/deviations/report"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        units = db.session.execute(
            select(Unit).where(Unit.id.in_(visible_unit_ids())).order_by(Unit.name)
        ).scalars().all()
        return self.render_template(
            "backoffice_b/deviation_report.html", title=_("Deviation report"), units=units,
            types=[(code, TYPE_LABELS[code]) for code in DEVIATION_TYPES],
            statuses=[(code, STATUS_LABELS[code]) for code in DEVIATION_STATUSES],
            args=request.args,
        )

    @expose("/export")
    @has_access
    def export(self):
        fmt = request.args.get("format", "csv")
        if fmt not in exports.FORMATS:
            flash(_("Choose CSV or XLSX."), "danger")
            return redirect(url_for(".index"))
        filename = f"avvikelser-{clock.today().isoformat()}.{fmt}"
        try:
            answer = exports.deviation_export(_current_user(), report_filters(), fmt, "screen",
                                              access.current_user_cleared(), filename)
        except (RuleViolation, FieldError) as exc:
            flash_refusal(exc)
            return redirect(url_for(".index", **request.args))
        if isinstance(answer, ExportJob):
            return redirect(url_for(".job", job_id=answer.id))
        return answer

    @expose("/jobs/<int:job_id>")
    @has_access
    def job(self, job_id):
        """A big export's progress, and its download when done (only for who asked)."""
        try:
            job = exports.job_for(_current_user(), job_id)
        except NotFound:
            abort(404)
        return self.render_template("backoffice_b/export_job.html", title=_("Deviation report"),
                                    job=job)

    @expose("/jobs/<int:job_id>/file")
    @has_access
    def job_file(self, job_id):
        try:
            return exports.job_file(exports.job_for(_current_user(), job_id))
        except NotFound:
            abort(404)


def register(appbuilder) -> None:
    install_display()
    appbuilder.add_view(
        DeviationView, MENU["deviations"], label=_l("Deviation list"),
        category=MENU["deviations_cat"], category_label=_l("Deviations"),
        icon="fa-exclamation-triangle",
    )
    appbuilder.add_view(
        DeviationReportView, MENU["deviation_report"], label=_l("Deviation report"),
        category=MENU["deviations_cat"], category_label=_l("Deviations"),
        icon="fa-download",
    )
