"""Opening hours (OpenStreetMap syntax) in America/Edmonton: ranges, past midnight, 24/7, holidays, DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layers.queries.hours import InvalidSchedule, Schedule, open_now, parse_cached, parse_schedule, status

EDMONTON = ZoneInfo("America/Edmonton")
LIBRARY = parse_schedule("Mo-Th 09:00-21:00; Fr 09:00-18:00; Sa 10:00-17:00; Su 12:00-17:00; PH off; 2027 Feb 15 off")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=EDMONTON)


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
    assert after_hours.opens_at.isoformat() == "2026-07-18T10:00:00-06:00"


def test_a_range_past_midnight_belongs_to_the_day_it_starts() -> None:
    bar = parse_schedule("Fr 18:00-02:00")
    assert open_now(bar, local("2026-07-17T23:00"))  # Friday
    assert open_now(bar, local("2026-07-18T01:59"))  # Saturday, still Friday's range
    assert not open_now(bar, local("2026-07-18T02:00"))
    assert not open_now(bar, local("2026-07-18T18:00"))  # Saturday has no range of its own
    assert not open_now(bar, local("2026-07-17T01:00"))  # Thursday's night is closed
    assert status(bar, local("2026-07-17T20:00")).closes_at == local("2026-07-18T02:00")


def test_an_always_open_place_never_closes_and_an_evening_ends_at_midnight() -> None:
    always = parse_schedule("24/7")
    for hour in range(0, 24 * 7, 5):
        assert open_now(always, local("2026-07-13T00:00") + timedelta(hours=hour))
    assert status(always, local("2026-07-15T23:59")).closes_at is None
    evening = parse_schedule("Mo 20:00-24:00")
    assert open_now(evening, local("2026-07-13T23:59"))
    assert not open_now(evening, local("2026-07-14T00:00"))
    assert status(evening, local("2026-07-13T21:00")).closes_at == local("2026-07-14T00:00")


def test_public_holidays_and_dated_alberta_holidays_close() -> None:
    assert not open_now(LIBRARY, local("2026-12-25T10:00"))  # Christmas, a Friday: PH
    assert not open_now(LIBRARY, local("2026-07-01T10:00"))  # Canada Day, a Wednesday: PH
    assert open_now(LIBRARY, local("2026-12-18T10:00"))  # the Friday before
    assert status(LIBRARY, local("2026-12-25T10:00")).opens_at == local("2026-12-26T10:00")
    assert not open_now(LIBRARY, local("2027-02-15T10:00"))  # Alberta's Family Day, written as a dated rule
    assert open_now(LIBRARY, local("2027-02-16T10:00"))


def test_spring_forward_opening_hours_follow_the_local_clock() -> None:
    # 2026-03-08 02:00 MST: clocks jump to 03:00 MDT (09:00 UTC). 02:00-02:59 never happens that night.
    hall = parse_schedule("Sa 10:00-02:00")
    assert open_now(hall, utc("2026-03-08T08:59:59"))  # 01:59:59 MST
    assert not open_now(hall, utc("2026-03-08T09:00:00"))  # 03:00 MDT
    early = parse_schedule("Su 03:00-05:00")
    assert not open_now(early, utc("2026-03-08T08:59"))
    assert open_now(early, utc("2026-03-08T09:00"))  # 03:00 MDT, right after the jump
    assert status(early, utc("2026-03-08T08:00")).opens_at == utc("2026-03-08T09:00")


def test_fall_back_hours_follow_the_wall_clock() -> None:
    # 2026-11-01 02:00 MDT: clocks go back to 01:00 MST (08:00 UTC). 01:00-01:59 happens twice.
    hall = parse_schedule("Sa 10:00-02:00")
    assert open_now(hall, utc("2026-11-01T07:30"))  # 01:30 MDT
    assert open_now(hall, utc("2026-11-01T08:30"))  # 01:30 MST, the second time round
    assert not open_now(hall, utc("2026-11-01T09:00"))  # 02:00 MST
    early = parse_schedule("Su 01:30-03:00")
    assert status(early, utc("2026-11-01T06:00")).opens_at == utc("2026-11-01T07:30")  # the first 01:30


def test_daytime_hours_follow_the_local_clock_across_the_change() -> None:
    sunday = parse_schedule("Su 09:00-17:00")
    assert open_now(sunday, utc("2026-03-01T16:00")) and not open_now(sunday, utc("2026-03-01T15:59"))  # MST
    assert open_now(sunday, utc("2026-03-08T15:00")) and not open_now(sunday, utc("2026-03-08T14:59"))  # MDT


def test_the_end_of_time_has_no_next_change() -> None:
    assert status(LIBRARY, utc("9999-12-31T20:00")).closes_at is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "not hours",
        "Mo-Fr 9-17",
        "Mo-Fr 09:00-17:00 extra",
        "Funday 09:00-17:00",
        '{"weekly": {}}',
        "x" * 3000,
    ],  # fmt: skip
)
def test_malformed_schedules_are_refused(value: str) -> None:
    with pytest.raises(InvalidSchedule):
        parse_schedule(value)
    assert parse_cached(value) is None


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError):
        open_now(LIBRARY, datetime(2026, 7, 15, 12, 0))


# --- properties ------------------------------------------------------------------------------------------

_DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
_minutes = st.integers(0, 24 * 60 - 1)
_rules = st.lists(
    st.tuples(st.sampled_from(_DAYS), _minutes, st.integers(15, 18 * 60)).map(
        lambda r: f"{r[0]} {r[1] // 60:02d}:{r[1] % 60:02d}-{(r[1] + r[2]) // 60 % 24:02d}:{(r[1] + r[2]) % 60:02d}"
    ),
    min_size=1,
    max_size=4,
)
_schedules = st.builds(lambda rules, ph: parse_schedule("; ".join(rules) + ("; PH off" if ph else "")), _rules,
                       st.booleans())  # fmt: skip
# Instants over two years, DST changes included.
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


SCHEDULES = ["Mo-Fr 09:00-17:00", "Mo-Su 08:00-22:00", "24/7", "Mo-Sa 10:00-18:00; Su off", "Fr 18:00-02:00"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30 * 24 * 60), min_size=1, max_size=40), st.sampled_from(SCHEDULES))
def test_the_near_me_status_cache_always_agrees_with_a_fresh_evaluation(minutes: list[int], text: str) -> None:
    from layers.queries.nearby import NearbyService

    service = NearbyService()
    start = datetime(2027, 3, 1, tzinfo=UTC)  # spans the spring daylight-saving change
    for minute in minutes:  # in any order: `at=` may name any instant
        at = start + timedelta(minutes=minute)
        schedule = parse_cached(text)
        assert schedule is not None and service.status(text, at) == status(schedule, at)


def test_a_horizon_ending_in_the_skipped_spring_hour_is_read_in_absolute_time() -> None:
    # 8 days after 02:00 on 2027-03-06 is 02:00 on 2027-03-14, an hour the clock skips in Calgary.
    schedule = parse_cached("Mo-Fr 09:00-17:00")
    assert schedule is not None
    at = datetime(2027, 3, 6, 2, 0, tzinfo=ZoneInfo("America/Edmonton"))
    assert status(schedule, at) == status(schedule, at + timedelta(seconds=1)) and not status(schedule, at).open_now
