"""The one clock. Everything time-based asks here; tests and the sweep command can set it.

Times are naive UTC in the database; calendar dates (end dates, deadlines) are Swedish dates.
"""

import contextlib
import contextvars
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Europe/Stockholm")
_frozen: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "frozen_now", default=None
)
_global_frozen: list[datetime | None] = [None]


def now() -> datetime:
    """The current time as naive UTC."""
    frozen = _frozen.get() or _global_frozen[0]
    if frozen is not None:
        return frozen
    return datetime.now(UTC).replace(tzinfo=None)


def today() -> date:
    """Today's date in Sweden."""
    return to_local(now()).date()


def to_local(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC).astimezone(LOCAL_TZ)


def to_utc_naive(moment: datetime) -> datetime:
    """An aware time (any zone) as naive UTC; a naive one is taken as UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def from_local(moment: datetime) -> datetime:
    """A Swedish wall-clock time (naive, or aware in any zone) as naive UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LOCAL_TZ)
    return to_utc_naive(moment)


def parse_moment(text: str) -> datetime:
    """An ISO 8601 time typed by a person: with an offset, that instant; without one, Swedish
    local time (a day count must never depend on UTC). Naive UTC; ValueError when not ISO."""
    return from_local(datetime.fromisoformat(str(text).strip()))


def set_now(moment: datetime | None) -> None:
    """Freeze the clock for the whole process (tests, the sweep command); None unfreezes."""
    _global_frozen[0] = to_utc_naive(moment) if moment else None


@contextlib.contextmanager
def frozen_at(moment: datetime):
    """Freeze the clock for the current context only."""
    token = _frozen.set(to_utc_naive(moment))
    try:
        yield
    finally:
        _frozen.reset(token)


def isoformat(moment: datetime | None) -> str | None:
    """A stored naive-UTC time as ISO 8601 with its offset."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).isoformat()
