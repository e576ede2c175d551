"""The one clock. Everything time-based asks here; tests and the sweep command can set it.

Times are naive UTC in the database; calendar dates (end dates, deadlines) are Swedish dates.
"""

import contextlib
import contextvars
from calendar import isleap
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
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


def _offset(moment: datetime) -> timedelta:
    return to_local(moment).utcoffset()


@lru_cache(maxsize=64)  # one entry per year: memory stays flat
def _stretches(year: int) -> tuple:
    """The year's stretches of one offset from UTC in Sweden, as (naive UTC start, offset,
    offset as "+HH:MM") sorted by start: found day by day, then hour by hour within a day
    where it changes (it changes on the hour)."""
    first = datetime(year, 1, 1)
    found = [(first, _offset(first))]
    for day_number in range(366 if isleap(year) else 365):
        day = first + timedelta(days=day_number)
        if _offset(day + timedelta(hours=23)) == found[-1][1]:
            continue
        for hour in (day + timedelta(hours=hour_number) for hour_number in range(24)):
            offset = _offset(hour)
            if offset != found[-1][1]:
                found.append((hour, offset))
    return tuple((start, offset, _offset_text(offset)) for start, offset in found)


def _offset_text(offset: timedelta) -> str:
    """"+01:00": an offset as ISO 8601 writes it after a time."""
    return datetime(2000, 1, 1, tzinfo=timezone(offset)).isoformat(timespec="minutes")[16:]


def _offset_at(moment: datetime) -> tuple:
    """(offset, "+HH:MM") in Sweden at a naive UTC time, from its year's stretches (an export
    converts a hundred thousand times; the zone is asked a few hundred times a year). The
    year's first stretch starts on its first moment, so one is always found."""
    _start, offset, text = next(stretch for stretch in reversed(_stretches(moment.year))
                                if moment >= stretch[0])
    return offset, text


def local_wall_clock(moment: datetime) -> datetime:
    """A stored naive-UTC time as Swedish wall-clock time, naive: what `to_local` gives
    without its zone, by the quick look-up."""
    return moment + _offset_at(moment)[0]


def local_instant_text(moment: datetime) -> str:
    """A stored naive-UTC time as ISO 8601 in Swedish time to the minute, with its offset."""
    offset, text = _offset_at(moment)
    return (moment + offset).isoformat(timespec="minutes") + text


def local_moment_text(moment: datetime) -> str:
    """A stored naive-UTC time as "YYYY-MM-DD HH:MM" in Swedish time."""
    return local_wall_clock(moment).isoformat(" ", timespec="minutes")


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
