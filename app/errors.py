"""The typed refusal every workflow step raises, carrying a stable rule code."""

from flask_babel import lazy_gettext as _l


class RuleViolation(Exception):
    """A step refused by a rule of the routine.

    `rule` is the code from the domain's rule table; `field` names the input the person should
    correct (the REST API puts it in `errors`).
    """

    def __init__(self, rule: str, message, field: str | None = None, **params):
        self.rule = rule
        self.field = field
        self.params = params
        self._message = message
        super().__init__(rule)
        from app.logs import log_refusal

        log_refusal(rule, field)  # one structured log line and a metric per refusal

    @property
    def message(self) -> str:
        return str(self._message) % self.params if self.params else str(self._message)

    def __str__(self):
        return f"{self.rule}: {self.message}"

    def as_dict(self) -> dict:
        errors = {self.field: [self.message]} if self.field else {}
        return {"message": self.message, "rule": self.rule, "errors": errors}


class ScopeRefusal(RuleViolation):
    """A step on something outside the login's row scope (a manager: another unit). The REST
    API answers 403."""

    http_status = 403

    def __init__(self, field: str | None = None):
        super().__init__("outside_managed_units", RULE_MESSAGES["outside_managed_units"],
                         field=field)


class NotFound(Exception):
    """The thing a step names does not exist (the API answers 404)."""

    def __init__(self, what: str, key):
        self.what = what
        self.key = key
        super().__init__(f"{what} {key} not found")


# Messages per rule code, in Swedish through the catalog (msgids are English).
RULE_MESSAGES = {
    "card_unknown": _l("The card %(serial)s is not in the stock."),
    "card_not_in_stock": _l(
        "The card %(serial)s is not available: it is issued, blocked, lost, destroyed or "
        "waiting to be restocked."
    ),
    "card_not_out": _l(
        "The card %(serial)s is not out with anyone (its status: %(status)s), so it cannot be "
        "returned."
    ),
    "card_expired": _l("The card %(serial)s is past its own expiry date (%(expires_on)s)."),
    "card_bound_to_other_person": _l(
        "The card %(serial)s was issued before to another person and may only be issued to them "
        "again."
    ),
    "card_not_loa2": _l("The card %(serial)s is not an LOA2 card; only LOA2 reserve cards can "
                        "be issued this way."),
    "recipient_unknown": _l("No person with HSA-id %(hsa_id)s."),
    "recipient_has_open_issuance": _l(
        "%(name)s already holds a reserve card. A person has at most one reserve card at a time."
    ),
    "recipient_protected_identity": _l(
        "People with protected identity cannot be served here. Send the person to the SITHS "
        "office."
    ),
    "recipient_no_personal_number": _l(
        "People without a Swedish personal identity number cannot be served here. Send the "
        "person to the SITHS office."
    ),
    "recipient_no_card_or_order": _l(
        "%(name)s has neither an ordinary SITHS card (active or ordered) nor a reserve-card order "
        "in Kobe."
    ),
    "new_card_not_ordered": _l(
        "Reason 'Awaiting new SITHS card' needs a new ordinary card ordered in Kobe."
    ),
    "reserve_order_missing": _l(
        "Reason 'Temporary assignment' needs a reserve-card order in Kobe."
    ),
    "attesters_too_few": _l("%(required)s authenticated attesters are required; %(given)s given."),
    "attesters_not_distinct": _l("The attesters must be different people."),
    "attester_is_recipient": _l("The recipient cannot attest their own reserve card."),
    "attester_without_valid_card": _l(
        "The attester %(name)s has no valid ordinary SITHS card."
    ),
    "attester_not_eligible": _l(
        "The attester %(name)s holds a card-office role (%(role)s) and may not attest."
    ),
    "validity_too_long": _l(
        "The end date may be at the latest %(max_date)s (%(max_days)s days for this reason)."
    ),
    "validity_past_card_expiry": _l(
        "The end date may be at the latest %(expires_on)s, the card's own expiry date."
    ),
    "extension_already_used": _l("The reserve card has already been extended once."),
    "extension_window_passed": _l(
        "An extension must be asked for within %(months)s months of issue (at the latest "
        "%(last_day)s)."
    ),
    "extension_not_allowed": _l(
        "Only an approved reserve card that is not blocked or returned can be extended."
    ),
    "card_handler_only": _l(
        "Only card handlers (Servicecenter or the SITHS organisation) may send a reserve card by "
        "registered mail."
    ),
    "checks_incomplete": _l("Every Kobe check must be confirmed before approval: %(missing)s."),
    "protected_identity_clearance_required": _l(
        "The person has protected identity: only a login cleared for protected identity may "
        "change their details or lift the protection."
    ),
    "outside_managed_units": _l(
        "This belongs to a unit you are not a manager of; you can only see and handle the "
        "deviations of the units you manage and the units below them."
    ),
    "transition_not_allowed": _l(
        "The step '%(step)s' is not possible when the issuance is '%(status)s'."
    ),
    "email_address_invalid": _l(
        "The e-mail address %(address)s is not a valid address; no e-mail can be sent to it."
    ),
}


def refuse(rule: str, field: str | None = None, **params) -> RuleViolation:
    """Build the RuleViolation for a rule code with its standard message."""
    return RuleViolation(rule, RULE_MESSAGES[rule], field=field, **params)


# --- error pages ------------------------------------------------------------------------------
# Swedish pages for the browser, JSON {"message"} under /api/ (the REST contract).

ERROR_PAGES = {
    403: (_l("Access denied"), _l("Your role does not give access to this page or action.")),
    404: (_l("Page not found"), _l("There is nothing at this address. Check the link or start "
                                   "again from the start page.")),
    429: (_l("Too many attempts"), _l("Too many attempts in a short time. Wait a moment and try "
                                      "again.")),
    500: (_l("Something went wrong"), _l("The server could not complete the request. Try "
                                         "again; if it happens again, contact support.")),
}


def _wants_json() -> bool:
    from flask import request

    return request.path.startswith("/api/")


def error_answer(status: int, message=None, headers=None):
    """The answer for an HTTP error: JSON under /api/, otherwise a Swedish page."""
    from flask import current_app, jsonify, render_template

    title, default = ERROR_PAGES[status]
    text = str(message or default)
    if _wants_json():
        response = jsonify({"message": text})
    else:
        context = {"title": str(title), "message": text}
        try:
            if status == 500:
                raise RuntimeError("no full page after a server error")
            appbuilder = current_app.appbuilder
            body = render_template("errors/page.html", appbuilder=appbuilder,
                                   base_template=appbuilder.base_template,
                                   known_endpoints=current_app.view_functions, **context)
        except Exception:  # the full page needs the database and the menu: the plain one not
            from flask_babel import get_locale

            body = render_template("errors/plain.html", lang=str(get_locale() or "sv"),
                                   **context)
        response = current_app.response_class(body, mimetype="text/html")
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def install(flask_app) -> None:
    from werkzeug.exceptions import HTTPException, InternalServerError

    from app.api_contract import too_many_attempts_response
    from app.signin_limits import TooManyAttempts

    def http_error(exc: HTTPException):
        if exc.code not in ERROR_PAGES:
            return exc
        headers = {}
        if exc.code == 429 and getattr(exc, "retry_after", None):
            headers["Retry-After"] = str(exc.retry_after)
        return error_answer(exc.code, headers=headers)

    def too_many_attempts(exc: TooManyAttempts):
        if _wants_json():
            return too_many_attempts_response(exc)
        return error_answer(429, exc.message, {"Retry-After": str(exc.retry_after)})

    def server_error(exc):
        return error_answer(500)

    flask_app.register_error_handler(HTTPException, http_error)
    flask_app.register_error_handler(TooManyAttempts, too_many_attempts)
    flask_app.register_error_handler(InternalServerError, server_error)


# --- The database is away --------------------------------------------------------------------
# Self-contained: while PostgreSQL restarts or the network to it is cut, the API answers its
# JSON contract with 503 and Retry-After, the screens a plain Swedish page (it must not need the
# database: no menu, no user), and the log gets one line per failed request, not a traceback.

DATABASE_RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = _l("The database cannot be reached right now. Try again in a moment.")


def _outage_classes():
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

    return (OperationalError, InterfaceError, DisconnectionError)


def database_outage_response(exc):
    """The 503 for a request that failed because the database is away, and its one log line."""
    import logging

    from flask import current_app, jsonify, request
    from sqlalchemy.exc import SQLAlchemyError

    from app.extensions import db

    reason = type(getattr(exc, "orig", None) or exc).__name__
    logging.getLogger("reservkort.database").warning(
        "database unavailable: %s %s -> 503 (%s)", request.method, request.path, reason)
    try:
        db.session.rollback()
    except SQLAlchemyError:
        db.session.registry.clear()
    headers = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
    if request.path.startswith(("/api/", "/health/")):
        body = {"message": str(DATABASE_UNAVAILABLE), "rule": "database_unavailable",
                "errors": {}}
        return jsonify(body), 503, headers
    # Rendered without the context processors: they would look up the user (the database).
    page = current_app.jinja_env.get_template("errors/database_unavailable.html").render(
        message=str(DATABASE_UNAVAILABLE), retry_after=DATABASE_RETRY_AFTER_SECONDS,
        config=current_app.config)
    return page, 503, {**headers, "Content-Type": "text/html; charset=utf-8"}


def _fab_api_outage_aware() -> None:
    """FAB's REST API catches every exception itself (its `safe` decorator) and answers 500
    after logging a traceback: while the database is away, answer the 503 instead and leave
    the traceback out (the 503 logs its own line)."""
    import logging
    import sys

    from flask_appbuilder.api import BaseApi

    if getattr(BaseApi.response_500, "outage_aware", False):
        return
    original = BaseApi.response_500

    def response_500(self, message=None, **kwargs):
        exc = sys.exc_info()[1]
        if isinstance(exc, _outage_classes()):
            return database_outage_response(exc)
        return original(self, message, **kwargs)

    response_500.outage_aware = True
    BaseApi.response_500 = response_500

    class DropOutageTracebacks(logging.Filter):
        def filter(self, record):
            return not (record.exc_info and isinstance(record.exc_info[1], _outage_classes()))

    logging.getLogger("flask_appbuilder.api").addFilter(DropOutageTracebacks())


def install_database_outage_handling(flask_app) -> None:
    """503 for every request that fails because the database is away; a teardown that
    tolerates a dead connection (so a request whose transaction committed is not turned into a
    500 by the closing rollback)."""
    import logging

    from sqlalchemy.exc import SQLAlchemyError

    from app.extensions import db

    log = logging.getLogger("reservkort.database")
    for exc_class in _outage_classes():
        flask_app.register_error_handler(exc_class, database_outage_response)
    _fab_api_outage_aware()

    @flask_app.teardown_appcontext
    def close_session_tolerantly(exc):
        # Runs before Flask-SQLAlchemy's own teardown (registered earlier, so called later).
        try:
            db.session.remove()
        except SQLAlchemyError as err:
            log.warning("database connection lost while closing the request's session (%s)",
                        type(getattr(err, "orig", None) or err).__name__)
            try:
                db.session.registry().invalidate()
            except SQLAlchemyError:
                pass
            db.session.registry.clear()
