"""The operational state in one place: database, Redis, live workers, the outbox and the last
sweep. The health endpoints, the metrics and the Jobs screen all read it here. Nothing in it is
personal data (counts and ages only)."""

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from app import clock
from app.extensions import db
from app.queues import get_queue
from models import OutboxMessage, SweepRun

DEFAULT_OUTBOX_MAX_AGE_SECONDS = 900


def database_status() -> dict:
    try:
        db.session.execute(text("SELECT 1"))
        return {"ok": True}
    except SQLAlchemyError as exc:
        db.session.rollback()
        return {"ok": False, "error": type(getattr(exc, "orig", None) or exc).__name__}


def queue_status() -> dict:
    """Redis, the queue's lengths and the live workers on it."""
    from rq import Worker
    from rq.registry import FailedJobRegistry

    queue = get_queue()
    if queue is None:
        return {"configured": False, "ok": True, "live_workers": 0, "counts": {}}
    try:
        queue.connection.ping()
        counts = {"queued": queue.count, "started": queue.started_job_registry.count,
                  "scheduled": queue.scheduled_job_registry.count,
                  "failed": FailedJobRegistry(queue=queue).count}
        live = len(Worker.all(queue=queue))
        return {"configured": True, "ok": True, "live_workers": live, "counts": counts}
    except RedisError as exc:
        return {"configured": True, "ok": False, "error": type(exc).__name__,
                "live_workers": 0, "counts": {}}


def outbox_status(now=None) -> dict:
    """Counts per status and the age of the oldest message not yet sent."""
    now = now or clock.now()
    counts = dict(db.session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    oldest = db.session.execute(
        select(func.min(OutboxMessage.created_at))
        .where(OutboxMessage.status.in_(("pending", "sending")))).scalar()
    age = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    return {"pending": counts.get("pending", 0) + counts.get("sending", 0),
            "failed": counts.get("failed", 0), "sent": counts.get("sent", 0),
            "oldest_pending_at": oldest, "oldest_pending_seconds": age}


def last_sweep(now=None) -> dict:
    now = now or clock.now()
    run = db.session.execute(
        select(SweepRun).order_by(SweepRun.started_at.desc(), SweepRun.id.desc()).limit(1)
    ).scalar()
    if run is None:
        return {"at": None, "seconds_ago": None, "finished": None}
    return {"at": run.started_at, "seconds_ago": max(0.0, (now - run.started_at).total_seconds()),
            "finished": run.finished_at is not None}


def mail_status(outbox: dict, queue: dict) -> dict:
    """Is the mail moving? `ok` False with the reasons when it is not."""
    limit = current_app.config.get("HEALTH_OUTBOX_MAX_AGE_SECONDS",
                                   DEFAULT_OUTBOX_MAX_AGE_SECONDS)
    reasons = []
    if queue["configured"] and not queue["ok"]:
        reasons.append("queue_unreachable")
    elif queue["configured"] and queue["live_workers"] < 1:
        reasons.append("no_live_worker")
    if outbox["pending"] and outbox["oldest_pending_seconds"] > limit:
        reasons.append("oldest_pending_too_old")
    return {"ok": not reasons, "reasons": reasons, "max_age_seconds": limit}


def readiness() -> dict:
    """The readiness report: each check with `ok`, and `ok` overall."""
    database = database_status()
    checks = {"database": database}
    queue = queue_status()
    checks["redis"] = {"ok": queue["ok"], "configured": queue["configured"],
                       **({"error": queue["error"]} if "error" in queue else {})}
    checks["workers"] = {"ok": (not queue["configured"]) or queue["live_workers"] >= 1,
                         "live": queue["live_workers"]}
    if database["ok"]:
        outbox = outbox_status()
        limit = mail_status(outbox, queue)["max_age_seconds"]
        checks["outbox"] = {
            "ok": not outbox["pending"] or outbox["oldest_pending_seconds"] <= limit,
            "pending": outbox["pending"], "failed": outbox["failed"],
            "oldest_pending_seconds": round(outbox["oldest_pending_seconds"], 1),
            "max_age_seconds": limit}
    else:
        checks["outbox"] = {"ok": False, "error": "database unavailable"}
    return {"ok": all(check["ok"] for check in checks.values()), "checks": checks}
