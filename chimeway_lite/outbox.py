"""Trigger and outbox (SPEC §7): notifications in, planned deliveries out, outcomes back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import convert
from .arguments import (
    optional_id,
    optional_reason,
    require_enum,
    require_id,
    require_limit,
)
from .declarations import Workflow
from .errors import (
    DeliveryNotFound,
    InvalidArgument,
    InvalidWorkflow,
)
from .progression import Progression
from .records import (
    Delivery,
    DeliveryStatus,
    Notification,
    Progress,
    TriggerResult,
    WorkflowDefinition,
    WorkflowRun,
)
from .spine import new_id
from .timestamps import to_text

_INSERT_NOTIFICATION = """
INSERT INTO notifications
    (id, tenant_id, recipient, notification_key, idempotency_key, workflow_definition_id,
     inserted_at)
VALUES
    (:id, :tenant_id, :recipient, :notification_key, :idempotency_key,
     :workflow_definition_id, :inserted_at)
"""


class Outbox(Progression):
    """trigger, claim_deliveries, record_outcome, list_deliveries."""

    def trigger(
        self,
        *,
        tenant_id: str,
        notification_key: str,
        recipient: str,
        workflow: Workflow | Mapping[str, Any] | WorkflowDefinition,
        idempotency_key: str,
    ) -> TriggerResult:
        """Record a notification, start its run and plan the first delivery; or return the
        first result of the same (tenant, idempotency key), marked duplicate."""
        tenant_id = require_id(tenant_id, "tenant_id")
        recipient = require_id(recipient, "recipient")
        idempotency_key = require_id(idempotency_key, "idempotency_key")
        notification_key = require_id(notification_key, "notification_key")
        found = self._conn.execute(
            "SELECT * FROM notifications WHERE tenant_id = ? AND idempotency_key = ?",
            (tenant_id, idempotency_key),
        ).fetchone()
        if found is not None:
            return self._duplicate(convert.from_row(Notification, found))
        if isinstance(workflow, WorkflowDefinition):
            definition = self.definitions.by_id(workflow.id)
            if definition is None:
                raise InvalidArgument("workflow", "the definition is not registered in this store")
            if not definition.steps:
                raise InvalidWorkflow("steps", "a definition without steps cannot start a run")
            definition_id = definition.id
        else:
            definition_id = self.definitions.ensure_id(notification_key, workflow, self.now())
        now = self.now()
        notification = Notification(
            id=new_id(),
            tenant_id=tenant_id,
            recipient=recipient,
            notification_key=notification_key,
            idempotency_key=idempotency_key,
            workflow_definition_id=definition_id,
            inserted_at=now,
        )
        self._conn.execute(_INSERT_NOTIFICATION, convert.to_row(notification))
        # The notification was inserted just now, in this tenant: it has no run yet, so the
        # checks of create_initial_run would only cost a read (issue 5).
        run, deliveries = self._open_run(
            notification.id, self._journey(definition_id), now, tenant_id, plan_delivery=True
        )
        return TriggerResult(notification, run, tuple(deliveries), False)

    def _duplicate(self, notification: Notification) -> TriggerResult:
        run = self._conn.execute(
            "SELECT * FROM workflow_runs WHERE notification_id = ?", (notification.id,)
        ).fetchone()
        first = self._conn.execute(
            "SELECT * FROM deliveries WHERE notification_id = ? ORDER BY rowid LIMIT 1",
            (notification.id,),
        ).fetchone()
        return TriggerResult(
            notification,
            convert.from_row(WorkflowRun, run),
            () if first is None else (convert.from_row(Delivery, first),),
            True,
        )

    def claim_deliveries(self, limit: int = 100, *, channel: str | None = None) -> list[Delivery]:
        """Move up to ``limit`` of the oldest pending deliveries to dispatched and return them.

        One ``UPDATE … RETURNING`` under the write lock: two workers never claim the same one.
        """
        count = require_limit(limit, allow_none=False)
        channel = optional_id(channel, "channel")
        if not count:
            return []
        rows = self._conn.execute(
            """
            UPDATE deliveries SET status = 'dispatched', updated_at = :now
             WHERE id IN (SELECT id FROM deliveries
                           WHERE status = 'pending' AND (:channel IS NULL OR channel = :channel)
                           ORDER BY inserted_at, rowid LIMIT :limit)
            RETURNING rowid AS claim_order, *
            """,
            {"now": to_text(self.now()), "channel": channel, "limit": count},
        ).fetchall()
        rows.sort(key=lambda r: (r["inserted_at"], r["claim_order"]))
        return [convert.from_row(Delivery, r) for r in rows]

    def record_outcome(
        self,
        delivery_id: str,
        status: DeliveryStatus | str,
        suppression_reason: str | None = None,
    ) -> Progress | None:
        """Record a delivery's outcome and progress its run in the same transaction.

        Returns the run's Progress, or None for a delivery that belongs to no run.
        """
        delivery_id = require_id(delivery_id, "delivery_id")
        new_status = require_enum(DeliveryStatus, status, "status")
        reason = optional_reason(suppression_reason, "suppression_reason")
        now = self.now()
        row = self._conn.execute(
            "UPDATE deliveries SET status = :status, suppression_reason = :reason, "
            "updated_at = :now WHERE id = :id RETURNING workflow_run_id",
            {"status": new_status.value, "reason": reason, "now": to_text(now), "id": delivery_id},
        ).fetchone()
        if row is None:
            raise DeliveryNotFound(delivery_id)
        if row[0] is None:
            return None
        return self.progress_run(row[0], now=now)

    def list_deliveries(self, tenant_id: str, run_id: str) -> list[Delivery]:
        """Every delivery planned for the run, oldest first; tenant-scoped."""
        run = self._visible_run(tenant_id, run_id)
        rows = self._conn.execute(
            "SELECT * FROM deliveries WHERE workflow_run_id = ? ORDER BY rowid", (run.id,)
        ).fetchall()
        return [convert.from_row(Delivery, r) for r in rows]
