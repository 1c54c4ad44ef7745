"""Notifications, deliveries and claims: the SQL, beside the code that runs it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ...core.errors import ConstraintFailed
from ...core.records import Delivery, DeliveryStatus, Notification, Signal
from ...core.timestamps import to_text
from . import convert
from .executor import Executor

_NOTIFICATION_FIELDS = convert.field_names(Notification)
_NOTIFICATION_BY_KEY = f"""
SELECT {convert.columns(Notification)} FROM notifications
 WHERE tenant_id = :tenant_id AND idempotency_key = :key
"""
_NOTIFICATION_OWNER = """
SELECT tenant_id, (SELECT count(*) FROM workflow_runs WHERE notification_id = :id)
  FROM notifications WHERE id = :id
"""
_INSERT_NOTIFICATION = (
    f"INSERT INTO notifications ({', '.join(_NOTIFICATION_FIELDS)}) "
    f"VALUES ({', '.join(':' + c for c in _NOTIFICATION_FIELDS)})"
)

_DELIVERY_FIELDS = convert.field_names(Delivery)
_SELECT_DELIVERY = f"SELECT {convert.columns(Delivery)} FROM deliveries"
_INSERT_DELIVERY = (
    f"INSERT INTO deliveries ({', '.join(_DELIVERY_FIELDS)}) "
    f"VALUES ({', '.join(':' + c for c in _DELIVERY_FIELDS)})"
)
# The latest delivery of (run, step): deliveries_by_run_step, newest rowid first.
_ANCHOR = (
    _SELECT_DELIVERY
    + " WHERE workflow_run_id = :run_id AND workflow_step_id = :step_id"
    + " ORDER BY rowid DESC LIMIT 1"
)
_FIRST_DELIVERY = _SELECT_DELIVERY + " WHERE notification_id = :id ORDER BY rowid LIMIT 1"
_DELIVERIES_OF_RUN = _SELECT_DELIVERY + " WHERE workflow_run_id = :id ORDER BY rowid"
_DELIVERY_TENANT = "SELECT tenant_id FROM deliveries WHERE id = :id"
# One UPDATE … RETURNING under the write lock: two workers never claim the same delivery.
_CLAIM = f"""
UPDATE deliveries SET status = 'dispatched', updated_at = :now
 WHERE id IN (SELECT id FROM deliveries
               WHERE status = 'pending' AND (:channel IS NULL OR channel = :channel)
               ORDER BY inserted_at, rowid LIMIT :limit)
RETURNING rowid, {convert.columns(Delivery)}
"""
_SET_STATUS = f"""
UPDATE deliveries SET status = :status, suppression_reason = :reason, updated_at = :now
 WHERE id = :id
RETURNING {convert.columns(Delivery)}
"""
_INSERT_SIGNAL = """
INSERT INTO signals (id, tenant_id, event_name, actor_id, payload, inserted_at)
VALUES (:id, :tenant_id, :event_name, :actor_id, :payload, :inserted_at)
"""


class OutboxQueries(Executor):
    """The notification and delivery half of
    :class:`~chimeway_lite.backends.sqlite.unit.SqliteUnit`."""

    def notification_by_key(self, tenant_id: str, idempotency_key: str) -> Notification | None:
        """The notification of (tenant, idempotency key), or None."""
        row = self.one(_NOTIFICATION_BY_KEY, {"tenant_id": tenant_id, "key": idempotency_key})
        return None if row is None else convert.from_values(Notification, row)

    def notification_owner(self, notification_id: str) -> tuple[str, bool] | None:
        """(tenant_id, has a run) of a notification, or None."""
        row = self.one(_NOTIFICATION_OWNER, {"id": notification_id})
        return None if row is None else (row[0], bool(row[1]))

    def insert_notification(self, notification: Notification) -> bool:
        """Insert a notification; False when (tenant, idempotency key) is taken."""
        try:
            self.execute(_INSERT_NOTIFICATION, convert.to_row(notification))
        except ConstraintFailed:
            return False
        return True

    def insert_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Insert planned deliveries."""
        self.insert(_INSERT_DELIVERY, [convert.to_row(d) for d in deliveries])

    def anchor(self, run_id: str, step_id: str) -> Delivery | None:
        """The latest delivery planned for (run, step), or None."""
        row = self.one(_ANCHOR, {"run_id": run_id, "step_id": step_id})
        return None if row is None else convert.from_values(Delivery, row)

    def first_delivery(self, notification_id: str) -> Delivery | None:
        """The first delivery planned for a notification, or None."""
        row = self.one(_FIRST_DELIVERY, {"id": notification_id})
        return None if row is None else convert.from_values(Delivery, row)

    def deliveries_of_run(self, run_id: str) -> list[Delivery]:
        """Every delivery planned for a run, oldest first."""
        return [
            convert.from_values(Delivery, r) for r in self.all(_DELIVERIES_OF_RUN, {"id": run_id})
        ]

    def delivery_tenant(self, delivery_id: str) -> str | None:
        """The tenant of a delivery, or None."""
        row = self.one(_DELIVERY_TENANT, {"id": delivery_id})
        return None if row is None else str(row[0])

    def claim(self, limit: int, channel: str | None, now: datetime) -> list[Delivery]:
        """Move up to ``limit`` of the oldest pending deliveries to dispatched."""
        rows = self.all(_CLAIM, {"now": to_text(now), "channel": channel, "limit": limit})
        # RETURNING gives no order: restore the claim order (oldest first).
        rows.sort(key=lambda r: (r["inserted_at"], r[0]))
        return [convert.from_values(Delivery, tuple(r)[1:]) for r in rows]

    def set_delivery_status(
        self,
        delivery_id: str,
        status: DeliveryStatus,
        suppression_reason: str | None,
        now: datetime,
    ) -> Delivery | None:
        """Record a delivery's status and return the delivery, or None."""
        row = self.one(
            _SET_STATUS,
            {
                "status": status.value,
                "reason": suppression_reason,
                "now": to_text(now),
                "id": delivery_id,
            },
        )
        return None if row is None else convert.from_values(Delivery, row)

    def insert_signal(self, signal: Signal) -> None:
        """Record a signal."""
        self.execute(_INSERT_SIGNAL, convert.to_row(signal))
