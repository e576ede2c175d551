"""Administration: the audit log (read-only, newest first, with the chain check on top) and the
organisation types with the number of attesters each requires."""

import json

from flask import flash, redirect
from flask_appbuilder import ModelView, expose, has_access
from flask_appbuilder.exceptions import FABException
from flask_babel import lazy_gettext as _l

from app import audit, display, labels
from app.roles import MENU
from app.workflow import registers
from models import AuditEvent, OrganisationType
from views.listing import ListInterface
from views.registers import AuditedModelView


def _as_words(value) -> str:
    """What an event changed, one field a line, in words (app/labels.py via app.display)."""
    if value in (None, {}, []):
        return ""
    if isinstance(value, dict):
        return "\n".join(f"{name}: {words}" for name, words in display.changes(value))
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1, default=str)


class AuditLogView(ModelView):
    datamodel = ListInterface(AuditEvent)
    route_base = "/audit-log"
    include_route_methods = {"list", "show"}
    can_add = can_edit = can_delete = False
    base_order = ("id", "desc")
    list_title = _l("Audit log")
    show_title = _l("Audit event")
    list_template = "backoffice_b/audit_list.html"
    list_columns = ["id", "at", "actor", "action", "entity", "entity_id"]
    show_columns = ["id", "at", "actor", "actor_user_id", "action", "entity", "entity_id",
                    "before", "after", "prev_hash", "hash"]
    search_columns = ["action", "entity", "entity_id", "actor", "at"]
    search_form_extra_fields = {"action": labels.search_field("action", _l("Action")),
                                "entity": labels.search_field("entity", _l("Entity"))}
    order_columns = ["id", "at", "actor", "action", "entity"]
    label_columns = {
        "id": _l("No."),
        "at": _l("Time"),
        "actor": _l("Who"),
        "actor_user_id": _l("User id"),
        "action": _l("Action"),
        "entity": _l("Entity"),
        "entity_id": _l("Entity id"),
        "before": _l("Before"),
        "after": _l("After"),
        "prev_hash": _l("Previous hash"),
        "hash": _l("Hash"),
    }
    formatters_columns = {"before": _as_words, "after": _as_words, "at": labels.moment,
                          "action": labels.action,
                          "entity": lambda code: labels.label("entity", code)}
    page_size = 50

    @expose("/list/")
    @has_access
    def list(self):
        self.update_redirect()
        try:
            widgets = self._list()
        except FABException as exc:
            flash(str(exc), "warning")
            return redirect(self.get_redirect())
        # The chain is verified by the checkpoint job / `audit-verify`, never per page view.
        return self.render_template(
            self.list_template, title=self.list_title, widgets=widgets,
            checkpoint=audit.last_checkpoint(), at=labels.moment,
        )


class OrgTypeView(AuditedModelView):
    """The attester count per organisation type (the routine allows fewer for some); saved by
    the workflow, which checks the range and writes the audit row."""

    datamodel = ListInterface(OrganisationType)
    route_base = "/organisation-types"
    include_route_methods = {"list", "show", "edit"}
    list_title = _l("Organisation types")
    show_title = _l("Organisation type")
    edit_title = _l("Edit organisation type")
    list_columns = ["name", "code", "attesters_required"]
    show_columns = ["name", "code", "attesters_required"]
    edit_columns = ["name", "attesters_required"]
    label_columns = {
        "name": _l("Name"),
        "code": _l("Code"),
        "attesters_required": _l("Attesters required"),
    }
    description_columns = {"attesters_required": _l("Between 1 and 5; the routine's default is 2.")}

    def save(self, values, pk=None):
        return registers.set_attesters_required(pk, values.get("attesters_required"),
                                                name=values.get("name"))


def register(appbuilder) -> None:
    """Called from the Administration screens' registration."""
    appbuilder.add_view(
        AuditLogView, MENU["audit"], label=_l("Audit log"), category=MENU["admin"],
        category_label=_l("Administration"), icon="fa-list-alt",
    )
    appbuilder.add_view(
        OrgTypeView, MENU["org_types"], label=_l("Organisation types"),
        category=MENU["registers"], category_label=_l("Registers"), icon="fa-sitemap",
    )
