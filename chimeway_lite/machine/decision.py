"""What the machine returns: a :class:`Decision`, and the pieces decisions are built from.

A decision is data: the run as it must be afterwards, the trace rows to append (in order),
the deliveries to plan, a kind and a reason. The engine carries it out; a ``noop`` decision
writes nothing. The builders here (:func:`noop`, :func:`activated`, :func:`finish`) are shared
by the decide functions of :mod:`chimeway_lite.machine.decide` and the decision hooks of the
rule kinds (:mod:`chimeway_lite.machine.kinds`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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
    """A delivery to plan (status pending) for a step's channel; ``digest_size`` is the
    number of runs it speaks for (a digest's, CONTRACT §14.2)."""

    workflow_step_id: str
    channel: str
    digest_size: int = 1


@attrs.frozen
class BatchPlan:
    """What a decision does to a digest batch (CONTRACT §14.2): ``open`` a new one for the
    run (closing at ``closes_at``), ``join`` the open batch ``batch_id``, or ``close``
    ``batch_id`` (its one delivery is the decision's). A join that ``fills`` the batch (it
    reaches ``max_items``) closes it in the same unit of work."""

    action: Literal["open", "join", "close"]
    workflow_step_id: str
    closes_at: datetime
    batch_id: str | None = None
    fills: bool = False


@attrs.frozen
class Decision:
    """What to do to one run: its new row, trace rows and deliveries, or nothing (noop).

    ``batch`` is what it does to a digest batch; ``also`` are decisions on other runs
    carried out with it (the rest of a digest batch it closes), each with the run as it was
    before. ``passed`` names the step options an activation this decision ends with has
    passed already (a send window that opened is not asked again, CONTRACT §14).
    """

    kind: ProgressKind
    reason: str
    run: WorkflowRun
    transitions: tuple[TransitionPlan, ...] = ()
    deliveries: tuple[DeliveryPlan, ...] = ()
    batch: BatchPlan | None = None
    also: tuple[tuple[WorkflowRun, Decision], ...] = ()
    passed: frozenset[str] = frozenset()

    @property
    def is_noop(self) -> bool:
        """True when nothing is to be written."""
        return self.kind is ProgressKind.NOOP

    @property
    def activation(self) -> TransitionPlan | None:
        """The ``step_activated`` row this decision ends with, or None."""
        last = self.transitions[-1] if self.transitions else None
        return last if last is not None and last.reason == STEP_ACTIVATED else None


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


def held_back(
    decision: Decision,
    row: TransitionPlan,
    run: WorkflowRun,
    kind: ProgressKind,
    *,
    batch: BatchPlan | None = None,
) -> Decision:
    """``decision`` with the ``step_activated`` row it ends with replaced by ``row`` (a step
    option held the activation back), no delivery planned, and the run as ``run``; its
    status reason is ``row``'s."""
    return Decision(kind, row.reason, run, (*decision.transitions[:-1], row), (), batch)


def held_waiting(
    decision: Decision,
    step: WorkflowStep,
    reason: str,
    context: dict[str, Any],
    now: datetime,
    until: datetime,
    *,
    kind: str,
    batch: BatchPlan | None = None,
) -> Decision:
    """``decision`` held back by the step option ``kind`` until ``until``: the run waits on
    ``step`` with ``reason`` and ``context`` (no signal ends the wait; the sweep does), and
    the ``step_activated`` row becomes an active → waiting row of the same reason."""
    waiting = attrs.evolve(
        decision.run,
        state=RunState.WAITING,
        status_reason=reason,
        status_context=context,
        last_transition_at=now,
        suspended_until=until,
        pending_signals=(),
        wait_kind=kind,
        wait_target=step.step_key,
        resumed_by=None,
    )
    row = TransitionPlan(RunState.ACTIVE, RunState.WAITING, reason, step.id, None, dict(context))
    return held_back(decision, row, waiting, ProgressKind.WAITING, batch=batch)


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
