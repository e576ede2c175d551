"""One transaction per workflow step: commit on success, roll back on any error.

Steps may call other steps (a return that restocks the card); only the outermost one commits.
A unique-index conflict on the open-issuance indexes (two people applying at the same moment)
becomes the same refusal the checks would have given.
"""

import functools
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError

from app.errors import refuse
from app.extensions import db

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


def step(func):
    """Run a workflow function as one transaction."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with transaction():
            return func(*args, **kwargs)

    return wrapper
