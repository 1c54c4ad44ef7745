"""Throttle activations and digest batches (CONTRACT §14) on PostgreSQL: the SQL, beside the
code that runs it.

A group is serialised by a transaction-scoped advisory lock on its key (it waits, never
skips: two units must not both pass a throttle of ``limit=1``). A batch's close locks the
batch row, then its runs ``NOWAIT``: a run another unit holds means that unit is deciding
for the batch (closing it, or progressing that run, which closes it), so this unit ends
and runs again after it (:class:`~.executor.Retry`) instead of waiting in a cycle.
"""

from __future__ import annotations

from datetime import datetime

from ...core.records import DigestBatch, Notification, StepActivation, WorkflowRun
from ...core.timestamps import to_text
from ..sqlite import convert
from .executor import Executor, sql

_LOCK_GROUP = sql("SELECT pg_advisory_xact_lock(hashtextextended(:group_key::text, 7))")
_RECENT = sql("""
SELECT count(*) FROM (
    SELECT 1 FROM step_activations
     WHERE group_key = :group_key AND activated_at > :since LIMIT :limit) AS a
""")
_INSERT_ACTIVATION = sql("""
INSERT INTO step_activations (tenant_id, recipient, group_key, workflow_run_id, activated_at)
VALUES (:tenant_id, :recipient, :group_key, :workflow_run_id, :activated_at)
""")
_PRUNE_ACTIVATIONS = sql("""
DELETE FROM step_activations
 WHERE activated_at <= :before AND (:tenant_id::text IS NULL OR tenant_id = :tenant_id)
""")

_BATCH_FIELDS = convert.field_names(DigestBatch, exclude=("size",))
_INSERT_BATCH = sql(
    f"INSERT INTO digest_batches ({', '.join(_BATCH_FIELDS)}) "
    f"VALUES ({', '.join(':' + c for c in _BATCH_FIELDS)})"
)
_OPEN_BATCH = sql(f"""
SELECT {", ".join(f"b.{c}" for c in _BATCH_FIELDS)},
       (SELECT count(*) FROM (SELECT 1 FROM digest_members AS m
                               WHERE m.batch_id = b.id LIMIT :up_to) AS c) AS size
  FROM digest_batches AS b
 WHERE b.group_key = :group_key AND b.closed_at IS NULL
 ORDER BY b.closes_at DESC, b.opened_at DESC LIMIT 1
""")
_JOIN = sql("""
INSERT INTO digest_members (batch_id, workflow_run_id, joined_at)
VALUES (:batch_id, :run_id, :joined_at)
""")
_BATCH_OF_RUN = sql("""
SELECT m.batch_id FROM digest_members AS m JOIN digest_batches AS b ON b.id = m.batch_id
 WHERE m.workflow_run_id = :run_id AND b.closed_at IS NULL
 ORDER BY m.seq DESC LIMIT 1
""")
_LOCK_BATCH = sql("SELECT id FROM digest_batches WHERE id = :batch_id FOR UPDATE")
_R = convert.columns(WorkflowRun, "r")
_MEMBERS = f"""
SELECT {_R} FROM digest_members AS m JOIN workflow_runs AS r ON r.id = m.workflow_run_id
 WHERE m.batch_id = :batch_id AND r.state = 'waiting'
 ORDER BY m.seq
"""
_MEMBERS_LOCKED = sql(_MEMBERS + " FOR UPDATE OF r NOWAIT")
_MEMBERS_READ = sql(_MEMBERS)
_LEAVE = sql("""
DELETE FROM digest_members AS m
 USING digest_batches AS b
 WHERE m.workflow_run_id = :run_id AND b.id = m.batch_id AND b.closed_at IS NULL
RETURNING m.batch_id
""")
_CLOSE_IF_EMPTY = sql("""
UPDATE digest_batches SET closed_at = :now
 WHERE id = :batch_id AND closed_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM digest_members WHERE batch_id = :batch_id)
""")
_CLOSE = sql("""
UPDATE digest_batches SET closed_at = :now, delivery_id = :delivery_id WHERE id = :batch_id
""")
_N = convert.columns(Notification, "n")
_DIGEST_MEMBERS = sql(f"""
SELECT {_N}
  FROM digest_batches AS b
  JOIN digest_members AS m ON m.batch_id = b.id
  JOIN workflow_runs AS r ON r.id = m.workflow_run_id
  JOIN notifications AS n ON n.id = r.notification_id
 WHERE b.delivery_id = :delivery_id
 ORDER BY m.seq
""")
_BATCH_SIZE = sql("SELECT count(*) FROM digest_members WHERE batch_id = :batch_id")


class GateQueries(Executor):
    """The throttle and digest half of
    :class:`~chimeway_lite.backends.postgres.unit.PostgresUnit`."""

    def lock_group(self, group_key: str) -> None:
        """Wait for the group's advisory lock and hold it until the unit ends."""
        if self.write:
            self.execute(_LOCK_GROUP, {"group_key": group_key})

    def recent_activations(self, group_key: str, since: datetime, limit: int) -> int:
        """Activations of the group later than ``since``, counted up to ``limit``."""
        params = {"group_key": group_key, "since": to_text(since), "limit": limit}
        return int(self.one(_RECENT, params)[0])

    def insert_activation(self, activation: StepActivation) -> None:
        """Record that a run activated a throttled step."""
        self.execute(_INSERT_ACTIVATION, convert.to_row(activation))

    def prune_activations(self, before: datetime, tenant_id: str | None) -> int:
        """Delete activations (of the tenant) made at or before ``before``; the rows deleted."""
        params = {"before": to_text(before), "tenant_id": tenant_id}
        return self.rowcount(_PRUNE_ACTIVATIONS, params)

    def open_batch(self, group_key: str, up_to: int) -> DigestBatch | None:
        """The group's newest batch that has not closed, its members counted up to
        ``up_to``, or None."""
        row = self.one(_OPEN_BATCH, {"group_key": group_key, "up_to": up_to})
        return None if row is None else convert.from_values(DigestBatch, row)

    def insert_batch(self, batch: DigestBatch) -> None:
        """Open a batch."""
        self.execute(_INSERT_BATCH, convert.to_row(batch, exclude=("size",)))

    def join_batch(self, batch_id: str, run: WorkflowRun, now: datetime) -> None:
        """Add a run to a batch (the newest member)."""
        self.execute(_JOIN, {"batch_id": batch_id, "run_id": run.id, "joined_at": to_text(now)})

    def batch_of_run(self, run_id: str) -> str | None:
        """The id of the batch (not closed) the run belongs to, or None."""
        row = self.one(_BATCH_OF_RUN, {"run_id": run_id})
        return None if row is None else str(row[0])

    def batch_members(self, batch_id: str) -> list[WorkflowRun]:
        """The batch's runs still waiting, oldest member first: in a write unit the batch
        row is locked, then its runs ``NOWAIT`` (see the module docstring)."""
        params = {"batch_id": batch_id}
        if not self.write:
            rows = self.all(_MEMBERS_READ, params)
        else:
            self.execute(_LOCK_BATCH, params)
            rows = self.nowait(_MEMBERS_LOCKED, params)
        return [convert.from_values(WorkflowRun, r) for r in rows]

    def batch_size(self, batch_id: str) -> int:
        """How many runs a batch holds."""
        return int(self.one(_BATCH_SIZE, {"batch_id": batch_id})[0])

    def leave_batch(self, run_id: str, now: datetime) -> None:
        """Take a run out of the batch it waits in; a batch left empty closes."""
        left = [r[0] for r in self.all(_LEAVE, {"run_id": run_id})]
        for batch_id in left:
            self.execute(_CLOSE_IF_EMPTY, {"batch_id": batch_id, "now": to_text(now)})

    def close_batch(self, batch_id: str, delivery_id: str | None, now: datetime) -> None:
        """Close a batch with its one delivery."""
        params = {"batch_id": batch_id, "delivery_id": delivery_id, "now": to_text(now)}
        self.execute(_CLOSE, params)

    def digest_members(self, delivery_id: str) -> list[Notification]:
        """The notifications of the runs a batch's delivery speaks for, oldest first."""
        rows = self.all(_DIGEST_MEMBERS, {"delivery_id": delivery_id})
        return [convert.from_values(Notification, r) for r in rows]
