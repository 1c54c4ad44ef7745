"""Inspection (CONTRACT §6): explain and list_traces, always scoped to one tenant."""

from __future__ import annotations

from ..core.arguments import require_limit
from ..core.records import RunExplanation, WorkflowTransition
from .explanation import explain_run
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
    return explain_run(
        run,
        work.definitions.journey(run.workflow_definition_id),
        trace[-1] if trace else None,
        decision_for(work, run, now, anchor),
        workflow_key=workflow_key,
        workflow_version=workflow_version,
        anchor=anchor,
        now=now,
        transitions=trace,
        notification=work.unit.notification(run.notification_id),
    )


def list_traces(
    work: Work, tenant_id: str, run_id: str, limit: int | None
) -> list[WorkflowTransition]:
    """The run's trace in sequence order, at most ``limit`` rows; tenant-scoped."""
    count = require_limit(limit)
    run = visible_run(work, tenant_id, run_id)
    return work.unit.transitions(run.id, count)
