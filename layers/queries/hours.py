"""Opening hours in the OpenStreetMap `opening_hours` syntax (`Mo-Fr 08:00-20:00; Sa 09:00-17:00; PH off`).

The syntax is the one City exports and OpenStreetMap data already use; parsing and evaluation are the
opening-hours-py library's (a Rust parser of the full specification). What it does, measured before we chose it:
- wall-clock semantics in America/Edmonton: a rule's times are local times, across both daylight-saving changes
  (a place open 01:30-03:30 on the night the clock falls back is open from the first 01:30 until 03:30; the clock's
  repeated 01:00-01:29 reads as before opening);
- ranges past midnight (`Fr 18:00-02:00` is open on Saturday at 01:00) and `24/7`;
- `PH` is a Canadian public holiday as the library knows them (New Year's Day, Good Friday, Victoria Day, Canada Day,
  Labour Day, Truth and Reconciliation Day, Thanksgiving, Christmas). Alberta's own holidays (Family Day, Heritage
  Day, Remembrance Day, Boxing Day) are not in it: a schedule names them as dated rules (`2027 Feb 15 off`).
Everything here is pure: no I/O, no clock reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import opening_hours

CITY_TIMEZONE = ZoneInfo("America/Edmonton")
COUNTRY = "CA"  # whose public holidays `PH` means
HORIZON_DAYS = 8  # how far ahead opens_at / closes_at look; beyond it they are None
MAX_TEXT = 2_000  # longer values are not schedules anyone writes by hand


class InvalidSchedule(ValueError):
    """An opening-hours value that is not in the opening_hours syntax."""


@dataclass(frozen=True)
class Status:
    """Whether a place is open at an instant, and the next change in local time (None beyond the horizon)."""

    open_now: bool
    opens_at: datetime | None
    closes_at: datetime | None


Schedule = opening_hours.OpeningHours


def parse_schedule(text: str) -> Schedule:
    """Parse an opening_hours value; InvalidSchedule when it is not valid syntax."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise InvalidSchedule("opening hours must be a non-empty opening_hours text")
    try:
        return opening_hours.OpeningHours(text, timezone=CITY_TIMEZONE, country=COUNTRY)
    except (opening_hours.ParserError, ValueError) as exc:  # type: ignore[attr-defined]
        raise InvalidSchedule(str(exc).splitlines()[0][:200]) from None


@lru_cache(maxsize=4096)
def parse_cached(text: str) -> Schedule | None:
    """The schedule of a text, None when malformed (schedules repeat a lot: parse each text once)."""
    try:
        return parse_schedule(text)
    except InvalidSchedule:
        return None


def open_now(schedule: Schedule, at: datetime) -> bool:
    """True when `at` (timezone-aware) falls inside an opening period."""
    return bool(schedule.is_open(_local(at)))


def status(schedule: Schedule, at: datetime) -> Status:
    """Open or closed at `at`, with the next closing time (when open) or the next opening time (when closed)."""
    start = _local(at)
    try:
        # Counted in absolute time, then read in local time: local arithmetic could land in the hour the clock
        # skips in spring, which the library refuses.
        horizon = (at.astimezone(UTC) + timedelta(days=HORIZON_DAYS)).astimezone(CITY_TIMEZONE)
    except OverflowError:  # the end of time: nothing opens or closes after it
        return Status(open_now(schedule, at), None, None)
    is_open = open_now(schedule, at)
    for begins, _, state, _ in schedule.intervals(start, horizon):
        if is_open and state != opening_hours.State.OPEN:
            return Status(True, None, _change(schedule, at, begins, to_open=False))
        if not is_open and state == opening_hours.State.OPEN and begins > start:
            return Status(False, _change(schedule, at, begins, to_open=True), None)
    return Status(is_open, None, None)


def status_until(schedule: Schedule, at: datetime) -> tuple[Status, datetime | None]:
    """The status at `at`, and the instant until which every later instant has the same status (None: only `at`).

    With a next change, the status holds until it. Without one inside the horizon, it holds until a change comes
    within the horizon: a second look one horizon further finds when."""
    found = status(schedule, at)
    change = found.closes_at or found.opens_at
    if change is not None:
        return found, change
    horizon = timedelta(days=HORIZON_DAYS)
    try:
        later = status(schedule, at.astimezone(UTC) + horizon)
    except OverflowError:
        return found, None
    if later.open_now != found.open_now:  # a change exactly at the horizon's end
        return found, None
    beyond = later.closes_at or later.opens_at
    return found, (beyond - horizon) if beyond is not None else at + horizon


def _change(schedule: Schedule, at: datetime, wall: datetime, *, to_open: bool) -> datetime:
    """The instant of a change the library gives as a wall time: in the hour the clock repeats, the earlier reading
    where the state really changes (the library's intervals may name the later one)."""
    second = timedelta(seconds=1)
    for fold in (0, 1):
        instant = _fixed(wall.replace(fold=fold))
        if instant > at and open_now(schedule, instant) == to_open and open_now(schedule, instant - second) != to_open:
            return instant
    return _fixed(wall)


def _local(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the instant must be timezone-aware")
    return at.astimezone(CITY_TIMEZONE)


def _fixed(instant: datetime) -> datetime:
    """The instant with the zone's offset at that moment as a fixed offset: it prints as local time, and unlike a
    ZoneInfo time in a repeated hour it compares equal to the same instant in any other zone."""
    wall = instant.astimezone(CITY_TIMEZONE)
    return wall.replace(tzinfo=timezone(wall.utcoffset() or timedelta(0)))
