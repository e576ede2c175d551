"""Administration: the health of the job queue and the e-mail outbox (this module), and the audit
log (views.audit_log, registered from here)."""

import importlib

from flask import abort, flash, redirect, url_for
from flask_appbuilder import BaseView, ModelView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app import access, labels, mailer, queues
from app.errors import NotFound, RuleViolation
from app.extensions import db
from app.roles import MENU
from models import OutboxMessage, SweepRun
from views.listing import ListInterface

FAILED_SHOWN = 50


def _at(value) -> str:
    """A stored moment in Swedish local time, to the minute."""
    return labels.moment(value)


def _short_error(text, limit=300) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= limit else last[: limit - 1] + "…"


def queue_health() -> dict:
    """The queue's health with each failed job's error cut to its last line."""
    health = queues.queue_health(FAILED_SHOWN)
    for job in health.get("failed_jobs", []):
        job["error"] = _short_error(job["error"])
    return health


class JobsView(BaseView):
    """Queue lengths, failed jobs (requeue), the last sweep, failed e-mail (resend)."""

    route_base = "/admin/jobs"
    default_view = "index"

    @expose("/", methods=["GET"])
    @has_access
    @permission_name("list")
    def index(self):
        outbox_counts = dict(db.session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
        failed_mail = db.session.execute(
            select(OutboxMessage).where(OutboxMessage.status == "failed")
            .order_by(OutboxMessage.id.desc()).limit(FAILED_SHOWN)
        ).scalars().all()
        last_sweep = db.session.execute(
            select(SweepRun).order_by(SweepRun.started_at.desc(), SweepRun.id.desc()).limit(1)
        ).scalar()
        from app import health as operations

        queue_state = operations.queue_status()
        outbox_state = operations.outbox_status()
        return self.render_template(
            "admin/jobs.html", health=queue_health(), outbox_counts=outbox_counts,
            failed_mail=access.shown_outbox(failed_mail), last_sweep=last_sweep, at=_at,
            short_error=_short_error,
            live_workers=queue_state["live_workers"], outbox_state=outbox_state,
            mail=operations.mail_status(outbox_state, queue_state),
        )

    @expose("/requeue/<job_id>", methods=["POST"])
    @has_access
    @permission_name("requeue")
    def requeue(self, job_id):
        try:
            requeued = queues.requeue_failed(job_id)
        except queues.QueueUnavailable as exc:
            if not exc.configured:
                abort(404)
            flash(_("The job queue cannot be reached: %(error)s", error=str(exc)), "danger")
        else:
            if requeued:
                flash(_("The job %(id)s is queued again.", id=job_id), "success")
            else:
                flash(_("The job %(id)s is no longer among the failed jobs.", id=job_id),
                      "warning")
        return redirect(url_for("JobsView.index"))

    @expose("/resend/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("resend")
    def resend(self, pk):
        try:
            mailer.resend(pk)
        except NotFound:
            abort(404)
        except RuleViolation as exc:
            flash(exc.message, "warning")
        else:
            flash(_("E-mail %(id)s is queued to be sent again.", id=pk), "success")
        return redirect(url_for("JobsView.index"))


class OutboxView(ModelView):
    """Every e-mail the system has queued, newest first (read-only)."""

    datamodel = ListInterface(OutboxMessage)
    route_base = "/admin/outbox"
    include_route_methods = {"list", "show"}
    can_add = can_edit = can_delete = False
    base_order = ("id", "desc")
    list_title = _l("Outbox")
    show_title = _l("E-mail")
    list_columns = ["id", "created_at", "template", "to_addrs", "subject", "status", "attempts",
                    "sent_at"]
    show_columns = ["id", "created_at", "template", "to_addrs", "subject", "status", "attempts",
                    "next_attempt_at", "sent_at", "last_error", "issuance_id", "dedupe_key",
                    "body_text"]
    search_columns = ["status", "template", "to_addrs", "subject", "created_at"]
    search_form_extra_fields = {"status": labels.search_field("outbox_status", _l("Status")),
                                "template": labels.search_field("template", _l("Kind"))}
    order_columns = ["id", "created_at", "template", "status", "attempts", "sent_at"]
    label_columns = {
        "id": _l("No."),
        "created_at": _l("Queued"),
        "template": _l("Kind"),
        "to_addrs": _l("To"),
        "subject": _l("Subject"),
        "status": _l("Status"),
        "attempts": _l("Attempts"),
        "next_attempt_at": _l("Next attempt"),
        "sent_at": _l("Sent"),
        "last_error": _l("Last error"),
        "issuance_id": _l("Issuance"),
        "dedupe_key": _l("Dedupe key"),
        "body_text": _l("Text"),
    }
    formatters_columns = {"created_at": _at, "sent_at": _at, "next_attempt_at": _at,
                          "template": lambda code: labels.label("template", code)}
    page_size = 50


def register(appbuilder) -> None:
    try:
        audit_log = importlib.import_module("views.audit_log")
    except ModuleNotFoundError as exc:
        if exc.name != "views.audit_log":
            raise
    else:
        audit_log.register(appbuilder)
    appbuilder.add_view(
        JobsView, MENU["jobs"], label=_l("Jobs and e-mail"), category=MENU["admin"],
        category_label=_l("Administration"), icon="fa-cogs",
    )
    appbuilder.add_view(
        OutboxView, MENU["outbox"], label=_l("Outbox"), category=MENU["admin"],
        category_label=_l("Administration"), icon="fa-envelope",
    )
