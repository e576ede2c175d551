"""Sign-in defences and sessions: failed sign-ins, locked accounts, and each login's session
generation (raised at logout and password change, so older cookies and tokens stop working)."""

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String


class SigninFailure(Model):
    """One failed sign-in or attester authentication: the account name tried and the client."""

    __tablename__ = "signin_failures"
    __table_args__ = (
        Index("ix_signin_failures_username_at", "username", "at"),
        Index("ix_signin_failures_address_at", "address", "at"),
    )

    id = Column(Integer, primary_key=True)
    username = Column(String(256), nullable=False)  # lower-cased, whether the account exists or not
    address = Column(String(64), nullable=False)
    at = Column(DateTime, nullable=False, index=True)


class SigninLock(Model):
    """An account name locked after repeated failures, until `locked_until` or Admin unlocks it
    (`locked_until` empty: until Admin unlocks it)."""

    __tablename__ = "signin_locks"

    username = Column(String(256), primary_key=True)
    locked_at = Column(DateTime, nullable=False)
    locked_until = Column(DateTime)
    failures = Column(Integer, nullable=False)
    address = Column(String(64))  # the client of the failure that locked it


class SessionGeneration(Model):
    """Sessions and tokens of a login carry its generation; a different one is no longer valid."""

    __tablename__ = "session_generations"

    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True)
    generation = Column(Integer, nullable=False, default=0)
    changed_at = Column(DateTime)
