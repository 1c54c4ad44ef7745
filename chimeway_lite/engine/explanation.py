"""Why a run is where it is, and what would move it next — built from data, no I/O.

:func:`explain_run` takes the run, its journey, its last trace row, the delivery the next
decision looks at (the *anchor*: the latest delivery of the current step) and the decision
that a progression would take *now* (a dry run of
:func:`chimeway_lite.machine.decide.progress`,
which writes nothing), and returns a :class:`RunExplanation` with two sentences for people:

* ``why`` — the last decision and its evidence (which delivery, which outcome, which rule);
* ``next_move`` — what moves the run next and when: the due time and target step of a wait
  and the signals that cancel it, the outcome an active step waits for and where each
  outcome leads, or why nothing will (a terminal state, a noop reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..core.records import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    ProgressKind,
    RunExplanation,
    RunState,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from ..core.text import duration_text
from ..machine import decide
from ..machine.decision import Decision
from ..machine.journey import Journey
from ..machine.kinds import kind_of
from ..machine.kinds.retry import Retry
from ..machine.table import MOVES
from ..machine.vocabulary import (
    NO_ACTIVE_STEP_DELIVERY,
    NO_MATCHING_PROGRESS_RULE,
    NO_PROGRESS_RULES,
    PRIOR_DELIVERY_NOT_CONVERGED,
    UNKNOWN_TO_STEP,
    render,
    time_text,
)

__all__ = ["delivery_sentences", "duration_text", "explain_run", "rules_text", "why_of"]


def rules_text(rules: tuple[Any, ...]) -> str:
    """A step's progress rules in one line, as the machine applies them: the first "match"
    rule (on_outcome, stop) matching the outcome wins wherever it stands; else the first
    "fallback" rule (wait_until)."""
    if not rules:
        return "no rules: its outcome completes the run"
    kinds = [(rule, kind_of(rule)) for rule in rules]
    parts = [kind.describe(rule) for rule, kind in kinds if kind.role == "match"]
    fallback = next(((r, k) for r, k in kinds if k.role == "fallback"), None)
    if fallback is not None:
        prefix = "any other outcome: " if parts else "any outcome: "
        parts.append(prefix + fallback[1].describe(fallback[0]))
    else:
        parts.append("any other outcome completes the run")
    return "; ".join(parts)


def _names(values: tuple[str, ...]) -> str:
    return " or ".join(repr(v) for v in values)


def _when(at: datetime | None, now: datetime | None) -> str:
    """``at`` with its distance from ``now`` when known."""
    if at is None:
        return "an unknown time"
    text = time_text(at)
    if now is None:
        return text
    delta = (at - now).total_seconds()
    if abs(delta) < 1:
        return f"{text} (now)"
    if delta > 0:
        return f"{text} (in {duration_text(delta)})"
    return f"{text} ({duration_text(delta)} ago)"


def why_of(run: WorkflowRun, step_key: str, **names: Any) -> str:
    """The sentence for the run's status: its move's variant in the machine's table, or the
    host's own reason. ``names`` are the facts a gate's sentences read (the items of a
    digest, a throttle's limit, a window's local opening: see
    :meth:`~chimeway_lite.machine.kinds.Gate.names`)."""
    move = MOVES.get(run.status_reason)
    if move is None:
        return f"Status {run.status_reason!r} on step {step_key!r} (recorded by the host)."
    variant = move.variant(run.status_context)
    return render(
        variant.why,
        run.status_context,
        **names,
        step=step_key,
        at=run.last_transition_at,
        resumed_by=run.resumed_by,
    )


def _awaiting_outcome(step: WorkflowStep, journey: Journey, anchor: Delivery | None) -> str:
    rules = rules_text(journey.rules.get(step.id, ()))
    if anchor is None:
        return f"no delivery is planned for step {step.step_key!r}"
    attempts = ""
    if anchor.attempt:
        attempts = f" (attempt {anchor.attempt}"
        if anchor.status is DeliveryStatus.PENDING and anchor.available_at is not None:
            attempts += f" failed; retry at {time_text(anchor.available_at)}"
        attempts += ")"
    return (
        f"delivery {anchor.id} on channel {anchor.channel!r} is {anchor.status.value!r}"
        f"{attempts}; record_outcome() decides ({rules})"
    )


def _next_move(
    run: WorkflowRun,
    journey: Journey,
    decision: Decision,
    anchor: Delivery | None,
    now: datetime | None,
    names: Mapping[str, Any],
) -> str:
    step = journey.step(run.current_step_id)
    if run.state.is_terminal:
        return f"Nothing: {run.state.value} is terminal ({run.terminal_reason})."
    if run.state is RunState.WAITING:
        target = run.wait_target
        due = decide.due_at(run)
        if due is None:
            return "Nothing by itself: the wait has no due time (suspended_until is not set)."
        if decision.reason == UNKNOWN_TO_STEP:
            return (
                f"Nothing by itself: the wait is over but its to_step {target!r} names no step "
                f"of the definition (unknown_to_step)."
            )
        move = MOVES.get(run.status_reason)
        variant = None if move is None else move.variant(run.status_context)
        if variant is not None and variant.next is not None:
            # a gate's wait (window, digest) says itself what ends it
            return render(variant.next, run.status_context, **{**names, "due": _when(due, now)})
        if not decision.is_noop:
            text = (
                f"It is due since {_when(due, now)}: the next due sweep "
                f"(progress_due_runs(), `chimeway-lite tick`) moves it to step {target!r}"
            )
        else:
            text = f"At {_when(due, now)} the due sweep moves it to step {target!r}"
            rules = journey.rules.get(step.id, ())
            branching = {
                e: r.to_step for e in run.pending_signals for r in rules if kind_of(r).handles(r, e)
            }
            cancelling = tuple(e for e in run.pending_signals if e not in branching)
            if cancelling:
                text += (
                    f"; before then, signal {_names(cancelling)} cancels the wait "
                    "and completes the run"
                )
            for event, to_step in branching.items():
                text += f"; signal {event!r} moves it to step {to_step!r} instead"
            if not run.pending_signals:
                text += "; no signal cancels this wait"
        return text + "."
    if decision.is_noop:
        if decision.reason in (
            PRIOR_DELIVERY_NOT_CONVERGED,
            NO_MATCHING_PROGRESS_RULE,
            NO_PROGRESS_RULES,
            NO_ACTIVE_STEP_DELIVERY,
        ):
            return f"Waiting for input: {_awaiting_outcome(step, journey, anchor)}."
        return f"Nothing yet ({decision.reason})."
    after = decision.run
    if run.resumed_by is not None:
        return (
            "The next due sweep completes it (cancelled_by_signal); it never re-enters the "
            "wait it left."
        )
    if decision.kind is ProgressKind.ADVANCED:
        entered = journey.steps_by_id.get(after.current_step_id)
        name = entered.step_key if entered is not None else after.current_step_id
        return f"The next progression moves it to step {name!r} and plans its delivery."
    if decision.kind is ProgressKind.WAITING:
        return (
            f"The next progression starts a wait until {time_text(after.suspended_until)} "
            f"for step {after.wait_target!r} ({after.status_reason})."
        )
    return f"The next progression ends it: {after.state.value} ({after.terminal_reason})."


def explain_run(
    run: WorkflowRun,
    journey: Journey,
    last_transition: WorkflowTransition | None,
    dry_run: Decision,
    *,
    workflow_key: str,
    workflow_version: int,
    anchor: Delivery | None = None,
    now: datetime | None = None,
    names: Mapping[str, Any] | None = None,
) -> RunExplanation:
    """Assemble the explanation of ``run`` (see the module docstring).

    ``anchor`` is the latest delivery of the current step and ``now`` the instant of the dry
    run; both only enrich the text and the anchor fields, and may be left out. ``names``
    are the facts of a throttle, window or digest status (see :func:`why_of`).
    """
    names = {} if names is None else names
    step = journey.step(run.current_step_id)
    waiting = run.state is RunState.WAITING
    due = run.suspended_until if waiting else None
    next_step = run.wait_target if waiting else None
    return RunExplanation(
        id=run.id,
        tenant_id=run.tenant_id,
        state=run.state,
        status_reason=run.status_reason,
        current_step_name=step.step_key,
        suspended_until=run.suspended_until,
        pending_signals=run.pending_signals,
        terminal_reason=run.terminal_reason,
        workflow_key=workflow_key,
        workflow_version=workflow_version,
        current_step_order=step.step_order,
        current_channel=step.channel,
        started_at=run.started_at,
        last_transition_at=run.last_transition_at,
        status_context=dict(run.status_context),
        due_at=due,
        next_step=next_step,
        last_transition=last_transition,
        why=why_of(run, step.step_key, **names),
        next_move=_next_move(run, journey, dry_run, anchor, now, names),
        anchor_delivery_id=None if anchor is None else anchor.id,
        anchor_delivery_status=None if anchor is None else anchor.status,
        anchor_attempt=None if anchor is None else anchor.attempt,
        next_decision=dry_run.kind,
        blocked_by=dry_run.reason if dry_run.is_noop else None,
    )


def delivery_sentences(
    delivery: Delivery,
    attempts: tuple[DeliveryAttempt, ...],
    policy: Retry | None,
    now: datetime,
) -> tuple[str, str]:
    """``why`` and ``next_move`` of a delivery: its last attempt, and what happens next."""
    of = f" of {policy.max_attempts}" if policy is not None else ""
    last = attempts[-1] if attempts else None
    status = delivery.status
    if status is DeliveryStatus.PENDING and last is None:
        why = (
            f"Planned at {time_text(delivery.inserted_at)} for step {delivery.step_key!r} "
            f"(channel {delivery.channel!r}); not claimed yet."
        )
    elif status is DeliveryStatus.PENDING:
        assert last is not None
        why = f"Attempt {last.attempt}{of} failed at {time_text(last.ended_at)}"
        if delivery.available_at is not None:
            why += f"; retry at {time_text(delivery.available_at)}"
        why += "."
    elif status is DeliveryStatus.DISPATCHED and last is not None:
        lease = delivery.lease_expires_at
        ran = "ran out" if lease is not None and lease <= now else "runs"
        why = (
            f"Attempt {delivery.attempt}{of} was claimed at {time_text(last.claimed_at)}; "
            f"its lease {ran} until {time_text(lease)}."
        )
    elif status is DeliveryStatus.CANCELLED and delivery.suppression_reason == "retries_exhausted":
        ended = last.ended_at if last is not None else delivery.updated_at
        why = (
            f"Attempt {delivery.attempt}{of} failed at {time_text(ended)}: retries exhausted "
            "(cancelled, retries_exhausted), so the run branches on retries_exhausted."
        )
    else:
        ended = last.ended_at if last is not None else delivery.updated_at
        reason = f", {delivery.suppression_reason}" if delivery.suppression_reason else ""
        why = (
            f"Attempt {max(delivery.attempt, 1)}{of} ended {status.value}{reason} at "
            f"{time_text(ended)}."
        )
    return why, _delivery_next_move(delivery, policy, now)


def _delivery_next_move(delivery: Delivery, policy: Retry | None, now: datetime) -> str:
    status = delivery.status
    following = delivery.attempt + 1
    of = f" of {policy.max_attempts}" if policy is not None else ""
    if status is DeliveryStatus.PENDING:
        if delivery.available_at is not None and delivery.available_at > now:
            return (
                f"The first claim from {_when(delivery.available_at, now)} sends it again "
                f"(attempt {following}{of})."
            )
        return f"The next claim (claim_deliveries) takes it: attempt {following}{of}."
    if status is DeliveryStatus.DISPATCHED:
        lease = delivery.lease_expires_at
        if lease is not None and lease <= now:
            return (
                f"Its lease ran out {_when(lease, now)}: the next claim takes it again "
                f"(attempt {following}{of}); an outcome reported first still counts."
            )
        return (
            "Waiting for the worker's outcome (record_outcome); if none comes by "
            f"{_when(lease, now)}, the next claim takes it again (attempt {following}{of})."
        )
    return f"Nothing: {status.value} is final; the same outcome reported again changes nothing."
