"""The RQ jobs. Each is a thin call into app/; none holds a rule of its own."""

from datetime import datetime

from jobs.context import app_context


def run_sweeps(at_iso: str | None = None) -> dict:
    """Every deadline sweep as of `at_iso` (ISO 8601; default now). Returns name -> count."""
    with app_context():
        from app.workflow import sweeps

        return sweeps.run_all(_moment(at_iso), trigger="schedule")


def dispatch_outbox(at_iso: str | None = None) -> dict:
    """Send the e-mail that is due (as of `at_iso`, default now); also the catch-up for
    anything a lost trigger left behind."""
    with app_context():
        from app import mailer
        from jobs.queue import dispatch_started, schedule_dispatch_at

        dispatch_started()
        result = mailer.dispatch_due(_moment(at_iso))
        next_due = result.pop("next_due", None)
        if next_due is not None:
            schedule_dispatch_at(next_due)  # a retry runs at its due time, not at a cron tick
            result["next_due"] = next_due.isoformat()
        return result


def audit_checkpoint() -> dict:
    """Verify the whole audit chain and record a new checkpoint."""
    with app_context():
        from app import audit

        row = audit.checkpoint()  # the whole chain: a job, never a page view
        return {"ok": row.ok, "head_id": row.head_id, "breaks": len(row.breaks or [])}


def run_export(job_id: int) -> dict:
    """Build the file of a big export (app.exports) and record its progress."""
    with app_context():
        from app import exports

        job = exports.run_job(job_id)
        return exports.job_state(job) if job is not None else {}


def _moment(at_iso):
    from app import clock

    return clock.to_utc_naive(datetime.fromisoformat(at_iso)) if at_iso else clock.now()
