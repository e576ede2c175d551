"""Sign-in defences, in one place for every path that checks a password: the login page, the
API login and the attester authentication (all through the security manager's `auth_user_db`).

Only failures count, kept in the database (every web process and worker sees the same counts):
- per account name (whether it exists or not, so a lock says nothing about who has a login):
  `SIGNIN_ACCOUNT_FAILURES` failures within `SIGNIN_WINDOW_SECONDS` lock the account for
  `SIGNIN_LOCK_MINUTES` (0: until Admin unlocks it). While locked, even the right password is
  refused. A success before that clears the account's failures.
- per client address (the real one: behind the TLS proxy, see `TRUSTED_PROXIES`):
  `SIGNIN_ADDRESS_FAILURES` failures within the window refuse further attempts from that address
  until the oldest one leaves the window. Other computers are not affected.
A refusal is `TooManyAttempts` (rule `too_many_attempts`): 429 with `Retry-After` on the API and
a Swedish page on the web; the wizard shows it at the attester's field.
"""

import logging
import math
from datetime import timedelta

from flask import current_app, has_request_context, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from app import audit, clock
from app.errors import RuleViolation
from app.extensions import db
from models import SigninFailure, SigninLock

log = logging.getLogger(__name__)

RULE = "too_many_attempts"
ACCOUNT_LOCKED = _l("Too many failed sign-ins for this account: it is locked for %(minutes)s "
                    "more minutes. Admin can unlock it sooner.")
ACCOUNT_LOCKED_UNTIL_UNLOCKED = _l("Too many failed sign-ins for this account: it is locked "
                                   "until Admin unlocks it.")
ADDRESS_LIMITED = _l("Too many failed sign-ins from this computer. Try again in %(minutes)s "
                     "minutes.")


class TooManyAttempts(RuleViolation):
    """Refused before the password was checked; `retry_after` is in seconds."""

    def __init__(self, message, retry_after: int, field=None, **params):
        super().__init__(RULE, message, field=field, **params)
        self.retry_after = max(int(retry_after), 1)


def _cfg(name):
    return current_app.config[name]


def _key(username) -> str:
    return (username or "").strip().lower()[:256]


key = _key


def client_address() -> str:
    """The client's address; behind a trusted proxy the one it forwarded (web_security)."""
    if has_request_context():
        return (request.remote_addr or "-")[:64]
    return "-"


def _window_start(now):
    return now - timedelta(seconds=_cfg("SIGNIN_WINDOW_SECONDS"))


def _minutes(seconds) -> int:
    return max(math.ceil(seconds / 60), 1)


def enabled() -> bool:
    return bool(current_app.config.get("SIGNIN_LIMITS_ENABLED", True))


def state_columns(username, now) -> list:
    """The limits' state as columns of one row: whether the account has a lock and until when,
    the client address's failures in the window (how many, the oldest) and the account's
    failures (any age). Selected on their own (`check`) or within the login look-up of the
    password check itself (security.authenticate)."""
    key, address, start = _key(username), client_address(), _window_start(now)
    own = SigninLock.username == key
    from_address = (SigninFailure.address == address) & (SigninFailure.at > start)
    return [
        select(func.count()).select_from(SigninLock).where(own).scalar_subquery(),
        select(SigninLock.locked_until).where(own).scalar_subquery(),
        select(func.count()).select_from(SigninFailure).where(from_address).scalar_subquery(),
        select(func.min(SigninFailure.at)).where(from_address).scalar_subquery(),
        select(func.count()).select_from(SigninFailure)
        .where(SigninFailure.username == key).scalar_subquery(),
    ]


def check(username, field=None, state=None) -> int | None:
    """Raise TooManyAttempts when the account is locked or the client has failed too often.
    Returns how many failures the account has on record (None when the limits are off).
    `state`: the values of `state_columns`, when the caller has selected them already."""
    if not enabled():
        return None
    now = clock.now()
    if state is None:
        state = db.session.execute(select(*state_columns(username, now))).one()
    locks, locked_until, count, oldest, account_failures = state
    if locks and _key(username):
        if locked_until is None:
            raise TooManyAttempts(ACCOUNT_LOCKED_UNTIL_UNLOCKED, _cfg("SIGNIN_WINDOW_SECONDS"),
                                  field=field)
        if locked_until > now:
            seconds = (locked_until - now).total_seconds()
            raise TooManyAttempts(ACCOUNT_LOCKED, seconds, field=field,
                                  minutes=_minutes(seconds))
    if count >= _cfg("SIGNIN_ADDRESS_FAILURES"):
        seconds = (oldest + timedelta(seconds=_cfg("SIGNIN_WINDOW_SECONDS")) - now).total_seconds()
        raise TooManyAttempts(ADDRESS_LIMITED, seconds, field=field, minutes=_minutes(seconds))
    return account_failures


def record_failure(username) -> None:
    """Count a failure; lock the account when it has failed too often. Commits."""
    key, address, now = _key(username), client_address(), clock.now()
    db.session.add(SigninFailure(username=key, address=address, at=now))
    # Old failures no longer count for anything.
    db.session.execute(delete(SigninFailure).where(SigninFailure.at <= _window_start(now)))
    failures = db.session.execute(
        select(func.count()).where(SigninFailure.username == key,
                                   SigninFailure.at > _window_start(now))
    ).scalar()
    if failures >= _cfg("SIGNIN_ACCOUNT_FAILURES"):
        minutes = _cfg("SIGNIN_LOCK_MINUTES")
        db.session.execute(delete(SigninLock).where(SigninLock.username == key))
        until = now + timedelta(minutes=minutes) if minutes else None
        db.session.add(SigninLock(username=key, locked_at=now, locked_until=until,
                                  failures=failures, address=address))
        db.session.execute(delete(SigninFailure).where(SigninFailure.username == key))
        log.warning("sign-in locked: account=%s address=%s failures=%s", key, address, failures)
    try:
        db.session.commit()
    except IntegrityError:  # another process locked the same account at the same moment
        db.session.rollback()


def record_success(username, commit=True, failures=None) -> None:
    """A right password before the lock: the account's failures no longer count. Commits,
    unless the check is part of a step whose own commit carries it (`commit=False`: the
    application's attester checks, so the step stays one commit). `failures`: how many the
    account had when `check` looked (0: nothing to clear, no statement)."""
    key = _key(username)
    if not commit:
        if failures != 0:
            db.session.execute(delete(SigninFailure).where(SigninFailure.username == key))
        return  # check() found no lock that holds; an expired one is harmless
    db.session.execute(delete(SigninFailure).where(SigninFailure.username == key))
    db.session.execute(delete(SigninLock).where(SigninLock.username == key))
    db.session.commit()


def attempt(username, verify, field=None, commit_success=True):
    """Check the limits, run `verify()` (the user or None) and count the outcome (a failure is
    always committed at once: the refused step that follows rolls back)."""
    if not enabled() or not _key(username):
        return verify()
    failures = check(username, field=field)
    user = verify()
    if user is None:
        record_failure(username)
    else:
        record_success(username, commit=commit_success, failures=failures)
    return user


def _holding():
    return (SigninLock.locked_until.is_(None)) | (SigninLock.locked_until > clock.now())


def locked_accounts():
    """Every lock that still holds, newest first."""
    return db.session.execute(
        select(SigninLock).where(_holding()).order_by(SigninLock.locked_at.desc())
    ).scalars().all()


def locked_count_query():
    """SELECT count(*) of the locks that still hold (counted, not loaded)."""
    return select(func.count()).select_from(SigninLock).where(_holding())


def locked_count() -> int:
    """How many locks still hold."""
    return db.session.execute(locked_count_query()).scalar_one()


def unlock(username) -> bool:
    """Admin lifts a lock (and forgets the account's failures), with an audit row. Commits."""
    key = _key(username)
    lock = db.session.get(SigninLock, key)
    if lock is None:
        return False
    user = current_app.appbuilder.sm.find_user(username=key)
    before = {"username": key, "locked_at": lock.locked_at, "locked_until": lock.locked_until,
              "failures": lock.failures}
    db.session.delete(lock)
    db.session.execute(delete(SigninFailure).where(SigninFailure.username == key))
    audit.record("signin.unlock", "user", user.id if user else None, before=before,
                 after={"username": key, "locked": False})
    db.session.commit()
    return True
