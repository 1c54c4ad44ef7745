"""Inspection (CONTRACT §6): explain and list_traces, always scoped to one tenant."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from ..core.arguments import require_limit
from ..core.errors import InvalidArgument
from ..core.records import Delivery, RunExplanation, RunState, WorkflowRun, WorkflowTransition
from ..machine.journey import Journey
from ..machine.kinds import Reading, gate_named
from ..machine.table import MOVES
from .explanation import explain_run
from .gates import zone_of
from .progression import anchor_of, decision_for
from .seed import visible_run
from .work import Work


def explain(work: Work, tenant_id: str, run_id: str) -> RunExplanation:
    """Why the run is where it is and what would move it next; tenant-scoped."""
    run = visible_run(work, tenant_id, run_id)
    workflow_key, workflow_version = work.definitions.key_of(run.workflow_definition_id)
    now = work.now
    anchor = anchor_of(work, run)
    trace = work.unit.transitions(run.id, None)
    journey = work.definitions.journey(run.workflow_definition_id)
    return explain_run(
        run,
        journey,
        trace[-1] if trace else None,
        decision_for(work, run, now, anchor, lock=False),
        workflow_key=workflow_key,
        workflow_version=workflow_version,
        anchor=anchor,
        now=now,
        transitions=trace,
        notification=work.unit.notification(run.notification_id),
        names=_gate_names(work, run, journey, anchor, now),
    )


def _gate_names(
    work: Work, run: WorkflowRun, journey: Journey, anchor: Delivery | None, now: datetime
) -> dict[str, Any]:
    """The facts the sentences of a throttle, window or digest status read (CONTRACT §14):
    the recipient's zone, the step's option, and the runs of its digest."""
    move = MOVES.get(run.status_reason)
    gate = None if move is None else gate_named(move.variant(run.status_context).rule_kind)
    options = journey.options.get(run.current_step_id, {})
    option = None if gate is None else options.get(gate.key)
    if gate is None or option is None:  # (also for a step the journey lacks: a damaged row)
        return {}
    name = work.notification(run.notification_id).timezone or "UTC"
    try:
        zone: tzinfo = zone_of(name)
    except InvalidArgument:  # no tz data for it on this machine: say the times in UTC
        zone, name = UTC, "UTC"
    items = None
    if run.state is RunState.WAITING and run.wait_kind == gate.name:
        batch_id = work.unit.batch_of_run(run.id)
        items = None if batch_id is None else work.unit.batch_size(batch_id)
    elif anchor is not None:
        items = anchor.digest_size
    reading = Reading(
        now=now,
        zone=zone,
        zone_name=name,
        step=journey.step(run.current_step_id),
        at=run.last_transition_at,
        due=run.suspended_until,
        items=items,
    )
    return gate.names(option, reading)


def list_traces(
    work: Work, tenant_id: str, run_id: str, limit: int | None
) -> list[WorkflowTransition]:
    """The run's trace in sequence order, at most ``limit`` rows; tenant-scoped."""
    count = require_limit(limit)
    run = visible_run(work, tenant_id, run_id)
    return work.unit.transitions(run.id, count)
