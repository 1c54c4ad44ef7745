"""The one text form of a timestamp: ISO-8601 UTC with exactly six fractional digits.

``2026-01-05T09:30:00.000000+00:00`` is 32 characters for every instant from year 1 to 9999,
so comparing the text orders the instants; ``datetime.isoformat()`` would drop ``.000000``
when the microseconds are 0 and break that.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import InvalidArgument


def require_utc(value: object, name: str) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive or non-datetime values are refused."""
    if not isinstance(value, datetime):
        raise InvalidArgument(
            name, f"expected a timezone-aware datetime, got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(name, "expected a timezone-aware datetime, got a naive one")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. datetime.min at UTC+5 is before year 1 in UTC
        raise InvalidArgument(name, "is out of range once converted to UTC") from None


def to_text(value: datetime) -> str:
    """Format an aware datetime as fixed-width UTC text."""
    # Not strftime: its %Y does not pad years before 1000 on glibc, breaking the fixed width.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    """Parse the fixed-width text back into an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)
