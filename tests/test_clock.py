"""Clocks: FakeClock, the test double for time, and SystemClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from factories import START
from hypothesis import given
from hypothesis import strategies as st
from strategies import aware_datetimes

from chimeway_lite import ChimewayError, FakeClock, InvalidArgument, SystemClock


def test_a_fake_clock_stands_still() -> None:
    clock = FakeClock(START)
    assert clock.now() == START
    assert clock.now() == START
    assert clock.now().tzinfo is UTC


def test_advance_by_seconds_and_timedelta_keywords() -> None:
    clock = FakeClock(START)
    assert clock.advance(30) == START + timedelta(seconds=30)
    assert clock.advance(minutes=2) == START + timedelta(seconds=150)
    assert clock.advance(hours=1, days=1) == START + timedelta(days=1, hours=1, seconds=150)
    assert clock.advance(0.000001) == START + timedelta(
        days=1, hours=1, seconds=150, microseconds=1
    )
    assert clock.advance() == clock.now()  # zero is allowed
    assert clock.advance(seconds=1, microseconds=-999_999) == clock.now()
    assert clock.now() - START == timedelta(days=1, hours=1, seconds=150, microseconds=2)


@given(st.lists(st.integers(0, 10**6), max_size=5))
def test_advances_add_up(steps: list[int]) -> None:
    clock = FakeClock(START)
    for step in steps:
        clock.advance(microseconds=step)
    assert clock.now() == START + timedelta(microseconds=sum(steps))


@pytest.mark.parametrize("step", [{"seconds": -1}, {"days": -1}, {"seconds": 1, "minutes": -1}])
def test_a_fake_clock_never_goes_back(step: dict[str, Any]) -> None:
    clock = FakeClock(START)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(**step)
    assert clock.now() == START


def test_set_jumps_forward_only() -> None:
    clock = FakeClock(START)
    later = START + timedelta(days=3, microseconds=5)
    assert clock.set(later) == later
    assert clock.set(later) == later  # standing still is fine
    with pytest.raises(ValueError, match="forward"):
        clock.set(START)
    assert clock.now() == later
    with pytest.raises(InvalidArgument):
        clock.set(datetime(2030, 1, 1))


@given(aware_datetimes)
def test_any_aware_start_is_kept_as_the_same_instant_in_utc(start: datetime) -> None:
    clock = FakeClock(start)
    assert clock.now() == start
    assert clock.now().utcoffset() == timedelta(0)


@pytest.mark.parametrize("start", [datetime(2026, 1, 5, 9, 30), "2026-01-05", 0, None])
def test_a_fake_clock_needs_an_aware_datetime(start: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        FakeClock(start)
    assert isinstance(caught.value, ChimewayError) and isinstance(caught.value, ValueError)
    assert caught.value.name == "start"


def test_a_local_start_is_converted_to_utc() -> None:
    clock = FakeClock(datetime(2026, 1, 5, 11, 30, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == START
    assert clock.now().tzinfo is UTC


def test_repr_shows_the_instant() -> None:
    assert repr(FakeClock(START)) == "FakeClock('2026-01-05T09:30:00+00:00')"
    assert repr(SystemClock()) == "SystemClock()"


def test_the_system_clock_is_aware_utc() -> None:
    before = datetime.now(UTC)
    now = SystemClock().now()
    after = datetime.now(UTC)
    assert now.tzinfo is UTC
    assert before <= now <= after


@pytest.mark.parametrize(
    "start",
    [
        datetime(9000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=5))),
        datetime.max.replace(tzinfo=UTC),
    ],
)
def test_an_instant_past_the_latest_kept_is_refused(start: datetime) -> None:
    # Every delay a declaration may hold (a century) added to a kept instant stays in range.
    with pytest.raises(InvalidArgument, match=r"later than 9000-01-01|out of range"):
        FakeClock(start)


@pytest.mark.parametrize(
    "step", [{"seconds": float("nan")}, {"seconds": float("inf")}, {"days": 10**9}]
)
def test_advancing_by_what_is_not_a_duration_is_a_clear_error(step: dict[str, Any]) -> None:
    clock = FakeClock(START)
    with pytest.raises(InvalidArgument):
        clock.advance(**step)
    assert clock.now() == START
