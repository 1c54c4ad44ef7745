"""Runs, the trace, signal matching and due work: the SQL, beside the code that runs it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...core.errors import ConstraintFailed, DamagedRow, InvalidArgument, StorageError
from ...core.records import SignalMark, StepLinkage, WorkflowRun, WorkflowTransition
from ...core.text import canonical_json
from ...core.timestamps import from_text, to_text
from ..base import TraceRow, trace_records
from . import convert
from .executor import Executor
from .inserts import Insert

_RUN_FIELDS = convert.field_names(WorkflowRun)
_SELECT_RUN = f"SELECT {convert.columns(WorkflowRun)} FROM workflow_runs"
_RUN_BY_ID = _SELECT_RUN + " WHERE id = :id"
_RUN_BY_ID_IN_TENANT = _SELECT_RUN + " WHERE id = :id AND tenant_id = :tenant_id"
_RUN_OF_NOTIFICATION = _SELECT_RUN + " WHERE notification_id = :id"
_INSERT_RUN = Insert("workflow_runs", WorkflowRun)
# Fields a host may rewrite with update_run: identity and ownership stay fixed.
_WRITABLE = tuple(
    f for f in _RUN_FIELDS if f not in ("id", "tenant_id", "notification_id", "started_at")
)
_WRITE_RUN = (
    f"UPDATE workflow_runs SET {', '.join(f'{f} = :{f}' for f in _WRITABLE)} WHERE id = :id"
)

# Runs a signal resumes (CONTRACT §5, §13.2): the tenant always, the recipient when an actor
# is given, the notifications of a correlation key when one is given.
_RUN_COLUMNS_OF_R = convert.columns(WorkflowRun, "r")
_AWAITING_SIGNAL = f"""
SELECT {_RUN_COLUMNS_OF_R} FROM workflow_runs AS r
 WHERE r.tenant_id = :tenant_id AND r.state = 'waiting'
   AND EXISTS (SELECT 1 FROM json_each(r.pending_signals) WHERE value = :event_name)
 ORDER BY r.id
"""
# With a correlation key (and no actor), start from the notifications of that key
# (notifications_by_correlation).
_AWAITING_KEYED_SIGNAL = f"""
SELECT {_RUN_COLUMNS_OF_R} FROM notifications AS n CROSS JOIN workflow_runs AS r
 WHERE n.tenant_id = :tenant_id AND n.correlation_key = :correlation_key
   AND r.notification_id = n.id AND r.tenant_id = :tenant_id AND r.state = 'waiting'
   AND EXISTS (SELECT 1 FROM json_each(r.pending_signals) WHERE value = :event_name)
 ORDER BY r.id
"""
# With an actor, start from the recipient's notifications (notifications_by_recipient) and
# reach each one's run by its unique notification_id: the cost follows the recipient's runs,
# not the tenant's waiting runs (one query over every waiting run of the tenant took 4 ms
# with 2,000 of them; this one 0.1 ms). CROSS JOIN keeps SQLite from reordering the loop.
# A run and its notification always share the tenant (trigger and create_initial_run check).
_AWAITING_ACTOR_SIGNAL = f"""
SELECT {_RUN_COLUMNS_OF_R} FROM notifications AS n CROSS JOIN workflow_runs AS r
 WHERE n.tenant_id = :tenant_id AND n.recipient = :actor_id
   AND (:correlation_key IS NULL OR n.correlation_key = :correlation_key)
   AND r.notification_id = n.id AND r.tenant_id = :tenant_id AND r.state = 'waiting'
   AND EXISTS (SELECT 1 FROM json_each(r.pending_signals) WHERE value = :event_name)
 ORDER BY r.id
"""
# The unfinished runs a cancel selects (CONTRACT §13.3): every selector given must match.
_TO_CANCEL = f"""
SELECT {_RUN_COLUMNS_OF_R} FROM notifications AS n CROSS JOIN workflow_runs AS r
 WHERE n.tenant_id = :tenant_id
   AND (:recipient IS NULL OR n.recipient = :recipient)
   AND (:correlation_key IS NULL OR n.correlation_key = :correlation_key)
   AND r.notification_id = n.id AND r.tenant_id = :tenant_id
   AND (:run_id IS NULL OR r.id = :run_id)
   AND r.state IN ('active', 'waiting')
 ORDER BY r.id
"""
_TO_CANCEL_BY_RUN = f"""
SELECT {_RUN_COLUMNS_OF_R} FROM workflow_runs AS r JOIN notifications AS n
    ON n.id = r.notification_id
 WHERE r.id = :run_id AND r.tenant_id = :tenant_id AND r.state IN ('active', 'waiting')
   AND (:recipient IS NULL OR n.recipient = :recipient)
   AND (:correlation_key IS NULL OR n.correlation_key = :correlation_key)
"""
# The earliest mark of one of a wait's events, routed since the run entered its step, for
# its recipient or for no actor, and for its correlation key or none (CONTRACT §13.1): two
# probes of signal_marks_by_event, one per actor form.
_EARLIEST_MARK = """
SELECT seq, tenant_id, event_name, actor_id, correlation_key, routed_at FROM (
    SELECT * FROM signal_marks
     WHERE tenant_id = :tenant_id AND event_name IN (SELECT value FROM json_each(:events))
       AND actor_id = :recipient AND routed_at >= :since
       AND (correlation_key IS NULL OR correlation_key = :correlation_key)
    UNION ALL
    SELECT * FROM signal_marks
     WHERE tenant_id = :tenant_id AND event_name IN (SELECT value FROM json_each(:events))
       AND actor_id IS NULL AND routed_at >= :since
       AND (correlation_key IS NULL OR correlation_key = :correlation_key))
 ORDER BY routed_at, seq LIMIT 1
"""
# The same for a wait on one event (the common case): the event bound as it is, so no JSON
# is parsed and each probe reads its index range in routed_at order (no sort): about half
# the cost of the form above (benchmarks/README.md, "Part of the direct hot path"; both
# forms are checked against the contract in tests/test_mark_query.py).
_EARLIEST_MARK_OF_ONE = """
SELECT seq, tenant_id, event_name, actor_id, correlation_key, routed_at FROM (
    SELECT * FROM signal_marks
     WHERE tenant_id = :tenant_id AND event_name = :event
       AND actor_id = :recipient AND routed_at >= :since
       AND (correlation_key IS NULL OR correlation_key = :correlation_key)
    UNION ALL
    SELECT * FROM signal_marks
     WHERE tenant_id = :tenant_id AND event_name = :event
       AND actor_id IS NULL AND routed_at >= :since
       AND (correlation_key IS NULL OR correlation_key = :correlation_key))
 ORDER BY routed_at, seq LIMIT 1
"""
_INSERT_MARK = """
INSERT INTO signal_marks (tenant_id, event_name, actor_id, correlation_key, routed_at)
VALUES (:tenant_id, :event_name, :actor_id, :correlation_key, :routed_at)
"""

# The indexed form of machine.decide.due_at: waiting runs by suspended_until, and runs a
# signal resumed (resumed_by set) by last_transition_at. Both halves read a partial index
# (workflow_runs_waiting_due, workflow_runs_signal_settle); keep the literals, a parameter would
# defeat the index. The page starts after the cursor (:after_due, :after_id) — ('', '') for
# the first page — so a sweep goes past runs it could not move instead of meeting them again.
DUE_RUNS = """
SELECT id, suspended_until AS due FROM workflow_runs
 WHERE state = 'waiting' AND suspended_until <= :now
   AND (suspended_until, id) > (:after_due, :after_id)
UNION ALL
SELECT id, last_transition_at AS due FROM workflow_runs
 WHERE state = 'active' AND resumed_by IS NOT NULL AND last_transition_at <= :now
   AND (last_transition_at, id) > (:after_due, :after_id)
ORDER BY due, id
LIMIT :limit
"""
_NEXT_DUE = """
SELECT min(due) FROM (
    SELECT min(suspended_until) AS due FROM workflow_runs WHERE state = 'waiting'
    UNION ALL
    SELECT min(last_transition_at) FROM workflow_runs
     WHERE state = 'active' AND resumed_by IS NOT NULL)
"""
_NEXT_DUE_WELL_FORMED = f"""
SELECT min(due) FROM (
    SELECT min(suspended_until) AS due FROM workflow_runs
     WHERE state = 'waiting' AND suspended_until GLOB {convert.WELL_FORMED_TIME}
    UNION ALL
    SELECT min(last_transition_at) FROM workflow_runs
     WHERE state = 'active' AND resumed_by IS NOT NULL
       AND last_transition_at GLOB {convert.WELL_FORMED_TIME})
"""
_ACTIVE_STEP_LINKAGE = """
SELECT r.id, r.current_step_id, s.channel FROM workflow_runs AS r
  JOIN workflow_steps AS s ON s.id = r.current_step_id
 WHERE r.notification_id = :id AND r.state IN ('active', 'waiting')
"""

_SEQUENCE = "SELECT seq FROM sqlite_sequence WHERE name = 'workflow_transitions'"
_MAX_SEQ = 2**63 - 1  # SQLite's INTEGER
_INSERT_TRANSITION = Insert("workflow_transitions", WorkflowTransition)
_SELECT_TRANSITION = f"SELECT {convert.columns(WorkflowTransition)} FROM workflow_transitions"
_TRANSITIONS = _SELECT_TRANSITION + " WHERE workflow_run_id = :id ORDER BY seq LIMIT :limit"
# Trace rows from TraceRow tuples (append_trace), their values made by hand: no record in
# between. A decision writes a handful of rows (a trigger: 2); more go through
# append_transitions.
_TRACE_ROWS = 8
_TRACE_HEAD = (
    "INSERT INTO workflow_transitions (id, seq, workflow_run_id, workflow_step_id, "
    "delivery_id, from_state, to_state, reason, context, inserted_at) VALUES "
)
_TRACE_SQL = {
    count: _TRACE_HEAD + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * count)
    for count in range(1, _TRACE_ROWS + 1)
}
_time_text = convert.unstructure_hook(datetime)

_UPDATE_SQL: dict[tuple[tuple[str, ...], bool], str] = {}


def _update_run_sql(columns: tuple[str, ...], *, many: bool = False) -> str:
    """``UPDATE workflow_runs`` of these columns (record field names, never input), for the
    run ``:where_id``, or (``many``) for the runs of the JSON array ``:where_ids``."""
    sql = _UPDATE_SQL.get((columns, many))
    if sql is None:
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        where = "id IN (SELECT value FROM json_each(:where_ids))" if many else "id = :where_id"
        sql = _UPDATE_SQL[columns, many] = f"UPDATE workflow_runs SET {assignments} WHERE {where}"
    return sql


class RunQueries(Executor):
    """The run and trace half of :class:`~chimeway_lite.backends.sqlite.unit.SqliteUnit`."""

    def run(
        self, run_id: str, *, tenant_id: str | None = None, lock: bool = False
    ) -> WorkflowRun | None:
        """The run (of ``tenant_id`` when given). A write unit holds SQLite's write lock
        from ``BEGIN IMMEDIATE`` on, so every read of it is locked already."""
        if tenant_id is None:
            row = self.one(_RUN_BY_ID, {"id": run_id})
        else:
            row = self.one(_RUN_BY_ID_IN_TENANT, {"id": run_id, "tenant_id": tenant_id})
        return None if row is None else convert.from_values(WorkflowRun, row)

    def run_of_notification(self, notification_id: str) -> WorkflowRun | None:
        """The run of a notification, or None."""
        row = self.one(_RUN_OF_NOTIFICATION, {"id": notification_id})
        return None if row is None else convert.from_values(WorkflowRun, row)

    def insert_run(self, run: WorkflowRun) -> None:
        """Insert a new run."""
        self.insert_records(_INSERT_RUN, (run,))

    def update_runs(self, changes: Sequence[tuple[WorkflowRun, WorkflowRun]]) -> None:
        """Write each (before, after) pair's changed columns.

        Only what a decision changed is written: an unchanged status_context is not
        serialised again, and an unchanged current_step_id or workflow_definition_id costs
        no foreign-key lookup, which SQLite makes for every key column in a SET list.
        Runs given the same new values (a signal
        resuming many runs) take one UPDATE for all of them, their ids as one JSON array.
        """
        groups: dict[tuple[tuple[str, ...], tuple[Any, ...]], list[str]] = {}
        for before, after in changes:
            columns = convert.changed_columns(before, after)
            if columns:
                shape = (tuple(columns), tuple(columns.values()))
                groups.setdefault(shape, []).append(before.id)
        for (names, values), ids in groups.items():
            params = dict(zip(names, values, strict=True))
            if len(ids) == 1:
                self.execute(_update_run_sql(names), {**params, "where_id": ids[0]})
            else:
                params["where_ids"] = canonical_json(ids)
                self.execute(_update_run_sql(names, many=True), params)

    def write_run(self, run: WorkflowRun) -> None:
        """Write every updatable field of the run; a refused value is InvalidArgument."""
        try:
            self.execute(_WRITE_RUN, convert.to_row(run))
        except ConstraintFailed as exc:
            raise InvalidArgument("fields", f"rejected by the store: {exc.problem}") from None

    def runs_awaiting(
        self,
        tenant_id: str,
        event_name: str,
        actor_id: str | None,
        correlation_key: str | None = None,
    ) -> list[WorkflowRun | DamagedRow]:
        """The tenant's waiting runs with ``event_name`` pending, in id order (a damaged
        row as its :class:`DamagedRow`)."""
        if actor_id is not None:
            sql = _AWAITING_ACTOR_SIGNAL
        elif correlation_key is not None:
            sql = _AWAITING_KEYED_SIGNAL
        else:
            sql = _AWAITING_SIGNAL
        params = {
            "tenant_id": tenant_id,
            "event_name": event_name,
            "actor_id": actor_id,
            "correlation_key": correlation_key,
        }
        return convert.each(WorkflowRun, self.all(sql, params))

    def runs_to_cancel(
        self,
        tenant_id: str,
        run_id: str | None,
        correlation_key: str | None,
        recipient: str | None,
    ) -> list[WorkflowRun | DamagedRow]:
        """The tenant's unfinished runs every given selector matches, in id order (a damaged
        row as its :class:`DamagedRow`)."""
        params = {
            "tenant_id": tenant_id,
            "run_id": run_id,
            "correlation_key": correlation_key,
            "recipient": recipient,
        }
        sql = _TO_CANCEL_BY_RUN if run_id is not None else _TO_CANCEL
        return convert.each(WorkflowRun, self.all(sql, params))

    # -- signal marks -----------------------------------------------------------------------

    def insert_mark(self, mark: SignalMark) -> None:
        """Leave the mark of a routed signal."""
        self.execute(_INSERT_MARK, convert.to_row(mark, exclude=("seq",)))

    def earliest_mark(
        self,
        tenant_id: str,
        events: Sequence[str],
        since: datetime,
        recipient: str,
        correlation_key: str | None,
    ) -> SignalMark | None:
        """The earliest mark of one of ``events`` routed at or after ``since`` for the
        recipient (or no actor) and the correlation key (or none), or None."""
        params = {
            "tenant_id": tenant_id,
            "since": to_text(since),
            "recipient": recipient,
            "correlation_key": correlation_key,
        }
        if len(events) == 1:
            params["event"] = events[0]
            row = self.one(_EARLIEST_MARK_OF_ONE, params)
        else:
            params["events"] = canonical_json(list(events))
            row = self.one(_EARLIEST_MARK, params)
        if row is None:
            return None
        return SignalMark(
            tenant_id=row[1],
            event_name=row[2],
            actor_id=row[3],
            correlation_key=row[4],
            routed_at=convert.time_of(row[5], "signal_marks", str(row[0])),
            seq=row[0],
        )

    def due_runs(
        self, now: datetime, limit: int | None, after: tuple[str, str] | None = None
    ) -> list[tuple[str, tuple[str, str]]]:
        """(id, cursor) of the runs due at ``now``, by due time then id, after ``after``
        (a cursor is the run's due time as stored and its id)."""
        after_due, after_id = ("", "") if after is None else after
        params = {
            "now": to_text(now),
            "limit": -1 if limit is None else limit,
            "after_due": after_due,
            "after_id": after_id,
        }
        return [(r[0], (r[1], r[0])) for r in self.all(DUE_RUNS, params)]

    def next_due_at(self) -> datetime | None:
        """The earliest due time of any run, or None."""
        row = self.one(_NEXT_DUE)
        if row[0] is None:
            return None
        try:
            return from_text(row[0])
        except ValueError:  # a damaged row sorts first: the earliest well-formed one
            row = self.one(_NEXT_DUE_WELL_FORMED)
            return None if row[0] is None else from_text(row[0])

    def active_step_linkage(self, notification_id: str) -> StepLinkage | None:
        """The unfinished run of a notification, its current step and that step's channel."""
        row = self.one(_ACTIVE_STEP_LINKAGE, {"id": notification_id})
        return None if row is None else StepLinkage(row[0], row[1], row[2])

    # -- the trace ----------------------------------------------------------------------------

    def next_seqs(self, count: int) -> list[int]:
        """``count`` fresh sequence numbers. We hold the write lock, so the counter is read
        once per unit (sqlite_sequence remembers pruned numbers and follows savepoint
        rollbacks: it is read afresh in every unit, and after a savepoint rolled back) and
        the unit counts on from there."""
        first = self.seq_next
        if first is None:
            row = self.one(_SEQUENCE)
            first = (row[0] if row else 0) + 1
        if not isinstance(first, int) or first + count - 1 > _MAX_SEQ:
            raise StorageError(
                self.path,
                "the trace sequence is exhausted (or its counter damaged): no row can be "
                "appended; see verify()",
            )
        self.seq_next = first + count
        return list(range(first, first + count))

    def append_transitions(self, transitions: Sequence[WorkflowTransition]) -> None:
        """Append trace rows."""
        self.insert_records(_INSERT_TRANSITION, transitions)

    def append_trace(self, run_id: str, trace: Sequence[TraceRow], now: datetime) -> None:
        """Append trace rows of the run ``run_id`` (:data:`TraceRow` tuples, stamped
        ``now``): the rows :meth:`append_transitions` would write for their records."""
        if not trace:
            return
        if len(trace) > _TRACE_ROWS:
            self.append_transitions(trace_records(run_id, trace, now))
            return
        at = _time_text(now)
        params: list[Any] = []
        for row_id, seq, step_id, delivery_id, from_state, to_state, reason, context in trace:
            params += (
                row_id,
                seq,
                run_id,
                step_id,
                delivery_id,
                None if from_state is None else from_state.value,
                to_state.value,
                reason,
                canonical_json(context),
                at,
            )
        self.execute(_TRACE_SQL[len(trace)], params)

    def transitions(self, run_id: str, limit: int | None) -> list[WorkflowTransition]:
        """The run's trace rows by seq, at most ``limit``."""
        rows = self.all(_TRANSITIONS, {"id": run_id, "limit": -1 if limit is None else limit})
        return [convert.from_values(WorkflowTransition, r) for r in rows]
