"""Opening hours in America/Edmonton: weekly ranges, past midnight, 24:00, holidays, both daylight-saving changes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layers.queries.hours import (
    DAYS,
    InvalidSchedule,
    Schedule,
    local_instant,
    open_now,
    parse_cached,
    parse_schedule,
    status,
)

EDMONTON = ZoneInfo("America/Edmonton")


def schedule(closed: list[str] | None = None, **days: Any) -> Schedule:
    """A schedule with the given weekday ranges (others closed)."""
    weekly = {d: days.get(d, []) for d in DAYS}
    return parse_schedule({"tz": "America/Edmonton", "weekly": weekly, "closed": closed or []})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=EDMONTON)


LIBRARY = schedule(
    mon=[["09:00", "21:00"]], tue=[["09:00", "21:00"]], wed=[["09:00", "21:00"]], thu=[["09:00", "21:00"]],
    fri=[["09:00", "18:00"]], sat=[["10:00", "17:00"]], sun=[["12:00", "17:00"]], closed=["2026-12-25"],
)  # fmt: skip


def test_a_range_includes_its_start_and_excludes_its_end() -> None:
    assert not open_now(LIBRARY, local("2026-07-15T08:59:59"))  # a Wednesday
    assert open_now(LIBRARY, local("2026-07-15T09:00:00"))
    assert open_now(LIBRARY, local("2026-07-15T20:59:59"))
    assert not open_now(LIBRARY, local("2026-07-15T21:00:00"))
    assert open_now(LIBRARY, utc("2026-07-15T15:00:00"))  # 09:00 MDT, asked in UTC


def test_status_gives_the_next_closing_or_opening_in_local_time() -> None:
    assert status(LIBRARY, local("2026-07-15T10:00")).closes_at == local("2026-07-15T21:00")
    after_hours = status(LIBRARY, local("2026-07-17T19:00"))  # Friday, closed at 18:00
    assert not after_hours.open_now and after_hours.closes_at is None
    assert after_hours.opens_at == local("2026-07-18T10:00")
    assert after_hours.opens_at is not None and after_hours.opens_at.utcoffset() == timedelta(hours=-6)


def test_a_range_past_midnight_belongs_to_the_day_it_starts() -> None:
    bar = schedule(fri=[["18:00", "02:00"]])
    assert open_now(bar, local("2026-07-17T23:00"))  # Friday
    assert open_now(bar, local("2026-07-18T01:59"))  # Saturday, still Friday's range
    assert not open_now(bar, local("2026-07-18T02:00"))
    assert not open_now(bar, local("2026-07-18T18:00"))  # Saturday has no range of its own
    assert not open_now(bar, local("2026-07-17T01:00"))  # Thursday's night is closed
    assert status(bar, local("2026-07-17T20:00")).closes_at == local("2026-07-18T02:00")


def test_24_00_ends_the_day_and_an_always_open_place_never_closes() -> None:
    every_day: dict[str, Any] = {d: [["00:00", "24:00"]] for d in DAYS}
    always = schedule(**every_day)
    for hour in range(0, 24 * 7, 5):
        assert open_now(always, local("2026-07-13T00:00") + timedelta(hours=hour))
    assert status(always, local("2026-07-15T23:59")).closes_at is None
    evening = schedule(mon=[["20:00", "24:00"]])
    assert open_now(evening, local("2026-07-13T23:59"))
    assert not open_now(evening, local("2026-07-14T00:00"))
    assert status(evening, local("2026-07-13T21:00")).closes_at == local("2026-07-14T00:00")


def test_no_range_starts_on_a_holiday_but_one_from_the_day_before_runs_on() -> None:
    assert not open_now(LIBRARY, local("2026-12-25T10:00"))  # a Friday, closed
    assert open_now(LIBRARY, local("2026-12-18T10:00"))  # the Friday before
    assert status(LIBRARY, local("2026-12-25T10:00")).opens_at == local("2026-12-26T10:00")
    late = schedule(thu=[["20:00", "02:00"]], fri=[["20:00", "02:00"]], closed=["2026-12-25"])
    assert open_now(late, local("2026-12-25T01:00"))  # Thursday's range, not cut by Friday's holiday
    assert not open_now(late, local("2026-12-25T21:00"))
    assert status(late, local("2026-12-25T01:00")).closes_at == local("2026-12-25T02:00")


def test_spring_forward_a_skipped_closing_time_closes_when_the_clock_jumps() -> None:
    # 2026-03-08 02:00 MST: clocks jump to 03:00 MDT (09:00 UTC). 02:00-02:59 never happens that night.
    hall = schedule(sat=[["10:00", "02:00"]])
    assert open_now(hall, utc("2026-03-08T08:59:59"))  # 01:59:59 MST
    assert not open_now(hall, utc("2026-03-08T09:00:00"))  # 03:00 MDT
    closes = status(hall, utc("2026-03-08T08:00")).closes_at
    assert closes == utc("2026-03-08T09:00") and closes is not None
    assert closes.isoformat() == "2026-03-08T03:00:00-06:00"
    late = schedule(sun=[["02:30", "05:00"]])  # opens at a time that does not exist that night
    assert not open_now(late, utc("2026-03-08T08:59"))
    assert open_now(late, utc("2026-03-08T09:00"))  # the jump: the clock passes 02:30
    assert status(late, utc("2026-03-08T08:00")).opens_at == utc("2026-03-08T09:00")
    assert local_instant(date(2026, 3, 8), 150, EDMONTON) == utc("2026-03-08T09:00")


def test_fall_back_a_repeated_hour_is_its_first_occurrence_and_ranges_follow_the_wall_clock() -> None:
    # 2026-11-01 02:00 MDT: clocks go back to 01:00 MST (08:00 UTC). 01:00-01:59 happens twice.
    hall = schedule(sat=[["10:00", "02:00"]])
    assert open_now(hall, utc("2026-11-01T07:30"))  # 01:30 MDT
    assert open_now(hall, utc("2026-11-01T08:30"))  # 01:30 MST, the second time round
    assert not open_now(hall, utc("2026-11-01T09:00"))  # 02:00 MST
    transit = schedule(sat=[["06:00", "01:30"]])
    assert open_now(transit, utc("2026-11-01T07:29"))
    assert not open_now(transit, utc("2026-11-01T07:30"))  # the first 01:30
    assert not open_now(transit, utc("2026-11-01T08:00"))  # 01:00 again, but the range is over
    early = schedule(sun=[["01:30", "03:00"]])
    assert status(early, utc("2026-11-01T06:00")).opens_at == utc("2026-11-01T07:30")


def test_daytime_hours_follow_the_local_clock_across_the_change() -> None:
    sunday = schedule(sun=[["09:00", "17:00"]])
    assert open_now(sunday, utc("2026-03-01T16:00")) and not open_now(sunday, utc("2026-03-01T15:59"))  # MST
    assert open_now(sunday, utc("2026-03-08T15:00")) and not open_now(sunday, utc("2026-03-08T14:59"))  # MDT


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "[]",
        {"weekly": {"mon": []}},
        {"weekly": {d: [] for d in DAYS} | {"funday": []}},
        {"weekly": {d: [["9:00", "17:00"]] for d in DAYS}},
        {"weekly": {d: [["09:00", "24:01"]] for d in DAYS}},
        {"weekly": {d: [["24:00", "02:00"]] for d in DAYS}},
        {"weekly": {d: [["09:00", "25:00"]] for d in DAYS}},
        {"weekly": {d: [["09:00"]] for d in DAYS}},
        {"weekly": {d: "09:00-17:00" for d in DAYS}},
        {"weekly": {d: [] for d in DAYS}, "closed": ["2026-02-30"]},
        {"weekly": {d: [] for d in DAYS}, "closed": [20261225]},
        {"weekly": {d: [] for d in DAYS}, "closed": "2026-12-25"},
        {"weekly": {d: [] for d in DAYS}, "tz": "../../etc/passwd"},
        {"weekly": {d: [] for d in DAYS}, "tz": "Mars/Olympus_Mons"},
        {"weekly": {d: [["09:00\n", "17:00"]] for d in DAYS}},
    ],
)
def test_malformed_schedules_are_refused(value: Any) -> None:
    with pytest.raises(InvalidSchedule):
        parse_schedule(value)
    text = value if isinstance(value, str) else json.dumps(value)
    assert parse_cached(text) is None


def test_the_timezone_defaults_to_the_city_and_a_naive_instant_is_refused() -> None:
    parsed = parse_schedule({"weekly": {d: [["09:00", "17:00"]] for d in DAYS}})
    assert parsed.tz.key == "America/Edmonton"
    with pytest.raises(ValueError):
        open_now(parsed, datetime(2026, 7, 15, 12, 0))


# --- properties ------------------------------------------------------------------------------------------

_times = st.integers(0, 24 * 60).map(lambda m: f"{m // 60:02d}:{m % 60:02d}")
_ranges = st.lists(
    st.tuples(_times, _times).filter(lambda r: r[0] != "24:00").map(list), max_size=3
)  # fmt: skip
_schedules = st.builds(
    lambda days, closed: parse_schedule({"weekly": dict(zip(DAYS, days, strict=True)), "closed": closed}),
    st.lists(_ranges, min_size=7, max_size=7),
    st.lists(st.dates(date(2026, 1, 1), date(2027, 12, 31)).map(date.isoformat), max_size=5),
)
# Instants over two years, DST changes included, on a 1-minute grid plus odd seconds.
_instants = st.integers(0, 2 * 365 * 24 * 3600).map(lambda s: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s))


@settings(max_examples=300, deadline=None)
@given(_schedules, _instants)
def test_status_agrees_with_open_now_and_its_next_change_is_a_real_change(sched: Schedule, at: datetime) -> None:
    now = status(sched, at)
    assert now.open_now == open_now(sched, at)
    second = timedelta(seconds=1)
    if now.closes_at is not None:
        assert now.open_now and now.closes_at > at
        assert open_now(sched, now.closes_at - second) and not open_now(sched, now.closes_at)
    if now.opens_at is not None:
        assert not now.open_now and now.opens_at > at
        assert open_now(sched, now.opens_at) and not open_now(sched, now.opens_at - second)


_day_ranges = st.lists(
    st.tuples(st.integers(3 * 60, 24 * 60 - 1), st.integers(1, 12 * 60)).map(
        lambda r: [f"{r[0] // 60:02d}:{r[0] % 60:02d}", _hhmm(min(r[0] + r[1], 24 * 60))]
    ),
    max_size=3,
)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@settings(max_examples=300, deadline=None)
@given(st.lists(_day_ranges, min_size=7, max_size=7), _instants)
def test_daytime_ranges_match_the_local_wall_clock_on_every_day_of_the_year(days: list[Any], at: datetime) -> None:
    # Ranges between 03:00 and 24:00 never touch a skipped or repeated hour: a wall-clock reading is the oracle.
    sched = parse_schedule({"weekly": dict(zip(DAYS, days, strict=True))})
    wall = at.astimezone(EDMONTON)
    minute = wall.hour * 60 + wall.minute
    expected = any(
        int(s[:2]) * 60 + int(s[3:]) <= minute < int(e[:2]) * 60 + int(e[3:]) for s, e in days[wall.weekday()]
    )
    assert open_now(sched, at) == expected
