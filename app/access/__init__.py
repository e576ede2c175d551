"""The one access policy: who may see and do what with the people of the register.

Every read path (screens, REST answers, exports, PDFs, the audit log, the outbox, e-mails)
and every write on a person asks this package; views, APIs and jobs decide nothing of it
themselves. Its parts:

- `persons`: how a person is shown to a login (masked for protected identity without
  clearance) and which writes on a person need clearance;
- `redaction`: text written before a person became protected, or naming them freely (audit
  rows, the outbox, e-mails to anyone but the person), with their strings masked;
- `filters`: the same policy on Flask-AppBuilder's generated reads (search, order, the values
  of a page, REST serialisation with any column selection);
- `scope`: the row scope of each role (a Chef: the units they manage and those below).
"""

from app.access.filters import (
    AccessInterface,
    MaskingSchemaConverter,
    apply_search_policy,
    findable_people,
    masked_order,
    search_guard,
)
from app.access.persons import (
    MASK,
    PERSON_FIELDS,
    MaskedPerson,
    check_person_edit,
    clearance_of,
    current_user_cleared,
    display_name,
    field_value,
    format_personal_number,
    has_clearance,
    hidden,
    is_masked,
    login_hidden,
    mask_dict,
    mask_rows,
    may_edit_person,
    person_label,
    person_label_with_number,
    person_view,
    remember_clearance,
    shown,
    shown_login,
    shown_name,
)
from app.access.redaction import (
    FREE_TEXT,
    audit_value,
    free_text,
    mail_texts,
    masked_dump,
    outbox_value,
    protected_identities,
    protected_token,
    redact_value,
    remember_protected_token,
    shown_column,
    shown_outbox,
    shown_rows,
)
from app.access.scope import (
    deviations_in_scope,
    in_units,
    managed_roots,
    people_in_scope,
    reaches_unit,
    require_unit,
    responsible_managers,
    sees_all,
    unit_ids,
    units_below,
    visible_unit_ids,
)

__all__ = [
    "MASK", "PERSON_FIELDS", "AccessInterface", "MaskedPerson", "MaskingSchemaConverter",
    "apply_search_policy", "check_person_edit", "findable_people", "masked_order",
    "clearance_of", "current_user_cleared", "remember_clearance",
    "display_name",
    "field_value", "format_personal_number", "has_clearance", "hidden", "is_masked",
    "mask_dict", "mask_rows", "masked_dump", "may_edit_person", "person_label",
    "person_label_with_number", "person_view", "search_guard", "shown", "login_hidden",
    "shown_login", "shown_name",
    "audit_value", "mail_texts", "outbox_value", "protected_identities", "protected_token",
    "redact_value", "remember_protected_token",
    "shown_outbox", "FREE_TEXT", "free_text", "shown_column", "shown_rows",
    "deviations_in_scope", "managed_roots", "people_in_scope", "reaches_unit", "require_unit",
    "responsible_managers", "sees_all", "unit_ids", "units_below", "in_units",
    "visible_unit_ids",
]
