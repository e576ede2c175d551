"""Sessions that end: at logout for good, after an idle time, after an absolute time, and when
the password changes.

Each login has a session generation in the database (`session_generations`). A browser session
and an API token carry the generation they were made under; logout and a password change raise
it, so every cookie and token made before (a copy included) stops working at its next request.
The browser session also carries when it signed in and when it was last used: past
`SESSION_IDLE_MINUTES` without a request, or `PERMANENT_SESSION_LIFETIME` after signing in, it is
over whatever the cookie says.
"""

from datetime import datetime, timedelta

from flask import current_app, flash, g, request, session
from flask_babel import gettext as _
from flask_login import user_logged_in
from sqlalchemy import event, inspect, select

from app import clock
from app.extensions import db
from models import SessionGeneration

GENERATION = "_rk_generation"
SIGNED_IN = "_rk_signed_in"
SEEN = "_rk_seen"


def generation(user_id) -> int:
    value = db.session.execute(
        select(SessionGeneration.generation).where(SessionGeneration.user_id == int(user_id))
    ).scalar()
    return value or 0


def _raise_generation(session_, user_id) -> None:
    """Within a flush or a transaction: the login's older sessions and tokens end."""
    with session_.no_autoflush:
        row = session_.get(SessionGeneration, user_id)
    if row is None:
        session_.add(SessionGeneration(user_id=user_id, generation=1, changed_at=clock.now()))
    else:
        row.generation = (row.generation or 0) + 1
        row.changed_at = clock.now()


def end_all_sessions(user_id) -> None:
    """Logout: every session and token of the login ends. Commits."""
    _raise_generation(db.session, user_id)
    db.session.commit()


def _stamp(sender, user, **extra) -> None:
    """At sign-in: the session carries the login's generation and its times."""
    if not getattr(user, "id", None):
        return
    now = clock.now().isoformat()
    session[GENERATION] = generation(user.id)
    session[SIGNED_IN] = now
    session[SEEN] = now


def _when(value):
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _present_generation(user_id) -> int:
    """The login's generation, read with the user in one statement when the security
    manager can (the user is then kept for the request's Flask-Login loader)."""
    manager = current_app.appbuilder.sm
    if not hasattr(manager, "user_and_generation"):
        return generation(user_id)
    return manager.user_and_generation(int(user_id))[1]


def _session_over() -> str | None:
    """Why the signed-in browser session is no longer valid (None: it still is)."""
    cfg = current_app.config
    now = clock.now()
    signed_in, seen = _when(session.get(SIGNED_IN)), _when(session.get(SEEN))
    if signed_in is None or seen is None:
        return "unknown"
    if session.get(GENERATION) != _present_generation(session["_user_id"]):
        return "ended"
    if now - signed_in > current_app.permanent_session_lifetime:
        return "expired"
    if now - seen > timedelta(minutes=cfg["SESSION_IDLE_MINUTES"]):
        return "idle"
    return None


def _check_session() -> None:
    if "_user_id" not in session or request.endpoint == "static":
        return
    why = _session_over()
    if why is None:
        session[SEEN] = clock.now().isoformat()
        return
    session.clear()
    g.pop("_login_user", None)
    if why == "idle":
        flash(_("You were signed out after %(minutes)s minutes without activity.",
                minutes=current_app.config["SESSION_IDLE_MINUTES"]), "info")
    elif why == "expired":
        flash(_("Your session has ended; sign in again."), "info")


def _token_claims(identity) -> dict:
    try:
        return {"gen": generation(int(identity))}
    except (TypeError, ValueError):
        return {}


def token_valid(user, jwt_data, current=None) -> bool:
    """An API token is valid only with the login's present generation (`current`: already
    read with the user)."""
    return jwt_data.get("gen") == (generation(user.id) if current is None else current)


def _password_changes(session_, _flush_context, _instances) -> None:
    """A changed password (on any path: screens, FAB's API, the command line) ends the login's
    other sessions and tokens, in the same transaction."""
    user_model = current_app.appbuilder.sm.user_model
    for obj in list(session_.dirty):
        if isinstance(obj, user_model) and inspect(obj).attrs.password.history.has_changes():
            _raise_generation(session_, obj.id)


def _no_store(response):
    """Answers may hold personal data: no browser or proxy keeps a copy."""
    if request.endpoint != "static" and "/static/" not in request.path:
        response.headers["Cache-Control"] = "no-store"
    return response


def install(flask_app) -> None:
    user_logged_in.connect(_stamp, flask_app)
    # Before FAB's own hook, which reads the logged-in user.
    flask_app.before_request_funcs.setdefault(None, []).insert(0, _check_session)
    flask_app.after_request(_no_store)
    flask_app.appbuilder.sm.jwt_manager.additional_claims_loader(_token_claims)
    if not event.contains(db.session, "before_flush", _password_changes):
        event.listen(db.session, "before_flush", _password_changes)
