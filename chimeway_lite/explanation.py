"""Why a run is where it is, and what would move it next — built from data, no I/O.

:func:`explain_run` takes the run, its journey, its last trace row, the delivery the next
decision looks at (the *anchor*: the latest delivery of the current step) and the decision
that a progression would take *now* (a dry run of :func:`chimeway_lite.machine.progress`,
which writes nothing), and returns a :class:`RunExplanation` with two sentences for people:

* ``why`` — the last decision and its evidence (which delivery, which outcome, which rule);
* ``next_move`` — what moves the run next and when: the due time and target step of a wait
  and the signals that cancel it, the outcome an active step waits for and where each
  outcome leads, or why nothing will (a terminal state, a noop reason).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import machine
from .declarations import OnOutcome, Rule, Stop, WaitUntil
from .machine import Decision, Journey
from .records import (
    Delivery,
    ProgressKind,
    RunExplanation,
    RunState,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from .timestamps import from_text


def duration_text(seconds: float) -> str:
    """A duration for people: ``45 s``, ``1 h 29 min``, ``2 d 3 h`` (two units at most)."""
    total = round(abs(seconds))
    if total < 60:
        return f"{total} s"
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    parts: list[tuple[int, str]] = []
    for name, size in units:
        count, total = divmod(total, size)
        if count or parts:
            parts.append((count, name))
    shown = [f"{count} {name}" for count, name in parts[:2] if count]
    return " ".join(shown)


def rules_text(rules: tuple[Rule, ...]) -> str:
    """A step's progress rules in one line, as the machine applies them: the first
    on_outcome/stop matching the outcome wins wherever it stands; else the first wait."""
    if not rules:
        return "no rules: its outcome completes the run"
    parts = []
    for rule in rules:
        if isinstance(rule, OnOutcome):
            parts.append(f"{rule.outcome} -> step {rule.to_step!r}")
        elif isinstance(rule, Stop):
            parts.append(f"{rule.outcome} -> stop")
    waits = [r for r in rules if isinstance(r, WaitUntil)]
    if waits:
        wait = waits[0]
        text = f"wait {duration_text(wait.delay_seconds)} -> step {wait.to_step!r}"
        if wait.cancel_signals:
            text += f" unless signal {_names(wait.cancel_signals)}"
        parts.append(("any other outcome: " if parts else "any outcome: ") + text)
    else:
        parts.append("any other outcome completes the run")
    return "; ".join(parts)


def _names(values: tuple[str, ...]) -> str:
    return " or ".join(repr(v) for v in values)


def _time(at: Any) -> str:
    """A datetime or a context timestamp as ISO-8601 (no ``.000000`` when on the second)."""
    if isinstance(at, str):
        try:
            at = from_text(at)
        except ValueError:
            return str(at)
    return at.isoformat() if isinstance(at, datetime) else str(at)


def _when(at: Any, now: datetime | None) -> str:
    """``at`` (a datetime or context text) with its distance from ``now`` when known."""
    if at is None:
        return "an unknown time"
    text = _time(at)
    instant = from_text(at) if isinstance(at, str) else at
    if now is None:
        return text
    delta = (instant - now).total_seconds()
    if abs(delta) < 1:
        return f"{text} (now)"
    if delta > 0:
        return f"{text} (in {duration_text(delta)})"
    return f"{text} ({duration_text(delta)} ago)"


def _why(run: WorkflowRun, step_key: str, last: WorkflowTransition | None) -> str:
    ctx: dict[str, Any] = run.status_context
    reason = run.status_reason
    anchor = ctx.get("anchor_delivery_id")
    kind = ctx.get("rule_kind")
    if reason == machine.WORKFLOW_STARTED:
        return f"Started by a trigger; step {step_key!r} is the first step."
    if reason == machine.PROGRESSED_ON_DELIVERY_OUTCOME and kind == "wait_until":
        return (
            f"Moved from step {ctx.get('from_step')!r} to {ctx.get('to_step')!r}: the wait "
            f"after delivery {anchor} elapsed with no cancelling signal."
        )
    if reason == machine.PROGRESSED_ON_DELIVERY_OUTCOME:
        return (
            f"Moved from step {ctx.get('from_step')!r} to {ctx.get('to_step')!r}: delivery "
            f"{anchor} ended {ctx.get('workflow_outcome')!r} "
            f"(status {ctx.get('delivery_status')!r}) and an on_outcome rule matched."
        )
    if reason == machine.WAITING_FOR_STEP_PROGRESSION:
        return (
            f"Waiting on step {step_key!r}: delivery {anchor} settled "
            f"{ctx.get('anchor_delivery_status')!r} at {_time(ctx.get('anchor_timestamp'))}, so "
            f"the wait_until rule applies: step {ctx.get('to_step')!r} at "
            f"{_time(ctx.get('due_at'))}."
        )
    if reason == machine.SIGNAL_RECEIVED:
        event = None
        if last is not None and last.reason == machine.SIGNAL_RECEIVED:
            event = last.context.get("event_name")
        return (
            f"Signal {event!r} ended the wait on step {step_key!r}"
            + ("" if last is None else f" at {_time(last.inserted_at)}")
            + "; the run is settling and will not wait again."
        )
    if reason == machine.WORKFLOW_COMPLETED and kind == "wait_cancelled":
        return (
            f"Completed: signal {ctx.get('event_name')!r} cancelled the wait on step "
            f"{step_key!r}, so the next step never ran."
        )
    if reason == machine.WORKFLOW_COMPLETED:
        return (
            f"Completed on step {step_key!r}: delivery {anchor} ended "
            f"{ctx.get('workflow_outcome')!r} (status {ctx.get('delivery_status')!r}) and no "
            "rule leads further."
        )
    if reason == machine.WORKFLOW_STOPPED:
        return (
            f"Stopped on step {step_key!r}: delivery {anchor} ended "
            f"{ctx.get('workflow_outcome')!r} (status {ctx.get('delivery_status')!r}) and a "
            "stop rule matched."
        )
    return f"Status {reason!r} on step {step_key!r} (recorded by the host)."


def _awaiting_outcome(step: WorkflowStep, journey: Journey, anchor: Delivery | None) -> str:
    rules = rules_text(journey.rules.get(step.id, ()))
    if anchor is None:
        return f"no delivery is planned for step {step.step_key!r}"
    return (
        f"delivery {anchor.id} on channel {anchor.channel!r} is {anchor.status.value!r}; "
        f"record_outcome() decides ({rules})"
    )


def _next_move(
    run: WorkflowRun,
    journey: Journey,
    decision: Decision,
    anchor: Delivery | None,
    now: datetime | None,
) -> str:
    step = journey.step(run.current_step_id)
    if run.state.is_terminal:
        return f"Nothing: {run.state.value} is terminal ({run.terminal_reason})."
    if run.state is RunState.WAITING:
        target = run.status_context.get("to_step")
        due = run.suspended_until or run.status_context.get("due_at")
        if decision.reason == machine.UNKNOWN_TO_STEP:
            return (
                f"Nothing by itself: the wait is over but its to_step {target!r} names no step "
                f"of the definition (unknown_to_step)."
            )
        if not decision.is_noop:
            text = (
                f"It is due since {_when(due, now)}: the next due sweep "
                f"(progress_due_runs(), `chimeway-lite tick`) moves it to step {target!r}"
            )
        else:
            text = f"At {_when(due, now)} the due sweep moves it to step {target!r}"
            if run.pending_signals:
                text += (
                    f"; before then, signal {_names(run.pending_signals)} cancels the wait "
                    "and completes the run"
                )
            else:
                text += "; no signal cancels this wait"
        return text + "."
    if decision.is_noop:
        if decision.reason in (
            machine.PRIOR_DELIVERY_NOT_CONVERGED,
            machine.NO_MATCHING_PROGRESS_RULE,
            machine.NO_PROGRESS_RULES,
            machine.NO_ACTIVE_STEP_DELIVERY,
        ):
            return f"Waiting for input: {_awaiting_outcome(step, journey, anchor)}."
        return f"Nothing yet ({decision.reason})."
    after = decision.run
    if run.status_reason == machine.SIGNAL_RECEIVED:
        return (
            "The next due sweep completes it (cancelled_by_signal); it never re-enters the "
            "wait it left."
        )
    if decision.kind is ProgressKind.ADVANCED:
        target = journey.steps_by_id.get(after.current_step_id)
        name = target.step_key if target is not None else after.current_step_id
        return f"The next progression moves it to step {name!r} and plans its delivery."
    if decision.kind is ProgressKind.WAITING:
        return (
            f"The next progression starts a wait until {_time(after.status_context.get('due_at'))} "
            f"for step {after.status_context.get('to_step')!r}."
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
) -> RunExplanation:
    """Assemble the explanation of ``run`` (see the module docstring).

    ``anchor`` is the latest delivery of the current step and ``now`` the instant of the dry
    run; both only enrich the text and the anchor fields, and may be left out.
    """
    step = journey.step(run.current_step_id)
    waiting = run.state is RunState.WAITING
    due = run.suspended_until if waiting else None
    next_step = run.status_context.get("to_step") if waiting else None
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
        why=_why(run, step.step_key, last_transition),
        next_move=_next_move(run, journey, dry_run, anchor, now),
        anchor_delivery_id=None if anchor is None else anchor.id,
        anchor_delivery_status=None if anchor is None else anchor.status,
        next_decision=dry_run.kind,
        blocked_by=dry_run.reason if dry_run.is_noop else None,
    )
