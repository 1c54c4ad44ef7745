"""Why a run is where it is, and what would move it next — built from data, no I/O.

:func:`explain_run` takes the run, its journey, its last trace row, the delivery the next
decision looks at (the *anchor*: the latest delivery of the current step) and the decision
that a progression would take *now* (a dry run of
:func:`chimeway_lite.machine.decide.progress`,
which writes nothing), and returns a :class:`RunExplanation` with two sentences for people:

* ``why`` — the last decision and its evidence (which delivery, which outcome, which rule);
* ``next_move`` — what moves the run next and when: the due time and target step of a wait
  and the signals that cancel it, the outcome an active step waits for and where each
  outcome leads, or why nothing will (a terminal state, a noop reason);
* ``path`` — the run's way so far, from its trace (:func:`path_of`): the steps it went
  through and why it left each one, every clause the ``path`` template of its row's variant
  in the move table. The ``why`` of a finished run that went through more than one step
  ends with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..core.records import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Notification,
    ProgressKind,
    RunExplanation,
    RunState,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from ..core.text import duration_text
from ..core.timestamps import from_text
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
    SIGNAL_RECEIVED,
    STEP_ACTIVATED,
    UNKNOWN_TO_STEP,
    render,
    time_text,
)

__all__ = [
    "delivery_sentences",
    "duration_text",
    "explain_run",
    "path_of",
    "rules_text",
    "why_of",
]


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


def why_of(run: WorkflowRun, step_key: str) -> str:
    """The sentence for the run's status: its move's variant in the machine's table, or the
    host's own reason."""
    move = MOVES.get(run.status_reason)
    if move is None:
        return f"Status {run.status_reason!r} on step {step_key!r} (recorded by the host)."
    variant = move.variant(run.status_context)
    return render(
        variant.why,
        run.status_context,
        step=step_key,
        at=run.last_transition_at,
        resumed_by=run.resumed_by,
    )


def _seconds_between(later: Any, earlier: Any) -> float | None:
    """``later - earlier`` in seconds, for datetimes or context timestamps; None if unknown."""
    try:
        ends = [at if isinstance(at, datetime) else from_text(at) for at in (later, earlier)]
    except (TypeError, ValueError):
        return None
    return (ends[0] - ends[1]).total_seconds()


def _wait_signals(journey: Journey, step_id: str | None, to_step: Any) -> tuple[str, ...]:
    """The signals that end a wait on ``step_id`` towards ``to_step``, from its rules."""
    rules = journey.rules.get(step_id or "", ())
    for rule in rules:
        waits = kind_of(rule).waits(rule, rules)
        if waits is not None and (to_step is None or waits[0] == to_step):
            return waits[1]
    return ()


def _wait_target(journey: Journey, step_id: str | None) -> str | None:
    """Where the step's wait rule leads, when it has one."""
    rules = journey.rules.get(step_id or "", ())
    for rule in rules:
        waits = kind_of(rule).waits(rule, rules)
        if waits is not None:
            return waits[0]
    return None


def path_of(transitions: Sequence[WorkflowTransition], journey: Journey, run: WorkflowRun) -> str:
    """The run's path in words, from its trace: the steps in the order it entered them, then
    why it left each one and why it ended (every clause is its row's ``path`` template in the
    move table, filled from the row's context and from the last wait before it)::

        Path: 'inapp' -> 'email' -> completed. 'email' ran because the 2 h wait after
        'inapp' passed without 'notification_read'; it completed when the 'email' delivery
        ended 'delivered'.

    Rows of a host's own reason add nothing; rows that neither change the step nor end the
    run (a wait, a signal) only feed the clauses after them.
    """
    steps: list[str] = []
    clauses: list[str] = []
    wait: WorkflowTransition | None = None
    resumed_at: datetime | None = None
    for row in transitions:
        move = MOVES.get(row.reason)
        if move is None:
            continue
        step = journey.steps_by_id.get(row.workflow_step_id or "")
        if row.reason == STEP_ACTIVATED:
            steps.append(repr(row.context.get("step_key", step.step_key if step else "?")))
            wait = None  # a wait belongs to the step it was entered on
        if move.to_state is RunState.WAITING:
            wait, resumed_at = row, None
        if row.reason == SIGNAL_RECEIVED:
            resumed_at = row.inserted_at
        variant = move.variant(row.context)
        if not variant.path:
            continue
        names = _path_names(row, step, wait, resumed_at, journey)
        clauses.append(render(variant.path, row.context, **names))
    if run.state.is_terminal:
        steps.append(run.state.value)
    else:
        steps[-1:] = [f"{steps[-1]} ({run.state.value})"] if steps else [run.state.value]
    text = "Path: " + " -> ".join(steps) + "."
    if clauses:
        first = clauses[0]
        text += " " + first[:1].upper() + first[1:] + "".join(f"; {c}" for c in clauses[1:]) + "."
    return text


def _steps_entered(transitions: Sequence[WorkflowTransition]) -> int:
    return sum(1 for row in transitions if row.reason == STEP_ACTIVATED)


def _path_names(
    row: WorkflowTransition,
    step: WorkflowStep | None,
    wait: WorkflowTransition | None,
    resumed_at: datetime | None,
    journey: Journey,
) -> dict[str, Any]:
    """The names a ``path`` clause reads besides the row's context (see the vocabulary)."""
    names: dict[str, Any] = {
        "step": step.step_key if step is not None else "?",
        "at": row.inserted_at,
    }
    if wait is None:
        names.update(
            waited="?",
            awaited="a cancelling signal",
            into="?",
            wait_target=_wait_target(journey, row.workflow_step_id) or "the next step",
        )
        return names
    context = wait.context
    waited = _seconds_between(context.get("due_at"), context.get("anchor_timestamp"))
    if waited is None:
        waited = _seconds_between(context.get("due_at"), wait.inserted_at)
    into = _seconds_between(resumed_at or row.inserted_at, wait.inserted_at)
    signals = _wait_signals(journey, wait.workflow_step_id, context.get("to_step"))
    names.update(
        waited="?" if waited is None else duration_text(waited),
        awaited=_names(signals) if signals else "a cancelling signal",
        into="?" if into is None else duration_text(into),
        wait_target=context.get("to_step") or "the next step",
    )
    return names


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
            f"for step {after.wait_target!r}."
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
    transitions: Sequence[WorkflowTransition] | None = None,
    notification: Notification | None = None,
) -> RunExplanation:
    """Assemble the explanation of ``run`` (see the module docstring).

    ``anchor`` is the latest delivery of the current step and ``now`` the instant of the dry
    run; both only enrich the text and the anchor fields, and may be left out. With the
    run's whole trace (``transitions``) the explanation tells its ``path`` (and a finished
    run that went through more than one step ends its ``why`` with it); with its
    ``notification``, whom it is for (``recipient``,
    ``notification_key``; never its data).
    """
    step = journey.step(run.current_step_id)
    waiting = run.state is RunState.WAITING
    due = run.suspended_until if waiting else None
    next_step = run.wait_target if waiting else None
    why = why_of(run, step.step_key)
    path = None if transitions is None else path_of(transitions, journey, run)
    if path is not None and run.state.is_terminal and _steps_entered(transitions or ()) > 1:
        # A run that ended on its first step: its last decision is its whole path.
        why = f"{why} {path}"
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
        why=why,
        next_move=_next_move(run, journey, dry_run, anchor, now),
        anchor_delivery_id=None if anchor is None else anchor.id,
        anchor_delivery_status=None if anchor is None else anchor.status,
        anchor_attempt=None if anchor is None else anchor.attempt,
        next_decision=dry_run.kind,
        blocked_by=dry_run.reason if dry_run.is_noop else None,
        recipient=None if notification is None else notification.recipient,
        notification_key=None if notification is None else notification.notification_key,
        path=path,
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
