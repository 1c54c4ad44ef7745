"""The seed's low-level API (CONTRACT §8): runs read and written as they are, by the host.

These are the escape hatch: :func:`update_run` writes the given fields as they are and
:func:`append_transition` accepts any non-blank reason and any ``from_state``; they refuse
only what would break the spine itself (a terminal run getting another state, a context key
outside the catalogue). :func:`create_initial_run` starts a run as ``trigger`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ..core.arguments import json_text, optional_id, require_enum, require_id
from ..core.errors import (
    ConstraintFailed,
    InvalidArgument,
    InvalidTransition,
    InvalidWorkflow,
    RunNotFound,
    StepNotFound,
)
from ..core.ids import new_id
from ..core.records import (
    RunState,
    StepLinkage,
    WorkflowDefinition,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from ..core.timestamps import require_utc
from ..machine import decide
from ..machine.host_rules import check_context, check_state_change
from .work import Work

# Fields a host may change with update_run; identity and ownership stay fixed.
UPDATABLE = frozenset(f.name for f in attrs.fields(WorkflowRun)) - {
    "id",
    "tenant_id",
    "notification_id",
    "started_at",
}
_NAMES = ("status_reason", "current_step_id", "workflow_definition_id")
MAX_PENDING_SIGNALS = 64
_OPTIONAL_NAMES = ("terminal_reason", "wait_kind", "wait_target", "resumed_by")


def get_run(work: Work, run_id: object, *, lock: bool = False) -> WorkflowRun:
    """The run with this id, in any tenant, or RunNotFound; ``lock`` holds it for the rest
    of the unit of work (``tx.lock_run``)."""
    run = work.unit.run(require_id(run_id, "run_id"), lock=lock)
    if run is None:
        raise RunNotFound(run_id)
    return run


def visible_run(work: Work, tenant_id: object, run_id: object) -> WorkflowRun:
    """The run when it belongs to ``tenant_id``; another tenant's run and a missing run
    raise the same RunNotFound (CONTRACT §6)."""
    tenant = require_id(tenant_id, "tenant_id")
    run = work.unit.run(require_id(run_id, "run_id"), tenant_id=tenant)
    if run is None:
        raise RunNotFound(run_id)
    return run


def get_current_step(work: Work, run: WorkflowRun) -> WorkflowStep:
    """The step the run's cursor is on, or StepNotFound."""
    if not isinstance(run, WorkflowRun):
        raise InvalidArgument("run", f"expected a WorkflowRun, got {type(run).__name__}")
    step = work.unit.step(
        require_id(run.workflow_definition_id, "run.workflow_definition_id"),
        require_id(run.current_step_id, "run.current_step_id"),
    )
    if step is None:
        raise StepNotFound(run.current_step_id)
    return step


def update_run(work: Work, run: WorkflowRun | str, fields: Mapping[str, Any]) -> WorkflowRun:
    """Write ``fields`` to the run's row as given and return the updated run."""
    run_id = run.id if isinstance(run, WorkflowRun) else require_id(run, "run")
    current = get_run(work, run_id, lock=True)
    unknown = sorted(set(fields) - UPDATABLE)
    if unknown:
        raise InvalidArgument(
            "fields", f"cannot update {', '.join(unknown)}; updatable: {sorted(UPDATABLE)}"
        )
    changes = dict(fields)
    if "state" in changes:
        changes["state"] = require_enum(RunState, changes["state"], "state")
        check_state_change(run_id, current.state, changes["state"])
    if "status_context" in changes:
        json_text(changes["status_context"], "status_context")
        check_context(run_id, changes["status_context"])
    if "last_transition_at" in changes:
        changes["last_transition_at"] = require_utc(
            changes["last_transition_at"], "last_transition_at"
        )
    for name in ("suspended_until", "entered_step_at"):
        if changes.get(name) is not None:
            changes[name] = require_utc(changes[name], name)
    if "pending_signals" in changes:
        signals = changes["pending_signals"]
        if not isinstance(signals, (list, tuple)) or len(signals) > MAX_PENDING_SIGNALS:
            raise InvalidArgument(
                "pending_signals", f"must be a list of at most {MAX_PENDING_SIGNALS} event names"
            )
        changes["pending_signals"] = tuple(require_id(s, "pending_signals") for s in signals)
    for name in _NAMES:
        if name in changes:
            require_id(changes[name], name)
    for name in _OPTIONAL_NAMES:
        optional_id(changes.get(name), name)
    updated = attrs.evolve(current, **changes)
    work.unit.write_run(updated)
    return updated


def append_transition(
    work: Work,
    run_id: str,
    to_state: RunState | str,
    reason: str,
    *,
    workflow_step_id: str | None,
    delivery_id: str | None,
    from_state: RunState | str | None,
    context: Mapping[str, Any] | None,
) -> WorkflowTransition:
    """Append one trace row for a run and return it."""
    run = get_run(work, run_id, lock=True)
    target = require_enum(RunState, to_state, "to_state")
    source = None if from_state is None else require_enum(RunState, from_state, "from_state")
    reason = require_id(reason, "reason")
    context = {} if context is None else context
    json_text(context, "context")
    check_context(run.id, context)
    check_state_change(run.id, run.state, target)
    if source is not None:
        check_state_change(run.id, source, target)
    step_id = optional_id(workflow_step_id, "workflow_step_id")
    (seq,) = work.unit.next_seqs(1)
    transition = WorkflowTransition(
        id=new_id(),
        seq=seq,
        workflow_run_id=run.id,
        workflow_step_id=step_id,
        delivery_id=optional_id(delivery_id, "delivery_id"),
        from_state=source,
        to_state=target,
        reason=reason,
        context=dict(context),
        inserted_at=work.now,
    )
    try:
        work.unit.append_transitions([transition])
    except ConstraintFailed as exc:
        raise InvalidTransition(f"rejected by the store: {exc.problem}", run_id=run.id) from None
    return transition


def create_initial_run(
    work: Work,
    notification_id: str,
    definition: WorkflowDefinition,
    timestamp: datetime,
    tenant_id: str,
) -> WorkflowRun:
    """Start the run of a notification on the definition's first step (CONTRACT §4 item 1):
    the run and its two trace rows; planning the first delivery is the trigger's job."""
    now = require_utc(timestamp, "timestamp")
    notification_id = require_id(notification_id, "notification_id")
    tenant_id = require_id(tenant_id, "tenant_id")
    if not isinstance(definition, WorkflowDefinition):
        raise InvalidArgument(
            "definition", f"expected a WorkflowDefinition, got {type(definition).__name__}"
        )
    if not definition.steps:
        raise InvalidWorkflow("steps", "a definition without steps cannot start a run")
    owner = work.unit.notification_owner(notification_id)
    if owner is None or owner[0] != tenant_id:
        raise InvalidArgument("notification_id", "no notification with this id in this tenant")
    if owner[1]:
        raise InvalidArgument("notification_id", "the notification has a run already")
    decision = decide.start(
        work.definitions.journey(definition.id),
        run_id=new_id(),
        tenant_id=tenant_id,
        notification_id=notification_id,
        now=now,
    )
    run, _ = work.apply(None, attrs.evolve(decision, deliveries=()), now)
    return run


def active_step_linkage(work: Work, notification_id: str) -> StepLinkage | None:
    """The run and step the notification's deliveries belong to now, or None when it has no
    run or its run has finished."""
    return work.unit.active_step_linkage(require_id(notification_id, "notification_id"))
