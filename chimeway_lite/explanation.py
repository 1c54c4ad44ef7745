"""Why a run is where it is, and what would move it next — built from data, no I/O.

:func:`explain_run` takes the run, its journey, its last trace row and the decision that a
progression would take *now* (a dry run of :func:`chimeway_lite.machine.progress`, which
writes nothing) and returns a :class:`RunExplanation` with two sentences for people.
"""

from __future__ import annotations

from typing import Any

from . import machine
from .machine import Decision, Journey
from .records import RunExplanation, RunState, WorkflowRun, WorkflowTransition
from .timestamps import from_text


def _why(run: WorkflowRun, step_key: str) -> str:
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
            f"{anchor} ended {ctx.get('workflow_outcome')!r} and an on_outcome rule matched."
        )
    if reason == machine.WAITING_FOR_STEP_PROGRESSION:
        return (
            f"Waiting on step {step_key!r}: delivery {anchor} settled "
            f"{ctx.get('anchor_delivery_status')!r} at {ctx.get('anchor_timestamp')}; the "
            f"wait_until rule leads to {ctx.get('to_step')!r} at {ctx.get('due_at')}."
        )
    if reason == machine.SIGNAL_RECEIVED:
        return f"A signal ended the wait on step {step_key!r}; the run is settling."
    if reason == machine.WORKFLOW_COMPLETED and kind == "wait_cancelled":
        return (
            f"Completed: signal {ctx.get('event_name')!r} cancelled the wait on step {step_key!r}."
        )
    if reason == machine.WORKFLOW_COMPLETED:
        return (
            f"Completed on step {step_key!r}: delivery {anchor} ended "
            f"{ctx.get('workflow_outcome')!r} and no rule leads further."
        )
    if reason == machine.WORKFLOW_STOPPED:
        return (
            f"Stopped on step {step_key!r}: delivery {anchor} ended "
            f"{ctx.get('workflow_outcome')!r} and a stop rule matched."
        )
    return f"Status {reason!r} on step {step_key!r} (recorded by the host)."


_NOOP_TEXT = {
    machine.NO_ACTIVE_STEP_DELIVERY: "no delivery is planned for the current step",
    machine.NO_PROGRESS_RULES: (
        "the step's delivery has no outcome yet (record_outcome) and the step has no rules"
    ),
    machine.PRIOR_DELIVERY_NOT_CONVERGED: (
        "the step's delivery has no branchable outcome yet; record_outcome will decide"
    ),
    machine.NO_MATCHING_PROGRESS_RULE: (
        "the step's delivery has no branchable outcome yet and no wait rule applies"
    ),
    machine.UNKNOWN_TO_STEP: "the rule's to_step names no step of the definition",
}


def _next_move(run: WorkflowRun, journey: Journey, decision: Decision) -> str:
    if run.state.is_terminal:
        return f"Nothing: {run.state.value} is terminal."
    if run.state is RunState.WAITING:
        target = run.status_context.get("to_step")
        text = f"At {run.status_context.get('due_at')} the due sweep moves it to step {target!r}"
        if run.pending_signals:
            names = ", ".join(repr(s) for s in run.pending_signals)
            text += f"; before then, signal {names} cancels the wait and completes the run"
        if not decision.is_noop:
            text += " (it is due now)"
        return text + "."
    if decision.is_noop:
        return f"Waiting for input: {_NOOP_TEXT.get(decision.reason, decision.reason)}."
    after = decision.run
    if decision.kind.value == "advanced":
        target = journey.steps_by_id.get(after.current_step_id)
        name = target.step_key if target is not None else after.current_step_id
        return f"The next progression moves it to step {name!r} and plans its delivery."
    if decision.kind.value == "waiting":
        return f"The next progression starts a wait until {after.status_context.get('due_at')}."
    return f"The next progression ends it: {after.state.value} ({after.terminal_reason})."


def explain_run(
    run: WorkflowRun,
    journey: Journey,
    last_transition: WorkflowTransition | None,
    dry_run: Decision,
    *,
    workflow_key: str,
    workflow_version: int,
) -> RunExplanation:
    """Assemble the explanation of ``run`` (see the module docstring)."""
    step = journey.step(run.current_step_id)
    due = run.suspended_until if run.state is RunState.WAITING else None
    next_step = run.status_context.get("to_step") if run.state is RunState.WAITING else None
    if due is None and run.state is RunState.WAITING and "due_at" in run.status_context:
        due = from_text(run.status_context["due_at"])
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
        why=_why(run, step.step_key),
        next_move=_next_move(run, journey, dry_run),
    )
