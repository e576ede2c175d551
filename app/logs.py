"""Structured logs: one JSON object per line with the time, level, logger, message, the
request id (the X-Request-ID header if the proxy sent one, otherwise a new one, echoed in the
response), the signed-in user, and the rule code when a step was refused.

On with LOG_FORMAT=json (the default outside `make run` and the tests is plain text).
"""

import json
import logging
import sys
import uuid
from datetime import UTC, datetime

from flask import g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
_STANDARD = set(vars(logging.LogRecord("x", 0, "", 0, "", (), None))) | {"message", "asctime"}


def request_id():
    return g.get("request_id") if has_request_context() else None


def _user():
    if not has_request_context():
        return None
    # Only a user already loaded (by Flask-Login, FAB or the JWT): logging never queries.
    jwt_user = g.get("_jwt_extended_jwt_user") or {}
    for cached in (g.get("_login_user"), g.get("user"), jwt_user.get("loaded_user")):
        if cached is not None and getattr(cached, "is_authenticated", False):
            return getattr(cached, "username", None)
    return None


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context():
            entry.update(request_id=request_id(), user=_user(), method=request.method,
                         path=request.path)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) \
                    else str(value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry, ensure_ascii=False)


def log_refusal(rule: str, field=None) -> None:
    """One line per refused step, with its rule code (and a metric)."""
    from app.metrics import record_refusal

    record_refusal(rule)
    logging.getLogger("reservkort.refusal").info("refused: %s", rule,
                                                 extra={"rule": rule, "field": field})


def install(flask_app) -> None:
    @flask_app.before_request
    def _request_id():
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given[:64] if given.isprintable() and given else uuid.uuid4().hex

    @flask_app.after_request
    def _echo_request_id(response):
        if g.get("request_id"):
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

    if flask_app.config.get("LOG_FORMAT") == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        root.handlers = [h for h in root.handlers if not getattr(h, "reservkort_json", False)]
        handler.reservkort_json = True
        root.addHandler(handler)
        root.setLevel(flask_app.config.get("LOG_LEVEL", "INFO"))
