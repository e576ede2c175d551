"""The start page: what each role must do today, as counts that link to their lists."""

from flask import current_app, url_for
from flask_appbuilder import IndexView, expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.routing import BuildError

from app import labels, outbox, signin_limits
from app.display import install as install_display
from app.security import user_roles
from views.issuances import CARDS_OUT

# count key -> (label, screen endpoint, permission that opens it, key in
# queries.dashboard_counts). The permission is separate: the list screens of BaseViews are
# `index` methods guarded by `can_list`.
COUNTS = {
    "awaiting_approval": (labels.ISSUANCE_STATUS["awaiting_approval"], "ApprovalQueueView.index",
                          "can_list", "awaiting_approval"),
    "receipts_due_soon": (_l("Receipts due within %(days)s days"), "ReceiptsView.index",
                          "can_list", "receipts_due_soon"),
    "receipts_overdue": (_l("Overdue receipts"), "ReceiptsView.index", "can_list",
                         "receipts_overdue"),
    "cards_out": (_l("Cards out"), "IssuanceView.list", "can_list", "open_issuances"),
    "expired_not_returned": (_l("Expired but not returned"), "IssuanceView.list", "can_list",
                             "expired_not_returned"),
    "mail_in_progress": (_l("Registered mail in progress"), "MailFlowView.index", "can_index",
                         "mail_in_progress"),
    "cards_to_restock": (_l("Returned cards to restock"), "ReturnsView.index", "can_list",
                         "cards_to_restock"),
    "open_deviations": (_l("Open deviations"), "DeviationView.list", "can_list",
                        "open_deviations"),
    "failed_emails": (_l("E-mails that could not be sent"), "JobsView.index", "can_list",
                      "failed_emails"),
    "locked_accounts": (_l("Locked accounts"), "SigninLockView.index", "can_list",
                        "locked_accounts"),
}
# A count whose list shows more than it counts opens the list filtered to the same rows:
# key -> (column, FAB filter, value).
LIST_FILTERS = {
    "cards_out": ("status", "CodeStartsWith", CARDS_OUT),
    "expired_not_returned": ("status", "FilterEqual", "expired"),
    "open_deviations": ("status", "FilterNotEqual", "closed"),
}
# Counts that are not about issuances (Admin's): key -> the function giving its count query
# (run in the same statement as the others).
OTHER_COUNTS = {
    "failed_emails": outbox.failed_count_query,
    "locked_accounts": signin_limits.locked_count_query,
}
# What each role follows; a person with several roles sees the union, in COUNTS order.
ROLE_COUNTS = {
    # Admin keeps the system running (separation of duties: no daily work, see app/roles.py).
    "Admin": {"failed_emails", "locked_accounts", "cards_out", "open_deviations"},
    "Servicecenter": {"receipts_due_soon", "receipts_overdue", "cards_out",
                      "expired_not_returned", "cards_to_restock", "open_deviations"},
    "Televäxeln": {"awaiting_approval"},
    "Korthandläggare": {"mail_in_progress", "cards_out", "expired_not_returned"},
    "Chef": {"open_deviations"},
    "Intygsgivare": set(),
}


def keys_for(roles, admin_may_operate=False) -> list[str]:
    wanted = set().union(*(ROLE_COUNTS.get(role, set()) for role in roles))
    if admin_may_operate and "Admin" in roles:
        wanted = set(COUNTS)  # Admin then does the daily work too
    return [key for key in COUNTS if key in wanted]


def _link(endpoint, permission, list_filter=None):
    """The screen behind a count, when it exists and this user may open it (filtered to the
    rows counted, with `list_filter`)."""
    view = endpoint.split(".")[0]
    if not current_app.appbuilder.sm.has_access(permission, view):
        return None
    try:
        return url_for(endpoint, **(_filter_args(view, *list_filter) if list_filter else {}))
    except BuildError:
        return None


def _filter_args(view_name, column, filter_name, value) -> dict:
    """FAB's list arguments for one filter (`_flt_<index>_<column>`), the index looked up in
    the view's own search filters so it follows FAB's order."""
    view = next((v for v in current_app.appbuilder.baseviews
                 if type(v).__name__ == view_name), None)
    filters = view._filters.get_search_filters().get(column, []) if view is not None else []
    for index, search_filter in enumerate(filters):
        if type(search_filter).__name__ == filter_name:
            return {f"_flt_{index}_{column}": value}
    return {}


def dashboard(user) -> list[dict]:
    """The counts this user's roles follow, each with label, number and link."""
    from app.workflow import queries

    keys = keys_for(user_roles(user), current_app.config["ADMIN_MAY_OPERATE"])
    if not keys:
        return []
    days = current_app.config["RECEIPT_REMINDER_DAYS_BEFORE"]
    # Only the counts shown, all in one statement.
    counts = queries.dashboard_counts(
        user=user, due_soon_days=days, keys={COUNTS[key][3] for key in keys},
        extra={key: OTHER_COUNTS[key]() for key in keys if key in OTHER_COUNTS})
    rows = []
    for key in keys:
        label, endpoint, permission, _count_key = COUNTS[key]
        # A mapping with % leaves labels without placeholders unchanged.
        rows.append({"key": key, "label": str(label) % {"days": days},
                     "value": int(counts.get(COUNTS[key][3]) or 0),
                     "link": _link(endpoint, permission, LIST_FILTERS.get(key))})
    return rows


class HomeView(IndexView):
    index_template = "home.html"

    @expose("/")
    def index(self):
        self.update_redirect()
        user = current_user._get_current_object()
        rows = dashboard(user) if user.is_authenticated else []
        new_application = (_link("ApplicationWizardView.start", "can_apply")
                           if user.is_authenticated and not rows else None)
        return self.render_template(self.index_template, appbuilder=self.appbuilder,
                                    counts=rows, new_application=new_application)


def register(appbuilder) -> None:
    """The index view is registered by AppBuilder itself (FAB_INDEX_VIEW); the display
    filters are installed here, the first screen module to register."""
    install_display()
