"""Progression of runs (CONTRACT §4): facts gathered, the machine asked, its decision applied."""

from __future__ import annotations

from datetime import datetime

import attrs

from ..core.arguments import require_id
from ..core.errors import RunNotFound
from ..core.records import Delivery, Progress, ProgressKind, RunState, SignalMark, WorkflowRun
from ..machine import decide
from ..machine.decision import Decision
from ..machine.journey import Journey
from ..machine.kinds import Closing, digest
from . import gates
from .work import Work, not_before

_UNREAD = object()  # "not read yet", where None means "read, and there is none"


def anchor_of(work: Work, run: WorkflowRun) -> Delivery | None:
    """The delivery the next decision on an active run looks at: the latest of its step."""
    return work.unit.anchor(run.id, run.current_step_id)


def decision_for(
    work: Work,
    run: WorkflowRun,
    now: datetime,
    anchor: Delivery | object | None = _UNREAD,
    *,
    lock: bool = True,
    closing: Closing | object | None = _UNREAD,
) -> Decision:
    """The machine's decision for ``run`` at ``now``, gated by the step options of a step
    it activates (CONTRACT §14). ``anchor`` is the run's anchor when the caller has read it
    already (explain), so that it is not read twice; it is read only when the machine will
    look at it (an active run that is not settling). ``lock=False`` is a dry run's: the
    groups of throttles and digests are read without their lock. ``closing`` is the digest
    batch of a due digest wait when the caller has read it (see :func:`closing_of`)."""
    if run.state is not RunState.ACTIVE or run.resumed_by is not None:
        anchor = None
    elif anchor is _UNREAD:
        anchor = anchor_of(work, run)
    assert anchor is None or isinstance(anchor, Delivery)
    journey = work.definitions.journey(run.workflow_definition_id)
    if closing is _UNREAD:
        closing = closing_of(work, run, now)
    assert closing is None or isinstance(closing, Closing)
    decision = decide.progress(
        run,
        journey,
        anchor,
        now=now,
        early_signal=_early_signal(work, run, journey, anchor),
        closing=closing,
    )
    return decision if decision.is_noop else gates.admit(work, decision, now, lock=lock)


def closing_of(work: Work, run: WorkflowRun, now: datetime) -> Closing | None:
    """The digest batch a due digest wait closes, with its runs (locked), or None when the
    run is not such a wait."""
    due = decide.due_at(run)
    if run.state is RunState.WAITING and run.wait_kind == digest.NAME and due and due <= now:
        return gates.closing_of(work, run)
    return None


def _early_signal(
    work: Work, run: WorkflowRun, journey: Journey, anchor: Delivery | None
) -> SignalMark | None:
    """The earliest mark of a signal the run's wait would pend on, routed since the run
    entered its step (CONTRACT §13.1); read only when the decision may be to wait."""
    if anchor is None or decide.outcome_of(anchor.status, anchor.suppression_reason) is None:
        return None
    events = decide.wait_signals(run, journey)
    if not events:
        return None
    recipient, correlation_key = work.address(run.notification_id)
    return work.unit.earliest_mark(
        run.tenant_id, events, run.entered_step_at or run.started_at, recipient, correlation_key
    )


def progress_run(
    work: Work, run_id: str, now: datetime, *, run: WorkflowRun | None = None
) -> Progress:
    """Take the next step of one run, or a noop that writes nothing. ``run`` is the run
    when the caller has locked and read it already in this unit. The other runs the
    decision moves with it (the rest of a digest batch it closes) are in ``Progress.also``."""
    if run is None:
        run_id = require_id(run_id, "run_id")
        run = work.unit.run(run_id, lock=True)
        if run is None:
            raise RunNotFound(run_id)
    now = not_before(run, now)
    closing = closing_of(work, run, now)
    if closing is not None:  # no run of the batch gets a row older than its last one
        now = max([now, *(member.last_transition_at for member, _ in closing.members)])
    decision = decision_for(work, run, now, closing=closing)
    if decision.is_noop:
        return Progress(ProgressKind.NOOP, run, decision.reason, ())
    own, *others = work.carry_out(run, decision, now)
    return attrs.evolve(own, also=others) if others else own
