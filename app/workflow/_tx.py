"""One transaction per workflow step: commit on success, roll back on any error.

Steps may call other steps (a return that restocks the card); only the outermost one commits.
A unique-index conflict on the open-issuance indexes (two people applying at the same moment)
becomes the same refusal the checks would have given.
"""

import contextvars
import functools
import inspect
import logging
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError

from app.errors import RuleViolation, refuse
from app.extensions import db

log = logging.getLogger("app.workflow.refusals")
_boundary_depth: contextvars.ContextVar[int] = contextvars.ContextVar("refusal_depth", default=0)
# Arguments of a step that identify what it was about (logged with a refusal).
_ID_NAMES = ("issuance_id", "deviation_id", "card_serial", "serial", "recipient_hsa_id",
             "hsa_id", "person_id", "unit_id", "pickup_point_id", "code", "username")

_DEPTH = "workflow_depth"
_CONFLICT = "workflow_conflict_params"

# Index name (PostgreSQL names it) or column (SQLite names the column) -> rule code.
_CONFLICTS = (
    (("uq_issuances_open_card", "issuances.card_id"), "card_not_in_stock"),
    (("uq_issuances_open_recipient", "issuances.recipient_id"), "recipient_has_open_issuance"),
)


def conflict_params(**params) -> None:
    """Remember the values a conflict message needs (card serial, recipient name)."""
    db.session.info[_CONFLICT] = params


def _translate(exc: IntegrityError):
    text = str(exc.orig)
    params = db.session.info.get(_CONFLICT) or {}
    for needles, rule in _CONFLICTS:
        if any(needle in text for needle in needles):
            return refuse(rule, serial=params.get("serial", ""), name=params.get("name", ""))
    return None


@contextmanager
def transaction():
    session = db.session
    depth = session.info.get(_DEPTH, 0)
    session.info[_DEPTH] = depth + 1
    try:
        yield session
        if depth == 0:
            session.commit()
    except IntegrityError as exc:
        if depth:
            raise
        session.rollback()
        violation = _translate(exc)
        if violation is None:
            raise
        raise violation from exc
    except BaseException:
        if depth == 0:
            session.rollback()
        raise
    finally:
        session.info[_DEPTH] = depth
        if depth == 0:
            session.info.pop(_CONFLICT, None)


def _ids(func, args, kwargs) -> dict:
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs).arguments
    except TypeError:
        return {}
    return {name: bound[name] for name in _ID_NAMES if bound.get(name) not in (None, "")}


def log_refusal(exc: RuleViolation, step_name: str, ids: dict) -> None:
    """One log line per refusal: rule, step, user, ids."""
    from app.workflow._common import actor

    if getattr(exc, "logged", False):
        return
    exc.logged = True
    user_id, username = actor()
    log.info("refused rule=%s step=%s user=%s user_id=%s ids=%s field=%s",
             exc.rule, step_name, username, user_id, ids, exc.field)


def refusals_logged(func):
    """Log a refusal once, where it leaves the outermost workflow call (a step or a check the
    screens call on their own); nested calls leave it to the outermost."""
    step_name = f"{func.__module__.rsplit('.', 1)[-1]}.{func.__name__}"

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        token = _boundary_depth.set(_boundary_depth.get() + 1)
        try:
            return func(*args, **kwargs)
        except RuleViolation as exc:
            if _boundary_depth.get() == 1:
                log_refusal(exc, step_name, _ids(func, args, kwargs))
            raise
        finally:
            _boundary_depth.reset(token)

    return wrapper


def step(func):
    """Run a workflow function as one transaction (refusals logged once, see above)."""

    @functools.wraps(func)
    def transactional(*args, **kwargs):
        with transaction():
            return func(*args, **kwargs)

    return refusals_logged(transactional)
