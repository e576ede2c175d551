"""Registers: people, units and the Kobe register, plus what every back-office screen shares:
turning a refused workflow step into a flash message, and loading a list page's relations with
the page's own query. Who sees what of a person is the access policy's (app.access)."""

from flask import abort, flash, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, ModelView, expose, has_access
from flask_appbuilder._compat import as_unicode
from flask_appbuilder.security.decorators import permission_name
from flask_appbuilder.urltools import get_order_args, get_page_args, get_page_size_args
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, lazyload, selectinload
from wtforms import BooleanField, Field, StringField
from wtforms.validators import DataRequired, Optional, ValidationError

from app import access, labels, validation
from app.errors import NotFound, RuleViolation
from app.validation import FieldError
from models import KobeRecord, Person, Unit
from views.listing import CursorPagerMixin, ListInterface, SearchBoxMixin

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


def name_for_hsa_id(values: dict, field: str) -> bool:
    """A form whose `field` expects an HSA-id, and a name was typed: the one person with that
    name whom the login may see is put in the field and named in a message, to be checked
    and sent again; else the message says what to type and whom the name matches. True when
    the form is to be shown again (nothing is done with a name)."""
    from app import search

    typed = values.get(field) or ""
    if not search.looks_like_a_name(typed):
        return False
    try:
        hsa_id, person = search.hsa_id_or_name(typed, field=field)
    except FieldError as exc:
        flash(f"{labels.field(field)}: {exc.message}", "danger")
        return True
    values[field] = hsa_id
    flash(_("Found by the name \u201c%(name)s\u201d: %(person)s. Check that this is the right "
            "person before you go on.", name=" ".join(typed.split()),
            person=f"{access.display_name(person)} ({hsa_id})"), "info")
    return True


class EagerInterface(ListInterface):
    """The list interface of the registers: the page's ids first, its relations (the named
    load options too) loaded with the page's rows only, the count bounded; searches, order and
    shown values through the access policy (ListInterface is an access.AccessInterface)."""


class PersonInterface(EagerInterface):
    def query(self, *args, **kwargs):
        # The viewer's clearance is looked up with every page, not only when a protected
        # person happens to be on it: the statements per page stay the same at any size.
        access.current_user_cleared()
        return super().query(*args, **kwargs)


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

class PersonView(CursorPagerMixin, SearchBoxMixin, AuditedModelView):
    route_base = "/registers/people"
    # The list shows the unit by name: its organisation type and the person's Kobe row are
    # not read with the page.
    datamodel = PersonInterface(Person, joinedload(Person.unit).lazyload(Unit.org_type),
                                lazyload(Person.kobe))
    audit_entity = "person"
    base_permissions = ["can_list", "can_show", "can_add", "can_edit"]
    list_title = _l("People")
    show_title = _l("Person")
    add_title = _l("Add person")
    edit_title = _l("Edit person")
    list_columns = ["name", "hsa_id", "personal_number", "unit", "email", "protected_identity"]
    show_columns = ["name", "hsa_id", "personal_number", "email", "unit",
                    "protected_identity", "card_office_role", "kobe"]
    add_columns = edit_columns = ["hsa_id", "personal_number", "name", "email", "unit",
                                  "protected_identity", "card_office_role"]
    search_columns = ["name", "hsa_id", "personal_number", "email", "protected_identity"]
    order_columns = ["name", "hsa_id", "personal_number", "email"]
    base_order = ("name", "asc")
    label_columns = {
        "name": _l("Name"),
        "hsa_id": _l("HSA-id"),
        "personal_number": _l("Personal identity number"),
        "email": _l("E-mail"),
        "unit": _l("Unit"),
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
    }

    def _edit(self, pk):
        item = self.datamodel.get(pk)
        if item is not None and not access.may_edit_person(item):
            flash(_("This person has protected identity; you are not cleared to see or change "
                    "their details."), "danger")
            return None
        return super()._edit(pk)


class PersonLookupWidget:
    """A multi-select of people looked up as you type (static/js/person-lookup.js): only the
    chosen people are in the page, never every person."""

    def __init__(self, endpoint):
        self.endpoint = endpoint

    def __call__(self, field, **kwargs):
        from markupsafe import Markup, escape

        options = "".join(
            f'<option value="{escape(value)}" selected>{escape(label)}</option>'
            for value, label in field.choice_labels())
        url = url_for(self.endpoint)
        placeholder = _("Search by name or HSA-id")
        return Markup(
            f'<select multiple id="{escape(field.id)}" name="{escape(field.name)}" '
            f'class="form-control rk-person-lookup" data-lookup-url="{escape(url)}" '
            f'data-placeholder="{escape(placeholder)}">{options}</select>')


class ManagersField(Field):
    """The HSA-ids of a unit's managers; the workflow checks them (FieldError at the field)."""

    def __init__(self, label=None, validators=None, endpoint="", **kwargs):
        super().__init__(label, validators, widget=PersonLookupWidget(endpoint), **kwargs)

    def process_formdata(self, valuelist):
        self.data = [value for value in valuelist if str(value).strip()]

    def _value(self):
        return self.data or []

    def choice_labels(self):
        from app.workflow.registers import manager_labels

        return manager_labels(self.data or [], access.current_user_cleared())


def _managers_label(managers) -> str:
    return ", ".join(access.person_label(person) for person in managers or [])


class UnitView(AuditedModelView):
    route_base = "/registers/units"
    datamodel = EagerInterface(Unit, selectinload(Unit.parent), selectinload(Unit.managers))
    audit_entity = "unit"
    base_permissions = ["can_list", "can_show", "can_add", "can_edit"]
    list_title = _l("Units")
    show_title = _l("Unit")
    add_title = _l("Add unit")
    edit_title = _l("Edit unit")
    list_columns = ["name", "hsa_id", "org_type", "parent", "managers"]
    show_columns = ["name", "hsa_id", "org_type", "parent", "managers"]
    add_columns = edit_columns = ["name", "hsa_id", "org_type", "parent", "manager_hsa_ids"]
    search_columns = ["name", "hsa_id", "org_type_code"]
    base_order = ("name", "asc")
    label_columns = {
        "name": _l("Name"),
        "hsa_id": _l("HSA-id"),
        "org_type": _l("Organisation type"),
        "org_type_code": _l("Organisation type"),
        "parent": _l("Part of"),
        "managers": _l("Managers"),
        "manager_hsa_ids": _l("Managers"),
    }
    description_columns = {
        "manager_hsa_ids": _l("People with a Chef login. A manager is responsible for this unit "
                              "and every unit below it."),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "hsa_id": StringField(_l("HSA-id"), validators=[Optional(),
                                                       FieldFormat(validation.hsa_id)]),
        "manager_hsa_ids": ManagersField(_l("Managers"), endpoint="UnitView.manager_lookup"),
    }
    formatters_columns = {"managers": _managers_label}
    # The organisation type chosen by its Swedish name instead of typing its code.
    search_form_extra_fields = {
        "org_type_code": labels.search_field("org_type", _l("Organisation type"))}

    def prefill_form(self, form, pk):
        item = self.datamodel.get(pk)
        if item is not None:
            form.manager_hsa_ids.data = item.manager_hsa_ids

    @expose("/managers/lookup")
    @has_access
    @permission_name("edit")
    def manager_lookup(self):
        """People with a Chef login matching ?q= (at least two characters), for the form."""
        from app.workflow.registers import manager_candidates

        found = manager_candidates(request.args.get("q", ""), access.current_user_cleared())
        return jsonify({"results": found})


def _ordinary_card_label(value):
    return {"active": _("Active"), "ordered": _("Ordered"), "none": _("None")}.get(value, value)


class KobeView(SearchBoxMixin, ModelView):
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
    formatters_columns = {"person": access.person_label, "ordinary_card": _ordinary_card_label}
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
