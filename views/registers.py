"""Registers: people, units and the Kobe register, plus what every back-office screen shares:
turning a refused workflow step into a flash message, masking people with protected identity,
and loading a list page's relations with the page's own query."""

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, ModelView, expose, has_access
from flask_appbuilder._compat import as_unicode
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import permission_name
from flask_appbuilder.urltools import get_order_args, get_page_args, get_page_size_args
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Optional, ValidationError

from app import labels, privacy, validation
from app.errors import NotFound, RuleViolation
from app.validation import FieldError
from models import KobeRecord, Person, Unit

STEP_ERRORS = (RuleViolation, FieldError, NotFound)
NOT_FOUND_WHAT = {
    "issuance": _l("issuance"),
    "issuance for card": _l("open issuance for the card"),
    "card": _l("card"),
    "person": _l("person"),
    "pickup_point": _l("pickup point"),
}


# --- shared by the back-office screens ------------------------------------------------------

def step_message(exc) -> str:
    """The text a person can act on for a refused workflow step."""
    if isinstance(exc, NotFound):
        what = NOT_FOUND_WHAT.get(exc.what, exc.what)
        return _("No %(what)s %(key)s was found.", what=what, key=exc.key)
    return str(exc.message)


def flash_refusal(exc) -> None:
    flash(step_message(exc), "danger")


class EagerInterface(SQLAInterface):
    """SQLAInterface that loads the named relations with each list page (no query per row)."""

    def __init__(self, obj, *load_options, session=None):
        super().__init__(obj, session=session)
        self.load_options = load_options

    def apply_all(self, query, *args, **kwargs):
        query = super().apply_all(query, *args, **kwargs)
        return query.options(*self.load_options) if self.load_options else query


# --- protected identity ---------------------------------------------------------------------

def can_see_protected_identity() -> bool:
    """Whether the logged-in user is cleared to see people with protected identity."""
    return privacy.current_user_cleared()


def is_masked(person) -> bool:
    # The clearance is looked up only when a protected person is shown.
    return bool(person is not None and person.protected_identity
                and privacy.hidden(person, can_see_protected_identity()))


def person_label(person) -> str:
    """Name and HSA-id, or only the HSA-id for a protected identity the user may not see."""
    if person is None:
        return ""
    if is_masked(person):
        return f"{str(privacy.MASK)} ({person.hsa_id})"
    return f"{person.name} ({person.hsa_id})"


def masked_value(person, field, value):
    if field in privacy.MASKED_PERSON_FIELDS and is_masked(person):
        return str(privacy.MASK)
    return value


class PersonInterface(EagerInterface):
    def _get_attr_value(self, item, col):
        value = super()._get_attr_value(item, col)
        return masked_value(item, col, value)


# --- registers saved by the workflow ---------------------------------------------------------

def _save_steps() -> dict:
    from app.workflow import registers

    return {"person": registers.save_person, "unit": registers.save_unit,
            "pickup_point": registers.save_pickup_point}


class AuditedModelView(ModelView):
    """A register screen whose additions and edits are workflow steps (app.workflow.registers):
    checked, saved and audited in one transaction. A value the step refuses is shown at its
    field and the form is kept."""

    audit_entity = ""
    page_size = 25

    def save(self, values: dict, pk=None):
        """Run the workflow step that saves this register."""
        return _save_steps()[self.audit_entity](values, pk)

    def _add(self):
        if request.method != "POST":
            return super()._add()
        form = self.add_form.refresh()
        if form.validate() and self._saved(form, None):
            flash(as_unicode(self.add_row_message), "success")
            return None
        return self._get_add_widget(form=form)

    def _edit(self, pk):
        if request.method != "POST":
            return super()._edit(pk)
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        pk = self.datamodel.get_pk_value(item)
        form = self.edit_form.refresh(request.form)
        form._id = pk
        if form.validate() and self._saved(form, pk):
            flash(as_unicode(self.edit_row_message), "success")
            return None
        widgets = self._get_edit_widget(form=form)
        return self._get_related_views_widgets(
            item, filters={}, orders=get_order_args(), pages=get_page_args(),
            page_sizes=get_page_size_args(), widgets=widgets)

    def _saved(self, form, pk) -> bool:
        try:
            self.save(form_values(form, self.datamodel.obj), pk)
        except FieldError as exc:
            _show_at_field(form, self.datamodel.obj, exc)
            return False
        except STEP_ERRORS as exc:
            flash_refusal(exc)
            return False
        except IntegrityError:
            # Two people saving the same unique value at the same moment.
            flash(_("Not saved: a value that must be unique is already used "
                    "(HSA-id, personal number or name)."), "danger")
            return False
        return True


def _relations(model) -> dict:
    """{form field of a relation: (its column, the related key)}, e.g. unit -> unit_id."""
    pairs = {}
    for relation in inspect(model).relationships:
        if relation.direction.name == "MANYTOONE" and len(relation.local_remote_pairs) == 1:
            local, remote = relation.local_remote_pairs[0]
            pairs[relation.key] = (local.key, remote.key)
    return pairs


def form_values(form, model) -> dict:
    """The form's values named as the workflow names them (a chosen unit as its unit_id)."""
    relations = _relations(model)
    values = {}
    for name, value in form.data.items():
        if name == "csrf_token":
            continue
        if name in relations:
            column, key = relations[name]
            values[column] = getattr(value, key) if value is not None else None
        else:
            values[name] = value
    return values


def _show_at_field(form, model, exc) -> None:
    by_column = {column: name for name, (column, _key) in _relations(model).items()}
    field = form._fields.get(by_column.get(exc.field, exc.field))
    if field is None:
        flash(f"{exc.field}: {exc.message}", "danger")
        return
    field.errors = [*field.errors, f"{field.label.text}: {exc.message}"]


# --- form validators naming their field -----------------------------------------------------

class FieldFormat:
    """WTForms validator calling one of app.validation's checks; the message names the field."""

    def __init__(self, check):
        self.check = check

    def __call__(self, form, field):
        try:
            self.check(field.data, field=field.name)
        except FieldError as exc:
            raise ValidationError(f"{field.label.text}: {exc.message}") from exc


# --- the screens ----------------------------------------------------------------------------

class PersonView(AuditedModelView):
    route_base = "/registers/people"
    datamodel = PersonInterface(Person)
    audit_entity = "person"
    base_permissions = ["can_list", "can_show", "can_add", "can_edit"]
    list_title = _l("People")
    show_title = _l("Person")
    add_title = _l("Add person")
    edit_title = _l("Edit person")
    list_columns = ["name", "hsa_id", "personal_number", "unit", "email", "protected_identity"]
    show_columns = ["name", "hsa_id", "personal_number", "email", "unit", "manager",
                    "protected_identity", "card_office_role", "kobe"]
    add_columns = edit_columns = ["hsa_id", "personal_number", "name", "email", "unit",
                                  "manager_hsa_id", "protected_identity", "card_office_role"]
    search_columns = ["name", "hsa_id", "personal_number", "email", "protected_identity"]
    order_columns = ["name", "hsa_id", "personal_number", "email"]
    base_order = ("name", "asc")
    label_columns = {
        "name": _l("Name"),
        "hsa_id": _l("HSA-id"),
        "personal_number": _l("Personal identity number"),
        "email": _l("E-mail"),
        "unit": _l("Unit"),
        "manager": _l("Manager"),
        "manager_hsa_id": _l("Manager (HSA-id)"),
        "protected_identity": _l("Protected identity"),
        "card_office_role": _l("Card-office role"),
        "kobe": _l("Kobe register"),
    }
    description_columns = {
        "card_office_role": _l("RA, ORA, KRA or LRA: such a person may not attest."),
    }
    # Own fields: the entered formats are longer than the stored ones, and an unticked flag
    # is a valid answer.
    add_form_extra_fields = edit_form_extra_fields = {
        "hsa_id": StringField(_l("HSA-id"), validators=[DataRequired(),
                                                       FieldFormat(validation.hsa_id)]),
        "personal_number": StringField(
            _l("Personal identity number"),
            description=_l("YYYYMMDD-NNNN; empty for a person without a Swedish number."),
            validators=[Optional(), FieldFormat(validation.personal_number)]),
        "protected_identity": BooleanField(_l("Protected identity")),
        "manager_hsa_id": StringField(_l("Manager (HSA-id)"),
                                      validators=[Optional(), FieldFormat(validation.hsa_id)]),
    }
    formatters_columns = {"manager": person_label}

    def prefill_form(self, form, pk):
        item = self.datamodel.get(pk)
        if item is not None and item.manager is not None:
            form.manager_hsa_id.data = item.manager.hsa_id

    def _edit(self, pk):
        item = self.datamodel.get(pk)
        if is_masked(item):
            flash(_("This person has protected identity; you are not cleared to see or change "
                    "their details."), "danger")
            return None
        return super()._edit(pk)


class UnitView(AuditedModelView):
    route_base = "/registers/units"
    datamodel = EagerInterface(Unit, selectinload(Unit.parent))
    audit_entity = "unit"
    base_permissions = ["can_list", "can_show", "can_add", "can_edit"]
    list_title = _l("Units")
    show_title = _l("Unit")
    add_title = _l("Add unit")
    edit_title = _l("Edit unit")
    list_columns = ["name", "hsa_id", "org_type", "parent"]
    show_columns = add_columns = edit_columns = ["name", "hsa_id", "org_type", "parent"]
    search_columns = ["name", "hsa_id", "org_type_code"]
    base_order = ("name", "asc")
    label_columns = {
        "name": _l("Name"),
        "hsa_id": _l("HSA-id"),
        "org_type": _l("Organisation type"),
        "org_type_code": _l("Organisation type"),
        "parent": _l("Part of"),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "hsa_id": StringField(_l("HSA-id"), validators=[Optional(),
                                                       FieldFormat(validation.hsa_id)]),
    }


def _ordinary_card_label(value):
    return {"active": _("Active"), "ordered": _("Ordered"), "none": _("None")}.get(value, value)


class KobeView(ModelView):
    """What the system knows from Kobe; changes come through the import (one row or many)."""

    route_base = "/registers/kobe"
    datamodel = EagerInterface(KobeRecord, selectinload(KobeRecord.person))
    base_permissions = ["can_list", "can_show"]
    page_size = 25
    list_title = show_title = _l("Kobe register")
    list_columns = ["person", "ordinary_card", "reserve_card_order", "updated_at", "updated_by"]
    show_columns = list_columns
    search_columns = ["ordinary_card", "reserve_card_order", "updated_at", "updated_by"]
    search_form_extra_fields = {
        "ordinary_card": labels.search_field("ordinary_card", _l("Ordinary SITHS card"))}
    order_columns = ["ordinary_card", "reserve_card_order", "updated_at", "updated_by"]
    base_order = ("updated_at", "desc")
    label_columns = {
        "person": _l("Person"),
        "ordinary_card": _l("Ordinary SITHS card"),
        "reserve_card_order": _l("Reserve-card order"),
        "updated_at": _l("Updated"),
        "updated_by": _l("Updated by"),
    }
    formatters_columns = {"person": person_label, "ordinary_card": _ordinary_card_label}
    list_template = "backoffice/registers_kobe_list.html"


class KobeImportView(BaseView):
    """CSV upload or paste, a preview with each row and its errors, then confirm to save."""

    route_base = "/registers/kobe-import"
    default_view = "index"
    template = "backoffice/registers_kobe_import.html"

    @expose("/", methods=["GET"])
    @has_access
    @permission_name("import")
    def index(self):
        return self.render_template(self.template, text="", rows=None, row_errors={})

    @expose("/preview", methods=["POST"])
    @has_access
    @permission_name("import")
    def preview(self):
        text = _submitted_csv()
        rows = _parse(text)
        if rows is None:
            return self.render_template(self.template, text=text, rows=None, row_errors={})
        row_errors = _preview_errors(rows)
        if row_errors:
            flash(_("%(count)s rows have errors; nothing is saved until they are corrected.",
                    count=len(row_errors)), "danger")
        return self.render_template(self.template, text=text, rows=rows,
                                    row_errors=row_errors)

    @expose("/confirm", methods=["POST"])
    @has_access
    @permission_name("import")
    def confirm(self):
        from app.workflow import kobe

        text = request.form.get("text", "")
        rows = _parse(text)
        if rows is None:
            return self.render_template(self.template, text=text, rows=None, row_errors={})
        try:
            result = kobe.import_rows(rows)
        except kobe.KobeImportError as exc:
            flash(exc.as_dict()["message"], "danger")
            return self.render_template(self.template, text=text, rows=rows,
                                        row_errors=_by_row(exc.errors))
        except STEP_ERRORS as exc:
            flash_refusal(exc)
            return self.render_template(self.template, text=text, rows=rows, row_errors={})
        flash(_("Kobe register saved: %(rows)s rows read, %(count)s people changed.",
                rows=len(rows), count=result.get("updated", 0)), "success")
        return redirect(url_for("KobeView.list"))


def _submitted_csv() -> str:
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        raw = upload.read()
        for encoding in ("utf-8-sig", "cp1252"):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                continue
    return request.form.get("text", "")


def _parse(text):
    """The rows of the CSV, or None after flashing why it could not be read."""
    from app.workflow import kobe

    try:
        return kobe.parse_csv(text)
    except STEP_ERRORS as exc:
        flash_refusal(exc)
        return None


def _preview_errors(rows) -> dict:
    """{row number: [messages]} without saving anything."""
    from app.workflow import kobe

    return _by_row(kobe.validate_rows(rows))


KOBE_FIELD_LABELS = {
    "hsa_id": _l("HSA-id"),
    "ordinary_card": _l("Ordinary SITHS card"),
    "reserve_card_order": _l("Reserve-card order"),
}


def _by_row(errors) -> dict:
    grouped = {}
    for error in errors:
        label = KOBE_FIELD_LABELS.get(error.get("field"), error.get("field"))
        grouped.setdefault(error.get("row"), []).append(f"{label}: {error.get('message')}")
    return grouped


def register(appbuilder) -> None:
    appbuilder.add_view(PersonView, "People", label=_l("People"), category="Registers",
                        category_label=_l("Registers"), icon="fa-user")
    appbuilder.add_view(UnitView, "Units", label=_l("Units"), category="Registers",
                        icon="fa-sitemap")
    appbuilder.add_view(KobeView, "Kobe register", label=_l("Kobe register"),
                        category="Registers", icon="fa-id-card")
    appbuilder.add_view_no_menu(KobeImportView)
