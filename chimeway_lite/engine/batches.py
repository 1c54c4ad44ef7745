"""Batches (CONTRACT §18): many triggers or outcomes in one unit of work.

Each item has the result it would have had alone, in order — a key repeated within the batch
is a duplicate of its first use, an outcome progresses its run before the next item is read
— but the whole batch commits once. All or nothing: the first item that fails raises its
own error, marked with the item's index (``error.item``, ``"item 3: …"``), and nothing of the
batch is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..core.errors import ChimewayError, InvalidArgument
from ..core.records import Progress, TriggerResult
from . import deliveries, outbox
from .work import Work

#: The most items one batch may hold: a unit of work holds the write lock while it runs.
MAX_BATCH = 10_000

_TRIGGER_KEYS = frozenset(
    {
        "tenant_id",
        "notification_key",
        "recipient",
        "workflow",
        "idempotency_key",
        "data",
        "correlation_key",
        "timezone",
    }
)
_REQUIRED_TRIGGER_KEYS = frozenset(
    {"tenant_id", "notification_key", "recipient", "workflow", "idempotency_key"}
)
_OUTCOME_KEYS = ("delivery_id", "status", "suppression_reason", "tenant_id")


def _items(items: object, name: str) -> Sequence[Any]:
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise InvalidArgument(name, f"must be a list of items, got {type(items).__name__}")
    listed = list(items)
    if len(listed) > MAX_BATCH:
        raise InvalidArgument(name, f"holds {len(listed)} items; at most {MAX_BATCH} per batch")
    return listed


def trigger_many(work: Work, requests: object) -> list[TriggerResult]:
    """:func:`~chimeway_lite.engine.outbox.trigger` of each request (a mapping of its keyword
    arguments), in order, in this unit of work."""
    results = []
    for index, request in enumerate(_items(requests, "requests")):
        try:
            if not isinstance(request, Mapping):
                raise InvalidArgument(
                    "request",
                    f"must be a dict of trigger()'s arguments, got {type(request).__name__}",
                )
            unknown = sorted(str(k)[:40] for k in request if k not in _TRIGGER_KEYS)
            if unknown:
                raise InvalidArgument("request", f"unknown arguments {', '.join(unknown)}")
            missing = sorted(_REQUIRED_TRIGGER_KEYS - set(request))
            if missing:
                raise InvalidArgument("request", f"missing arguments {', '.join(missing)}")
            results.append(outbox.trigger(work, **request))
        except ChimewayError as exc:
            raise exc.at_item(index) from None
    return results


def record_outcomes(work: Work, reports: object) -> list[Progress | None]:
    """:func:`~chimeway_lite.engine.deliveries.record_outcome` of each report, in order, in
    this unit of work. A report is ``(delivery_id, status)``, ``(delivery_id, status,
    suppression_reason)`` or a mapping of those names and ``tenant_id``."""
    results = []
    for index, report in enumerate(_items(reports, "reports")):
        try:
            arguments = _report(report)
            results.append(
                deliveries.record_outcome(
                    work,
                    arguments["delivery_id"],
                    arguments["status"],
                    arguments.get("suppression_reason"),
                    arguments.get("tenant_id"),
                )
            )
        except ChimewayError as exc:
            raise exc.at_item(index) from None
    return results


def _report(report: object) -> dict[str, Any]:
    if isinstance(report, Mapping):
        unknown = sorted(str(k)[:40] for k in report if k not in _OUTCOME_KEYS)
        if unknown:
            raise InvalidArgument("report", f"unknown fields {', '.join(unknown)}")
        if "delivery_id" not in report or "status" not in report:
            raise InvalidArgument("report", "needs delivery_id and status")
        return dict(report)
    if isinstance(report, tuple) and 2 <= len(report) <= 3:
        return dict(zip(_OUTCOME_KEYS, report, strict=False))
    raise InvalidArgument(
        "report",
        "must be (delivery_id, status), (delivery_id, status, suppression_reason) or a dict, "
        f"got {type(report).__name__}",
    )
