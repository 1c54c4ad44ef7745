"""Throttle activations and digest batches (CONTRACT §14): the SQL, beside the code that runs it.

Every statement here reads one index for one group, one batch or one run
(``step_activations_by_group``, ``digest_batches_open``, ``digest_members_by_batch``,
``digest_members_by_run``, ``digest_batches_by_delivery``), so a throttle check, a join and
the close of a batch of N runs cost what that group or batch holds, never what the store
holds.
"""

from __future__ import annotations

from datetime import datetime

from ...core.records import DigestBatch, Notification, StepActivation, WorkflowRun
from ...core.timestamps import to_text
from . import convert
from .executor import Executor

_RECENT = """
SELECT count(*) FROM (
    SELECT 1 FROM step_activations
     WHERE group_key = :group_key AND activated_at > :since LIMIT :limit)
"""
_INSERT_ACTIVATION = """
INSERT INTO step_activations (tenant_id, recipient, group_key, workflow_run_id, activated_at)
VALUES (:tenant_id, :recipient, :group_key, :workflow_run_id, :activated_at)
"""
# Activations no throttle can count any more (all windows are at most 31 days).
_PRUNE_ACTIVATIONS = """
DELETE FROM step_activations
 WHERE activated_at <= :before AND (:tenant_id IS NULL OR tenant_id = :tenant_id)
"""

_BATCH_FIELDS = convert.field_names(DigestBatch, exclude=("size",))
_INSERT_BATCH = (
    f"INSERT INTO digest_batches ({', '.join(_BATCH_FIELDS)}) "
    f"VALUES ({', '.join(':' + c for c in _BATCH_FIELDS)})"
)
# The group's newest batch that has not closed (an expired one the sweep has not closed yet
# closes before a newer one), with its members counted up to :up_to: a join needs to know
# whether one is left, or whether it reaches max_items, never more.
_OPEN_BATCH = f"""
SELECT {", ".join(f"b.{c}" for c in _BATCH_FIELDS)},
       (SELECT count(*) FROM (SELECT 1 FROM digest_members AS m
                               WHERE m.batch_id = b.id LIMIT :up_to)) AS size
  FROM digest_batches AS b
 WHERE b.group_key = :group_key AND b.closed_at IS NULL
 ORDER BY b.closes_at DESC, b.opened_at DESC LIMIT 1
"""
_JOIN = """
INSERT INTO digest_members (batch_id, workflow_run_id, joined_at)
VALUES (:batch_id, :run_id, :joined_at)
"""
_BATCH_OF_RUN = """
SELECT m.batch_id FROM digest_members AS m
 WHERE m.workflow_run_id = :run_id
   AND (SELECT b.closed_at FROM digest_batches AS b WHERE b.id = m.batch_id) IS NULL
 ORDER BY m.seq DESC LIMIT 1
"""
_RUN_COLUMNS = convert.columns(WorkflowRun, "r")
# The runs a close decides on: members still waiting for their digest, oldest first.
_MEMBERS = f"""
SELECT {_RUN_COLUMNS} FROM digest_members AS m CROSS JOIN workflow_runs AS r
 WHERE m.batch_id = :batch_id AND r.id = m.workflow_run_id AND r.state = 'waiting'
 ORDER BY m.seq
"""
_LEAVE = """
DELETE FROM digest_members
 WHERE workflow_run_id = :run_id
   AND (SELECT b.closed_at FROM digest_batches AS b WHERE b.id = batch_id) IS NULL
RETURNING batch_id
"""
# A batch every run left takes no joiner and plans nothing: it closes, without a delivery.
_CLOSE_IF_EMPTY = """
UPDATE digest_batches SET closed_at = :now
 WHERE id = :batch_id AND closed_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM digest_members WHERE batch_id = :batch_id)
"""
_CLOSE = """
UPDATE digest_batches SET closed_at = :now, delivery_id = :delivery_id WHERE id = :batch_id
"""
_NOTIFICATION_COLUMNS = convert.columns(Notification, "n")
_DIGEST_MEMBERS = f"""
SELECT {_NOTIFICATION_COLUMNS}
  FROM digest_batches AS b
  CROSS JOIN digest_members AS m
  CROSS JOIN workflow_runs AS r
  CROSS JOIN notifications AS n
 WHERE b.delivery_id = :delivery_id AND m.batch_id = b.id AND r.id = m.workflow_run_id
   AND n.id = r.notification_id
 ORDER BY m.seq
"""
_BATCH_SIZE = "SELECT count(*) FROM digest_members WHERE batch_id = :batch_id"


class GateQueries(Executor):
    """The throttle and digest half of
    :class:`~chimeway_lite.backends.sqlite.unit.SqliteUnit`."""

    def lock_group(self, group_key: str) -> None:
        """Nothing to do: a write unit holds SQLite's write lock from ``BEGIN IMMEDIATE``
        on, so no other unit decides for the group until this one ends."""

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
        return self.execute(_PRUNE_ACTIVATIONS, params).rowcount

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
        """The batch's runs still waiting, oldest member first (locked: the write lock)."""
        rows = self.all(_MEMBERS, {"batch_id": batch_id})
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
