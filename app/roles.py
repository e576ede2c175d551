"""The roles and what each may reach, declared for FAB_ROLES.

Separation of duties: Admin manages users, roles, reference data, the audit log, jobs and e-mail,
and may read the issuances, but does not approve, register receipts, return cards, handle the
stock, apply, run the registered-mail flow or work deviations (`OPERATIONS` below). The setting
`ADMIN_MAY_OPERATE=True` gives Admin everything, as FAB would.

View class names and menu names here are the permission identifiers the views register under;
a view that is added must be named here for any role but Admin to reach it.
"""

import re

# Menu item and category names (permission identifiers; the labels shown are translated).
MENU = {
    "stock": "Stock",
    "cards": "Cards",
    "card_batch": "Register envelopes",
    "pickup_points": "Pickup points",
    "issuances_cat": "Issuances",
    "issuances": "All issuances",
    "receipts": "Receipts",
    "returns": "Returns",
    "approval_queue": "Approval queue",
    "mail_flow": "Registered mail",
    "application": "New application",
    "deviations_cat": "Deviations",
    "deviations": "Deviation list",
    "deviation_report": "Deviation report",
    "registers": "Registers",
    "people": "People",
    "units": "Units",
    "kobe": "Kobe register",
    "org_types": "Organisation types",
    "admin": "Administration",
    "audit": "Audit log",
    "jobs": "Jobs and e-mail",
    "outbox": "Outbox",
    "user_links": "User links",
    "signin_locks": "Locked accounts",
}

ANY = "^can_.*$"


def _views(*names):
    return "^(" + "|".join(names) + ")$"


def _perms(*names):
    return "^(" + "|".join(f"can_{n}" for n in names) + ")$"


def _menus(*keys):
    return [_views(*(MENU[k] for k in keys)), "^menu_access$"]


SELF_SERVICE = [
    ["^UserDBModelView$", "^can_userinfo$"],
    ["^ResetMyPasswordView$", "^can_this_form_(get|post)$"],
    ["^UserInfoEditView$", "^can_this_form_(get|post)$"],
    ["^HomeView$", ANY],
    ["^MenuApi$", "^can_get$"],
]

ROLES = {
    "Servicecenter": [
        [_views("CardView", "CardBatchView", "PickupPointView", "IssuanceView", "ReceiptsView",
                "ReturnsView", "PersonView", "UnitView", "KobeView", "KobeImportView",
                "DeviationView", "DeviationReportView"), ANY],
        [_views("CardApi", "PersonApi", "PickupPointApi", "UnitApi", "KobeApi", "DeviationApi",
                "ReportApi"), ANY],
        ["^IssuanceApi$", _perms("get", "info", "receipt", "extend", "return", "block",
                                 "lost", "receipt_pdf")],
        _menus("stock", "cards", "card_batch", "pickup_points", "issuances_cat", "issuances",
               "receipts", "returns", "deviations_cat", "deviations", "deviation_report",
               "registers", "people", "units", "kobe"),
        *SELF_SERVICE,
    ],
    "Televäxeln": [
        ["^ApprovalQueueView$", ANY],
        ["^IssuanceApi$", _perms("get", "info", "approve", "reject")],
        _menus("issuances_cat", "approval_queue"),
        *SELF_SERVICE,
    ],
    "Korthandläggare": [
        ["^MailFlowView$", ANY],
        ["^IssuanceView$", _perms("list", "show", "block", "lost")],
        ["^MailIssuanceApi$", ANY],
        ["^CardApi$", _perms("get", "info")],
        ["^IssuanceApi$", _perms("get", "info", "block", "lost")],
        _menus("issuances_cat", "issuances", "mail_flow"),
        *SELF_SERVICE,
    ],
    "Chef": [
        [_views("DeviationView", "DeviationReportView"), ANY],
        [_views("DeviationApi", "ReportApi"), _perms("get", "info", "note")],
        _menus("deviations_cat", "deviations", "deviation_report"),
        *SELF_SERVICE,
    ],
    "Intygsgivare": [
        ["^ApplicationWizardView$", ANY],
        ["^IssuanceApi$", _perms("post", "receipt_pdf")],
        _menus("issuances_cat", "application"),
        *SELF_SERVICE,
    ],
}

ALL_ROLES = ("Admin", *ROLES)

# Screens and APIs of the daily work -> what Admin keeps there (empty: nothing).
OPERATIONS = {
    "ApprovalQueueView": (),
    "ReceiptsView": (),
    "ReturnsView": (),
    "MailFlowView": (),
    "MailIssuanceApi": (),
    "ApplicationWizardView": (),
    "CardBatchView": (),
    "IssuanceView": ("list", "show", "scan"),
    "IssuanceApi": ("get", "receipt_pdf"),
    "CardView": ("list", "show"),
    "CardApi": ("get",),
    "DeviationView": ("list", "show"),
    "DeviationApi": ("get",),
}
# Their menu entries, hidden from Admin.
OPERATION_MENUS = ("approval_queue", "receipts", "returns", "mail_flow", "application",
                   "card_batch")


def _none_of(views, menus) -> str:
    """A regex matching every name but these, short enough for FAB's ab_view_menu.name (250),
    where FAB also stores the builtin roles' regexes: view names grouped by their suffix."""
    groups = []
    for suffix in ("View", "Api"):
        stems = [name[: -len(suffix)] for name in views if name.endswith(suffix)]
        groups.append("(" + "|".join(stems) + ")" + suffix)
    names = [*groups, *(re.escape(menu).replace("\\ ", " ") for menu in menus)]
    return "^(?!(" + "|".join(names) + ")$)"


def admin_role(may_operate: bool = False) -> list:
    """Admin's permissions: everything but the daily work, unless it may operate."""
    if may_operate:
        return [[".*", ".*"]]
    rules = [[_none_of(OPERATIONS, [MENU[key] for key in OPERATION_MENUS]), ".*"]]
    rules += [[f"^{view}$", _perms(*kept)] for view, kept in OPERATIONS.items() if kept]
    return rules


def roles(admin_may_operate: bool = False) -> dict:
    return {"Admin": admin_role(admin_may_operate), **ROLES}
