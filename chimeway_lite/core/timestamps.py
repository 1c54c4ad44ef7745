"""The one text form of a timestamp: ISO-8601 UTC with exactly six fractional digits.

``2026-01-05T09:30:00.000000+00:00`` is 32 characters for every instant from year 1 to 9999,
so comparing the text orders the instants; ``datetime.isoformat()`` would drop ``.000000``
when the microseconds are 0 and break that.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import InvalidArgument

#: The latest instant a store accepts. Every delay a declaration may hold (at most a
#: century, :data:`~chimeway_lite.core.names.MAX_DELAY_SECONDS`) added to it stays within
#: year 9999, so no due time can overflow.
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def require_utc(value: object, name: str) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive or non-datetime values are refused."""
    if not isinstance(value, datetime):
        raise InvalidArgument(
            name, f"expected a timezone-aware datetime, got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(name, "expected a timezone-aware datetime, got a naive one")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # e.g. datetime.min at UTC+5 is before year 1 in UTC
        raise InvalidArgument(name, "is out of range once converted to UTC") from None
    if utc >= LATEST:
        raise InvalidArgument(name, f"is later than {LATEST.date()}, the latest instant kept")
    return utc


def to_text(value: datetime) -> str:
    """Format an aware datetime as fixed-width UTC text."""
    # Not strftime: its %Y does not pad years before 1000 on glibc, breaking the fixed width.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    """Parse the fixed-width text back into an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)
