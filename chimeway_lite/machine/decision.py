"""What the machine returns: a :class:`Decision`, and the pieces decisions are built from.

A decision is data: the run as it must be afterwards, the trace rows to append (in order),
the deliveries to plan, a kind and a reason. The engine carries it out; a ``noop`` decision
writes nothing. The builders here (:func:`noop`, :func:`activated`, :func:`finish`) are shared
by the decide functions of :mod:`chimeway_lite.machine.decide` and the decision hooks of the
rule kinds (:mod:`chimeway_lite.machine.kinds`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from ..core.records import Delivery, ProgressKind, RunState, WorkflowRun, WorkflowStep
from .vocabulary import STEP_ACTIVATED


@attrs.frozen
class TransitionPlan:
    """A trace row to append; the engine adds id, seq and time."""

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


def noop(run: WorkflowRun, reason: str) -> Decision:
    """A decision to write nothing, for ``reason``."""
    return Decision(ProgressKind.NOOP, reason, run)


def activated(step: WorkflowStep, source: str) -> TransitionPlan:
    """The ``step_activated`` row that puts the cursor on ``step``."""
    return TransitionPlan(
        RunState.ACTIVE,
        RunState.ACTIVE,
        STEP_ACTIVATED,
        step.id,
        None,
        {"source": source, "step_key": step.step_key},
    )


def evidence(anchor: Delivery) -> dict[str, Any]:
    """The anchor delivery's status and reason, as outcome rows record them."""
    return {
        "delivery_status": anchor.status.value,
        "suppression_reason": anchor.suppression_reason,
    }


def cleared(run: WorkflowRun, **changes: Any) -> WorkflowRun:
    """``run`` with ``changes`` and the machine's wait and settle state cleared."""
    return attrs.evolve(
        run,
        **{
            "suspended_until": None,
            "pending_signals": (),
            "wait_kind": None,
            "wait_target": None,
            "resumed_by": None,
            **changes,
        },
    )


def advance(
    run: WorkflowRun,
    first: TransitionPlan,
    target: WorkflowStep,
    *,
    now: datetime,
    status_context: dict[str, Any],
    status_reason: str | None = None,
) -> Decision:
    """Move the cursor to ``target``: ``first``, then ``step_activated``, and one delivery
    planned for the target's channel. The run is active afterwards, its status reason
    ``status_reason`` (default: the first row's reason, as for every advance but a wait's
    end, CONTRACT §4 item 4)."""
    reason = first.reason if status_reason is None else status_reason
    moved = cleared(
        run,
        state=RunState.ACTIVE,
        current_step_id=target.id,
        status_reason=reason,
        status_context=status_context,
        last_transition_at=now,
        entered_step_at=now,
    )
    return Decision(
        ProgressKind.ADVANCED,
        reason,
        moved,
        (first, activated(target, "progression")),
        (DeliveryPlan(target.id, target.channel),),
    )


def finish(
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
    """End the run in ``state`` with one row of ``reason`` on the current step."""
    finished = cleared(
        run,
        state=state,
        status_reason=reason,
        status_context=context,
        last_transition_at=now,
        terminal_reason=terminal_reason,
    )
    row = TransitionPlan(run.state, state, reason, current.id, anchor_id, dict(context))
    kind = ProgressKind.COMPLETED if state is RunState.COMPLETED else ProgressKind.STOPPED
    return Decision(kind, reason, finished, (row,))
