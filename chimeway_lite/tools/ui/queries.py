"""The query parameters of each page, read and checked before the store is asked anything.

A parameter the page does not know, one given twice, or a value out of range is an
:class:`~chimeway_lite.core.errors.InvalidArgument` naming it, which the server answers with
400. An empty value counts as absent, so that a filter form sent with empty fields means
"no filter". Ids (tenant, recipient, workflow, channel) are checked by the store itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from urllib.parse import parse_qsl

import attrs

from ...core.errors import InvalidArgument
from ...core.records import DeliveryStatus, RunState

#: Rows per page unless ``limit`` says otherwise, and the most a page shows.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: The furthest page number accepted (offsets stay small enough for any store).
MAX_PAGE = 100_000
#: ``/due`` looks this many minutes ahead unless ``within`` says otherwise (at most a week).
DEFAULT_WITHIN = 60
MAX_WITHIN = 7 * 24 * 60
#: The most parameters a query string may carry.
MAX_FIELDS = 20

FORMATS = ("html", "json")
_COMMON = frozenset({"format"})


def parameters(query: str, allowed: Collection[str]) -> dict[str, str]:
    """The query string as name -> value, empty values left out; InvalidArgument for an
    unknown or repeated name, a malformed string, or too many fields."""
    try:
        pairs = parse_qsl(
            query,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidArgument("query", "is not a valid query string") from None
    known = _COMMON | set(allowed)
    found: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name not in known:
            choices = ", ".join(sorted(known))
            raise InvalidArgument(_shown(name), f"is not a parameter of this page ({choices})")
        if name in seen:
            raise InvalidArgument(name, "is given more than once")
        seen.add(name)
        if value != "":
            found[name] = value
    return found


def wants_json(found: Mapping[str, str]) -> bool:
    """True for ``format=json``; InvalidArgument for a format other than html or json."""
    value = found.get("format", "html")
    if value not in FORMATS:
        raise InvalidArgument("format", f"must be html or json, got {_shown(value)!r}")
    return value == "json"


def _shown(value: str) -> str:
    # Errors name what was asked, but never more than a short prefix of it.
    return value if len(value) <= 40 else value[:40] + "…"


def _int(found: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = found.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise InvalidArgument(name, f"must be a whole number, got {_shown(text)!r}")
    value = int(text)
    if not low <= value <= high:
        raise InvalidArgument(name, f"must be between {low} and {high}, got {value}")
    return value


@attrs.frozen
class Paging:
    """Which page of a listing: ``page`` (from 1) of ``limit`` rows."""

    page: int = 1
    limit: int = DEFAULT_LIMIT

    @property
    def offset(self) -> int:
        """How many rows come before this page."""
        return (self.page - 1) * self.limit

    @classmethod
    def read(cls, found: Mapping[str, str]) -> Paging:
        """The ``page`` and ``limit`` parameters."""
        return cls(
            page=_int(found, "page", 1, 1, MAX_PAGE),
            limit=_int(found, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        )


_PAGING = ("page", "limit")


@attrs.frozen
class RunsQuery:
    """``/``: runs filtered by tenant, recipient, state and workflow key."""

    NAMES = ("tenant", "recipient", "state", "workflow", *_PAGING)

    tenant: str | None
    recipient: str | None
    state: str | None
    workflow: str | None
    paging: Paging

    @classmethod
    def read(cls, found: Mapping[str, str]) -> RunsQuery:
        """The page's parameters, checked."""
        state = found.get("state")
        if state is not None and state not in {s.value for s in RunState}:
            choices = ", ".join(s.value for s in RunState)
            raise InvalidArgument("state", f"must be one of {choices}; got {_shown(state)!r}")
        return cls(
            tenant=found.get("tenant"),
            recipient=found.get("recipient"),
            state=state,
            workflow=found.get("workflow"),
            paging=Paging.read(found),
        )


@attrs.frozen
class OutboxQuery:
    """``/outbox``: deliveries not final yet (or of one status), by tenant and channel."""

    NAMES = ("tenant", "status", "channel", *_PAGING)

    tenant: str | None
    status: str | None
    channel: str | None
    paging: Paging

    @classmethod
    def read(cls, found: Mapping[str, str]) -> OutboxQuery:
        """The page's parameters, checked."""
        status = found.get("status")
        if status is not None and status not in {s.value for s in DeliveryStatus}:
            choices = ", ".join(s.value for s in DeliveryStatus)
            raise InvalidArgument("status", f"must be one of {choices}; got {_shown(status)!r}")
        return cls(
            tenant=found.get("tenant"),
            status=status,
            channel=found.get("channel"),
            paging=Paging.read(found),
        )


@attrs.frozen
class DueQuery:
    """``/due``: the runs and deliveries due within ``within`` minutes."""

    NAMES = ("tenant", "within", *_PAGING)

    tenant: str | None
    within: int
    paging: Paging

    @classmethod
    def read(cls, found: Mapping[str, str]) -> DueQuery:
        """The page's parameters, checked."""
        return cls(
            tenant=found.get("tenant"),
            within=_int(found, "within", DEFAULT_WITHIN, 1, MAX_WITHIN),
            paging=Paging.read(found),
        )
