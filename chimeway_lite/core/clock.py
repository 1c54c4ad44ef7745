"""Clocks. The engine reads time only through a clock, so tests can drive it.

Any object with a ``now()`` method returning an aware datetime is a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from .errors import InvalidArgument
from .timestamps import require_utc


class Clock(Protocol):
    """What the store needs of a clock."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that stands still until told to move: the test double for time.

    >>> clock = FakeClock(datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    >>> clock.advance(hours=2).isoformat()
    '2026-01-05T11:30:00+00:00'
    """

    def __init__(self, start: datetime) -> None:
        self._now = require_utc(start, "start")

    def now(self) -> datetime:
        """The instant the clock stands at."""
        return self._now

    def advance(self, seconds: float = 0, **timedelta_kwargs: Any) -> datetime:
        """Move forward by ``seconds`` plus any :class:`~datetime.timedelta` keywords
        (``minutes=``, ``hours=``, ``days=`` …) and return the new instant."""
        try:
            step = timedelta(seconds=seconds, **timedelta_kwargs)
            later = self._now + step
        except (TypeError, ValueError, OverflowError):  # nan, inf, a str, too far
            raise InvalidArgument("seconds", "must be a finite duration in range") from None
        if step < timedelta(0):
            raise InvalidArgument("seconds", "a FakeClock only moves forward")
        self._now = require_utc(later, "the new instant")
        return self._now

    def set(self, instant: datetime) -> datetime:
        """Jump to ``instant`` (not before the current one) and return it."""
        instant = require_utc(instant, "instant")
        if instant < self._now:
            raise InvalidArgument("instant", "a FakeClock only moves forward")
        self._now = instant
        return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()!r})"
