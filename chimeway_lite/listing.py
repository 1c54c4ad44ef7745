"""Listing and exporting a store for people and tools: runs and traces as rows, JSON or CSV,
and the tables of the file — read paths only, through :class:`sqlite_utils.Database`.

Nothing here writes: the engine's writes all go through :class:`~chimeway_lite.store.Store`
and :mod:`chimeway_lite.transaction`. Each function reads inside one read unit of the store
(its lock and one read transaction), so a listing is a consistent snapshot. Rows are plain
dicts of JSON values: timestamps in the store's fixed-width UTC text, JSON columns parsed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import attrs
import sqlite_utils

from .arguments import require_enum, require_id, require_limit
from .errors import RunNotFound
from .records import RunState
from .store import Store
from .timestamps import to_text

T = TypeVar("T")

#: The columns of :func:`run_rows`, in order.
RUN_COLUMNS = (
    "id",
    "tenant_id",
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

#: The columns of :func:`trace_rows`, in order.
TRACE_COLUMNS = (
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

_RUNS = """
SELECT r.id, r.tenant_id, r.state, r.status_reason, d.workflow_key, d.workflow_version,
       s.step_key AS current_step, s.channel, r.started_at, r.last_transition_at,
       r.suspended_until, r.pending_signals, r.terminal_reason
  FROM workflow_runs AS r
  JOIN workflow_definitions AS d ON d.id = r.workflow_definition_id
  JOIN workflow_steps AS s ON s.id = r.current_step_id
 WHERE (:tenant_id IS NULL OR r.tenant_id = :tenant_id)
   AND (:state IS NULL OR r.state = :state)
 ORDER BY r.last_transition_at DESC, r.id
 LIMIT :limit
"""
_TRACES = """
SELECT t.seq, t.inserted_at, t.from_state, t.to_state, t.reason, s.step_key, t.delivery_id,
       t.context, t.id
  FROM workflow_transitions AS t
  LEFT JOIN workflow_steps AS s ON s.id = t.workflow_step_id
 WHERE t.workflow_run_id = :run_id
 ORDER BY t.seq
 LIMIT :limit
"""


def database(store: Store) -> sqlite_utils.Database:
    """A :class:`sqlite_utils.Database` on the store's connection, for reading.

    It changes nothing on the connection (no ``recursive_triggers`` pragma, no plugins);
    do not close it — the store owns the connection.
    """
    return sqlite_utils.Database(store.connection, recursive_triggers=False, execute_plugins=False)


def _snapshot(store: Store, work: Callable[[sqlite_utils.Database], T]) -> T:
    # One read unit: the store's lock and one read transaction around every query.
    return store._read(lambda _tx: work(database(store)))


def run_rows(
    store: Store,
    *,
    tenant_id: str | None = None,
    state: RunState | str | None = None,
    limit: int | None = 100,
) -> list[dict[str, Any]]:
    """Runs, most recently changed first, as rows of :data:`RUN_COLUMNS`.

    ``tenant_id`` and ``state`` filter; ``limit`` (default 100, None for all) cuts the list.
    Listing every tenant is an operator's view: pass ``tenant_id`` to stay in one tenant.
    """
    tenant = None if tenant_id is None else require_id(tenant_id, "tenant_id")
    wanted = None if state is None else require_enum(RunState, state, "state").value
    count = require_limit(limit)
    params = {"tenant_id": tenant, "state": wanted, "limit": -1 if count is None else count}

    def query(db: sqlite_utils.Database) -> list[dict[str, Any]]:
        rows = list(db.query(_RUNS, params))
        for row in rows:
            row["pending_signals"] = json.loads(row["pending_signals"])
        return rows

    return _snapshot(store, query)


def trace_rows(
    store: Store, tenant_id: str, run_id: str, *, limit: int | None = None
) -> list[dict[str, Any]]:
    """The run's trace in sequence order as rows of :data:`TRACE_COLUMNS` (step keys instead
    of step ids); tenant-scoped like :meth:`Store.list_traces`: RunNotFound otherwise."""
    tenant = require_id(tenant_id, "tenant_id")
    run = require_id(run_id, "run_id")
    count = require_limit(limit)

    def query(db: sqlite_utils.Database) -> list[dict[str, Any]]:
        visible = list(
            db.query("SELECT 1 FROM workflow_runs WHERE id = ? AND tenant_id = ?", (run, tenant))
        )
        if not visible:
            raise RunNotFound(run_id)
        rows = list(db.query(_TRACES, {"run_id": run, "limit": -1 if count is None else count}))
        for row in rows:
            row["context"] = json.loads(row["context"])
        return rows

    return _snapshot(store, query)


def table_rows(store: Store) -> list[dict[str, Any]]:
    """Every table of the file with its row count and columns (schema introspection), in
    the form ``sqlite-utils tables --counts --columns`` prints."""

    def query(db: sqlite_utils.Database) -> list[dict[str, Any]]:
        return [
            {
                "table": name,
                "count": db.table(name).count,
                "columns": [c.name for c in db.table(name).columns],
            }
            for name in db.table_names()
            if not name.startswith("sqlite_")
        ]

    return _snapshot(store, query)


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


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header row; dict and list cells become JSON text, None an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = []
        for name in columns:
            value = plain(row.get(name))
            if isinstance(value, (dict, list)):
                value = json.dumps(value, sort_keys=True, ensure_ascii=False)
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return out.getvalue()
