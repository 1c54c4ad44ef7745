"""Prune, forget, verify's reads and the listings: the SQL, beside the code that runs it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlite_utils

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
from ...core.text import canonical_json
from ...core.timestamps import to_text
from .. import scans
from ..base import EVERY_ID, DeliveryHistory, IdRange, RunTrace
from . import convert
from .executor import Executor

_DELIVERY_COLUMNS = convert.columns(Delivery, stop="data")

# Finished runs of one tenant (or all), older than the cutoff.
_FINISHED_BEFORE = """
SELECT id, notification_id FROM workflow_runs
 WHERE state IN ('completed', 'stopped') AND last_transition_at < :before
   AND (:tenant_id IS NULL OR tenant_id = :tenant_id)
 ORDER BY last_transition_at, id
 LIMIT :limit
"""
# Children before parents: the foreign keys are checked statement by statement.
_PRUNE = (
    ("DELETE FROM workflow_transitions WHERE workflow_run_id = ?", 0),
    ("DELETE FROM digest_members WHERE workflow_run_id = ?", 0),
    (
        "DELETE FROM delivery_events WHERE delivery_id IN "
        "(SELECT id FROM deliveries WHERE notification_id = ?)",
        1,
    ),
    ("DELETE FROM deliveries WHERE notification_id = ?", 1),
    ("DELETE FROM workflow_runs WHERE id = ?", 0),
    ("DELETE FROM notifications WHERE id = ?", 1),
)
# The digest batches the pruned runs belonged to (digest_members_by_run), and of those the
# closed ones no run is left in.
_BATCHES_OF_RUNS = """
SELECT DISTINCT batch_id FROM digest_members
 WHERE workflow_run_id IN (SELECT value FROM json_each(:ids))
"""
_PRUNE_BATCHES = """
DELETE FROM digest_batches
 WHERE id IN (SELECT value FROM json_each(:ids)) AND closed_at IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM digest_members AS m WHERE m.batch_id = digest_batches.id)
"""
# Marks no unfinished run can count any more: older than the cutoff and than the step entry
# of every active run of their tenant (a run counts marks at wait entry only, and only
# those routed since it entered its step: CONTRACT §13.1). workflow_runs_active_by_tenant.
_PRUNE_MARKS = """
DELETE FROM signal_marks
 WHERE routed_at < :before AND (:tenant_id IS NULL OR tenant_id = :tenant_id)
   AND routed_at < coalesce(
       (SELECT min(r.entered_step_at) FROM workflow_runs AS r
         WHERE r.tenant_id = signal_marks.tenant_id AND r.state = 'active'),
       :before)
"""

# The notifications forget() erases; every other delete below hangs off this set, so the
# notifications themselves go last (the foreign keys point at them).
_NOTIFICATIONS = """
SELECT id FROM notifications
 WHERE tenant_id = :tenant_id AND (:recipient IS NULL OR recipient = :recipient)
"""
_FORGET = (
    (
        # The signals the person sent, and those that named one of their deliveries
        # (before the deliveries go).
        "signals",
        "DELETE FROM signals "
        "WHERE tenant_id = :tenant_id AND (:recipient IS NULL OR actor_id = :recipient "
        "OR lower(json_extract(payload, '$.delivery_id')) IN "
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
    # a batch groups one recipient's runs only: its members went with them
    (
        "digest_batches",
        "DELETE FROM digest_batches "
        "WHERE tenant_id = :tenant_id AND (:recipient IS NULL OR recipient = :recipient)",
    ),
    (
        "step_activations",
        "DELETE FROM step_activations "
        "WHERE tenant_id = :tenant_id AND (:recipient IS NULL OR recipient = :recipient)",
    ),
    ("workflow_runs", f"DELETE FROM workflow_runs WHERE notification_id IN ({_NOTIFICATIONS})"),
    (
        "notifications",
        "DELETE FROM notifications "
        "WHERE tenant_id = :tenant_id AND (:recipient IS NULL OR recipient = :recipient)",
    ),
    (
        "signal_marks",
        "DELETE FROM signal_marks "
        "WHERE tenant_id = :tenant_id AND (:recipient IS NULL OR actor_id = :recipient)",
    ),
)
_INSERT_ERASURE = """
INSERT INTO erasures (id, tenant_id, scope, row_counts, rows_erased, erased_at)
VALUES (:id, :tenant_id, :scope, :row_counts, :rows_erased, :erased_at)
"""
_ERASURES = f"""
SELECT {convert.columns(Erasure)} FROM erasures
 WHERE :tenant_id IS NULL OR tenant_id = :tenant_id ORDER BY erased_at, rowid
"""

# verify(): the rows that break an evidence or tenancy rule, by the check's name (the
# messages are in chimeway_lite.engine.audit.FINDINGS); reasons come in as parameters.
_FINDINGS: tuple[tuple[str, str], ...] = (
    (
        # Engine rows whose delivery is the run's own anchor delivery (:anchored).
        "foreign_anchor",
        "SELECT t.seq, t.reason, t.workflow_run_id, t.delivery_id, "
        "CASE WHEN d.id IS NULL THEN 'does not exist' "
        "ELSE 'belongs to run ' || coalesce(d.workflow_run_id, '(none)') END "
        "FROM workflow_transitions AS t LEFT JOIN deliveries AS d ON d.id = t.delivery_id "
        "WHERE t.delivery_id IS NOT NULL "
        "AND t.reason IN (SELECT value FROM json_each(:anchored)) "
        "AND d.workflow_run_id IS NOT t.workflow_run_id",
    ),
    (
        "signal_other_tenant",
        "SELECT t.seq, t.workflow_run_id, t.delivery_id FROM workflow_transitions AS t "
        "JOIN workflow_runs AS r ON r.id = t.workflow_run_id "
        "JOIN deliveries AS d ON d.id = t.delivery_id "
        "WHERE t.reason = :resumed AND d.tenant_id != r.tenant_id",
    ),
    (
        "unanswered_delivery",
        "SELECT d.workflow_run_id, d.workflow_step_id, count(*) AS planned, "
        "(SELECT count(*) FROM workflow_transitions AS t "
        "  WHERE t.workflow_run_id = d.workflow_run_id "
        "    AND t.workflow_step_id = d.workflow_step_id "
        "    AND t.reason = :activated) AS activated "
        "FROM deliveries AS d WHERE d.workflow_run_id IS NOT NULL "
        "GROUP BY d.workflow_run_id, d.workflow_step_id HAVING planned > activated",
    ),
    (
        "run_tenant",
        "SELECT r.id, r.tenant_id, n.tenant_id FROM workflow_runs AS r "
        "JOIN notifications AS n ON n.id = r.notification_id WHERE n.tenant_id != r.tenant_id",
    ),
    (
        "delivery_tenant",
        "SELECT d.id, d.tenant_id, n.tenant_id FROM deliveries AS d "
        "JOIN notifications AS n ON n.id = d.notification_id WHERE n.tenant_id != d.tenant_id",
    ),
    (
        "delivery_notification",
        "SELECT d.id, d.workflow_run_id FROM deliveries AS d "
        "JOIN workflow_runs AS r ON r.id = d.workflow_run_id "
        "WHERE r.notification_id != d.notification_id",
    ),
    (
        "foreign_step",
        "SELECT r.id, r.current_step_id FROM workflow_runs AS r "
        "LEFT JOIN workflow_steps AS s ON s.id = r.current_step_id "
        "WHERE s.workflow_definition_id IS NOT r.workflow_definition_id",
    ),
    (
        # A digest's delivery speaks for the runs of its batch: never for more than its
        # digest_size says (fewer once prune took finished ones), never for a missing batch.
        "digest_size",
        "SELECT id, digest_size, members FROM ("
        "  SELECT d.id, d.digest_size, (SELECT count(*) FROM digest_batches AS b"
        "    JOIN digest_members AS m ON m.batch_id = b.id WHERE b.delivery_id = d.id)"
        "    AS members,"
        "  EXISTS (SELECT 1 FROM digest_batches AS b WHERE b.delivery_id = d.id) AS batched"
        "  FROM deliveries AS d) "
        "WHERE (digest_size > 1 OR batched) AND (members > digest_size OR NOT batched)",
    ),
    (
        # A run waiting for its digest is a member of a batch that has not closed (else the
        # sweep would close a batch of one).
        "digest_orphan",
        "SELECT r.id, r.wait_target FROM workflow_runs AS r "
        "WHERE r.state = 'waiting' AND r.wait_kind = :collecting AND NOT EXISTS ("
        "  SELECT 1 FROM digest_members AS m JOIN digest_batches AS b ON b.id = m.batch_id "
        "  WHERE m.workflow_run_id = r.id AND b.closed_at IS NULL)",
    ),
    (
        # trigger writes a notification and its run together; prune and forget remove them
        # together. A notification alone makes a repeated trigger of its key fail.
        "notification_without_run",
        "SELECT n.id FROM notifications AS n "
        "WHERE NOT EXISTS (SELECT 1 FROM workflow_runs AS r WHERE r.notification_id = n.id)",
    ),
)

# The tables whose rows verify reads one by one (the names are constants, never input).
_PLAIN_TABLES: tuple[tuple[type[Any], str], ...] = (
    (Notification, "notifications"),
    (WorkflowStep, "workflow_steps"),
    (Signal, "signals"),
    (SignalMark, "signal_marks"),
    (Erasure, "erasures"),
)

#: The last trace sequence number an append may take (SQLite's INTEGER is 64-bit); verify
#: warns when fewer than this many numbers are left.
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
# The filters of _RUNS, each a constant fragment with a named parameter; only the given
# ones are joined into the statement, so that the planner can use an index for them (a
# "(:x IS NULL OR col = :x)" term hides every index): a run by id, a tenant's recipient
# through notifications_by_recipient. The notification's tenant is the run's.
_RUN_FILTERS = {
    "tenant_id": "r.tenant_id = :tenant_id AND n.tenant_id = :tenant_id",
    "state": "r.state = :state",
    "recipient": "n.recipient = :recipient",
    "workflow_key": "d.workflow_key = :workflow_key",
    "run_id": "r.id = :run_id",
}
# The outbox as people read it: the deliveries not final yet (or of one status), oldest
# first, with when a claim could take each (claimable_at). With :before, only those that
# a claim can take again by then: retries (available_at) and leases that run out, in that
# order of time.
_DELIVERIES = """
SELECT id, tenant_id, workflow_run_id, recipient, notification_key, step_key, channel, status,
       suppression_reason, attempt, max_attempts, available_at, lease_expires_at,
       CASE status WHEN 'pending' THEN coalesce(available_at, inserted_at)
                   WHEN 'dispatched' THEN lease_expires_at END AS claimable_at,
       digest_size, inserted_at, updated_at
  FROM deliveries
 WHERE (CASE WHEN :status IS NULL THEN status IN ('pending', 'dispatched')
             ELSE status = :status END)
   AND (:tenant_id IS NULL OR tenant_id = :tenant_id)
   AND (:channel IS NULL OR channel = :channel)
   AND (:before IS NULL
        OR (status = 'pending' AND available_at IS NOT NULL AND available_at <= :before)
        OR (status = 'dispatched' AND lease_expires_at <= :before))
 ORDER BY CASE WHEN :before IS NULL THEN inserted_at
               WHEN status = 'pending' THEN available_at ELSE lease_expires_at END, id
 LIMIT :limit OFFSET :offset
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


# verify()'s scans, scoped to a tenant and to runs changed since a time when given (both
# NULL: the whole store). Each reads in the order the merge of _with_children needs, on an
# index; positions follow the records' fields (convert.columns).
_IN_SCOPE = (
    "SELECT id FROM workflow_runs WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id) "
    "AND (:since IS NULL OR last_transition_at >= :since)"
)
_SCOPED_RUNS = (
    f"SELECT {convert.columns(WorkflowRun)} FROM workflow_runs "
    "WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id) "
    "AND (:since IS NULL OR last_transition_at >= :since)",
    "id",
    "id",
)
_SCOPED_TRANSITIONS = (
    f"SELECT {convert.columns(WorkflowTransition)} FROM workflow_transitions "
    f"WHERE ((:tenant_id IS NULL AND :since IS NULL) OR workflow_run_id IN ({_IN_SCOPE}))",
    "workflow_run_id",
    "workflow_run_id, seq",
)
_SCOPED_DELIVERIES = (
    f"SELECT {_DELIVERY_COLUMNS} FROM deliveries "
    f"WHERE ((:tenant_id IS NULL AND :since IS NULL) OR workflow_run_id IN ({_IN_SCOPE}))",
    "id",
    "id",
)
_EVENT_COLUMNS = convert.columns(DeliveryEvent)
_SCOPED_EVENTS = (
    f"SELECT {_EVENT_COLUMNS} FROM delivery_events "
    "WHERE ((:tenant_id IS NULL AND :since IS NULL) OR delivery_id IN "
    f"(SELECT id FROM deliveries WHERE workflow_run_id IN ({_IN_SCOPE})))",
    "delivery_id",
    "delivery_id, seq",
)
#: The tables verify's shares cut, by the name the engine uses (row_count, id_at).
_CUT_TABLES = {"runs": "workflow_runs", "deliveries": "deliveries"}


def _scan(query: tuple[str, str, str], ids: IdRange) -> str:
    """A scan of verify's in id order, narrowed to the ids above ``after`` and up to
    ``upto`` (each bound left out when None), on the column the scan's index starts with."""
    select, column, order = query
    after, upto = ids
    if after is not None:
        select += f" AND {column} > :after"
    if upto is not None:
        select += f" AND {column} <= :upto"
    return f"{select} ORDER BY {order}"


class UpkeepQueries(Executor):
    """The prune, forget, audit and listing half of
    :class:`~chimeway_lite.backends.sqlite.unit.SqliteUnit`."""

    def prune(
        self, before: datetime, tenant_id: str | None, limit: int | None = None
    ) -> tuple[int, int]:
        """Delete the oldest finished runs last changed before ``before`` (at most ``limit``
        of them) with their rows, and the signal marks no unfinished run can count any
        more; (rows deleted, runs deleted)."""
        params = {
            "before": to_text(before),
            "tenant_id": tenant_id,
            "limit": -1 if limit is None else limit,
        }
        runs = self.all(_FINISHED_BEFORE, params)
        deleted = 0
        batches = []
        if runs:
            ids = canonical_json([r[0] for r in runs])
            batches = [r[0] for r in self.all(_BATCHES_OF_RUNS, {"ids": ids})]
        for statement, column in _PRUNE:
            if runs:
                deleted += self.executemany(statement, [(r[column],) for r in runs]).rowcount
        if batches:
            deleted += self.execute(_PRUNE_BATCHES, {"ids": canonical_json(batches)}).rowcount
        deleted += self.execute(_PRUNE_MARKS, params).rowcount
        return deleted, len(runs)

    def forget(self, tenant_id: str, recipient: str | None) -> dict[str, int]:
        """Erase a tenant's (or one recipient's) rows; the rows deleted per table."""
        params = {"tenant_id": tenant_id, "recipient": recipient}
        return {table: self.execute(sql, params).rowcount for table, sql in _FORGET}

    def insert_erasure(self, erasure: Erasure) -> None:
        """Record a tombstone."""
        self.execute(_INSERT_ERASURE, convert.to_row(erasure))

    def erasures(self, tenant_id: str | None) -> list[Erasure]:
        """The tombstones, oldest first."""
        rows = self.all(_ERASURES, {"tenant_id": tenant_id})
        return [convert.from_values(Erasure, r) for r in rows]

    # -- verify ---------------------------------------------------------------------------------

    def storage_problems(self, quick: bool = False) -> list[str]:
        """integrity_check (unless ``quick``), foreign_key_check, and the trace sequence
        against its counter."""
        problems = (
            []
            if quick
            else [
                f"integrity_check: {row[0]}"
                for row in self.all("PRAGMA integrity_check")
                if row[0] != "ok"
            ]
        )
        for table, rowid, parent, _ in self.all("PRAGMA foreign_key_check"):
            problems.append(f"foreign key: {table} row {rowid} names a missing {parent} row")
        top = self.one("SELECT max(seq) FROM workflow_transitions")[0]
        counter = self.one("SELECT seq FROM sqlite_sequence WHERE name = 'workflow_transitions'")
        if top is not None and (counter is None or top > counter[0]):
            problems.append(
                f"transition seq {top} is above the store's sequence counter "
                f"{None if counter is None else counter[0]}: the next append would collide"
            )
        for name, value in (("seq", top), ("counter", None if counter is None else counter[0])):
            if isinstance(value, int) and value > MAX_SEQ - SEQ_HEADROOM:
                problems.append(
                    f"the trace sequence {name} is at {value}, within {SEQ_HEADROOM} of its "
                    f"end ({MAX_SEQ}): appends will fail"
                )
                break
        return problems

    def damaged_rows(self) -> Iterator[DamagedRow]:
        """Every row of the tables verify does not fold (notifications, definitions and their
        steps, signals, marks, tombstones) that does not read back as its record (a
        definition's own row is read by the definitions' check)."""
        for cls, table in _PLAIN_TABLES:
            names = convert.field_names(cls)
            id_at = names.index("id") if "id" in names else names.index("seq")
            rows = self.execute(f"SELECT {convert.columns(cls)} FROM {table} ORDER BY rowid")
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
        """Rows that break an evidence or tenancy rule, by check name. The reasons come from
        the machine's table: those whose rows anchor on the run's own delivery, the one that
        activates a step (it plans a delivery) and the one a signal's resume writes; and the
        wait kind of a run collected into a digest."""
        params = {
            "anchored": canonical_json(list(anchored)),
            "activated": activated,
            "resumed": resumed,
            "collecting": collecting,
        }
        for name, sql in _FINDINGS:
            wanted = {k: v for k, v in params.items() if f":{k}" in sql}
            for row in self.all(sql, wanted):
                yield name, tuple(row)

    def run_traces(
        self,
        tenant_id: str | None = None,
        since: datetime | None = None,
        ids: IdRange = EVERY_ID,
    ) -> Iterator[RunTrace]:
        """Every run (of ``tenant_id``, changed since ``since``, with an id in ``ids``, when
        given) with its trace, one run and its trace in memory at a time."""
        scope = scans.scope(tenant_id, since, ids)
        return scans.run_traces(
            self.execute(_scan(_SCOPED_RUNS, ids), scope),
            self.execute(_scan(_SCOPED_TRANSITIONS, ids), scope),
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
            self.execute(_scan(_SCOPED_DELIVERIES, ids), scope),
            self.execute(_scan(_SCOPED_EVENTS, ids), scope),
        )

    def row_count(self, table: str) -> int:
        """How many rows ``table`` (``runs`` or ``deliveries``) holds."""
        return int(self.one(f"SELECT count(*) FROM {_CUT_TABLES[table]}")[0])

    def id_at(self, table: str, offset: int) -> str | None:
        """The id of ``table``'s row at ``offset`` (from 0) in id order, or None."""
        row = self.one(
            f"SELECT id FROM {_CUT_TABLES[table]} ORDER BY id LIMIT 1 OFFSET :offset",
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
        # Only constant fragments of _RUN_FILTERS enter the SQL; every value is a parameter.
        filters = " AND ".join(_RUN_FILTERS[name] for name in params) or "1"
        params.update(limit=-1 if limit is None else limit, offset=offset)
        return [dict(r) for r in self.all(_RUNS.format(filters=filters), params)]

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
            "limit": -1 if limit is None else limit,
            "offset": offset,
        }
        return [dict(r) for r in self.all(_DELIVERIES, params)]

    def trace_rows(self, run_id: str, limit: int | None) -> list[dict[str, Any]]:
        """A run's trace, step keys instead of step ids."""
        params = {"run_id": run_id, "limit": -1 if limit is None else limit}
        return [dict(r) for r in self.all(_TRACES, params)]

    def table_rows(self) -> list[dict[str, Any]]:
        """Every table of the file with its row count and columns (schema introspection
        through sqlite-utils, in the form ``sqlite-utils tables --counts --columns``)."""
        db = sqlite_utils.Database(self.conn, recursive_triggers=False, execute_plugins=False)
        return [
            {
                "table": name,
                "count": db.table(name).count,
                "columns": [c.name for c in db.table(name).columns],
            }
            for name in db.table_names()
            if not name.startswith("sqlite_")
        ]
