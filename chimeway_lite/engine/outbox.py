"""Trigger (CONTRACT §7): a notification in, its run started, its first delivery planned."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..core.arguments import checked_data, optional_key, require_id
from ..core.errors import InvalidArgument, InvalidWorkflow
from ..core.ids import new_id
from ..core.records import Delivery, Notification, TriggerResult, WorkflowDefinition
from ..declarations import Workflow
from ..machine import decide
from ..machine.decision import Decision
from ..machine.journey import Journey
from .gates import admit, require_timezone
from .work import Work


def trigger(
    work: Work,
    *,
    tenant_id: str,
    notification_key: str,
    recipient: str,
    workflow: Workflow | Mapping[str, Any] | WorkflowDefinition,
    idempotency_key: str,
    data: Mapping[str, Any] | None = None,
    correlation_key: str | None = None,
    timezone: str | None = None,
) -> TriggerResult:
    """Record a notification, start its run and plan the first delivery (unless a step
    option of the first step holds it back: CONTRACT §14); or return the first result of
    the same (tenant, idempotency key), marked duplicate."""
    tenant_id = require_id(tenant_id, "tenant_id")
    recipient = require_id(recipient, "recipient")
    idempotency_key = require_id(idempotency_key, "idempotency_key")
    notification_key = require_id(notification_key, "notification_key")
    data, data_text = checked_data(data, "data")
    correlation_key = optional_key(correlation_key, "correlation_key")
    timezone = require_timezone(timezone)
    if not isinstance(workflow, WorkflowDefinition):
        known = work.definitions.registered_id(workflow)
        if known is not None:
            # The definition is known and identical: insert at once, the key's uniqueness
            # telling a duplicate apart, rather than read the key first (one statement less
            # for every new notification; a duplicate reads the first one after the insert).
            notification = _notification(
                known,
                work.now,
                tenant_id,
                recipient,
                notification_key,
                idempotency_key,
                data,
                correlation_key,
                timezone,
            )
            if not work.unit.insert_notification(notification, data_text):
                return _taken(work, tenant_id, idempotency_key)
            work.unit.set_notification_key(known, notification_key, notification.inserted_at)
            return _start(work, notification)
    found = work.unit.notification_by_key(tenant_id, idempotency_key)
    if found is not None:
        return duplicate(work, found)
    now = work.now
    if isinstance(workflow, WorkflowDefinition):
        definition = work.definitions.by_id(workflow.id)
        if definition is None:
            raise InvalidArgument("workflow", "the definition is not registered in this store")
        if not definition.steps:
            raise InvalidWorkflow("steps", "a definition without steps cannot start a run")
        definition_id = definition.id
    else:
        definition_id = work.definitions.ensure_id(notification_key, workflow, now)
    notification = _notification(
        definition_id,
        now,
        tenant_id,
        recipient,
        notification_key,
        idempotency_key,
        data,
        correlation_key,
        timezone,
    )
    if not work.unit.insert_notification(notification, data_text):
        # Another unit took the key since we looked (a backend without a global write
        # lock): its result is the first one.
        return _taken(work, tenant_id, idempotency_key)
    return _start(work, notification)


def _notification(
    definition_id: str,
    now: datetime,
    tenant_id: str,
    recipient: str,
    notification_key: str,
    idempotency_key: str,
    data: dict[str, Any],
    correlation_key: str | None,
    timezone: str | None,
) -> Notification:
    return Notification(
        id=new_id(),
        tenant_id=tenant_id,
        recipient=recipient,
        notification_key=notification_key,
        idempotency_key=idempotency_key,
        workflow_definition_id=definition_id,
        inserted_at=now,
        data=data,
        correlation_key=correlation_key,
        timezone=timezone,
    )


def _taken(work: Work, tenant_id: str, idempotency_key: str) -> TriggerResult:
    """The first result of a key whose insert found it taken."""
    taken = work.unit.notification_by_key(tenant_id, idempotency_key)
    assert taken is not None
    return duplicate(work, taken)


def _start(work: Work, notification: Notification) -> TriggerResult:
    """Start the run of a notification inserted just now, and plan its first delivery."""
    now = notification.inserted_at
    definition_id = notification.workflow_definition_id
    assert definition_id is not None
    # The notification was inserted just now, in this tenant: it has no run yet, so the
    # checks of create_initial_run would only cost a read.
    work.remember(notification)
    journey = work.definitions.journey(definition_id)
    decision = decide.start(
        journey,
        run_id=new_id(),
        tenant_id=notification.tenant_id,
        notification_id=notification.id,
        now=now,
    )
    if ungated(decision, journey):
        run, deliveries = work.apply(None, decision, now, notification=notification)
        return TriggerResult(notification, run, tuple(deliveries), False)
    started = work.carry_out(None, admit(work, decision, now), now, notification=notification)
    return TriggerResult(notification, started[0].run, started[0].deliveries, False)


def ungated(decision: Decision, journey: Journey) -> bool:
    """True when the step a start activates has no gate (throttle, window, digest): then
    nothing can hold the run back or count it, and the decision moves no other run and no
    digest batch, so it is written as it is (``Work.apply``), without ``gates.admit`` and
    ``Work.carry_out``."""
    return decide.entering(decision, journey) is None


def duplicate(work: Work, notification: Notification) -> TriggerResult:
    """The first result of a notification triggered before, marked duplicate."""
    run = work.unit.run_of_notification(notification.id)
    if run is None:
        raise InvalidArgument(
            "idempotency_key", "its notification has no run (a damaged store: see verify())"
        )
    first = work.unit.first_delivery(notification.id)
    return TriggerResult(notification, run, () if first is None else (first,), True)


def list_deliveries(work: Work, run_id: str) -> list[Delivery]:
    """Every delivery planned for a run, oldest first (the run is checked by the caller)."""
    return work.unit.deliveries_of_run(run_id)
