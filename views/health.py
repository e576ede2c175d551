"""Health and metrics for the load balancer and the monitoring: no login, no personal data.

GET /health/live: the process answers (no dependency checked).
GET /health/ready: database, Redis, at least one live worker, the oldest e-mail not yet sent
younger than HEALTH_OUTBOX_MAX_AGE_SECONDS; 200 when all hold, otherwise 503; JSON.
GET /metrics: Prometheus text format.
"""

from flask import Blueprint, current_app, jsonify

from app import health, metrics

blueprint = Blueprint("health", __name__)


@blueprint.get("/health/live")
def live():
    return jsonify({"ok": True})


@blueprint.get("/health/ready")
def ready():
    report = health.readiness()
    return jsonify(report), (200 if report["ok"] else 503)


@blueprint.get("/metrics")
def prometheus_metrics():
    return metrics.metrics_response(current_app._get_current_object())
