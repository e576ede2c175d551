"""Deviations: the list a manager or Servicecenter follows up, notes, closing, manual deviations,
and the streamed CSV/XLSX export of the deviation report.

Which deviations a user sees is the workflow's rule (`deviations.visible_deviations`); every
query here is narrowed by it, so another unit's deviation answers 404 for a manager.
"""

import csv
import io
import itertools
from datetime import date
from tempfile import SpooledTemporaryFile

from flask import Response, abort, flash, g, redirect, request, stream_with_context, url_for
from flask_appbuilder import BaseView, ModelView, expose, has_access
from flask_appbuilder.models.sqla.filters import FilterInFunction
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from openpyxl import Workbook
from sqlalchemy import select
from wtforms import SelectField

from app import clock, labels
from app.display import install as install_display
from app.display import local_time
from app.errors import NotFound, RuleViolation
from app.extensions import db
from app.roles import MENU
from app.validation import FieldError
from models import DEVIATION_STATUSES, DEVIATION_TYPES, Deviation, Person, Unit
from views.api.privacy import MASK, current_user_cleared

# The words of the one table (app/labels.py).
TYPE_LABELS = labels.DEVIATION_TYPE
STATUS_LABELS = labels.DEVIATION_STATUS
# Report columns: key of the workflow's report rows -> Swedish header.
REPORT_COLUMNS = (
    ("id", _l("Deviation")),
    ("created_at", _l("Created")),
    ("type", _l("Type")),
    ("status", _l("Status")),
    ("unit", _l("Unit")),
    ("person", _l("Name")),
    ("hsa_id", _l("HSA-id")),
    ("card_serial", _l("Card serial")),
    ("valid_until", _l("Valid until")),
    ("description", _l("Description")),
    ("closed_at", _l("Closed at")),
)
CHUNK_BYTES = 64 * 1024


# --- who sees what --------------------------------------------------------------------------

def _workflow():
    # Imported on use: the screens register before the workflow module is first needed.
    from app.workflow import deviations

    return deviations


def _current_user():
    from flask_login import current_user

    return current_user._get_current_object()


def visible_ids():
    """Ids of the deviations the logged-in user may see (the workflow's rule), as a subquery."""
    visible = _workflow().visible_deviations(_current_user()).subquery()
    return select(visible.c.id)


def visible_unit_ids():
    """Units that have deviations the user may see: what the report's unit filter offers."""
    visible = _workflow().visible_deviations(_current_user()).subquery()
    return select(visible.c.unit_id).where(visible.c.unit_id.is_not(None)).distinct()


def viewer_cleared() -> bool:
    if "rk_cleared" not in g:
        g.rk_cleared = current_user_cleared()
    return g.rk_cleared


def format_personal_number(number) -> str:
    if not number:
        return ""
    return f"{number[:8]}-{number[8:]}" if len(number) == 12 else number


def person_label(person) -> str:
    """Name and personal number, masked for a protected identity unless the viewer is cleared."""
    if person is None:
        return ""
    if person.protected_identity and not viewer_cleared():
        return str(MASK)
    number = format_personal_number(person.personal_number)
    return f"{person.name} ({number})" if number else person.name


def type_label(value) -> str:
    return str(TYPE_LABELS.get(value, value or ""))


def status_label(value) -> str:
    return str(STATUS_LABELS.get(value, value or ""))


def flash_refusal(exc) -> None:
    """A refusal or a malformed value as a message; the field is named when there is one."""
    field = getattr(exc, "field", None)
    message = exc.message
    flash(f"{message} ({_('field')}: {field})" if field else message, "danger")


# --- the list, show page, notes, closing, manual deviations -------------------------------

class DeviationView(ModelView):
    datamodel = SQLAInterface(Deviation)
    route_base = "/deviations"
    # State changes go through the workflow (audit rows): no FAB add/edit/delete.
    include_route_methods = {"list", "show", "note", "close", "create"}
    base_filters = [["id", FilterInFunction, visible_ids]]
    base_order = ("created_at", "desc")
    list_title = _l("Deviations")
    show_title = _l("Deviation")
    list_template = "backoffice_b/deviation_list.html"
    show_template = "backoffice_b/deviation_show.html"
    list_columns = ["id", "created_at", "type", "status", "unit", "person", "card_serial"]
    show_columns = ["id", "type", "status", "unit", "person", "card_serial", "issuance",
                    "description", "created_at", "closed_at"]
    search_columns = ["type", "status", "created_at", "unit", "card_serial"]
    search_form_query_rel_fields = {"unit": [["id", FilterInFunction, visible_unit_ids]]}
    # Choose type and status by their Swedish names instead of typing the codes.
    search_form_extra_fields = {
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
    formatters_columns = {"type": type_label, "status": status_label, "person": person_label,
                          "created_at": local_time, "closed_at": local_time}
    page_size = 50

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
            deviation=deviation, notes=deviation.notes,
        )

    @expose("/note/<int:pk>", methods=["POST"])
    @has_access
    def note(self, pk):
        self._visible(pk)
        try:
            _workflow().add_note(pk, request.form.get("text", ""))
            flash(_("The note was saved."), "success")
        except (RuleViolation, FieldError) as exc:
            flash_refusal(exc)
        return redirect(url_for(".show", pk=pk))

    @expose("/close/<int:pk>", methods=["POST"])
    @has_access
    def close(self, pk):
        self._visible(pk)
        try:
            _workflow().close(pk)
            flash(_("The deviation was closed."), "success")
        except (RuleViolation, FieldError) as exc:
            flash_refusal(exc)
        return redirect(url_for(".show", pk=pk))

    @expose("/create", methods=["GET", "POST"])
    @has_access
    def create(self):
        form = request.form
        if request.method == "POST":
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

def _date(field):
    raw = (request.args.get(field) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise FieldError(field, _l("Give the date as YYYY-MM-DD.")) from exc


def report_filters() -> dict:
    """The export's filters from the query string; bad values raise FieldError."""
    unit = (request.args.get("unit_id") or "").strip()
    if unit and not unit.isdigit():
        raise FieldError("unit_id", _l("Choose a unit from the list."))
    kind = request.args.get("type") or None
    status = request.args.get("status") or None
    if kind and kind not in DEVIATION_TYPES:
        raise FieldError("type", _l("Choose a type from the list."))
    if status and status not in DEVIATION_STATUSES:
        raise FieldError("status", _l("Choose a status from the list."))
    filters = {"from": _date("from"), "to": _date("to"), "unit_id": int(unit) if unit else None,
               "type": kind, "status": status}
    return {key: value for key, value in filters.items() if value is not None}


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ", timespec="minutes") if hasattr(value, "hour") \
            else value.isoformat()
    return value


def protected_hsa_ids() -> set[str]:
    """People with protected identity (few), so the export can mask them row by row."""
    if viewer_cleared():
        return set()
    return set(db.session.execute(
        select(Person.hsa_id).where(Person.protected_identity.is_(True))
    ).scalars())


def report_values(row: dict, hidden: set[str]) -> list:
    """One report row as cells in column order: Swedish words for type and status, and a
    protected identity's name masked for a viewer who is not cleared (the HSA-id stays, as in
    the REST API, so the case can be followed up)."""
    values = dict(row)
    if values.get("hsa_id") in hidden:
        values["person"] = str(MASK)
    values["type"] = type_label(values.get("type"))
    values["status"] = status_label(values.get("status"))
    return [_cell(values.get(key)) for key, _label in REPORT_COLUMNS]


def report_headers() -> list[str]:
    return [str(label) for _key, label in REPORT_COLUMNS]


def csv_chunks(rows):
    """The report as CSV for Swedish Excel (BOM, semicolons), yielded in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    buffer.write("\ufeff")
    writer.writerow(report_headers())
    hidden = protected_hsa_ids()
    for row in rows:
        writer.writerow(report_values(row, hidden))
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def xlsx_chunks(rows):
    """The report as XLSX: openpyxl's write-only mode keeps memory flat; the file is spooled
    (to disk when large) and streamed in chunks."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=str(_l("Deviations"))[:31])
    sheet.append(report_headers())
    hidden = protected_hsa_ids()
    for row in rows:
        sheet.append([_xlsx_cell(value) for value in report_values(row, hidden)])
    with SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        workbook.save(spool)
        spool.seek(0)
        while chunk := spool.read(CHUNK_BYTES):
            yield chunk


def _xlsx_cell(value):
    # A leading = would make a spreadsheet formula of user text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _peeked(rows):
    """Start the rows before answering, so a refusal becomes a message and not a broken file."""
    iterator = iter(rows)
    first = next(iterator, None)
    return iterator if first is None else itertools.chain([first], iterator)


FORMATS = {
    "csv": (csv_chunks, "text/csv; charset=utf-8"),
    "xlsx": (xlsx_chunks,
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


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
        if fmt not in FORMATS:
            flash(_("Choose CSV or XLSX."), "danger")
            return redirect(url_for(".index"))
        try:
            filters = report_filters()
        except FieldError as exc:
            flash_refusal(exc)
            return redirect(url_for(".index", **request.args))
        chunks, mimetype = FORMATS[fmt]
        try:
            rows = _peeked(_workflow().report_rows(_current_user(), filters))
        except (RuleViolation, FieldError) as exc:
            flash_refusal(exc)
            return redirect(url_for(".index", **request.args))
        filename = f"avvikelser-{clock.today().isoformat()}.{fmt}"
        return Response(
            stream_with_context(chunks(rows)),
            mimetype=mimetype,
            headers={"Content-Disposition": f'attachment; filename="{filename}"',
                     "Cache-Control": "no-store"},
        )


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
