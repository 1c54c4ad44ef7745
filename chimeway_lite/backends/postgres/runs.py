"""Runs, the trace, signal matching and due work on PostgreSQL: the SQL, beside the code
that runs it.

Every decision holds its run's row: :meth:`RunQueries.run` with ``lock=True`` reads it
``FOR UPDATE``, and the reads that select many runs for one decision (a signal's fan-out, a
cancel) lock them in id order, so two fan-outs over the same runs queue instead of
deadlocking. Under READ COMMITTED every statement after the lock sees what the unit that
held it committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...core.errors import ConstraintFailed, DamagedRow, InvalidArgument, StorageError
from ...core.records import SignalMark, StepLinkage, WorkflowRun, WorkflowTransition
from ...core.timestamps import to_text
from ..base import TraceRow, trace_records
from ..sqlite import convert
from .executor import Executor, sql

_RUN_FIELDS = convert.field_names(WorkflowRun)
_SELECT_RUN = f"SELECT {convert.columns(WorkflowRun)} FROM workflow_runs"
_RUN_BY_ID = _SELECT_RUN + " WHERE id = :id"
_RUN_BY_ID_IN_TENANT = _SELECT_RUN + " WHERE id = :id AND tenant_id = :tenant_id"
_RUN_QUERIES = {
    (False, False): sql(_RUN_BY_ID),
    (False, True): sql(_RUN_BY_ID + " FOR UPDATE"),
    (True, False): sql(_RUN_BY_ID_IN_TENANT),
    (True, True): sql(_RUN_BY_ID_IN_TENANT + " FOR UPDATE"),
}
_RUN_OF_NOTIFICATION = sql(_SELECT_RUN + " WHERE notification_id = :id")
_INSERT_RUN = sql(
    f"INSERT INTO workflow_runs ({', '.join(_RUN_FIELDS)}) "
    f"VALUES ({', '.join(':' + c for c in _RUN_FIELDS)})"
)
_WRITABLE = tuple(
    f for f in _RUN_FIELDS if f not in ("id", "tenant_id", "notification_id", "started_at")
)
_WRITE_RUN = sql(
    f"UPDATE workflow_runs SET {', '.join(f'{f} = :{f}' for f in _WRITABLE)} WHERE id = :id"
)

_R = convert.columns(WorkflowRun, "r")
# Runs a signal resumes (CONTRACT §5, §13.2), locked in id order. The pending list is
# jsonb: ``?`` reads workflow_runs_pending_signals.
_AWAITING_SIGNAL = sql(f"""
SELECT {_R} FROM workflow_runs AS r
 WHERE r.tenant_id = :tenant_id AND r.state = 'waiting'
   AND r.pending_signals ? :event_name::text
 ORDER BY r.id
 FOR UPDATE OF r
""")
_AWAITING_KEYED_SIGNAL = sql(f"""
SELECT {_R} FROM notifications AS n JOIN workflow_runs AS r ON r.notification_id = n.id
 WHERE n.tenant_id = :tenant_id AND n.correlation_key = :correlation_key
   AND r.tenant_id = :tenant_id AND r.state = 'waiting'
   AND r.pending_signals ? :event_name::text
 ORDER BY r.id
 FOR UPDATE OF r
""")
_AWAITING_ACTOR_SIGNAL = sql(f"""
SELECT {_R} FROM notifications AS n JOIN workflow_runs AS r ON r.notification_id = n.id
 WHERE n.tenant_id = :tenant_id AND n.recipient = :actor_id
   AND (:correlation_key::text IS NULL OR n.correlation_key = :correlation_key)
   AND r.tenant_id = :tenant_id AND r.state = 'waiting'
   AND r.pending_signals ? :event_name::text
 ORDER BY r.id
 FOR UPDATE OF r
""")
_TO_CANCEL = sql(f"""
SELECT {_R} FROM notifications AS n JOIN workflow_runs AS r ON r.notification_id = n.id
 WHERE n.tenant_id = :tenant_id
   AND (:recipient::text IS NULL OR n.recipient = :recipient)
   AND (:correlation_key::text IS NULL OR n.correlation_key = :correlation_key)
   AND r.tenant_id = :tenant_id
   AND r.state IN ('active', 'waiting')
 ORDER BY r.id
 FOR UPDATE OF r
""")
_TO_CANCEL_BY_RUN = sql(f"""
SELECT {_R} FROM workflow_runs AS r JOIN notifications AS n ON n.id = r.notification_id
 WHERE r.id = :run_id AND r.tenant_id = :tenant_id AND r.state IN ('active', 'waiting')
   AND (:recipient::text IS NULL OR n.recipient = :recipient)
   AND (:correlation_key::text IS NULL OR n.correlation_key = :correlation_key)
 FOR UPDATE OF r
""")
_EARLIEST_MARK = sql("""
SELECT seq, tenant_id, event_name, actor_id, correlation_key, routed_at FROM (
    SELECT * FROM signal_marks
     WHERE tenant_id = :tenant_id AND event_name = ANY(:events::text[])
       AND actor_id = :recipient AND routed_at >= :since
       AND (correlation_key IS NULL OR correlation_key = :correlation_key::text)
    UNION ALL
    SELECT * FROM signal_marks
     WHERE tenant_id = :tenant_id AND event_name = ANY(:events::text[])
       AND actor_id IS NULL AND routed_at >= :since
       AND (correlation_key IS NULL OR correlation_key = :correlation_key::text)) AS m
 ORDER BY routed_at, seq LIMIT 1
""")
# A routed signal and a wait that begins (and looks for the marks of its signals) must not
# miss each other: under READ COMMITTED each would see the other's work only once it has
# committed. Both take advisory locks first, always the tenant's before the recipient's: a
# signal of an actor holds its tenant's key shared and its (tenant, actor) key exclusive,
# a signal without an actor its tenant's key exclusive; a wait holds both of its keys
# shared. So a signal and a wait it may match run one after the other, signals of other
# recipients and waits of one recipient side by side.
_TENANT_KEY = "hashtextextended('chimeway_lite.marks:' || :tenant_id::text, 11)"
_ACTOR_KEY = (
    "hashtextextended('chimeway_lite.marks:' || :tenant_id::text || chr(1) || :actor::text, 11)"
)
_LOCK_FOR_SIGNAL = {
    True: sql(
        f"SELECT pg_advisory_xact_lock_shared({_TENANT_KEY}), pg_advisory_xact_lock({_ACTOR_KEY})"
    ),
    False: sql(f"SELECT pg_advisory_xact_lock({_TENANT_KEY})"),
}
_LOCK_FOR_WAIT = sql(
    f"SELECT pg_advisory_xact_lock_shared({_TENANT_KEY}), "
    f"pg_advisory_xact_lock_shared({_ACTOR_KEY})"
)
_INSERT_MARK = sql("""
INSERT INTO signal_marks (tenant_id, event_name, actor_id, correlation_key, routed_at)
VALUES (:tenant_id, :event_name, :actor_id, :correlation_key, :routed_at)
""")

# The indexed form of machine.decide.due_at, two halves on their partial indexes
# (workflow_runs_waiting_due, workflow_runs_signal_settle), each ordered and limited on
# its own; a page starts after the cursor of the one before. {lock} is empty in a read
# unit and ``FOR UPDATE SKIP LOCKED`` in a write unit: sweepers share the due runs.
_DUE_HALVES = """
WITH waiting AS (
    SELECT id, suspended_until AS due FROM workflow_runs
     WHERE state = 'waiting' AND suspended_until <= :now {after_waiting}
     ORDER BY suspended_until, id LIMIT :limit {lock}),
settling AS (
    SELECT id, last_transition_at AS due FROM workflow_runs
     WHERE state = 'active' AND resumed_by IS NOT NULL AND last_transition_at <= :now
       {after_settle}
     ORDER BY last_transition_at, id LIMIT :limit {lock})
SELECT id, due FROM waiting UNION ALL SELECT id, due FROM settling
ORDER BY due, id LIMIT :limit
"""
_AFTER_WAITING = "AND (suspended_until, id) > (:after_due::timestamptz, :after_id::text)"
_AFTER_SETTLE = "AND (last_transition_at, id) > (:after_due::timestamptz, :after_id::text)"
_DUE = {
    (paged, locked): sql(
        _DUE_HALVES.format(
            after_waiting=_AFTER_WAITING if paged else "",
            after_settle=_AFTER_SETTLE if paged else "",
            lock="FOR UPDATE SKIP LOCKED" if locked else "",
        )
    )
    for paged in (False, True)
    for locked in (False, True)
}
_NEXT_DUE = sql("""
SELECT least(
    (SELECT min(suspended_until) FROM workflow_runs WHERE state = 'waiting'),
    (SELECT min(last_transition_at) FROM workflow_runs
      WHERE state = 'active' AND resumed_by IS NOT NULL))
""")
_ACTIVE_STEP_LINKAGE = sql("""
SELECT r.id, r.current_step_id, s.channel FROM workflow_runs AS r
  JOIN workflow_steps AS s ON s.id = r.current_step_id
 WHERE r.notification_id = :id AND r.state IN ('active', 'waiting')
""")

_NEXT_SEQS = sql("SELECT chimeway_lite_next_seqs(:count::integer)")
#: How many trace numbers a unit reserves at once (see RunQueries.next_seqs).
SEQ_BLOCK = 1024
_INSERT_TRANSITION = sql("""
INSERT INTO workflow_transitions
    (seq, id, workflow_run_id, workflow_step_id, delivery_id, from_state, to_state, reason,
     context, inserted_at)
VALUES
    (:seq, :id, :workflow_run_id, :workflow_step_id, :delivery_id, :from_state, :to_state,
     :reason, :context, :inserted_at)
""")
_TRANSITIONS = sql(
    f"SELECT {convert.columns(WorkflowTransition)} FROM workflow_transitions"
    " WHERE workflow_run_id = :id ORDER BY seq LIMIT :limit"
)

_UPDATE_SQL: dict[tuple[tuple[str, ...], bool], str] = {}


def _update_run_sql(columns: tuple[str, ...], *, many: bool = False) -> str:
    """``UPDATE workflow_runs`` of these columns (record field names, never input), for the
    run ``:where_id``, or (``many``) for the runs of the array ``:where_ids``."""
    found = _UPDATE_SQL.get((columns, many))
    if found is None:
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        where = "id = ANY(:where_ids::text[])" if many else "id = :where_id"
        found = _UPDATE_SQL[columns, many] = sql(
            f"UPDATE workflow_runs SET {assignments} WHERE {where}"
        )
    return found


class RunQueries(Executor):
    """The run and trace half of :class:`~chimeway_lite.backends.postgres.unit.PostgresUnit`."""

    def run(
        self, run_id: str, *, tenant_id: str | None = None, lock: bool = False
    ) -> WorkflowRun | None:
        """The run (of ``tenant_id`` when given), ``FOR UPDATE`` when ``lock`` (in a write
        unit: a read unit takes no locks)."""
        query = _RUN_QUERIES[tenant_id is not None, lock and self.write]
        row = self.one(query, {"id": run_id, "tenant_id": tenant_id})
        return None if row is None else convert.from_values(WorkflowRun, row)

    def run_of_notification(self, notification_id: str) -> WorkflowRun | None:
        """The run of a notification, or None."""
        row = self.one(_RUN_OF_NOTIFICATION, {"id": notification_id})
        return None if row is None else convert.from_values(WorkflowRun, row)

    def insert_run(self, run: WorkflowRun) -> None:
        """Insert a new run."""
        self.work_changed()
        self.execute(_INSERT_RUN, convert.to_row(run))

    def update_runs(self, changes: Sequence[tuple[WorkflowRun, WorkflowRun]]) -> None:
        """Write each (before, after) pair's changed columns; runs given the same new values
        take one UPDATE for all of them."""
        self.work_changed()
        groups: dict[tuple[tuple[str, ...], tuple[Any, ...]], list[str]] = {}
        for before, after in changes:
            columns = convert.changed_columns(before, after)
            if columns:
                shape = (tuple(columns), tuple(columns.values()))
                groups.setdefault(shape, []).append(before.id)
        for (names, values), ids in groups.items():
            params: dict[str, Any] = dict(zip(names, values, strict=True))
            if len(ids) == 1:
                self.execute(_update_run_sql(names), {**params, "where_id": ids[0]})
            else:
                params["where_ids"] = ids
                self.execute(_update_run_sql(names, many=True), params)

    def write_run(self, run: WorkflowRun) -> None:
        """Write every updatable field of the run; a refused value is InvalidArgument."""
        self.work_changed()
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
        """The tenant's waiting runs with ``event_name`` pending, in id order, locked."""
        if actor_id is not None:
            query = _AWAITING_ACTOR_SIGNAL
        elif correlation_key is not None:
            query = _AWAITING_KEYED_SIGNAL
        else:
            query = _AWAITING_SIGNAL
        params = {
            "tenant_id": tenant_id,
            "event_name": event_name,
            "actor_id": actor_id,
            "correlation_key": correlation_key,
        }
        return convert.each(WorkflowRun, self.all(self._locking(query), params))

    def runs_to_cancel(
        self,
        tenant_id: str,
        run_id: str | None,
        correlation_key: str | None,
        recipient: str | None,
    ) -> list[WorkflowRun | DamagedRow]:
        """The tenant's unfinished runs every given selector matches, in id order, locked."""
        params = {
            "tenant_id": tenant_id,
            "run_id": run_id,
            "correlation_key": correlation_key,
            "recipient": recipient,
        }
        query = _TO_CANCEL_BY_RUN if run_id is not None else _TO_CANCEL
        return convert.each(WorkflowRun, self.all(self._locking(query), params))

    def _locking(self, query: str) -> str:
        """``query`` as it is in a write unit; without its ``FOR UPDATE OF r`` in a read
        unit (explain's dry runs), which may take no row locks."""
        return query if self.write else query.replace("FOR UPDATE OF r", "")

    # -- signal marks -----------------------------------------------------------------------

    def insert_mark(self, mark: SignalMark) -> None:
        """Leave the mark of a routed signal (first taking the locks that order it with
        the waits it may match: see ``_LOCK_FOR_SIGNAL``)."""
        if self.write:
            params = {"tenant_id": mark.tenant_id, "actor": mark.actor_id}
            self.execute(_LOCK_FOR_SIGNAL[mark.actor_id is not None], params)
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
        recipient (or no actor) and the correlation key (or none), or None; in a write
        unit after the locks that order it with the signals it may count."""
        if self.write:
            self.execute(_LOCK_FOR_WAIT, {"tenant_id": tenant_id, "actor": recipient})
        row = self.one(
            _EARLIEST_MARK,
            {
                "tenant_id": tenant_id,
                "events": list(events),
                "since": to_text(since),
                "recipient": recipient,
                "correlation_key": correlation_key,
            },
        )
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
        (a cursor is the run's due time as text and its id). In a write unit the runs
        returned are locked and those another unit holds are skipped."""
        params: dict[str, Any] = {"now": to_text(now), "limit": limit}
        if after is not None:
            params["after_due"], params["after_id"] = after
        rows = self.all(_DUE[after is not None, self.write], params)
        return [(r[0], (to_text(r[1]), r[0])) for r in rows]

    def next_due_at(self) -> datetime | None:
        """The earliest due time of any run, or None."""
        row = self.one(_NEXT_DUE)
        return None if row[0] is None else convert.time_of(row[0], "workflow_runs", None)

    def active_step_linkage(self, notification_id: str) -> StepLinkage | None:
        """The unfinished run of a notification, its current step and that step's channel."""
        row = self.one(_ACTIVE_STEP_LINKAGE, {"id": notification_id})
        return None if row is None else StepLinkage(row[0], row[1], row[2])

    # -- the trace ----------------------------------------------------------------------------

    def next_seqs(self, count: int) -> list[int]:
        """``count`` fresh numbers of ``workflow_transitions_seq`` in a row.

        The engine numbers one decision's rows in more than one call (a trigger's start,
        then its step's activation), and verify holds them to be adjacent; other units
        take numbers meanwhile. So a unit reserves a block of :data:`SEQ_BLOCK` numbers in
        a row at its first call (``chimeway_lite_next_seqs`` in schema.sql) and serves its
        later calls from it; a call the rest of the block cannot serve gets a block of its
        own. Numbers a unit leaves unused (or that a rolled-back unit took) are never
        handed out again.
        """
        if count > self.seq_end - self.seq_next:
            size = max(SEQ_BLOCK, count)
            try:
                first = int(self.one(_NEXT_SEQS, {"count": size})[0])
            except StorageError as exc:
                if "reached maximum value" in exc.problem:
                    raise StorageError(
                        self.path,
                        "the trace sequence is exhausted: no row can be appended; see verify()",
                    ) from None
                raise
            self.seq_next, self.seq_end = first, first + size
        first = self.seq_next
        self.seq_next += count
        return list(range(first, first + count))

    def append_transitions(self, transitions: Sequence[WorkflowTransition]) -> None:
        """Append trace rows."""
        self.insert(_INSERT_TRANSITION, [convert.to_row(t) for t in transitions])

    def append_trace(self, run_id: str, trace: Sequence[TraceRow], now: datetime) -> None:
        """Append trace rows given as :data:`TraceRow` tuples (as records: a statement is a
        round trip here, whatever builds its values)."""
        self.append_transitions(trace_records(run_id, trace, now))

    def transitions(self, run_id: str, limit: int | None) -> list[WorkflowTransition]:
        """The run's trace rows by seq, at most ``limit``."""
        rows = self.all(_TRANSITIONS, {"id": run_id, "limit": limit})
        return [convert.from_values(WorkflowTransition, r) for r in rows]
