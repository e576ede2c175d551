"""How stored values read on the screens: Swedish local time, a dash for nothing, and the audit
history (action codes and changed fields) in words. `install(flask_app)` makes them Jinja
filters: `local_time`, `dash`, `action_label`, `changes` and `sorted_from_start` (a list's
sort link without the page it was made on)."""

from datetime import date, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import current_app
from markupsafe import Markup, escape

from app import clock, labels

DASH = "–"

# The words come from the one table, app/labels.py.
FIELD_LABELS = labels.FIELD
# Internal bookkeeping: the "Who" column already names the actor; file paths mean nothing here.
HIDDEN_FIELDS = {"scan_path", "scan_mime", "registered_by_user_id", "blocked_by_user_id",
                 "approved_by_user_id", "certificate_issued_by_user_id", "bound_person_id",
                 "lost_by_user_id", "certificate_block_requested_by_user_id"}


def _as_datetime(value):
    """A datetime, or an ISO date-time string as the audit log stores it; else None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and "T" in value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def local_time(value) -> str:
    """A stored moment as Swedish wall-clock time "YYYY-MM-DD HH:MM"; a date as itself."""
    if value in (None, ""):
        return DASH
    moment = _as_datetime(value)
    if moment is not None:
        return clock.local_moment_text(clock.to_utc_naive(moment))
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def dash(value):
    """The value, or a dash when there is none."""
    return DASH if value is None or value == "" else value


def with_dash(formatter):
    """A column formatter that shows a dash for an empty value."""
    return lambda value: DASH if value is None or value == "" else dash(formatter(value))


def status_label(status) -> str:
    return dash(labels.label("status", status))


def channel_label(channel) -> str:
    return dash(labels.label("channel", channel))


def action_label(action) -> str:
    return labels.label("action", action)


def _checks_text(checks: dict) -> str:
    from app.workflow.approval import CHECK_LABELS

    return ", ".join(f"{CHECK_LABELS.get(key, key)} {'✓' if done else '✗'}"
                     for key, done in checks.items())


def _reason_text(reason) -> str:
    return labels.reason(reason)


def change_value(key, value) -> str:
    """One changed value in words."""
    if value is None or value == "":
        return DASH
    if key == "status":
        return status_label(value)
    if key == "channel":
        return channel_label(value)
    if key == "reason":
        return _reason_text(value)
    if key == "checks_confirmed" and isinstance(value, dict):
        return _checks_text(value)
    if isinstance(value, bool):
        return labels.yes_no(value)
    if isinstance(value, list):
        return ", ".join(change_value(None, item) for item in value) or DASH
    if isinstance(value, dict):
        return ", ".join(f"{FIELD_LABELS.get(k, k)}: {change_value(k, v)}"
                         for k, v in value.items())
    if _as_datetime(value) is not None:
        return local_time(value)
    return str(value)


def changes(after) -> list[tuple[str, str]]:
    """(label, value) for each field an audit event set, leaving out internal bookkeeping."""
    if not isinstance(after, dict):
        return []
    return [(str(FIELD_LABELS.get(key, key)), change_value(key, value))
            for key, value in after.items() if key not in HIDDEN_FIELDS]


def sorted_from_start(url: str, modelview_name: str) -> str:
    """A list's sort link without the page it was made on (its number and keyset cursor,
    `page_`, `after_`, `before_<View>`): a new order starts at its first page."""
    parts = urlsplit(url)
    dropped = {f"{prefix}_{modelview_name}" for prefix in ("page", "after", "before")}
    kept = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
            if key not in dropped]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def shown_text(value):
    """Free text (a reason, an address, a note) as the reader may see it (app.access)."""
    from app import access

    return access.free_text(value)


def row_cells(item, columns, formatters) -> Markup:
    """A list row's cells: each value through its column's formatter, or as labels.cell
    shows it, escaped as the template would (one call per row: Jinja's work per cell was
    most of a list page's rows' time)."""
    cells = []
    for column in columns:
        formatter = formatters.get(column)
        value = item[column]
        cells.append(f"<td>{escape(formatter(value) if formatter else labels.cell(value, column))}"
                     "</td>")
    return Markup("".join(cells))


FILTERS = {"local_time": local_time, "row_cells": row_cells, "shown_text": shown_text, "dash": dash,
           "action_label": action_label, "sorted_from_start": sorted_from_start,
           "changes": changes, "cell": labels.cell,
           "yes_no": labels.yes_no,
           "label": lambda code, kind: labels.label(kind, code)}


def install(flask_app=None) -> None:
    """Make the display helpers Jinja filters of this (or the current) app; safe to repeat."""
    (flask_app or current_app).jinja_env.filters.update(FILTERS)
