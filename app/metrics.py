"""Prometheus metrics (prometheus-client) at /metrics.

Counters are kept per process: requests by method, endpoint and status, failed sign-ins by
provider. Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR to an empty folder
(cleared at each start) so that every worker's counts are added up. The operational gauges
(outbox, queue, workers, last sweep) are read from the database and Redis at each scrape
(app.health), so they are right whichever process answers.
"""

import os
import time

from flask import g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("reservkort_http_requests_total", "HTTP requests answered",
                   ["method", "endpoint", "status"])
LATENCY = Histogram("reservkort_http_request_seconds", "Time to answer a request",
                    ["method", "endpoint"])
FAILED_SIGNINS = Counter("reservkort_failed_signins_total", "Sign-ins refused", ["provider"])
REFUSALS = Counter("reservkort_refusals_total", "Steps refused by a rule", ["rule"])


def record_failed_signin(provider: str = "db") -> None:
    """Count one refused sign-in (the sign-in limiter and the login hooks call this)."""
    FAILED_SIGNINS.labels(provider=provider).inc()


def record_refusal(rule: str) -> None:
    REFUSALS.labels(rule=rule).inc()


class OperationsCollector:
    """Gauges read at scrape time from app.health, inside the app."""

    def __init__(self, flask_app):
        self.flask_app = flask_app

    def collect(self):
        from app import health

        with self.flask_app.app_context():
            queue = health.queue_status()
            database = health.database_status()
            yield _gauge("reservkort_database_up", "1 when the database answers",
                         1 if database["ok"] else 0)
            yield _gauge("reservkort_redis_up", "1 when Redis answers (or none is configured)",
                         1 if queue["ok"] else 0)
            yield _gauge("reservkort_live_workers", "Job workers registered on the queue",
                         queue["live_workers"])
            lengths = GaugeMetricFamily("reservkort_queue_jobs", "Jobs per queue registry",
                                        labels=["state"])
            for state, count in queue.get("counts", {}).items():
                lengths.add_metric([state], count)
            yield lengths
            if not database["ok"]:
                return
            outbox = health.outbox_status()
            yield _gauge("reservkort_outbox_pending", "E-mail not yet sent", outbox["pending"])
            yield _gauge("reservkort_outbox_failed", "E-mail given up on", outbox["failed"])
            yield _gauge("reservkort_outbox_oldest_pending_seconds",
                         "Age of the oldest e-mail not yet sent", outbox["oldest_pending_seconds"])
            sweep = health.last_sweep()
            if sweep["at"] is not None:
                yield _gauge("reservkort_last_sweep_age_seconds",
                             "Seconds since the last deadline sweep started", sweep["seconds_ago"])


def _gauge(name, documentation, value):
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def _registry(flask_app):
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = _Combined(REGISTRY)
    registry.register(OperationsCollector(flask_app))
    return registry


class _Combined(CollectorRegistry):
    """The process's default registry plus the app's own collectors."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def collect(self):
        yield from self.base.collect()
        yield from super().collect()


def metrics_response(flask_app):
    registry = flask_app.extensions.get("reservkort_metrics")
    if registry is None:
        registry = flask_app.extensions["reservkort_metrics"] = _registry(flask_app)
    return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}


def install(flask_app) -> None:
    """Count every request; count the sign-ins FAB refuses."""

    @flask_app.before_request
    def _start_timer():
        g.metrics_started = time.perf_counter()

    @flask_app.after_request
    def _count(response):
        endpoint = request.endpoint or "unknown"
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        started = g.pop("metrics_started", None)
        if started is not None:
            LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - started)
        return response

    sm = flask_app.appbuilder.sm
    original = sm.auth_user_db
    if getattr(original, "counts_failures", False):
        return

    def auth_user_db(username, password):
        user = original(username, password)
        if user is None:
            record_failed_signin("db")
        return user

    auth_user_db.counts_failures = True
    sm.auth_user_db = auth_user_db
