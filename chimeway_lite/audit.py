"""Integrity checks of a store: each run's trace folded and compared with its row.

:func:`verify` returns the problems it finds, one sentence each, and an empty list for a
healthy store. It reads only, inside the caller's transaction (:meth:`Store.verify` opens a
read transaction, so it sees one consistent snapshot while other processes keep writing).

What is checked
---------------
* SQLite's own ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check``.
* The trace sequence: no ``seq`` above the store's sequence counter (the next append would
  collide), and the two rows of one decision (``workflow_started``,
  ``progressed_on_delivery_outcome`` or ``reactivated_from_wait``, then ``step_activated``)
  adjacent in seq — a decision is written whole or not at all.
* Every run's trace, folded in seq order (below), against its row: ``state``,
  ``current_step_id``, ``pending_signals``, ``suspended_until``, ``terminal_reason``, and
  ``started_at`` (the time of the first row).
* Evidence: a delivery named by an engine row that anchors on the run's own delivery
  (progressed, waiting, reactivated, completed, stopped) must exist and belong to that run;
  a ``signal_received`` row must not name another tenant's delivery. Every delivery planned
  for a run must answer a ``step_activated`` row of that run and step (the engine plans one
  delivery per activation: more deliveries than activations is a duplicate).
* Tenancy: a run's and a delivery's tenant are those of their notification, and a run's
  current step belongs to its definition. Trace contexts keep to the catalogue of SPEC §10.

The fold
--------
Each engine reason means one move of the state spine (SPEC §4), with its ``from_state`` and
``to_state`` fixed: ``workflow_started`` opens the run, ``step_activated`` puts the cursor on
its step, ``waiting_for_step_progression`` sets the wait (``suspended_until`` = the context's
``due_at``, ``pending_signals`` = the cancel signals of the step's first ``wait_until``
rule, as the machine chooses it), ``reactivated_from_wait`` and ``signal_received`` clear it,
``workflow_completed`` / ``workflow_stopped`` end the run with terminal reason
``workflow_completed``, ``cancelled_by_signal`` (context rule_kind ``wait_cancelled``) or
``workflow_stopped``. An engine row must start from the state the fold has reached, and no
engine row may follow a terminal state.

Host rows — any other reason, written with ``tx.append_transition`` (SPEC §8) — are trusted:
the run is taken to be in the row's ``to_state``, and the fields the host may have changed
along with it through ``tx.update_run`` (current step, ``suspended_until``,
``pending_signals``, ``terminal_reason``) are not checked until the next engine row sets
them again (an engine row that names a step puts the fold back on that step). A host row's
``from_state``, step and delivery are its own evidence and are not checked, except that a
terminal run keeps its state (which ``append_transition`` enforces anyway). What is
reported is a change with no row at all: a host that moves a run with ``update_run`` and
appends nothing leaves a row the trace does not explain, and :func:`verify` says so.
``status_reason``, ``status_context`` and ``last_transition_at`` are the host's to rewrite
and are not compared.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import attrs

from . import convert, machine
from .declarations import WaitUntil
from .errors import ChimewayError
from .records import RunState, WorkflowRun, WorkflowTransition
from .timestamps import from_text
from .transaction import Transaction

T = TypeVar("T")

_ACTIVE, _WAITING = RunState.ACTIVE, RunState.WAITING
_COMPLETED, _STOPPED = RunState.COMPLETED, RunState.STOPPED

# Each engine reason's (from_state, to_state): the meaning the fold gives it.
ENGINE_MOVES: dict[str, tuple[RunState | None, RunState]] = {
    machine.WORKFLOW_STARTED: (None, _ACTIVE),
    machine.STEP_ACTIVATED: (_ACTIVE, _ACTIVE),
    machine.PROGRESSED_ON_DELIVERY_OUTCOME: (_ACTIVE, _ACTIVE),
    machine.WAITING_FOR_STEP_PROGRESSION: (_ACTIVE, _WAITING),
    machine.REACTIVATED_FROM_WAIT: (_WAITING, _ACTIVE),
    machine.SIGNAL_RECEIVED: (_WAITING, _ACTIVE),
    machine.WORKFLOW_COMPLETED: (_ACTIVE, _COMPLETED),
    machine.WORKFLOW_STOPPED: (_ACTIVE, _STOPPED),
}

# Rows the engine writes as the first of a pair; the step_activated row follows at seq + 1.
_OPENS_STEP = frozenset(
    {
        machine.WORKFLOW_STARTED,
        machine.PROGRESSED_ON_DELIVERY_OUTCOME,
        machine.REACTIVATED_FROM_WAIT,
    }
)


# Fields of the run row the fold checks, besides the state.
_STEP, _SUSPENDED, _PENDING, _TERMINAL = (
    "current_step_id",
    "suspended_until",
    "pending_signals",
    "terminal_reason",
)
_HOST_FIELDS = frozenset({_STEP, _SUSPENDED, _PENDING, _TERMINAL})

_QUERIES: tuple[tuple[str, str], ...] = (
    (
        # The engine rows whose delivery is the run's own anchor delivery.
        "SELECT t.seq, t.reason, t.workflow_run_id, t.delivery_id, "
        "CASE WHEN d.id IS NULL THEN 'does not exist' "
        "ELSE 'belongs to run ' || coalesce(d.workflow_run_id, '(none)') END "
        "FROM workflow_transitions AS t LEFT JOIN deliveries AS d ON d.id = t.delivery_id "
        "WHERE t.delivery_id IS NOT NULL AND t.reason IN ('progressed_on_delivery_outcome', "
        "'waiting_for_step_progression', 'reactivated_from_wait', 'workflow_completed', "
        "'workflow_stopped') AND d.workflow_run_id IS NOT t.workflow_run_id",
        "transition seq {0} ({1}) of run {2}: its anchor delivery {3} {4}",
    ),
    (
        "SELECT t.seq, t.workflow_run_id, t.delivery_id FROM workflow_transitions AS t "
        "JOIN workflow_runs AS r ON r.id = t.workflow_run_id "
        "JOIN deliveries AS d ON d.id = t.delivery_id "
        "WHERE t.reason = 'signal_received' AND d.tenant_id != r.tenant_id",
        "transition seq {0} (signal_received) of run {1}: names delivery {2} of another tenant",
    ),
    (
        "SELECT d.workflow_run_id, d.workflow_step_id, count(*) AS planned, "
        "(SELECT count(*) FROM workflow_transitions AS t "
        "  WHERE t.workflow_run_id = d.workflow_run_id "
        "    AND t.workflow_step_id = d.workflow_step_id "
        "    AND t.reason = 'step_activated') AS activated "
        "FROM deliveries AS d WHERE d.workflow_run_id IS NOT NULL "
        "GROUP BY d.workflow_run_id, d.workflow_step_id HAVING planned > activated",
        "run {0}: {2} deliveries planned for step {1}, which was activated {3} times",
    ),
    (
        "SELECT r.id, r.tenant_id, n.tenant_id FROM workflow_runs AS r "
        "JOIN notifications AS n ON n.id = r.notification_id WHERE n.tenant_id != r.tenant_id",
        "run {0}: tenant {1!r} differs from its notification's tenant {2!r}",
    ),
    (
        "SELECT d.id, d.tenant_id, n.tenant_id FROM deliveries AS d "
        "JOIN notifications AS n ON n.id = d.notification_id WHERE n.tenant_id != d.tenant_id",
        "delivery {0}: tenant {1!r} differs from its notification's tenant {2!r}",
    ),
    (
        "SELECT d.id, d.workflow_run_id FROM deliveries AS d "
        "JOIN workflow_runs AS r ON r.id = d.workflow_run_id "
        "WHERE r.notification_id != d.notification_id",
        "delivery {0}: planned for run {1} but belongs to another notification",
    ),
    (
        "SELECT r.id, r.current_step_id FROM workflow_runs AS r "
        "LEFT JOIN workflow_steps AS s ON s.id = r.current_step_id "
        "WHERE s.workflow_definition_id IS NOT r.workflow_definition_id",
        "run {0}: current step {1} is not a step of the run's definition",
    ),
)


def verify(tx: Transaction) -> list[str]:
    """The problems found in the store; empty when healthy (see the module docstring).

    A part of the file that cannot be read at all is reported as a problem too, and the
    remaining checks still run.
    """
    conn: sqlite3.Connection = tx.connection  # this transaction's snapshot
    problems: list[str] = []
    checks: tuple[tuple[str, Callable[[], list[str]]], ...] = (
        ("integrity_check", lambda: _sqlite_checks(conn)),
        ("the trace sequence", lambda: _sequence_checks(conn)),
        ("evidence and tenancy", lambda: _query_checks(conn)),
        ("the traces", lambda: _trace_checks(tx, conn)),
    )
    for name, check in checks:
        try:
            problems += check()
        except sqlite3.DatabaseError as exc:
            problems.append(f"{name}: the store cannot be read: {exc}")
    return problems


def _query_checks(conn: sqlite3.Connection) -> list[str]:
    return [message.format(*row) for sql, message in _QUERIES for row in conn.execute(sql)]


def _sqlite_checks(conn: sqlite3.Connection) -> list[str]:
    problems = [
        f"integrity_check: {row[0]}"
        for row in conn.execute("PRAGMA integrity_check")
        if row[0] != "ok"
    ]
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        problems.append(f"foreign key: {table} row {rowid} names a missing {parent} row")
    return problems


def _sequence_checks(conn: sqlite3.Connection) -> list[str]:
    top = conn.execute("SELECT max(seq) FROM workflow_transitions").fetchone()[0]
    counter = conn.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = 'workflow_transitions'"
    ).fetchone()
    if top is not None and (counter is None or top > counter[0]):
        return [
            f"transition seq {top} is above the store's sequence counter "
            f"{None if counter is None else counter[0]}: the next append would collide"
        ]
    return []


def _trace_checks(tx: Transaction, conn: sqlite3.Connection) -> list[str]:
    # A merge of two ordered scans (runs by id, the trace by run and seq, both on an index),
    # so the whole store is never held in memory: one run and its trace at a time.
    problems: list[str] = []
    runs = conn.execute("SELECT * FROM workflow_runs ORDER BY id")
    rows = conn.execute("SELECT * FROM workflow_transitions ORDER BY workflow_run_id, seq")
    traces = itertools.groupby(rows, key=lambda r: str(r["workflow_run_id"]))
    pending = next(traces, None)
    for run_row in runs:
        run_id = str(run_row["id"])
        while pending is not None and pending[0] < run_id:
            pending = next(traces, None)  # a trace without its run: a foreign-key problem
        trace_rows: list[sqlite3.Row] = []
        if pending is not None and pending[0] == run_id:
            trace_rows = list(pending[1])
            pending = next(traces, None)
        run = _read(WorkflowRun, run_row, f"run {run_id}", problems)
        trace = [
            t
            for r in trace_rows
            if (t := _read(WorkflowTransition, r, f"transition seq {r['seq']}", problems))
        ]
        if run is None:
            continue
        if not trace_rows:
            problems.append(f"run {run_id}: has no trace")
            continue
        problems += _Fold(run, tx).check(trace)
    return problems


def _read(cls: type[T], row: Any, what: str, problems: list[str]) -> T | None:
    try:
        return convert.from_row(cls, row)
    except Exception as exc:  # a row a host rewrote by hand: report it, check the rest
        problems.append(f"{what}: the row cannot be read: {exc!r}")
        return None


@attrs.define
class _Fold:
    """The run as its trace tells it, built row by row."""

    run: WorkflowRun
    tx: Transaction
    state: RunState | None = None
    step_id: str | None = None
    suspended_until: datetime | None = None
    pending_signals: tuple[str, ...] = ()
    terminal_reason: str | None = None
    # Fields a host row may have changed: not checked until an engine row sets them again.
    host_owned: set[str] = attrs.field(factory=set)
    problems: list[str] = attrs.field(factory=list)

    def report(self, problem: str, row: WorkflowTransition | None = None) -> None:
        where = f"run {self.run.id}"
        if row is not None:
            where = f"transition seq {row.seq} ({row.reason}) of {where}"
        self.problems.append(f"{where}: {problem}")

    def check(self, trace: Iterable[WorkflowTransition]) -> list[str]:
        previous: WorkflowTransition | None = None
        for row in trace:
            self._context(row)
            if previous is None:
                self._first(row)
            elif previous.reason in _OPENS_STEP:
                self._pair(previous, row)
            if row.reason in ENGINE_MOVES:
                self._engine(row)
            else:
                self._host(row)
            previous = row
        if previous is not None and previous.reason in _OPENS_STEP:
            self.report("the decision ends without its step_activated row", previous)
        self._compare()
        return self.problems

    # -- row by row ---------------------------------------------------------------------------

    def _context(self, row: WorkflowTransition) -> None:
        unknown = sorted(set(row.context) - machine.CONTEXT_KEYS)
        if unknown:
            self.report(f"context keys outside the catalogue: {', '.join(unknown)}", row)

    def _first(self, row: WorkflowTransition) -> None:
        if row.reason != machine.WORKFLOW_STARTED:
            self.report("the trace does not open with workflow_started", row)
        if row.inserted_at != self.run.started_at:
            self.report(
                f"started_at {self.run.started_at.isoformat()} differs from the first "
                f"row's time {row.inserted_at.isoformat()}"
            )

    def _pair(self, opener: WorkflowTransition, row: WorkflowTransition) -> None:
        if row.reason != machine.STEP_ACTIVATED:
            self.report("the decision is not followed by its step_activated row", opener)
        elif row.seq != opener.seq + 1:
            self.report(f"step_activated is not adjacent to seq {opener.seq}", row)

    def _engine(self, row: WorkflowTransition) -> None:
        expected_from, expected_to = ENGINE_MOVES[row.reason]
        if self.state is not None and self.state.is_terminal:
            self.report(f"an engine row after the run became {self.state.value}", row)
        if row.from_state is not expected_from or row.to_state is not expected_to:
            self.report(
                f"records {_name(row.from_state)} -> {row.to_state.value}; the reason means "
                f"{_name(expected_from)} -> {expected_to.value}",
                row,
            )
        if self.state is not expected_from:
            self.report(
                f"starts from {_name(expected_from)} but the run was {_name(self.state)}", row
            )
        self.state = expected_to
        self._cursor(row)
        if row.reason == machine.WAITING_FOR_STEP_PROGRESSION:
            self._wait(row)
        elif expected_to is not _WAITING:
            self._set(_SUSPENDED, None)
            self._set(_PENDING, ())
        if expected_to.is_terminal:
            self._set(_TERMINAL, _terminal_reason(row))
        else:
            self._set(_TERMINAL, None)

    def _cursor(self, row: WorkflowTransition) -> None:
        if row.reason == machine.STEP_ACTIVATED:
            self._set(_STEP, row.workflow_step_id)
        elif row.reason == machine.WORKFLOW_STARTED:
            self._set(_STEP, None)
        elif row.workflow_step_id is not None:
            # The other engine rows name the step the run is on.
            if _STEP not in self.host_owned and row.workflow_step_id != self.step_id:
                self.report(
                    f"names step {row.workflow_step_id} but the run was on {self.step_id}", row
                )
            self._set(_STEP, row.workflow_step_id)

    def _wait(self, row: WorkflowTransition) -> None:
        due = row.context.get("due_at")
        try:
            self._set(_SUSPENDED, from_text(due) if isinstance(due, str) else None)
        except ValueError:
            self.report(f"due_at {due!r} is not a timestamp", row)
            self._set(_SUSPENDED, None)
        if due is None:
            self.report("a wait without due_at", row)
        self._set(_PENDING, self._cancel_signals(row))

    def _cancel_signals(self, row: WorkflowTransition) -> tuple[str, ...]:
        step_id = row.workflow_step_id or self.step_id
        try:
            journey = self.tx.definitions.journey(self.run.workflow_definition_id)
        except (ChimewayError, LookupError) as exc:
            self.report(f"its definition cannot be read: {exc}", row)
            return ()
        rules = journey.rules.get(step_id or "", ())
        wait = next((r for r in rules if isinstance(r, WaitUntil)), None)
        if wait is None:
            self.report(f"a wait on step {step_id}, which has no wait_until rule", row)
            return ()
        return tuple(wait.cancel_signals)

    def _host(self, row: WorkflowTransition) -> None:
        if self.state is not None and self.state.is_terminal and row.to_state is not self.state:
            self.report(f"moves a {self.state.value} run to {row.to_state.value}", row)
        self.state = row.to_state
        self.host_owned |= _HOST_FIELDS

    def _set(self, field: str, value: Any) -> None:
        setattr(self, _ATTRIBUTE[field], value)
        self.host_owned.discard(field)

    # -- the end: the fold against the row ---------------------------------------------------

    def _compare(self) -> None:
        run = self.run
        if run.state is not self.state:
            self.report(f"state is {run.state.value} but the trace says {_name(self.state)}")
        checks = (
            (_STEP, run.current_step_id, self.step_id),
            (_SUSPENDED, run.suspended_until, self.suspended_until),
            (_PENDING, tuple(run.pending_signals), self.pending_signals),
            (_TERMINAL, run.terminal_reason, self.terminal_reason),
        )
        for field, actual, folded in checks:
            if field not in self.host_owned and actual != folded:
                self.report(f"{field} is {_show(actual)} but the trace says {_show(folded)}")


_ATTRIBUTE = {
    _STEP: "step_id",
    _SUSPENDED: "suspended_until",
    _PENDING: "pending_signals",
    _TERMINAL: "terminal_reason",
}


def _terminal_reason(row: WorkflowTransition) -> str:
    if row.reason == machine.WORKFLOW_STOPPED:
        return machine.WORKFLOW_STOPPED
    if row.context.get("rule_kind") == "wait_cancelled":
        return machine.CANCELLED_BY_SIGNAL
    return machine.WORKFLOW_COMPLETED


def _name(state: RunState | None) -> str:
    return "(none)" if state is None else state.value


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return repr(list(value))
    return repr(value)
