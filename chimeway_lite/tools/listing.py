"""Listing and exporting a store for people and tools: runs and traces as rows, JSON or CSV,
and the tables of the store — read paths only.

Nothing here writes. Each function reads inside one read snapshot of the store
(:meth:`~chimeway_lite.store.Store.snapshot`), so a listing is consistent. Rows are plain
dicts of JSON values: timestamps in the store's fixed-width UTC text, JSON columns parsed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import attrs
import sqlite_utils

from ..core.records import DeliveryStatus, RunState
from ..core.timestamps import to_text
from ..store import Store

#: The columns of :func:`run_rows`, in order.
RUN_COLUMNS = (
    "id",
    "tenant_id",
    "recipient",
    "notification_key",
    "state",
    "status_reason",
    "workflow_key",
    "workflow_version",
    "current_step",
    "channel",
    "started_at",
    "last_transition_at",
    "suspended_until",
    "pending_signals",
    "terminal_reason",
)

#: The columns of :func:`delivery_rows`, in order: never the trigger's data nor the step's
#: config. ``claimable_at`` is when a claim could take the delivery (pending: its retry
#: time, else when it was planned; dispatched: when its lease runs out; else None).
DELIVERY_COLUMNS = (
    "id",
    "tenant_id",
    "workflow_run_id",
    "recipient",
    "notification_key",
    "step_key",
    "channel",
    "status",
    "suppression_reason",
    "attempt",
    "max_attempts",
    "available_at",
    "lease_expires_at",
    "claimable_at",
    "digest_size",
    "inserted_at",
    "updated_at",
)

#: The columns of :func:`trace_rows`, in order: ``number`` counts the run's rows (1, 2, 3 …),
#: ``seq`` is the row's place in the whole store.
TRACE_COLUMNS = (
    "number",
    "seq",
    "inserted_at",
    "from_state",
    "to_state",
    "reason",
    "step_key",
    "delivery_id",
    "context",
    "id",
)


def database(store: Store) -> sqlite_utils.Database:
    """A :class:`sqlite_utils.Database` on an SQLite store's connection, for reading.

    It changes nothing on the connection (no ``recursive_triggers`` pragma, no plugins);
    do not close it — the store owns the connection.
    """
    return sqlite_utils.Database(store.connection, recursive_triggers=False, execute_plugins=False)


def run_rows(
    store: Store,
    *,
    tenant_id: str | None = None,
    state: RunState | str | None = None,
    limit: int | None = 100,
    recipient: str | None = None,
    workflow_key: str | None = None,
    run_id: str | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Runs, most recently changed first, as rows of :data:`RUN_COLUMNS`.

    ``tenant_id``, ``state``, ``recipient``, ``workflow_key`` (any version) and ``run_id``
    filter (each one given must match); ``offset`` rows are skipped, then ``limit``
    (default 100, None for all) cuts the list. Listing every tenant is an operator's view:
    pass ``tenant_id`` to stay in one tenant.
    """
    with store.snapshot() as view:
        rows = view.run_rows(
            tenant_id=tenant_id,
            state=state,
            limit=limit,
            recipient=recipient,
            workflow_key=workflow_key,
            run_id=run_id,
            offset=offset,
        )
    for row in rows:
        row["pending_signals"] = _json(row["pending_signals"])
    return rows


def delivery_rows(
    store: Store,
    *,
    tenant_id: str | None = None,
    status: DeliveryStatus | str | None = None,
    channel: str | None = None,
    before: datetime | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The outbox: deliveries as rows of :data:`DELIVERY_COLUMNS`, oldest first.

    Without ``status``, the deliveries not final yet (pending and dispatched); ``tenant_id``
    and ``channel`` filter. With ``before``, only the work that comes back by then: pending
    retries whose ``available_at`` and dispatched deliveries whose lease end is at or before
    it (past ones included), in that order of time. ``offset`` and ``limit`` page as in
    :func:`run_rows`.
    """
    with store.snapshot() as view:
        return view.delivery_rows(
            tenant_id=tenant_id,
            status=status,
            channel=channel,
            before=before,
            limit=limit,
            offset=offset,
        )


def trace_rows(
    store: Store, tenant_id: str, run_id: str, *, limit: int | None = None
) -> list[dict[str, Any]]:
    """The run's trace in sequence order as rows of :data:`TRACE_COLUMNS` (step keys instead
    of step ids, each row numbered within the run from 1); tenant-scoped like
    :meth:`Store.list_traces`: RunNotFound otherwise."""
    with store.snapshot() as view:
        rows = view.trace_rows(tenant_id, run_id, limit=limit)
    numbered = []
    for number, row in enumerate(rows, start=1):  # the rows start at the run's first
        row["context"] = _json(row["context"])
        numbered.append({"number": number, **row})
    return numbered


def _json(text: Any) -> Any:
    """A JSON column's value, or its text as it is when it does not parse (a listing shows
    even a damaged row; ``verify()`` says what is wrong with it)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return text


def table_rows(store: Store) -> list[dict[str, Any]]:
    """Every table of the store with its row count and columns, in the form
    ``sqlite-utils tables --counts --columns`` prints."""
    with store.snapshot() as view:
        return view.table_rows()


def plain(value: Any) -> Any:
    """A record, enum, datetime or container as plain JSON values (attrs records become
    dicts, datetimes the store's fixed-width UTC text, enums their value)."""
    if attrs.has(type(value)):
        return {f.name: plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return to_text(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """Pretty JSON text of ``value`` (through :func:`plain`)."""
    return json.dumps(plain(value), indent=2, ensure_ascii=False, allow_nan=False)


# Characters a terminal acts on instead of showing: C0 and C1 controls (but newline and
# tab) and the bidirectional overrides that reorder what a reader sees.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def showable(text: str) -> str:
    """``text`` with every character a terminal would act on (ESC, BEL, CR, C1 controls,
    bidi overrides) written as a visible escape (``\\x1b``), so a tenant id or step name
    can never move the cursor, recolour or rewrite what an operator reads."""
    if text.isascii() and text.isprintable():
        return text
    return _UNSHOWABLE.sub(lambda m: ascii(m.group())[1:-1], text)


# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A text cell a spreadsheet shows as text: one that would start a formula gets a
    leading ``'`` (OWASP's advice for CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header row; dict and list cells become JSON text, None an empty cell,
    and a text cell that a spreadsheet would run as a formula is neutralised
    (:func:`csv_cell`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = []
        for name in columns:
            value = plain(row.get(name))
            if isinstance(value, (dict, list)):
                value = json.dumps(value, sort_keys=True, ensure_ascii=False)
            if isinstance(value, str):
                value = csv_cell(value)
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return out.getvalue()
