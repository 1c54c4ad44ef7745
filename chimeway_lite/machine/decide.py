"""The state machine of a workflow run: pure decisions, no I/O.

Theory of operation
-------------------
A run is a cursor over the steps of one definition, in one of four states: ``active``,
``waiting``, ``completed`` or ``stopped`` (the last two are terminal: nothing leaves them).
Every change of a run is decided here and carried out by the engine
(:mod:`chimeway_lite.engine`):

* :func:`start` opens a run on the first step and plans its delivery;
* :func:`progress` looks at a run, its current step's rules, the delivery planned for that
  step (the *anchor*) and the time, and returns what must happen next;
* :func:`resume` lets a signal end a wait;
* :func:`enter` asks the step options that gate an activation — throttle, send window,
  digest, in that order (CONTRACT §14) — whether a decision that activates a step may, from
  the facts the engine gathered for that step (:class:`~.kinds.Arrival`); a gate that
  holds the run back replaces the ``step_activated`` row with its own.

Each returns a :class:`~chimeway_lite.machine.decision.Decision`: the run as it must be
afterwards, the trace rows to append (in order), the deliveries to plan, and a kind and a
reason. A decision of kind ``noop`` writes nothing. Ids, the clock and the database stay
outside: the caller passes ``now`` and the ids, so every function here is deterministic and
can be driven by hypothesis. The rules themselves are the registered kinds of
:mod:`chimeway_lite.machine.kinds`; what each reason means is the table of
:mod:`chimeway_lite.machine.table`.

The decision table for an active run (CONTRACT §4):

=========================  ================================================================
resumed by a signal        complete, terminal_reason cancelled_by_signal (never re-wait)
no delivery for the step   noop no_active_step_delivery
no rules                   branchable -> implicit completion; else noop no_progress_rules
not branchable             noop prior_delivery_not_converged if a rule awaits convergence
                           (wait_until), else noop no_matching_progress_rule
a "match" rule matches     the first in list order wins (on_outcome: advance; stop: stop)
a "fallback" rule exists   the first one decides (wait_until: enter waiting)
otherwise                  implicit completion
=========================  ================================================================

A waiting run is due once ``now >= suspended_until`` (:func:`due_at`); the kind that started
the wait (``run.wait_kind``: a rule kind, or a gate) decides how it ends.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from ..core.records import (
    Delivery,
    DeliveryStatus,
    Outcome,
    ProgressKind,
    RunState,
    SignalMark,
    WorkflowRun,
    WorkflowStep,
)
from ..core.timestamps import to_text
from .decision import Decision, DeliveryPlan, TransitionPlan, activated, finish, noop
from .journey import Journey
from .kinds import GATES, Arrival, Closing, gate_named, kind_named, kind_of
from .kinds import wait_signals as wait_signals_of
from .kinds.base import Situation
from .kinds.digest import close as close_digest
from .vocabulary import (
    CANCEL,
    CANCELLED,
    CANCELLED_BY_SIGNAL,
    IMPLICIT_COMPLETION,
    NO_ACTIVE_STEP_DELIVERY,
    NO_MATCHING_PROGRESS_RULE,
    NO_PROGRESS_RULES,
    PRIOR_DELIVERY_NOT_CONVERGED,
    RUN_NOT_ACTIVE,
    SIGNAL_NOT_AWAITED,
    SIGNAL_RECEIVED,
    UNKNOWN_TO_STEP,
    WAIT_CANCELLED,
    WAIT_NOT_DUE,
    WORKFLOW_CANCELLED,
    WORKFLOW_COMPLETED,
    WORKFLOW_STARTED,
)

_BRANCHABLE_CANCELS = (Outcome.RETRIES_EXHAUSTED, Outcome.PERMANENT_FAILURE, Outcome.BOUNCED)


def outcome_of(status: DeliveryStatus | str, suppression_reason: str | None) -> Outcome | None:
    """Map a delivery's status (member or string value) to the outcome rules branch on;
    None when not branchable."""
    # A plain "succeeded" must not fall through the identity checks as "not branchable".
    status = DeliveryStatus(status)
    if status is DeliveryStatus.SUCCEEDED:
        return Outcome.DELIVERED
    if status is DeliveryStatus.SUPPRESSED:
        return Outcome.SUPPRESSED
    if status is DeliveryStatus.FAILED:
        return Outcome.TEMPORARY_FAILURE
    if status is DeliveryStatus.CANCELLED and suppression_reason in _BRANCHABLE_CANCELS:
        return Outcome(suppression_reason)
    return None


def due_at(run: WorkflowRun) -> datetime | None:
    """When the due sweep has work for ``run``: the one definition of "due" (CONTRACT §4).

    A waiting run is due at its ``suspended_until`` (never, without one); an active run a
    signal resumed is due at once — at its ``last_transition_at`` — to settle; any other
    run is never due. The backends' due queries are the indexed form of this function.
    """
    if run.state is RunState.WAITING:
        return run.suspended_until
    if run.state is RunState.ACTIVE and run.resumed_by is not None:
        return run.last_transition_at
    return None


def start(
    journey: Journey, *, run_id: str, tenant_id: str, notification_id: str, now: datetime
) -> Decision:
    """Open a run on the first step: ``workflow_started`` then ``step_activated``."""
    first = journey.first_step
    context = {"source": "trigger"}
    run = WorkflowRun(
        id=run_id,
        tenant_id=tenant_id,
        notification_id=notification_id,
        workflow_definition_id=journey.definition_id,
        current_step_id=first.id,
        state=RunState.ACTIVE,
        status_reason=WORKFLOW_STARTED,
        status_context=context,
        started_at=now,
        last_transition_at=now,
        suspended_until=None,
        pending_signals=(),
        terminal_reason=None,
        entered_step_at=now,
    )
    return Decision(
        ProgressKind.ADVANCED,
        WORKFLOW_STARTED,
        run,
        (
            TransitionPlan(None, RunState.ACTIVE, WORKFLOW_STARTED, None, None, dict(context)),
            activated(first, "trigger"),
        ),
        (DeliveryPlan(first.id, first.channel),),
    )


def progress(
    run: WorkflowRun,
    journey: Journey,
    anchor: Delivery | None,
    *,
    now: datetime,
    early_signal: SignalMark | None = None,
    closing: Closing | None = None,
) -> Decision:
    """Decide the next move of ``run`` at ``now``.

    ``anchor`` is the latest delivery planned for (run, current step), or None; it is only
    looked at when the run is active and not settling. ``early_signal`` is the earliest mark
    of one of :func:`wait_signals` routed since the run entered its step, for the run's
    recipient and correlation key (CONTRACT §13.1): when the decision is to wait for that
    signal, the run goes on at once instead. ``closing`` is the digest batch of a run whose
    digest wait is due (CONTRACT §14.2). A decision that activates a step is not gated
    here: see :func:`enter`.
    """
    if run.state.is_terminal:
        return noop(run, RUN_NOT_ACTIVE)
    current = journey.step(run.current_step_id)
    if run.state is RunState.WAITING:
        due = due_at(run)
        if due is None or now < due:
            return noop(run, WAIT_NOT_DUE)
        gate = gate_named(run.wait_kind)
        waits = kind_named(run.wait_kind) if gate is None else gate
        if waits is None or (gate is not None and gate.key not in journey.options[current.id]):
            return noop(run, UNKNOWN_TO_STEP)  # a wait no kind (or gate of the step) started
        return waits.wake(Situation(run, journey, current, now, closing=closing))
    if run.resumed_by is not None:
        return _settle_after_signal(Situation(run, journey, current, now), run.resumed_by)
    if anchor is None:
        return noop(run, NO_ACTIVE_STEP_DELIVERY)
    outcome = outcome_of(anchor.status, anchor.suppression_reason)
    rules = journey.rules.get(current.id, ())
    if not rules:
        if outcome is None:
            return noop(run, NO_PROGRESS_RULES)
        return _complete(Situation(run, journey, current, now, anchor, outcome))
    kinds = [(rule, kind_of(rule)) for rule in rules]
    if outcome is None:
        if any(kind.awaits_convergence for _, kind in kinds):
            return noop(run, PRIOR_DELIVERY_NOT_CONVERGED)
        return noop(run, NO_MATCHING_PROGRESS_RULE)
    situation = Situation(run, journey, current, now, anchor, outcome)
    for rule, kind in kinds:
        if kind.role == "match" and kind.matches(rule, outcome):
            return kind.decide(rule, situation)
    for rule, kind in kinds:
        if kind.role == "fallback":
            decision = kind.decide(rule, situation)
            early = early_signal
            if (
                decision.kind is ProgressKind.WAITING
                and early is not None
                and early.event_name in decision.run.pending_signals
            ):
                return _on_signal(situation, early.event_name, early.routed_at)
            return decision
    return _complete(situation)


def entering(decision: Decision, journey: Journey) -> WorkflowStep | None:
    """The step ``decision`` activates, when that step has a gate the activation has not
    passed yet (the engine then gathers the facts :func:`enter` needs); else None."""
    row = decision.activation
    if row is None or row.workflow_step_id is None:
        return None
    options = journey.options.get(row.workflow_step_id, {})
    if any(g.key in options and g.name not in decision.passed for g in GATES):
        return journey.step(row.workflow_step_id)
    return None


def enter(decision: Decision, journey: Journey, arrival: Arrival, *, now: datetime) -> Decision:
    """``decision`` as the step it activates lets it through: the step's gates are asked in
    order (throttle, window, digest), skipping those it passed; the first that holds the
    run back decides instead (CONTRACT §14). ``arrival`` holds the facts of that step."""
    step = entering(decision, journey)
    if step is None:
        return decision
    options = journey.options.get(step.id, {})
    for gate in GATES:
        option = options.get(gate.key)
        if option is None or gate.name in decision.passed:
            continue
        held = gate.admit(option, decision, step, arrival, now)
        if held is not None:
            return held
    return decision


def close_batch(closing: Closing, *, now: datetime) -> Decision:
    """Close a digest batch at once (a join brought it to ``max_items``, CONTRACT §14.2):
    the decision of its oldest run still waiting, the other runs' in its ``also``."""
    run, step = closing.members[0]
    return close_digest(closing, run, step, now)


def wait_signals(run: WorkflowRun, journey: Journey) -> tuple[str, ...]:
    """The signals a wait the run entered now would pend on: those of its step's first
    "fallback" rule (the wait the machine would choose) and of its siblings; () when the
    step has no wait. The engine looks for early marks of these (CONTRACT §13.1)."""
    rules = journey.rules.get(run.current_step_id, ())
    first = next((r for r in rules if kind_of(r).role == "fallback"), None)
    return () if first is None else wait_signals_of(first, rules)


def cancel(run: WorkflowRun, journey: Journey, anchor_id: str | None, *, now: datetime) -> Decision:
    """Stop an unfinished run because the host cancelled it (CONTRACT §13.3): reason
    ``workflow_cancelled``, terminal reason ``cancelled``; a finished run is a noop."""
    if run.state.is_terminal:
        return noop(run, RUN_NOT_ACTIVE)
    return finish(
        run,
        journey.step(run.current_step_id),
        anchor_id,
        {"rule_kind": CANCEL},
        now,
        state=RunState.STOPPED,
        reason=WORKFLOW_CANCELLED,
        terminal_reason=CANCELLED,
    )


def resume(
    run: WorkflowRun, event_name: str, delivery_id: str | None, *, now: datetime
) -> Decision:
    """Let signal ``event_name`` end the run's wait; the run stays on its step.

    ``delivery_id`` is the signal's delivery, already checked to belong to the run's tenant.
    The status context is kept: it still names the wait's anchor for the settle that follows,
    which ``resumed_by`` marks as due (CONTRACT §4 items 5 and 6).
    """
    if run.state is not RunState.WAITING or event_name not in run.pending_signals:
        return noop(run, SIGNAL_NOT_AWAITED)
    resumed = attrs.evolve(
        run,
        state=RunState.ACTIVE,
        status_reason=SIGNAL_RECEIVED,
        last_transition_at=now,
        suspended_until=None,
        pending_signals=(),
        wait_kind=None,
        wait_target=None,
        resumed_by=event_name,
    )
    row = TransitionPlan(
        RunState.WAITING,
        RunState.ACTIVE,
        SIGNAL_RECEIVED,
        None,
        delivery_id,
        {"event_name": event_name},
    )
    return Decision(ProgressKind.ADVANCED, SIGNAL_RECEIVED, resumed, (row,))


def _settle_after_signal(situation: Situation, event_name: str) -> Decision:
    # CONTRACT §4 item 6: a run a signal woke never re-enters its wait: it goes where an
    # on_signal rule for the event leads (§13.4), else it completes.
    return _on_signal(situation, event_name, None)


def _on_signal(situation: Situation, event_name: str, signalled_at: datetime | None) -> Decision:
    """What signal ``event_name`` does to the run's wait: the step's rule that handles it
    (on_signal), else completion, ``cancelled_by_signal``. ``signalled_at`` is set when the
    signal came before the wait began (no ``signal_received`` row was written)."""
    for rule in situation.rules:
        kind = kind_of(rule)
        if kind.handles(rule, event_name):
            return kind.on_signal(rule, situation, event_name, signalled_at)
    run = situation.run
    anchor_id = (
        situation.anchor.id
        if situation.anchor is not None
        else run.status_context.get("anchor_delivery_id")
    )
    context: dict[str, object] = {
        "rule_kind": WAIT_CANCELLED,
        "event_name": event_name,
        "anchor_delivery_id": anchor_id,
    }
    if signalled_at is not None:
        context["signalled_at"] = to_text(signalled_at)
    return finish(
        run,
        situation.current,
        anchor_id,
        context,
        situation.now,
        state=RunState.COMPLETED,
        reason=WORKFLOW_COMPLETED,
        terminal_reason=CANCELLED_BY_SIGNAL,
    )


def _complete(situation: Situation) -> Decision:
    return situation.end_on_outcome(
        IMPLICIT_COMPLETION, state=RunState.COMPLETED, reason=WORKFLOW_COMPLETED
    )
