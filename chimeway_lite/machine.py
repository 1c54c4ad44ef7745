"""The state machine of a workflow run: pure decisions, no I/O.

Theory of operation
-------------------
A run is a cursor over the steps of one definition, in one of four states: ``active``,
``waiting``, ``completed`` or ``stopped`` (the last two are terminal: nothing leaves them).
Every change of a run is decided here and carried out by :mod:`chimeway_lite.store`:

* :func:`start` opens a run on the first step and plans its delivery;
* :func:`progress` looks at a run, its current step's rules, the delivery planned for that
  step (the *anchor*) and the time, and returns what must happen next;
* :func:`resume` lets a signal end a wait.

Each returns a :class:`Decision`: the run as it must be afterwards, the trace rows to append
(in order), the deliveries to plan, and a kind and reason. A decision of kind ``noop`` writes
nothing. Ids, the clock and the database stay outside: the caller passes ``now`` and the ids,
so every function here is deterministic and can be driven by hypothesis.

The decision table for an active run (SPEC §4):

=========================  ================================================================
left in signal_received    complete, terminal_reason cancelled_by_signal (never re-wait)
no delivery for the step   noop no_active_step_delivery
no rules                   branchable -> implicit completion; else noop no_progress_rules
not branchable             noop prior_delivery_not_converged if a wait rule exists,
                           else noop no_matching_progress_rule
on_outcome / stop match    the first in list order wins: advance / stop
a wait_until exists        the first one: enter waiting (due = anchor settled + delay)
otherwise                  implicit completion
=========================  ================================================================

A waiting run reactivates on its ``to_step`` once ``now >= suspended_until``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from .declarations import OnOutcome, Rule, Stop, WaitUntil, rules_of
from .errors import InvalidTransition, StepNotFound
from .records import (
    Delivery,
    DeliveryStatus,
    Outcome,
    ProgressKind,
    RunState,
    WorkflowDefinition,
    WorkflowRun,
    WorkflowStep,
)
from .timestamps import to_text

# -- reasons: observable behaviour, keep exactly ---------------------------------------------
WORKFLOW_STARTED = "workflow_started"
STEP_ACTIVATED = "step_activated"
PROGRESSED_ON_DELIVERY_OUTCOME = "progressed_on_delivery_outcome"
WAITING_FOR_STEP_PROGRESSION = "waiting_for_step_progression"
REACTIVATED_FROM_WAIT = "reactivated_from_wait"
SIGNAL_RECEIVED = "signal_received"
WORKFLOW_COMPLETED = "workflow_completed"
WORKFLOW_STOPPED = "workflow_stopped"
CANCELLED_BY_SIGNAL = "cancelled_by_signal"

# -- noop reasons ------------------------------------------------------------------------------
WAIT_NOT_DUE = "wait_not_due"
RUN_NOT_ACTIVE = "run_not_active"
NO_ACTIVE_STEP_DELIVERY = "no_active_step_delivery"
NO_PROGRESS_RULES = "no_progress_rules"
PRIOR_DELIVERY_NOT_CONVERGED = "prior_delivery_not_converged"
NO_MATCHING_PROGRESS_RULE = "no_matching_progress_rule"
UNKNOWN_TO_STEP = "unknown_to_step"
SIGNAL_NOT_AWAITED = "signal_not_awaited"

NOOP_REASONS = frozenset(
    {
        WAIT_NOT_DUE,
        RUN_NOT_ACTIVE,
        NO_ACTIVE_STEP_DELIVERY,
        NO_PROGRESS_RULES,
        PRIOR_DELIVERY_NOT_CONVERGED,
        NO_MATCHING_PROGRESS_RULE,
        UNKNOWN_TO_STEP,
        SIGNAL_NOT_AWAITED,
    }
)

# The only keys a trace context may hold (SPEC §10): evidence, never payload.
CONTEXT_KEYS = frozenset(
    {
        "source",
        "step_key",
        "rule_kind",
        "workflow_outcome",
        "anchor",
        "anchor_delivery_id",
        "anchor_delivery_status",
        "anchor_timestamp",
        "due_at",
        "to_step",
        "from_step",
        "reactivated_at",
        "delivery_status",
        "suppression_reason",
        "event_name",
    }
)

# The context of a wait, carried from entering it to leaving it.
_WAIT_KEYS = (
    "rule_kind",
    "anchor",
    "anchor_delivery_id",
    "anchor_delivery_status",
    "anchor_timestamp",
    "due_at",
    "to_step",
)

_LATEST = datetime.max.replace(tzinfo=UTC)


@attrs.frozen
class TransitionPlan:
    """A trace row to append; the store adds id, seq and time."""

    from_state: RunState | None
    to_state: RunState
    reason: str
    workflow_step_id: str | None
    delivery_id: str | None
    context: dict[str, Any]


@attrs.frozen
class DeliveryPlan:
    """A delivery to plan (status pending) for a step's channel."""

    workflow_step_id: str
    channel: str


@attrs.frozen
class Decision:
    """What to do to one run: its new row, trace rows and deliveries, or nothing (noop)."""

    kind: ProgressKind
    reason: str
    run: WorkflowRun
    transitions: tuple[TransitionPlan, ...] = ()
    deliveries: tuple[DeliveryPlan, ...] = ()

    @property
    def is_noop(self) -> bool:
        """True when nothing is to be written."""
        return self.kind is ProgressKind.NOOP


@attrs.frozen
class Journey:
    """A definition as the machine reads it: steps by id and key, rules parsed once."""

    definition_id: str
    first_step: WorkflowStep
    steps_by_id: Mapping[str, WorkflowStep]
    steps_by_key: Mapping[str, WorkflowStep]
    rules: Mapping[str, tuple[Rule, ...]]

    @classmethod
    def of(cls, definition: WorkflowDefinition) -> Journey:
        """Index a definition's steps; raise StepNotFound when it has none."""
        if not definition.steps:
            raise StepNotFound(f"first step of definition {definition.id}")
        steps = sorted(definition.steps, key=lambda s: s.step_order)
        return cls(
            definition_id=definition.id,
            first_step=steps[0],
            steps_by_id={s.id: s for s in steps},
            steps_by_key={s.step_key: s for s in steps},
            rules={s.id: rules_of(s.config) for s in steps},
        )

    def step(self, step_id: str) -> WorkflowStep:
        """The step with this id, or StepNotFound."""
        try:
            return self.steps_by_id[step_id]
        except KeyError:
            raise StepNotFound(step_id) from None


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
    if status is DeliveryStatus.CANCELLED and suppression_reason in (
        Outcome.RETRIES_EXHAUSTED,
        Outcome.PERMANENT_FAILURE,
        Outcome.BOUNCED,
    ):
        return Outcome(suppression_reason)
    return None


def _noop(run: WorkflowRun, reason: str) -> Decision:
    return Decision(ProgressKind.NOOP, reason, run)


def _activated(step: WorkflowStep, source: str) -> TransitionPlan:
    return TransitionPlan(
        RunState.ACTIVE,
        RunState.ACTIVE,
        STEP_ACTIVATED,
        step.id,
        None,
        {"source": source, "step_key": step.step_key},
    )


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
    )
    return Decision(
        ProgressKind.ADVANCED,
        WORKFLOW_STARTED,
        run,
        (
            TransitionPlan(None, RunState.ACTIVE, WORKFLOW_STARTED, None, None, dict(context)),
            _activated(first, "trigger"),
        ),
        (DeliveryPlan(first.id, first.channel),),
    )


def progress(
    run: WorkflowRun,
    journey: Journey,
    anchor: Delivery | None,
    *,
    now: datetime,
    last_signal_event: str | None = None,
) -> Decision:
    """Decide the next move of ``run`` at ``now``.

    ``anchor`` is the latest delivery planned for (run, current step), or None;
    ``last_signal_event`` is the event name of the run's latest ``signal_received`` row.
    """
    if run.state.is_terminal:
        return _noop(run, RUN_NOT_ACTIVE)
    current = journey.step(run.current_step_id)
    if run.state is RunState.WAITING:
        return _wake(run, journey, current, now)
    if run.status_reason == SIGNAL_RECEIVED:
        return _settle_after_signal(run, current, now, last_signal_event)
    if anchor is None:
        return _noop(run, NO_ACTIVE_STEP_DELIVERY)

    outcome = outcome_of(anchor.status, anchor.suppression_reason)
    rules = journey.rules.get(current.id, ())
    if not rules:
        if outcome is None:
            return _noop(run, NO_PROGRESS_RULES)
        return _complete(run, current, anchor, outcome, now)
    if outcome is None:
        if any(isinstance(r, WaitUntil) for r in rules):
            return _noop(run, PRIOR_DELIVERY_NOT_CONVERGED)
        return _noop(run, NO_MATCHING_PROGRESS_RULE)
    for rule in rules:
        if isinstance(rule, (OnOutcome, Stop)) and rule.outcome == outcome:
            if isinstance(rule, Stop):
                return _stop(run, current, anchor, outcome, now)
            return _advance(run, journey, current, anchor, outcome, rule, now)
    for rule in rules:
        if isinstance(rule, WaitUntil):
            return _enter_wait(run, journey, current, anchor, rule, now)
    return _complete(run, current, anchor, outcome, now)


def resume(
    run: WorkflowRun, event_name: str, delivery_id: str | None, *, now: datetime
) -> Decision:
    """Let signal ``event_name`` end the run's wait; the run stays on its step.

    ``delivery_id`` is the signal's delivery, already checked to belong to the run's tenant.
    The status context is kept: it still names the wait's anchor for the settle that follows.
    """
    if run.state is not RunState.WAITING or event_name not in run.pending_signals:
        return _noop(run, SIGNAL_NOT_AWAITED)
    resumed = attrs.evolve(
        run,
        state=RunState.ACTIVE,
        status_reason=SIGNAL_RECEIVED,
        last_transition_at=now,
        suspended_until=None,
        pending_signals=(),
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


# -- the moves ---------------------------------------------------------------------------------


def _evidence(anchor: Delivery) -> dict[str, Any]:
    return {
        "delivery_status": anchor.status.value,
        "suppression_reason": anchor.suppression_reason,
    }


def _wake(run: WorkflowRun, journey: Journey, current: WorkflowStep, now: datetime) -> Decision:
    due = run.suspended_until
    if due is None or now < due:
        return _noop(run, WAIT_NOT_DUE)
    target = journey.steps_by_key.get(run.status_context.get("to_step", ""))
    if target is None:
        return _noop(run, UNKNOWN_TO_STEP)
    wait = {k: run.status_context[k] for k in _WAIT_KEYS if k in run.status_context}
    anchor_id = wait.get("anchor_delivery_id")
    status_context = {
        "rule_kind": "wait_until",
        "workflow_outcome": "wait_elapsed",
        "anchor_delivery_id": anchor_id,
        "from_step": current.step_key,
        "to_step": target.step_key,
    }
    woken = attrs.evolve(
        run,
        state=RunState.ACTIVE,
        current_step_id=target.id,
        status_reason=PROGRESSED_ON_DELIVERY_OUTCOME,
        status_context=status_context,
        last_transition_at=now,
        suspended_until=None,
        pending_signals=(),
    )
    rows = (
        TransitionPlan(
            RunState.WAITING,
            RunState.ACTIVE,
            REACTIVATED_FROM_WAIT,
            current.id,
            anchor_id,
            {**wait, "reactivated_at": to_text(now)},
        ),
        _activated(target, "progression"),
    )
    return Decision(
        ProgressKind.ADVANCED,
        PROGRESSED_ON_DELIVERY_OUTCOME,
        woken,
        rows,
        (DeliveryPlan(target.id, target.channel),),
    )


def _settle_after_signal(
    run: WorkflowRun, current: WorkflowStep, now: datetime, event_name: str | None
) -> Decision:
    # SPEC §4 item 6: a run a cancel signal woke completes; it never re-enters its wait.
    anchor_id = run.status_context.get("anchor_delivery_id")
    context = {
        "rule_kind": "wait_cancelled",
        "event_name": event_name,
        "anchor_delivery_id": anchor_id,
    }
    return _finish(
        run,
        current,
        anchor_id,
        context,
        now,
        state=RunState.COMPLETED,
        reason=WORKFLOW_COMPLETED,
        terminal_reason=CANCELLED_BY_SIGNAL,
    )


def _complete(
    run: WorkflowRun, current: WorkflowStep, anchor: Delivery, outcome: Outcome, now: datetime
) -> Decision:
    context = {
        "rule_kind": "implicit_completion",
        "workflow_outcome": outcome.value,
        "anchor_delivery_id": anchor.id,
        **_evidence(anchor),
    }
    return _finish(
        run,
        current,
        anchor.id,
        context,
        now,
        state=RunState.COMPLETED,
        reason=WORKFLOW_COMPLETED,
        terminal_reason=WORKFLOW_COMPLETED,
    )


def _stop(
    run: WorkflowRun, current: WorkflowStep, anchor: Delivery, outcome: Outcome, now: datetime
) -> Decision:
    context = {
        "rule_kind": "stop",
        "workflow_outcome": outcome.value,
        "anchor_delivery_id": anchor.id,
        **_evidence(anchor),
    }
    return _finish(
        run,
        current,
        anchor.id,
        context,
        now,
        state=RunState.STOPPED,
        reason=WORKFLOW_STOPPED,
        terminal_reason=WORKFLOW_STOPPED,
    )


def _finish(
    run: WorkflowRun,
    current: WorkflowStep,
    anchor_id: str | None,
    context: dict[str, Any],
    now: datetime,
    *,
    state: RunState,
    reason: str,
    terminal_reason: str,
) -> Decision:
    finished = attrs.evolve(
        run,
        state=state,
        status_reason=reason,
        status_context=context,
        last_transition_at=now,
        suspended_until=None,
        pending_signals=(),
        terminal_reason=terminal_reason,
    )
    row = TransitionPlan(RunState.ACTIVE, state, reason, current.id, anchor_id, dict(context))
    kind = ProgressKind.COMPLETED if state is RunState.COMPLETED else ProgressKind.STOPPED
    return Decision(kind, reason, finished, (row,))


def _advance(
    run: WorkflowRun,
    journey: Journey,
    current: WorkflowStep,
    anchor: Delivery,
    outcome: Outcome,
    rule: OnOutcome,
    now: datetime,
) -> Decision:
    target = journey.steps_by_key.get(rule.to_step)
    if target is None:
        return _noop(run, UNKNOWN_TO_STEP)
    context = {
        "rule_kind": "on_outcome",
        "workflow_outcome": outcome.value,
        "anchor_delivery_id": anchor.id,
        "from_step": current.step_key,
        "to_step": target.step_key,
        **_evidence(anchor),
    }
    advanced = attrs.evolve(
        run,
        current_step_id=target.id,
        status_reason=PROGRESSED_ON_DELIVERY_OUTCOME,
        status_context=context,
        last_transition_at=now,
    )
    rows = (
        TransitionPlan(
            RunState.ACTIVE,
            RunState.ACTIVE,
            PROGRESSED_ON_DELIVERY_OUTCOME,
            current.id,
            anchor.id,
            dict(context),
        ),
        _activated(target, "progression"),
    )
    return Decision(
        ProgressKind.ADVANCED,
        PROGRESSED_ON_DELIVERY_OUTCOME,
        advanced,
        rows,
        (DeliveryPlan(target.id, target.channel),),
    )


def _enter_wait(
    run: WorkflowRun,
    journey: Journey,
    current: WorkflowStep,
    anchor: Delivery,
    rule: WaitUntil,
    now: datetime,
) -> Decision:
    if rule.to_step not in journey.steps_by_key:
        return _noop(run, UNKNOWN_TO_STEP)
    settled = anchor.updated_at
    try:
        due = settled + timedelta(seconds=rule.delay_seconds)
    except OverflowError:
        due = _LATEST
    context = {
        "rule_kind": "wait_until",
        "anchor": rule.anchor,
        "anchor_delivery_id": anchor.id,
        "anchor_delivery_status": anchor.status.value,
        "anchor_timestamp": to_text(settled),
        "due_at": to_text(due),
        "to_step": rule.to_step,
    }
    waiting = attrs.evolve(
        run,
        state=RunState.WAITING,
        status_reason=WAITING_FOR_STEP_PROGRESSION,
        status_context=context,
        last_transition_at=now,
        suspended_until=due,
        pending_signals=rule.cancel_signals,
    )
    row = TransitionPlan(
        RunState.ACTIVE,
        RunState.WAITING,
        WAITING_FOR_STEP_PROGRESSION,
        current.id,
        anchor.id,
        dict(context),
    )
    return Decision(ProgressKind.WAITING, WAITING_FOR_STEP_PROGRESSION, waiting, (row,))


# -- the rules hosts' own writes must keep (SPEC §8) -------------------------------------------


def check_state_change(run_id: str, current: RunState, new: RunState) -> None:
    """Refuse to move a terminal run to another state."""
    if current.is_terminal and new is not current:
        raise InvalidTransition(
            f"{current.value} is terminal: nothing leaves it",
            run_id=run_id,
            from_state=current.value,
            to_state=new.value,
        )


def check_context(run_id: str | None, context: Mapping[str, Any]) -> None:
    """Refuse a context key outside the catalogue of SPEC §10."""
    unknown = sorted(str(k) for k in context if k not in CONTEXT_KEYS)
    if unknown:
        raise InvalidTransition(
            f"context keys outside the catalogue: {', '.join(unknown)}", run_id=run_id
        )
