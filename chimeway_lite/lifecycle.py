"""Data lifecycle: pruning finished runs, and erasing a tenant or one recipient of it.

Both run inside the caller's write transaction (:meth:`Store.prune` and :meth:`Store.forget`
open one each), so they delete everything they select or nothing.

prune
    A run is *finished* when its state is ``completed`` or ``stopped``; it is older than the
    cutoff when its ``last_transition_at`` (the instant it finished, unless a host rewrote
    it) is strictly before ``before``. Such a run goes with its whole trace, every delivery
    of its notification, and the notification itself. Active and waiting runs are never
    pruned, however old. Signals are left alone (they are tenant facts, not parts of a run;
    :func:`forget` erases them), and so are definitions (global, shared by every tenant).
    The count returned is the number of rows deleted across the four tables. A pruned
    notification no longer holds its idempotency key: triggering the same key again starts
    a new journey (keep the cutoff longer than any retry window of the host).

forget
    Erases, for one tenant — or for one recipient of it — the notifications, their runs,
    traces and deliveries, and the signals (the tenant's, or those whose ``actor_id`` is the
    recipient, which is how signals name their recipient: SPEC §5). Then it writes one
    tombstone row in ``erasures`` (an :class:`~chimeway_lite.records.Erasure`): tenant id,
    scope (``tenant`` or ``recipient``), the time from the store clock, the rows deleted
    per table and their sum. The tombstone holds no recipient and no payload — only that an
    erasure happened, of what scope, and how big it was; it is written even when nothing
    matched, as a record that the request was carried out. Earlier tombstones of the
    tenant are kept. The count returned is the rows erased, not counting the tombstone.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from datetime import datetime

from . import convert
from .arguments import optional_id, require_id
from .records import Erasure
from .timestamps import require_utc, to_text
from .transaction import Transaction

# Finished runs of one tenant (or all), older than the cutoff.
_FINISHED_BEFORE = """
SELECT id, notification_id FROM workflow_runs
 WHERE state IN ('completed', 'stopped') AND last_transition_at < :before
   AND (:tenant_id IS NULL OR tenant_id = :tenant_id)
"""

# The notifications forget() erases; every other delete below hangs off this set, so the
# notifications themselves go last (the foreign keys point at them).
_NOTIFICATIONS = """
SELECT id FROM notifications
 WHERE tenant_id = :tenant_id AND (:recipient IS NULL OR recipient = :recipient)
"""
_FORGET = (
    (
        "workflow_transitions",
        "DELETE FROM workflow_transitions WHERE workflow_run_id IN "
        f"(SELECT id FROM workflow_runs WHERE notification_id IN ({_NOTIFICATIONS}))",
    ),
    (
        "deliveries",
        f"DELETE FROM deliveries WHERE notification_id IN ({_NOTIFICATIONS})",
    ),
    (
        "workflow_runs",
        f"DELETE FROM workflow_runs WHERE notification_id IN ({_NOTIFICATIONS})",
    ),
    (
        "notifications",
        "DELETE FROM notifications "
        "WHERE tenant_id = :tenant_id AND (:recipient IS NULL OR recipient = :recipient)",
    ),
    (
        "signals",
        "DELETE FROM signals "
        "WHERE tenant_id = :tenant_id AND (:recipient IS NULL OR actor_id = :recipient)",
    ),
)

_INSERT_ERASURE = """
INSERT INTO erasures (id, tenant_id, scope, row_counts, rows_erased, erased_at)
VALUES (:id, :tenant_id, :scope, :row_counts, :rows_erased, :erased_at)
"""


def _delete_each(conn: sqlite3.Connection, sql: str, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    return conn.executemany(sql, [(i,) for i in ids]).rowcount


def prune(tx: Transaction, before: datetime, *, tenant_id: str | None = None) -> int:
    """Delete finished runs older than ``before`` with their rows; return the rows deleted.

    ``tenant_id`` limits the prune to one tenant; None prunes every tenant.
    """
    cutoff = require_utc(before, "before")
    tenant = optional_id(tenant_id, "tenant_id")
    conn = tx.connection
    rows = conn.execute(_FINISHED_BEFORE, {"before": to_text(cutoff), "tenant_id": tenant})
    runs = rows.fetchall()
    run_ids = [r[0] for r in runs]
    notification_ids = [r[1] for r in runs]
    # Children before parents: the foreign keys are checked statement by statement.
    deleted = _delete_each(
        conn, "DELETE FROM workflow_transitions WHERE workflow_run_id = ?", run_ids
    )
    deleted += _delete_each(
        conn, "DELETE FROM deliveries WHERE notification_id = ?", notification_ids
    )
    deleted += _delete_each(conn, "DELETE FROM workflow_runs WHERE id = ?", run_ids)
    deleted += _delete_each(conn, "DELETE FROM notifications WHERE id = ?", notification_ids)
    return deleted


def forget(tx: Transaction, tenant_id: str, recipient: str | None = None) -> int:
    """Erase a tenant (or one recipient of it) and leave a payload-free tombstone.

    Returns the number of rows erased (the tombstone not counted).
    """
    tenant = require_id(tenant_id, "tenant_id")
    who = optional_id(recipient, "recipient")
    conn = tx.connection
    params = {"tenant_id": tenant, "recipient": who}
    counts = {table: conn.execute(sql, params).rowcount for table, sql in _FORGET}
    erasure = Erasure(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        scope="tenant" if who is None else "recipient",
        row_counts=counts,
        rows_erased=sum(counts.values()),
        erased_at=tx.now(),
    )
    conn.execute(_INSERT_ERASURE, convert.to_row(erasure))
    return erasure.rows_erased


def erasures(tx: Transaction, tenant_id: str | None = None) -> list[Erasure]:
    """The tombstones :func:`forget` left, oldest first; of one tenant, or of all."""
    tenant = optional_id(tenant_id, "tenant_id")
    rows = tx.connection.execute(
        "SELECT * FROM erasures WHERE :tenant_id IS NULL OR tenant_id = :tenant_id "
        "ORDER BY erased_at, rowid",
        {"tenant_id": tenant},
    )
    return [convert.from_row(Erasure, r) for r in rows.fetchall()]
