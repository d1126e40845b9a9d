"""Opening hours: is a place open at an instant, and when does it next open or close.

The schedule format is the one documented in `layers.demo`: a JSON object with `tz` (IANA zone, America/Edmonton
when missing), `weekly` (mon..sun, each a list of ["HH:MM", "HH:MM"] ranges, start inclusive, end exclusive, "24:00"
allowed as an end, an end <= start running past midnight) and `closed` (local dates on which no range starts).

Local wall times become instants in the schedule's zone, across daylight-saving changes:
- a wall time the clock skips (spring forward, 02:00-02:59 in Edmonton) happens when the clock jumps past it, so
  "opens 02:30" opens at 03:00 and "closes 02:30" closes at 03:00;
- a wall time the clock shows twice (fall back, 01:00-01:59) is its first occurrence.
Everything here is pure: no I/O, no clock reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CITY_TIMEZONE = "America/Edmonton"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON_DAYS = 8  # how far ahead opens_at / closes_at look; beyond it they are None
_MINUTES_PER_DAY = 24 * 60
_HHMM = re.compile(r"([01]\d|2[0-4]):([0-5]\d)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class InvalidSchedule(ValueError):
    """An opening-hours value that does not follow the documented format."""


@dataclass(frozen=True)
class Schedule:
    """A parsed weekly schedule: per weekday (Monday first) the ranges in minutes since local midnight."""

    tz: ZoneInfo
    weekly: tuple[tuple[tuple[int, int], ...], ...]
    closed: frozenset[date]


@dataclass(frozen=True)
class Status:
    """Whether a place is open at an instant, and the next change in local time (None beyond the horizon)."""

    open_now: bool
    opens_at: datetime | None
    closes_at: datetime | None


def parse_schedule(value: str | Mapping[str, Any]) -> Schedule:
    """Parse a schedule from its JSON text or object; InvalidSchedule when malformed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidSchedule("opening hours are not valid JSON") from exc
    if not isinstance(value, Mapping):
        raise InvalidSchedule("opening hours must be a JSON object")
    tz = _zone(value.get("tz", CITY_TIMEZONE))
    weekly_raw = value.get("weekly")
    if not isinstance(weekly_raw, Mapping) or set(weekly_raw) != set(DAYS):
        raise InvalidSchedule(f"'weekly' must have exactly the keys {' '.join(DAYS)}")
    weekly = tuple(tuple(_range(r) for r in _list(weekly_raw[day], day)) for day in DAYS)
    closed_raw = value.get("closed", [])
    if not isinstance(closed_raw, list) or not all(isinstance(d, str) and _DATE.fullmatch(d) for d in closed_raw):
        raise InvalidSchedule("'closed' must be a list of YYYY-MM-DD dates")
    try:
        closed = frozenset(date.fromisoformat(d) for d in closed_raw)
    except ValueError as exc:
        raise InvalidSchedule("'closed' has a date that does not exist") from exc
    return Schedule(tz=tz, weekly=weekly, closed=closed)


@lru_cache(maxsize=4096)
def parse_cached(text: str) -> Schedule | None:
    """The schedule of a JSON text, None when malformed (schedules repeat a lot: parse each text once)."""
    try:
        return parse_schedule(text)
    except InvalidSchedule:
        return None


def open_now(schedule: Schedule, at: datetime) -> bool:
    """True when `at` (timezone-aware) falls inside one of the schedule's opening periods."""
    _aware(at)
    first_day = at.astimezone(schedule.tz).date() - timedelta(days=2)
    # A period lasts at most a day and an hour, so periods that started two days back cannot reach `at`.
    return any(
        start <= at < end for offset in range(3) for start, end in _day_periods(schedule, first_day + timedelta(offset))
    )


def status(schedule: Schedule, at: datetime) -> Status:
    """Open or closed at `at`, with the next closing time (when open) or the next opening time (when closed)."""
    _aware(at)
    first_day = at.astimezone(schedule.tz).date() - timedelta(days=2)
    horizon = at + timedelta(days=HORIZON_DAYS)
    for start, end in _merged(schedule, first_day, HORIZON_DAYS + 3):
        if end <= at:
            continue
        if start <= at:
            closes = _local(end, schedule.tz) if end <= horizon else None
            return Status(open_now=True, opens_at=None, closes_at=closes)
        opens = _local(start, schedule.tz) if start <= horizon else None
        return Status(open_now=False, opens_at=opens, closes_at=None)
    return Status(open_now=False, opens_at=None, closes_at=None)


@lru_cache(maxsize=65_536)
def local_instant(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """The instant a local wall time (minutes after midnight of `day`, up to 24:00) happens, by the rules above."""
    naive = datetime.combine(day, time()) + timedelta(minutes=minutes)
    first = naive.replace(tzinfo=tz, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == naive:
        return utc  # exists (its first occurrence when the clock shows it twice)
    # In a gap: fold=0 reads it with the offset before the change, which lands after the jump; the jump itself is
    # the first instant whose offset is the new one, found by bisection between the two readings.
    low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = utc
    new_offset = high.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).utcoffset() == new_offset:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0)


@lru_cache(maxsize=65_536)
def _day_periods(schedule: Schedule, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """Opening periods (UTC instants) of the ranges that start on local date `day`, sorted.

    Cached: a server asks about the same few days of the same few schedules over and over."""
    if day in schedule.closed:
        return ()
    periods = []
    for start_min, end_min in schedule.weekly[day.weekday()]:
        end_day = day if end_min > start_min else day + timedelta(days=1)
        start = local_instant(day, start_min, schedule.tz)
        end = local_instant(end_day, end_min, schedule.tz)
        if end > start:
            periods.append((start, end))
    return tuple(sorted(periods))


def _merged(schedule: Schedule, first_day: date, days: int) -> Iterator[tuple[datetime, datetime]]:
    """Opening periods from `first_day` on, touching or overlapping ones as one (a place open 00:00-24:00 every day
    never 'closes' at midnight), lazily: a caller stops as soon as it knows."""
    current: tuple[datetime, datetime] | None = None
    for offset in range(days):
        # Every range of a day starts before the next day's (starts are before 24:00): the stream stays sorted.
        for start, end in _day_periods(schedule, first_day + timedelta(days=offset)):
            if current is not None and start <= current[1]:
                current = (current[0], max(current[1], end))
                continue
            if current is not None:
                yield current
            current = (start, end)
    if current is not None:
        yield current


def _local(instant: datetime, tz: ZoneInfo) -> datetime:
    """The instant with the zone's offset at that moment as a fixed offset: it prints as local time, and unlike a
    ZoneInfo time in a repeated hour it compares equal to the same instant in any other zone."""
    wall = instant.astimezone(tz)
    return wall.replace(tzinfo=timezone(wall.utcoffset() or timedelta(0)))


def _zone(name: object) -> ZoneInfo:
    # The zone comes from data, not from a request, but a path-like key must still never reach the filesystem.
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*", name):
        raise InvalidSchedule("'tz' must be an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSchedule(f"unknown time zone {name!r}") from exc


def _list(value: object, day: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidSchedule(f"'weekly.{day}' must be a list of ranges")
    return value


def _range(value: object) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise InvalidSchedule('each range must be ["HH:MM", "HH:MM"]')
    start, end = (_minutes(v) for v in value)
    if start >= _MINUTES_PER_DAY:
        raise InvalidSchedule("a range cannot start at 24:00")
    return start, end


def _minutes(text: str) -> int:
    match = _HHMM.fullmatch(text)
    if match is None:
        raise InvalidSchedule(f"{text!r} is not a time HH:MM")
    minutes = int(match[1]) * 60 + int(match[2])
    if minutes > _MINUTES_PER_DAY:
        raise InvalidSchedule(f"{text!r} is after 24:00")
    return minutes


def _aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the instant must be timezone-aware")
