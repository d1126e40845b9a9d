"""Instants and intervals: RFC 3339 parsing (datetime filters, CQL2 literals, `at=`) and formatting for answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from layers.errors import InvalidParameter

# RFC 3339 date-time with a mandatory offset (a time without one would be ambiguous).
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
# The years `at=` may name: opening hours and calendars are not defined far outside them.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999


@dataclass(frozen=True)
class Interval:
    """A closed time interval; None is an open end."""

    start: datetime | None
    end: datetime | None


def iso(moment: datetime) -> str:
    """An instant as RFC 3339 text, UTC written as `Z`."""
    return moment.isoformat().replace("+00:00", "Z")


def parse_instant(text: str, *, parameter: str) -> datetime:
    """A strict RFC 3339 date-time with an offset (nanoseconds allowed, kept to the microsecond)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise InvalidParameter(
            f"{parameter} must be an RFC 3339 date-time with an offset, e.g. 2026-07-15T18:00:00Z", parameter=parameter
        )
    day, clock, fraction, offset = match.groups()
    # Python reads at most 6 fractional digits; RFC 3339 allows more, which only matter below a microsecond.
    micro = "." + fraction[1:7].ljust(6, "0") if fraction else ""
    try:
        return datetime.fromisoformat(f"{day}T{clock}{micro}{'+00:00' if offset in 'Zz' else offset}")
    except ValueError:
        raise InvalidParameter(f"{parameter} is not a valid date-time", parameter=parameter) from None


def parse_timestamp(text: str, *, parameter: str) -> datetime:
    """An RFC 3339 date-time; a time without an offset is taken as UTC, like everywhere in the server."""
    if len(text) < 16 or len(text) > 40 or "\x00" in text:
        raise InvalidParameter(f"{parameter}: not an RFC 3339 date-time", parameter=parameter)
    try:
        instant = datetime.fromisoformat(text.upper().replace(" ", "T", 1))
    except ValueError:
        raise InvalidParameter(f"{parameter}: not an RFC 3339 date-time", parameter=parameter) from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def parse_date(text: str, *, parameter: str) -> date:
    """An RFC 3339 full-date (YYYY-MM-DD)."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise InvalidParameter(f"{parameter}: not an RFC 3339 date", parameter=parameter)


def parse_interval(value: str, *, parameter: str = "datetime") -> Interval:
    """An RFC 3339 instant, date, or interval `start/end` with `..` (or nothing) for an open end."""
    parts = value.split("/")
    if len(parts) == 1:
        return _instant_interval(parts[0].strip(), parameter)
    if len(parts) != 2:
        raise InvalidParameter("datetime must be an instant or an interval start/end", parameter=parameter)
    start = None if parts[0].strip() in ("", "..") else _instant_interval(parts[0].strip(), parameter).start
    end = None if parts[1].strip() in ("", "..") else _instant_interval(parts[1].strip(), parameter).end
    if start is not None and end is not None and start > end:
        raise InvalidParameter("datetime: the interval ends before it starts", parameter=parameter)
    return Interval(start, end)


def _instant_interval(text: str, parameter: str) -> Interval:
    """A date covers its whole (UTC) day; a date-time is an instant."""
    if len(text) == 10:
        day = parse_date(text, parameter=parameter)
        start = datetime.combine(day, time(0), tzinfo=UTC)
        return Interval(start, start + timedelta(days=1) - timedelta(microseconds=1))
    instant = parse_timestamp(text, parameter=parameter)
    return Interval(instant, instant)
