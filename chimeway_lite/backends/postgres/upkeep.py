"""Prune, forget, verify's reads and the listings on PostgreSQL: the SQL, beside the code that
runs it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from ...core.errors import DamagedRow
from ...core.records import (
    Delivery,
    DeliveryEvent,
    Erasure,
    Notification,
    Signal,
    SignalMark,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from ...core.timestamps import to_text
from .. import scans
from ..base import EVERY_ID, DeliveryHistory, IdRange, RunTrace
from ..sqlite import convert
from .executor import Executor, sql

_DELIVERY_COLUMNS = convert.columns(Delivery, stop="data")

# Finished runs of one tenant (or all), older than the cutoff, oldest first; a run another
# unit holds (a host's update_run) is left for the next prune.
_FINISHED_BEFORE = sql("""
SELECT id, notification_id FROM workflow_runs
 WHERE state IN ('completed', 'stopped') AND last_transition_at < :before
   AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
 ORDER BY last_transition_at, id
 LIMIT :limit
 FOR UPDATE SKIP LOCKED
""")
# Children before parents (the foreign keys are checked statement by statement).
_PRUNE = tuple(
    sql(statement)
    for statement in (
        "DELETE FROM workflow_transitions WHERE workflow_run_id = ANY(:runs::text[])",
        "DELETE FROM digest_members WHERE workflow_run_id = ANY(:runs::text[])",
        "DELETE FROM delivery_events WHERE delivery_id IN "
        "(SELECT id FROM deliveries WHERE notification_id = ANY(:notifications::text[]))",
        "DELETE FROM deliveries WHERE notification_id = ANY(:notifications::text[])",
        "DELETE FROM workflow_runs WHERE id = ANY(:runs::text[])",
        "DELETE FROM notifications WHERE id = ANY(:notifications::text[])",
    )
)
_BATCHES_OF_RUNS = sql(
    "SELECT DISTINCT batch_id FROM digest_members WHERE workflow_run_id = ANY(:runs::text[])"
)
_PRUNE_BATCHES = sql("""
DELETE FROM digest_batches
 WHERE id = ANY(:ids::text[]) AND closed_at IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM digest_members AS m WHERE m.batch_id = digest_batches.id)
""")
_PRUNE_MARKS = sql("""
DELETE FROM signal_marks
 WHERE routed_at < :before AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
   AND routed_at < coalesce(
       (SELECT min(r.entered_step_at) FROM workflow_runs AS r
         WHERE r.tenant_id = signal_marks.tenant_id AND r.state = 'active'),
       :before::timestamptz)
""")

_NOTIFICATIONS = (
    "SELECT id FROM notifications"
    " WHERE tenant_id = :tenant_id AND (:recipient::text IS NULL OR recipient = :recipient)"
)
_FORGET = tuple(
    (table, sql(statement))
    for table, statement in (
        (
            "signals",
            "DELETE FROM signals "
            "WHERE tenant_id = :tenant_id AND (:recipient::text IS NULL "
            "OR actor_id = :recipient "
            "OR lower(payload ->> 'delivery_id') IN "
            f"(SELECT id FROM deliveries WHERE notification_id IN ({_NOTIFICATIONS})))",
        ),
        (
            "workflow_transitions",
            "DELETE FROM workflow_transitions WHERE workflow_run_id IN "
            f"(SELECT id FROM workflow_runs WHERE notification_id IN ({_NOTIFICATIONS}))",
        ),
        (
            "delivery_events",
            "DELETE FROM delivery_events WHERE delivery_id IN "
            f"(SELECT id FROM deliveries WHERE notification_id IN ({_NOTIFICATIONS}))",
        ),
        ("deliveries", f"DELETE FROM deliveries WHERE notification_id IN ({_NOTIFICATIONS})"),
        (
            "digest_members",
            "DELETE FROM digest_members WHERE workflow_run_id IN "
            f"(SELECT id FROM workflow_runs WHERE notification_id IN ({_NOTIFICATIONS}))",
        ),
        (
            "digest_batches",
            "DELETE FROM digest_batches WHERE tenant_id = :tenant_id "
            "AND (:recipient::text IS NULL OR recipient = :recipient)",
        ),
        (
            "step_activations",
            "DELETE FROM step_activations WHERE tenant_id = :tenant_id "
            "AND (:recipient::text IS NULL OR recipient = :recipient)",
        ),
        (
            "workflow_runs",
            f"DELETE FROM workflow_runs WHERE notification_id IN ({_NOTIFICATIONS})",
        ),
        (
            "notifications",
            "DELETE FROM notifications WHERE tenant_id = :tenant_id "
            "AND (:recipient::text IS NULL OR recipient = :recipient)",
        ),
        (
            "signal_marks",
            "DELETE FROM signal_marks WHERE tenant_id = :tenant_id "
            "AND (:recipient::text IS NULL OR actor_id = :recipient)",
        ),
    )
)
#: The tables forget() deletes from, which are vacuumed after it commits.
ERASED_TABLES = tuple(table for table, _ in _FORGET)
_INSERT_ERASURE = sql("""
INSERT INTO erasures (id, tenant_id, scope, row_counts, rows_erased, erased_at)
VALUES (:id, :tenant_id, :scope, :row_counts, :rows_erased, :erased_at)
""")
_ERASURES = sql(f"""
SELECT {convert.columns(Erasure)} FROM erasures
 WHERE :tenant_id::text IS NULL OR tenant_id = :tenant_id ORDER BY erased_at, seq
""")

_FINDINGS: tuple[tuple[str, str], ...] = tuple(
    (name, sql(statement))
    for name, statement in (
        (
            "foreign_anchor",
            "SELECT t.seq, t.reason, t.workflow_run_id, t.delivery_id, "
            "CASE WHEN d.id IS NULL THEN 'does not exist' "
            "ELSE 'belongs to run ' || coalesce(d.workflow_run_id, '(none)') END "
            "FROM workflow_transitions AS t LEFT JOIN deliveries AS d ON d.id = t.delivery_id "
            "WHERE t.delivery_id IS NOT NULL "
            "AND t.reason = ANY(:anchored::text[]) "
            "AND d.workflow_run_id IS DISTINCT FROM t.workflow_run_id "
            "ORDER BY t.seq",
        ),
        (
            "signal_other_tenant",
            "SELECT t.seq, t.workflow_run_id, t.delivery_id FROM workflow_transitions AS t "
            "JOIN workflow_runs AS r ON r.id = t.workflow_run_id "
            "JOIN deliveries AS d ON d.id = t.delivery_id "
            "WHERE t.reason = :resumed AND d.tenant_id != r.tenant_id ORDER BY t.seq",
        ),
        (
            "unanswered_delivery",
            "SELECT workflow_run_id, workflow_step_id, planned, activated FROM ("
            " SELECT d.workflow_run_id, d.workflow_step_id, count(*) AS planned, "
            " (SELECT count(*) FROM workflow_transitions AS t "
            "   WHERE t.workflow_run_id = d.workflow_run_id "
            "     AND t.workflow_step_id = d.workflow_step_id "
            "     AND t.reason = :activated) AS activated "
            " FROM deliveries AS d WHERE d.workflow_run_id IS NOT NULL "
            " GROUP BY d.workflow_run_id, d.workflow_step_id) AS g "
            "WHERE planned > activated ORDER BY workflow_run_id, workflow_step_id",
        ),
        (
            "run_tenant",
            "SELECT r.id, r.tenant_id, n.tenant_id FROM workflow_runs AS r "
            "JOIN notifications AS n ON n.id = r.notification_id "
            "WHERE n.tenant_id != r.tenant_id ORDER BY r.id",
        ),
        (
            "delivery_tenant",
            "SELECT d.id, d.tenant_id, n.tenant_id FROM deliveries AS d "
            "JOIN notifications AS n ON n.id = d.notification_id "
            "WHERE n.tenant_id != d.tenant_id ORDER BY d.id",
        ),
        (
            "delivery_notification",
            "SELECT d.id, d.workflow_run_id FROM deliveries AS d "
            "JOIN workflow_runs AS r ON r.id = d.workflow_run_id "
            "WHERE r.notification_id != d.notification_id ORDER BY d.id",
        ),
        (
            "foreign_step",
            "SELECT r.id, r.current_step_id FROM workflow_runs AS r "
            "LEFT JOIN workflow_steps AS s ON s.id = r.current_step_id "
            "WHERE s.workflow_definition_id IS DISTINCT FROM r.workflow_definition_id "
            "ORDER BY r.id",
        ),
        (
            "digest_size",
            "SELECT id, digest_size, members FROM ("
            "  SELECT d.id, d.digest_size, (SELECT count(*) FROM digest_batches AS b"
            "    JOIN digest_members AS m ON m.batch_id = b.id WHERE b.delivery_id = d.id)"
            "    AS members,"
            "  EXISTS (SELECT 1 FROM digest_batches AS b WHERE b.delivery_id = d.id) AS batched"
            "  FROM deliveries AS d) AS s "
            "WHERE (digest_size > 1 OR batched) AND (members > digest_size OR NOT batched) "
            "ORDER BY id",
        ),
        (
            "digest_orphan",
            "SELECT r.id, r.wait_target FROM workflow_runs AS r "
            "WHERE r.state = 'waiting' AND r.wait_kind = :collecting AND NOT EXISTS ("
            "  SELECT 1 FROM digest_members AS m JOIN digest_batches AS b ON b.id = m.batch_id "
            "  WHERE m.workflow_run_id = r.id AND b.closed_at IS NULL) ORDER BY r.id",
        ),
        (
            "notification_without_run",
            "SELECT n.id FROM notifications AS n "
            "WHERE NOT EXISTS (SELECT 1 FROM workflow_runs AS r WHERE r.notification_id = n.id)"
            " ORDER BY n.id",
        ),
    )
)

# The tables whose rows verify reads one by one (names are constants, never input), each
# in the order its rows were written.
_PLAIN_TABLES: tuple[tuple[type[Any], str, str], ...] = (
    (Notification, "notifications", "inserted_at, id"),
    (WorkflowStep, "workflow_steps", "workflow_definition_id, step_order"),
    (Signal, "signals", "inserted_at, id"),
    (SignalMark, "signal_marks", "seq"),
    (Erasure, "erasures", "seq"),
)

#: The sequence's last value (PostgreSQL's bigint); verify warns when fewer than
#: SEQ_HEADROOM numbers are left.
MAX_SEQ = 2**63 - 1
SEQ_HEADROOM = 2**32

_RUNS = """
SELECT r.id, r.tenant_id, n.recipient, n.notification_key, r.state, r.status_reason,
       d.workflow_key, d.workflow_version, s.step_key AS current_step, s.channel,
       r.started_at, r.last_transition_at, r.suspended_until, r.pending_signals,
       r.terminal_reason
  FROM workflow_runs AS r
  JOIN notifications AS n ON n.id = r.notification_id
  JOIN workflow_definitions AS d ON d.id = r.workflow_definition_id
  JOIN workflow_steps AS s ON s.id = r.current_step_id
 WHERE {filters}
 ORDER BY r.last_transition_at DESC, r.id
 LIMIT :limit OFFSET :offset
"""
_RUN_FILTERS = {
    "tenant_id": "r.tenant_id = :tenant_id AND n.tenant_id = :tenant_id",
    "state": "r.state = :state",
    "recipient": "n.recipient = :recipient",
    "workflow_key": "d.workflow_key = :workflow_key",
    "run_id": "r.id = :run_id",
}
_DELIVERIES = sql("""
SELECT id, tenant_id, workflow_run_id, recipient, notification_key, step_key, channel, status,
       suppression_reason, attempt, max_attempts, available_at, lease_expires_at,
       CASE status WHEN 'pending' THEN coalesce(available_at, inserted_at)
                   WHEN 'dispatched' THEN lease_expires_at END AS claimable_at,
       digest_size, inserted_at, updated_at
  FROM deliveries
 WHERE (CASE WHEN :status::text IS NULL THEN status IN ('pending', 'dispatched')
             ELSE status = :status END)
   AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
   AND (:channel::text IS NULL OR channel = :channel)
   AND (:before::timestamptz IS NULL
        OR (status = 'pending' AND available_at IS NOT NULL AND available_at <= :before)
        OR (status = 'dispatched' AND lease_expires_at <= :before))
 ORDER BY CASE WHEN :before::timestamptz IS NULL THEN inserted_at
               WHEN status = 'pending' THEN available_at ELSE lease_expires_at END, id
 LIMIT :limit OFFSET :offset
""")
_TRACES = sql("""
SELECT t.seq, t.inserted_at, t.from_state, t.to_state, t.reason, s.step_key, t.delivery_id,
       t.context, t.id
  FROM workflow_transitions AS t
  LEFT JOIN workflow_steps AS s ON s.id = t.workflow_step_id
 WHERE t.workflow_run_id = :run_id
 ORDER BY t.seq
 LIMIT :limit
""")
_TABLES = sql("""
SELECT c.relname, array_agg(a.attname ORDER BY a.attnum)
  FROM pg_class AS c
  JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
   AND c.relkind = 'r'
 GROUP BY c.relname ORDER BY c.relname
""")

_IN_SCOPE = (
    "SELECT id FROM workflow_runs WHERE (:tenant_id::text IS NULL OR tenant_id = :tenant_id) "
    "AND (:since::timestamptz IS NULL OR last_transition_at >= :since)"
)
_SCOPED_RUNS = (
    f"SELECT {convert.columns(WorkflowRun)} FROM workflow_runs "
    "WHERE (:tenant_id::text IS NULL OR tenant_id = :tenant_id) "
    "AND (:since::timestamptz IS NULL OR last_transition_at >= :since)",
    "id",
    "id",
)
_SCOPED_TRANSITIONS = (
    f"SELECT {convert.columns(WorkflowTransition)} FROM workflow_transitions "
    "WHERE ((:tenant_id::text IS NULL AND :since::timestamptz IS NULL) "
    f"OR workflow_run_id IN ({_IN_SCOPE}))",
    "workflow_run_id",
    "workflow_run_id, seq",
)
_SCOPED_DELIVERIES = (
    f"SELECT {_DELIVERY_COLUMNS} FROM deliveries "
    "WHERE ((:tenant_id::text IS NULL AND :since::timestamptz IS NULL) "
    f"OR workflow_run_id IN ({_IN_SCOPE}))",
    "id",
    "id",
)
_SCOPED_EVENTS = (
    f"SELECT {convert.columns(DeliveryEvent)} FROM delivery_events "
    "WHERE ((:tenant_id::text IS NULL AND :since::timestamptz IS NULL) OR delivery_id IN "
    f"(SELECT id FROM deliveries WHERE workflow_run_id IN ({_IN_SCOPE})))",
    "delivery_id",
    "delivery_id, seq",
)
#: The tables verify's shares cut, by the name the engine uses (row_count, id_at).
_CUT_TABLES = {"runs": "workflow_runs", "deliveries": "deliveries"}
_scans: dict[tuple[str, bool, bool], str] = {}


def _scan(query: tuple[str, str, str], ids: IdRange) -> str:
    """A scan of verify's in id order, narrowed to the ids above ``after`` and up to
    ``upto`` (each bound left out when None), on the column the scan's index starts with."""
    select, column, order = query
    after, upto = ids
    key = (select, after is not None, upto is not None)
    found = _scans.get(key)
    if found is None:
        if after is not None:
            select += f" AND {column} > :after"
        if upto is not None:
            select += f" AND {column} <= :upto"
        found = _scans[key] = sql(f"{select} ORDER BY {order}")
    return found


class UpkeepQueries(Executor):
    """The prune, forget, audit and listing half of
    :class:`~chimeway_lite.backends.postgres.unit.PostgresUnit`."""

    def prune(
        self, before: datetime, tenant_id: str | None, limit: int | None = None
    ) -> tuple[int, int]:
        """Delete the oldest finished runs last changed before ``before`` (at most ``limit``
        of them) with their rows, and the signal marks no unfinished run can count any
        more; (rows deleted, runs deleted)."""
        params = {"before": to_text(before), "tenant_id": tenant_id, "limit": limit}
        runs = self.all(_FINISHED_BEFORE, params)
        deleted = 0
        if runs:
            ids = {"runs": [r[0] for r in runs], "notifications": [r[1] for r in runs]}
            batches = [r[0] for r in self.all(_BATCHES_OF_RUNS, ids)]
            for statement in _PRUNE:
                deleted += self.rowcount(statement, ids)
            if batches:
                deleted += self.rowcount(_PRUNE_BATCHES, {"ids": batches})
        deleted += self.rowcount(_PRUNE_MARKS, params)
        return deleted, len(runs)

    def forget(self, tenant_id: str, recipient: str | None) -> dict[str, int]:
        """Erase a tenant's (or one recipient's) rows; the rows deleted per table."""
        params = {"tenant_id": tenant_id, "recipient": recipient}
        return {table: self.rowcount(statement, params) for table, statement in _FORGET}

    def insert_erasure(self, erasure: Erasure) -> None:
        """Record a tombstone."""
        self.execute(_INSERT_ERASURE, convert.to_row(erasure))

    def erasures(self, tenant_id: str | None) -> list[Erasure]:
        """The tombstones, oldest first."""
        rows = self.all(_ERASURES, {"tenant_id": tenant_id})
        return [convert.from_values(Erasure, r) for r in rows]

    # -- verify ---------------------------------------------------------------------------------

    def storage_problems(self, quick: bool = False) -> list[str]:
        """The trace against its sequence (PostgreSQL enforces the foreign keys and checks
        its pages itself: there is no integrity_check to run)."""
        problems = []
        top = self.one("SELECT max(seq) FROM workflow_transitions")[0]
        counter = self.one("SELECT last_value, is_called FROM workflow_transitions_seq")
        last = counter[0] if counter[1] else 0
        if top is not None and top > last:
            problems.append(
                f"transition seq {top} is above the store's sequence counter {last}: "
                "the next append would collide"
            )
        for name, value in (("seq", top), ("counter", last)):
            if isinstance(value, int) and value > MAX_SEQ - SEQ_HEADROOM:
                problems.append(
                    f"the trace sequence {name} is at {value}, within {SEQ_HEADROOM} of its "
                    f"end ({MAX_SEQ}): appends will fail"
                )
                break
        return problems

    def damaged_rows(self) -> Iterator[DamagedRow]:
        """Every row of the tables verify does not fold that does not read back as its
        record (jsonb of the wrong shape, say: the column types keep out the rest)."""
        for cls, table, order in _PLAIN_TABLES:
            names = convert.field_names(cls)
            id_at = names.index("id") if "id" in names else names.index("seq")
            rows = self.stream(f"SELECT {convert.columns(cls)} FROM {table} ORDER BY {order}")
            for row in rows:
                try:
                    convert.from_values(cls, row)
                except DamagedRow as damaged:
                    yield DamagedRow(damaged.table, str(row[id_at]), damaged.problem)

    def definition_ids(self) -> list[str]:
        """Every definition's id, in id order."""
        return [r[0] for r in self.all("SELECT id FROM workflow_definitions ORDER BY id")]

    def evidence_findings(
        self, *, anchored: Sequence[str], activated: str, resumed: str, collecting: str
    ) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """Rows that break an evidence or tenancy rule, by check name."""
        params = {
            "anchored": list(anchored),
            "activated": activated,
            "resumed": resumed,
            "collecting": collecting,
        }
        for name, statement in _FINDINGS:
            for row in self.all(statement, params):
                yield name, tuple(row)

    def run_traces(
        self,
        tenant_id: str | None = None,
        since: datetime | None = None,
        ids: IdRange = EVERY_ID,
    ) -> Iterator[RunTrace]:
        """Every run (of ``tenant_id``, changed since ``since``, with an id in ``ids``, when
        given) with its trace, one run and its trace in memory at a time (two server-side
        cursors)."""
        scope = scans.scope(tenant_id, since, ids)
        return scans.run_traces(
            self.stream(_scan(_SCOPED_RUNS, ids), scope),
            self.stream(_scan(_SCOPED_TRANSITIONS, ids), scope),
        )

    def delivery_histories(
        self,
        tenant_id: str | None = None,
        since: datetime | None = None,
        ids: IdRange = EVERY_ID,
    ) -> Iterator[DeliveryHistory]:
        """Every delivery (of ``tenant_id``'s runs changed since ``since``, with an id in
        ``ids``, when given) with its attempt history, one at a time."""
        scope = scans.scope(tenant_id, since, ids)
        return scans.delivery_histories(
            self.stream(_scan(_SCOPED_DELIVERIES, ids), scope),
            self.stream(_scan(_SCOPED_EVENTS, ids), scope),
        )

    def row_count(self, table: str) -> int:
        """How many rows ``table`` (``runs`` or ``deliveries``) holds."""
        return int(self.one(f"SELECT count(*) FROM {_CUT_TABLES[table]}")[0])

    def id_at(self, table: str, offset: int) -> str | None:
        """The id of ``table``'s row at ``offset`` (from 0) in id order, or None."""
        row = self.one(
            sql(f"SELECT id FROM {_CUT_TABLES[table]} ORDER BY id LIMIT 1 OFFSET :offset"),
            {"offset": offset},
        )
        return None if row is None else str(row[0])

    # -- listings -------------------------------------------------------------------------------

    def run_rows(
        self,
        tenant_id: str | None,
        state: str | None,
        limit: int | None,
        recipient: str | None = None,
        *,
        workflow_key: str | None = None,
        run_id: str | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Runs, most recently changed first."""
        given = {
            "tenant_id": tenant_id,
            "state": state,
            "recipient": recipient,
            "workflow_key": workflow_key,
            "run_id": run_id,
        }
        params: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        filters = " AND ".join(_RUN_FILTERS[name] for name in params) or "true"
        params.update(limit=limit, offset=offset)
        return self.dicts(sql(_RUNS.format(filters=filters)), params)

    def delivery_rows(
        self,
        tenant_id: str | None,
        status: str | None,
        channel: str | None,
        before: datetime | None,
        limit: int | None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Deliveries not final yet (or of ``status``), oldest claimable first."""
        params = {
            "tenant_id": tenant_id,
            "status": status,
            "channel": channel,
            "before": None if before is None else to_text(before),
            "limit": limit,
            "offset": offset,
        }
        return self.dicts(_DELIVERIES, params)

    def trace_rows(self, run_id: str, limit: int | None) -> list[dict[str, Any]]:
        """A run's trace, step keys instead of step ids."""
        return self.dicts(_TRACES, {"run_id": run_id, "limit": limit})

    def table_rows(self) -> list[dict[str, Any]]:
        """Every table of the store's schema with its row count and columns."""
        found = []
        for name, columns in self.all(_TABLES):
            quoted = name.replace('"', '""')
            count = self.one(f'SELECT count(*) FROM "{quoted}"')[0]
            found.append({"table": name, "count": int(count), "columns": list(columns)})
        return found
