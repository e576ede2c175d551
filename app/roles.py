"""The roles and what each may reach, declared for FAB_ROLES.

View class names and menu names here are the permission identifiers the views register under;
a view that is added must be named here for any role but Admin to reach it.
"""

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
