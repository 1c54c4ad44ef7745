"""Integrity checks of a store: each run's trace folded and compared with its row.

:func:`verify` returns the problems it finds, one sentence each, and an empty list for a
healthy store. It reads only, inside the caller's unit (:meth:`Store.verify` opens a read
unit, so it sees one consistent snapshot while other processes keep writing).

What is checked
---------------
* The database's own checks (SQLite: ``integrity_check``, ``foreign_key_check``) and the
  trace sequence: no ``seq`` above the store's sequence counter (the next append would
  collide).
* Every run's trace, folded in seq order (below), against its row: ``state``,
  ``current_step_id``, ``pending_signals``, ``suspended_until``, ``terminal_reason``, the
  machine's own ``wait_kind``, ``wait_target`` and ``resumed_by``, and ``started_at`` (the
  time of the first row). A decision that opens a step is followed by its
  ``step_activated`` row (or the row of the step option that held the activation back:
  a throttle, a send window, a digest), adjacent in seq: a decision is written whole or not
  at all.
* A waiting run's wait target is a step its wait rule names (else the due sweep would send
  the run where no rule leads).
* Evidence (:data:`FINDINGS`): a delivery named by an engine row that anchors on the run's
  own delivery must exist and belong to that run; a ``signal_received`` row must not name
  another tenant's delivery. Every delivery planned for a run answers a ``step_activated``
  row of that run and step (more deliveries than activations is a duplicate).
* Tenancy: a run's and a delivery's tenant are those of their notification, and a run's
  current step belongs to its definition. Trace contexts keep to the catalogue of CONTRACT §10.
* Digests (CONTRACT §14.2): a delivery with a digest_size above 1 is the delivery of a
  batch that lists no more runs than that, and a run waiting for its digest belongs to a
  batch that has not closed.

The fold
--------
Each engine reason is one :class:`~chimeway_lite.machine.vocabulary.Move` of the machine's
table (:data:`~chimeway_lite.machine.table.MOVES`): its ``from_state`` and ``to_state`` are
fixed (a variant may leave other states: a digest's merged runs complete from
``waiting``), it may open a step or name the step the run is on, and its variant (by the
row's ``rule_kind``) gives a finishing row its terminal reason. ``step_activated`` and the
rows that stand in for it (``enters_step``) put the cursor on their step; a row that enters
``waiting`` sets the wait (``suspended_until`` = the context's ``due_at``, ``wait_kind`` =
its ``rule_kind``, ``wait_target`` = its ``to_step`` — for a gate's wait, its ``step_key`` —,
``pending_signals`` = the signals of the step's rule of that kind, as the machine chooses
it, none for a gate); ``signal_received`` sets ``resumed_by`` to its event; every other
engine row clears what it leaves. An engine row must start from the state the fold has
reached, and no engine row may follow a terminal state.

Host rows — any other reason, written with ``tx.append_transition`` (CONTRACT §8) — are trusted:
the run is taken to be in the row's ``to_state``, and the fields the host may have changed
along with it through ``tx.update_run`` are not checked until the next engine row sets them
again (an engine row that names a step puts the fold back on that step). A host row's
``from_state``, step and delivery are its own evidence and are not checked, except that a
terminal run keeps its state (which ``append_transition`` enforces anyway). What is
reported is a change with no row at all: a host that moves a run with ``update_run`` and
appends nothing leaves a row the trace does not explain, and :func:`verify` says so.
``status_reason``, ``status_context`` and ``last_transition_at`` are the host's to rewrite
and are not compared.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from ..backends.base import EVERY_ID, IdRange
from ..core.errors import ChimewayError, DamagedRow
from ..core.records import (
    Delivery,
    DeliveryEvent,
    DeliveryEventKind,
    DeliveryStatus,
    RunState,
    WorkflowRun,
    WorkflowTransition,
)
from ..core.timestamps import from_text
from ..machine import deliveries
from ..machine.host_rules import context_problems
from ..machine.journey import Journey
from ..machine.kinds import digest, gate_named, wait_targets
from ..machine.kinds.retry import Retry
from ..machine.table import MOVES, terminal_reason
from ..machine.vocabulary import SIGNAL_RECEIVED, STEP_ACTIVATED, WORKFLOW_STARTED
from .work import Work

#: The message of each evidence or tenancy finding of the backend, by check name.
FINDINGS: Mapping[str, str] = {
    "foreign_anchor": "transition seq {0} ({1}) of run {2}: its anchor delivery {3} {4}",
    "signal_other_tenant": (
        "transition seq {0} (signal_received) of run {1}: names delivery {2} of another tenant"
    ),
    "unanswered_delivery": (
        "run {0}: {2} deliveries planned for step {1}, which was activated {3} times"
    ),
    "run_tenant": "run {0}: tenant {1!r} differs from its notification's tenant {2!r}",
    "delivery_tenant": "delivery {0}: tenant {1!r} differs from its notification's tenant {2!r}",
    "delivery_notification": (
        "delivery {0}: planned for run {1} but belongs to another notification"
    ),
    "foreign_step": "run {0}: current step {1} is not a step of the run's definition",
    "digest_size": (
        "delivery {0}: digest_size {1} but its digest batch lists {2} runs "
        "(a digest's delivery speaks for the runs of its batch)"
    ),
    "digest_orphan": (
        "run {0}: waits for the digest of step {1!r} but belongs to no open batch "
        "(the due sweep would send it alone)"
    ),
    "notification_without_run": (
        "notification {0}: has no run (a repeated trigger of its idempotency key fails)"
    ),
}

# What a check may raise on rows it cannot read, besides a ChimewayError: verify reports it
# and goes on (it never raises on a damaged store).
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, LookupError, RecursionError)

_ANCHORED = tuple(reason for reason, move in MOVES.items() if move.anchored)

# Fields of the run row the fold checks, besides the state.
_STEP, _SUSPENDED, _PENDING, _TERMINAL = (
    "current_step_id",
    "suspended_until",
    "pending_signals",
    "terminal_reason",
)
_KIND, _TARGET, _RESUMED = "wait_kind", "wait_target", "resumed_by"
_HOST_FIELDS = frozenset({_STEP, _SUSPENDED, _PENDING, _TERMINAL, _KIND, _TARGET, _RESUMED})
# What every engine row sets (the cursor is the step's own business: _cursor).
_ENGINE_SETS = _HOST_FIELDS - {_STEP}
_TERMINAL_STATES = frozenset(state for state in RunState if state.is_terminal)


#: Where a part of verify reads: its share of the runs and its share of the deliveries.
Share = tuple[IdRange, IdRange]
#: The whole store.
WHOLE: Share = (EVERY_ID, EVERY_ID)
# No id at all (a part with no rows of a table: there were fewer rows than parts).
_NO_ID: IdRange = ("", "")


def verify(
    work: Work,
    *,
    tenant_id: str | None = None,
    since: datetime | None = None,
    quick: bool = False,
) -> list[str]:
    """The problems found in the store; empty when healthy (see the module docstring).

    A part of the store that cannot be read at all is reported as a problem too, and the
    remaining checks still run. :func:`store_checks` and :func:`share_checks` of
    :data:`WHOLE`, in that order.
    """
    found = store_checks(work, quick=quick)
    traces, histories = share_checks(work, tenant_id=tenant_id, since=since, share=WHOLE)
    return found + traces + histories


def store_checks(work: Work, *, quick: bool = False) -> list[str]:
    """The checks of the store as a whole: the database's own (``integrity_check`` unless
    ``quick``), evidence and tenancy, rows that do not read back, and the definitions."""
    unit = work.unit

    def findings() -> list[str]:
        found = unit.evidence_findings(
            anchored=_ANCHORED,
            activated=STEP_ACTIVATED,
            resumed=SIGNAL_RECEIVED,
            collecting=digest.NAME,
        )
        return [FINDINGS[name].format(*values) for name, values in found]

    return (
        _checked("integrity_check", lambda: unit.storage_problems(quick))
        + _checked("evidence and tenancy", findings)
        + _checked(
            "the rows",
            lambda: [f"{d.table} row {d.row_id}: {d.problem}" for d in unit.damaged_rows()],
        )
        + _checked("the definitions", lambda: _definition_checks(work))
    )


def share_checks(
    work: Work,
    *,
    tenant_id: str | None = None,
    since: datetime | None = None,
    share: Share = WHOLE,
) -> tuple[list[str], list[str]]:
    """The checks of each run and each delivery in ``share`` (and in the scope of
    ``tenant_id`` and ``since``): the problems of the traces, in run id order, and those of
    the deliveries, in delivery id order. Shares read in separate units may see different
    snapshots; each run with its trace, and each delivery with its history, is read whole
    in one."""
    runs, histories = share
    policies = _policies(work)
    return (
        _checked("the traces", lambda: _trace_checks(work, tenant_id, since, runs)),
        _checked(
            "the deliveries",
            lambda: _delivery_checks(work, policies, tenant_id, since, histories),
        ),
    )


def shares(work: Work, parts: int) -> list[Share]:
    """The store cut into at most ``parts`` shares of nearly equal size, runs and
    deliveries each by id: together they cover every row once."""
    runs = _ranges(work, "runs", parts)
    deliveries = _ranges(work, "deliveries", parts)
    return list(itertools.zip_longest(runs, deliveries, fillvalue=_NO_ID))


def _ranges(work: Work, table: str, parts: int) -> list[IdRange]:
    """``table``'s rows in id order cut into at most ``parts`` ranges of nearly equal size:
    each cut is the last id of its share (fewer shares when there are fewer rows)."""
    count = work.unit.row_count(table)
    cuts: list[str] = []
    for part in range(1, parts):
        offset = count * part // parts - 1
        cut = None if offset < 0 else work.unit.id_at(table, offset)
        if cut is not None and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    bounds: list[str | None] = [None, *cuts, None]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def _checked(name: str, check: Callable[[], list[str]]) -> list[str]:
    """What ``check`` found, or why it could not read the store."""
    try:
        return check()
    except ChimewayError as exc:
        return [f"{name}: the store cannot be read: {exc}"]
    except _UNREADABLE as exc:
        return [f"{name}: the store cannot be read ({type(exc).__name__})"]


def _policies(work: Work) -> dict[str, Retry]:
    """The retry policy of every step that has one, by step id, from every definition that
    reads (one that does not is reported by the definitions' check)."""
    policies: dict[str, Retry] = {}
    try:
        definition_ids = work.unit.definition_ids()
    except (ChimewayError, *_UNREADABLE):
        return policies  # the definitions' check says why
    for definition_id in definition_ids:
        journey = _journey_of(work, definition_id)
        if isinstance(journey, str):
            continue
        for step_id, options in journey.options.items():
            if isinstance(options.get("retry"), Retry):
                policies[step_id] = options["retry"]
    return policies


def _definition_checks(work: Work) -> list[str]:
    """Every definition reads as the machine needs it: its steps' rules parse, and every
    rule leads to a step the definition has."""
    problems = []
    for definition_id in work.unit.definition_ids():
        found = _journey_of(work, definition_id)
        if isinstance(found, str):
            problems.append(f"definition {definition_id}: {found}")
            continue
        for step_key, kind in found.missing_targets():
            problems.append(
                f"definition {definition_id}: a {kind} rule of step {step_key!r} leads to a "
                "step the definition does not have"
            )
    return problems


def _journey_of(work: Work, definition_id: str) -> Journey | str:
    try:
        return work.definitions.journey(definition_id)
    except DamagedRow as exc:
        return exc.problem
    except ChimewayError as exc:
        return str(exc)
    except _UNREADABLE as exc:
        return f"it cannot be read ({type(exc).__name__})"


def _trace_checks(
    work: Work, tenant_id: str | None, since: datetime | None, ids: IdRange
) -> list[str]:
    problems: list[str] = []
    for found in work.unit.run_traces(tenant_id, since, ids):
        trace = []
        for seq, row in found.transitions:
            if isinstance(row, Exception):
                problems.append(f"transition seq {seq}: the row cannot be read: {_why(row)}")
            else:
                trace.append(row)
        if isinstance(found.run, Exception):
            problems.append(f"run {found.run_id}: the row cannot be read: {_why(found.run)}")
            continue
        if not found.transitions:
            problems.append(f"run {found.run_id}: has no trace")
            continue
        problems += _Fold(found.run, _journey(work, found.run)).check(trace)
    return problems


def _delivery_checks(
    work: Work,
    policies: Mapping[str, Retry],
    tenant_id: str | None,
    since: datetime | None,
    ids: IdRange,
) -> list[str]:
    """Each delivery against its attempt history (CONTRACT §12): a lease exactly while
    dispatched, a cancel only for a known reason, no more claims than attempts, no more
    attempts than its step's retry policy allows, and nothing after its final outcome —
    whose status it keeps."""
    problems: list[str] = []
    for found in work.unit.delivery_histories(tenant_id, since, ids):
        events = []
        for seq, event in found.events:
            if isinstance(event, Exception):
                problems.append(f"delivery event seq {seq}: the row cannot be read: {_why(event)}")
            else:
                events.append(event)
        delivery = found.delivery
        if isinstance(delivery, Exception):
            problems.append(
                f"delivery {found.delivery_id}: the row cannot be read: {_why(delivery)}"
            )
            continue
        problems += [
            f"delivery {delivery.id}: {p}"
            for p in _delivery_problems(
                delivery, events, policies.get(delivery.workflow_step_id or "")
            )
        ]
    return problems


def _delivery_problems(
    delivery: Delivery, events: list[DeliveryEvent], policy: Retry | None
) -> list[str]:
    found = []
    dispatched = delivery.status is DeliveryStatus.DISPATCHED
    if dispatched != (delivery.lease_expires_at is not None):
        found.append(
            f"status {delivery.status.value} with lease_expires_at "
            f"{_show(delivery.lease_expires_at)} (a lease belongs to a dispatched delivery only)"
        )
    if (
        delivery.status is DeliveryStatus.CANCELLED
        and delivery.suppression_reason not in deliveries.CANCEL_REASONS
    ):
        found.append(
            f"cancelled with suppression_reason {delivery.suppression_reason!r}, which is not "
            f"one of {', '.join(deliveries.CANCEL_REASONS)}"
        )
    claims = sum(1 for e in events if e.kind is DeliveryEventKind.CLAIMED)
    if claims > delivery.attempt:
        found.append(f"{claims} claims in its history but attempt {delivery.attempt}")
    limit = delivery.max_attempts if policy is None else policy.max_attempts
    if limit is not None and delivery.attempt > limit:
        found.append(
            f"attempt {delivery.attempt}, beyond its step's retry policy of {limit} attempts"
        )
    final: DeliveryEvent | None = None
    for event in events:
        if final is not None:
            found.append(f"history seq {event.seq} ({event.kind.value}) after its final outcome")
            break
        if event.kind is DeliveryEventKind.RECORDED and event.available_at is None:
            final = event
    if final is not None:
        expected = (final.status, final.suppression_reason)
        spent = final.status in (DeliveryStatus.FAILED.value, deliveries.LEASE_EXPIRED)
        if policy is not None and spent:
            expected = (DeliveryStatus.CANCELLED.value, "retries_exhausted")
        actual = (delivery.status.value, delivery.suppression_reason)
        if actual != expected:
            found.append(
                f"status {_show(actual[0])} (reason {_show(actual[1])}) but its history ended "
                f"it {_show(expected[0])} (reason {_show(expected[1])})"
            )
    return found


def _journey(work: Work, run: WorkflowRun) -> Journey | str:
    return _journey_of(work, run.workflow_definition_id)


@attrs.define
class _Fold:
    """The run as its trace tells it, built row by row."""

    run: WorkflowRun
    journey: Journey | str  # or why it cannot be read
    state: RunState | None = None
    values: dict[str, Any] = attrs.field(
        factory=lambda: {
            _STEP: None,
            _SUSPENDED: None,
            _PENDING: (),
            _TERMINAL: None,
            _KIND: None,
            _TARGET: None,
            _RESUMED: None,
        }
    )
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
            elif _opens_step(previous):
                self._pair(previous, row)
            if row.reason in MOVES:
                self._engine(row)
            else:
                self._host(row)
            previous = row
        if previous is not None and _opens_step(previous):
            self.report("the decision ends without its step_activated row", previous)
        self._compare()
        self._wait_target()
        return self.problems

    # -- row by row ---------------------------------------------------------------------------

    def _context(self, row: WorkflowTransition) -> None:
        for problem in context_problems(row.context):
            self.report(problem, row)

    def _first(self, row: WorkflowTransition) -> None:
        if row.reason != WORKFLOW_STARTED:
            self.report("the trace does not open with workflow_started", row)
        if row.inserted_at != self.run.started_at:
            self.report(
                f"started_at {self.run.started_at.isoformat()} differs from the first "
                f"row's time {row.inserted_at.isoformat()}"
            )

    def _pair(self, opener: WorkflowTransition, row: WorkflowTransition) -> None:
        move = MOVES.get(row.reason)
        if row.reason != STEP_ACTIVATED and (move is None or not move.enters_step):
            self.report("the decision is not followed by its step_activated row", opener)
        elif row.seq != opener.seq + 1:
            self.report(f"step_activated is not adjacent to seq {opener.seq}", row)

    def _engine(self, row: WorkflowTransition) -> None:
        move = MOVES[row.reason]
        state = self.state
        if state in _TERMINAL_STATES:
            self.report(f"an engine row after the run became {_name(state)}", row)
        from_states = move.sources(row.context)
        to_state = move.to_state
        if row.from_state not in from_states or row.to_state is not to_state:
            self.report(
                f"records {_name(row.from_state)} -> {row.to_state.value}; the reason means "
                f"{_names(from_states)} -> {to_state.value}",
                row,
            )
        if state not in from_states:
            self.report(f"starts from {_names(from_states)} but the run was {_name(state)}", row)
        self.state = to_state
        self._cursor(row, move.on_current_step, move.enters_step)
        values = self.values
        if to_state is RunState.WAITING:
            self._wait(row)
        else:
            values[_SUSPENDED] = values[_KIND] = values[_TARGET] = None
            values[_PENDING] = ()
        values[_RESUMED] = row.context.get("event_name") if row.reason == SIGNAL_RECEIVED else None
        values[_TERMINAL] = (
            terminal_reason(row.reason, row.context) if to_state in _TERMINAL_STATES else None
        )
        if self.host_owned:
            self.host_owned -= _ENGINE_SETS

    def _cursor(self, row: WorkflowTransition, on_current_step: bool, enters: bool) -> None:
        if row.reason == STEP_ACTIVATED or enters:
            self._set(_STEP, row.workflow_step_id)
        elif row.reason == WORKFLOW_STARTED:
            self._set(_STEP, None)
        elif on_current_step and row.workflow_step_id is not None:
            step = self.values[_STEP]
            if _STEP not in self.host_owned and row.workflow_step_id != step:
                self.report(f"names step {row.workflow_step_id} but the run was on {step}", row)
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
        kind_name = row.context.get("rule_kind")
        self._set(_KIND, kind_name)
        # a rule's wait leads to its to_step; a gate's (window, digest) holds its own step
        target = "step_key" if gate_named(kind_name) is not None else "to_step"
        self._set(_TARGET, row.context.get(target))
        self._set(_PENDING, self._pending_signals(row, kind_name))

    def _pending_signals(self, row: WorkflowTransition, kind_name: Any) -> tuple[str, ...]:
        if isinstance(self.journey, str):
            self.report(f"its definition cannot be read: {self.journey}", row)
            return ()
        step_id = row.workflow_step_id or self.values[_STEP]
        waits = _waits(kind_name, self.journey, step_id or "")
        if not waits:
            self.report(f"a wait on step {step_id}, which has no {kind_name} rule", row)
            return ()
        return waits[0][1]

    def _host(self, row: WorkflowTransition) -> None:
        if self.state is not None and self.state.is_terminal and row.to_state is not self.state:
            self.report(f"moves a {self.state.value} run to {row.to_state.value}", row)
        self.state = row.to_state
        self.host_owned |= _HOST_FIELDS

    def _set(self, field: str, value: Any) -> None:
        self.values[field] = value
        self.host_owned.discard(field)

    # -- the end: the fold against the row ---------------------------------------------------

    def _compare(self) -> None:
        run = self.run
        if run.state is not self.state:
            self.report(f"state is {run.state.value} but the trace says {_name(self.state)}")
        actual = {
            _STEP: run.current_step_id,
            _SUSPENDED: run.suspended_until,
            _PENDING: tuple(run.pending_signals),
            _TERMINAL: run.terminal_reason,
            _KIND: run.wait_kind,
            _TARGET: run.wait_target,
            _RESUMED: run.resumed_by,
        }
        for field, value in actual.items():
            if field not in self.host_owned and value != self.values[field]:
                self.report(
                    f"{field} is {_show(value)} but the trace says {_show(self.values[field])}"
                )

    def _wait_target(self) -> None:
        # Whoever wrote it, a waiting run must wait for a step its wait rule names.
        run = self.run
        if run.state is not RunState.WAITING or isinstance(self.journey, str):
            return
        waits = _waits(run.wait_kind, self.journey, run.current_step_id)
        if run.wait_target not in {target for target, _ in waits}:
            self.report(
                f"waits for step {run.wait_target!r} ({run.wait_kind}), which no rule of its "
                "current step names"
            )


def _waits(kind_name: object, journey: Journey, step_id: str) -> list[tuple[str, tuple[str, ...]]]:
    """(target, signals) of every wait the kind (or gate) called ``kind_name`` could start
    on the step, in order (the machine waits by the first)."""
    step = journey.steps_by_id.get(step_id)
    if step is None:
        return []
    rules = journey.rules.get(step_id, ())
    return wait_targets(kind_name, rules, journey.options.get(step_id, {}), step.step_key)


def _why(error: Exception) -> str:
    """What is wrong with a row that cannot be read, without its values."""
    if isinstance(error, DamagedRow):
        return error.problem
    if isinstance(error, ChimewayError):
        return str(error)
    return type(error).__name__


def _opens_step(row: WorkflowTransition) -> bool:
    move = MOVES.get(row.reason)
    return move is not None and move.opens_step


def _name(state: RunState | None) -> str:
    return "(none)" if state is None else state.value


def _names(states: Iterable[RunState | None]) -> str:
    return "/".join(_name(s) for s in states)


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return repr(list(value))
    return repr(value)
