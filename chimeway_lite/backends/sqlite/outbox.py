"""Notifications, deliveries and claims: the SQL, beside the code that runs it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ...core.errors import ConstraintFailed, DamagedRow
from ...core.records import Delivery, DeliveryEvent, Notification, Signal
from ...core.timestamps import from_text, to_text
from . import convert
from .executor import Executor
from .inserts import Insert, values_of

_NOTIFICATION_BY_KEY = f"""
SELECT {convert.columns(Notification)} FROM notifications
 WHERE tenant_id = :tenant_id AND idempotency_key = :key
"""
_NOTIFICATION_OWNER = """
SELECT tenant_id, (SELECT count(*) FROM workflow_runs WHERE notification_id = :id)
  FROM notifications WHERE id = :id
"""
# A notification's row, its data's canonical JSON as the caller made it (not made twice).
_BUT_DATA = convert.field_names(Notification, exclude=("data",))
_INSERT_NOTIFICATION = (
    f"INSERT INTO notifications ({', '.join(_BUT_DATA)}, data) "
    f"VALUES ({', '.join('?' * (len(_BUT_DATA) + 1))})"
)
_values_but_data = values_of(Notification, _BUT_DATA)

# A delivery's columns; its data and config are not columns: they are read from its
# notification and its step (_FILLED), for the reads that hand deliveries to workers.
_DELIVERY_COLUMNS = convert.columns(Delivery, stop="data")
_FILLED = (
    "(SELECT n.data FROM notifications AS n WHERE n.id = deliveries.notification_id), "
    "(SELECT s.config FROM workflow_steps AS s WHERE s.id = deliveries.workflow_step_id)"
)
_SELECT_DELIVERY = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries"
_SELECT_FILLED = f"SELECT {_DELIVERY_COLUMNS}, {_FILLED} FROM deliveries"
_INSERT_DELIVERY = Insert("deliveries", Delivery, exclude=("data", "config"))
_DELIVERY = _SELECT_DELIVERY + " WHERE id = :id"
_DELIVERY_IN_TENANT = _SELECT_DELIVERY + " WHERE id = :id AND tenant_id = :tenant_id"
# The latest delivery of (run, step): deliveries_by_run_step, newest rowid first.
_ANCHOR = (
    _SELECT_DELIVERY
    + " WHERE workflow_run_id = :run_id AND workflow_step_id = :step_id"
    + " ORDER BY rowid DESC LIMIT 1"
)
_FIRST_DELIVERY = _SELECT_FILLED + " WHERE notification_id = :id ORDER BY rowid LIMIT 1"
_DELIVERIES_OF_RUN = _SELECT_FILLED + " WHERE workflow_run_id = :id ORDER BY rowid"
_DELIVERY_TENANT = "SELECT tenant_id FROM deliveries WHERE id = :id"
# One UPDATE … RETURNING under the write lock: two workers never hold the same delivery.
# Claimable are pending deliveries whose retry time has come and dispatched ones whose
# lease ran out, oldest first; each half reads its partial index (deliveries_claimable,
# deliveries_leased) for at most :limit rows.
_CLAIM = f"""
UPDATE deliveries
   SET status = 'dispatched', attempt = attempt + 1, lease_expires_at = :lease,
       updated_at = :now
 WHERE id IN (
    SELECT id FROM (
        SELECT id, k FROM (
            SELECT id, coalesce(available_at, inserted_at) AS k FROM deliveries
             WHERE status = 'pending' AND coalesce(available_at, inserted_at) <= :now
               AND (available_at IS NULL OR available_at <= :now)
               AND (:channel IS NULL OR channel = :channel)
             ORDER BY k, id LIMIT :limit)
        UNION ALL
        SELECT id, k FROM (
            SELECT id, coalesce(available_at, inserted_at) AS k FROM deliveries
             WHERE status = 'dispatched' AND lease_expires_at <= :now
               AND (max_attempts IS NULL OR attempt < max_attempts)
               AND (:channel IS NULL OR channel = :channel)
             ORDER BY k, id LIMIT :limit)
        ORDER BY k, id LIMIT :limit))
RETURNING coalesce(available_at, inserted_at) AS claim_key, {_DELIVERY_COLUMNS}, {_FILLED}
"""
# Leases that ran out on their last attempt: exhausted before the claim (deliveries_leased).
_SPENT_LEASES = (
    _SELECT_DELIVERY
    + " WHERE status = 'dispatched' AND lease_expires_at <= :now AND attempt >= max_attempts"
    + " ORDER BY lease_expires_at, id"
)
# The earliest claim time (of one channel, or of all): each half walks its partial index in
# order and stops at the first row of the channel, so the cost follows the rows of other
# channels ahead of it, not the outbox.
_NEXT_CLAIMABLE = """
SELECT min(k) FROM (
    SELECT k FROM (
        SELECT coalesce(available_at, inserted_at) AS k FROM deliveries
         WHERE status = 'pending' AND (:channel IS NULL OR channel = :channel)
         ORDER BY coalesce(available_at, inserted_at) LIMIT 1)
    UNION ALL
    SELECT k FROM (
        SELECT lease_expires_at AS k FROM deliveries
         WHERE status = 'dispatched' AND lease_expires_at IS NOT NULL
           AND (:channel IS NULL OR channel = :channel)
         ORDER BY lease_expires_at LIMIT 1))
"""
_NEXT_CLAIMABLE_WELL_FORMED = f"""
SELECT min(k) FROM (
    SELECT min(coalesce(available_at, inserted_at)) AS k FROM deliveries
     WHERE status = 'pending' AND (:channel IS NULL OR channel = :channel)
       AND coalesce(available_at, inserted_at) GLOB {convert.WELL_FORMED_TIME}
    UNION ALL
    SELECT min(lease_expires_at) FROM deliveries
     WHERE status = 'dispatched' AND (:channel IS NULL OR channel = :channel)
       AND lease_expires_at GLOB {convert.WELL_FORMED_TIME})
"""
_NOTIFICATION = f"SELECT {convert.columns(Notification)} FROM notifications WHERE id = :id"
_ADDRESS = "SELECT recipient, correlation_key FROM notifications WHERE id = :id"
_INSERT_EVENT = Insert("delivery_events", DeliveryEvent, exclude=("seq",))
_EVENTS = (
    f"SELECT {convert.columns(DeliveryEvent)} FROM delivery_events"
    " WHERE delivery_id = :id ORDER BY seq"
)
_INSERT_SIGNAL = """
INSERT INTO signals (id, tenant_id, event_name, actor_id, payload, inserted_at, correlation_key)
VALUES (:id, :tenant_id, :event_name, :actor_id, :payload, :inserted_at, :correlation_key)
"""
_PENDING_OF_RUN = _SELECT_DELIVERY + " WHERE workflow_run_id = :id AND status = 'pending'"
_UPDATE_DELIVERY: dict[tuple[str, ...], str] = {}


def _update_delivery_sql(columns: tuple[str, ...]) -> str:
    """``UPDATE deliveries`` of these columns (record field names, never input)."""
    sql = _UPDATE_DELIVERY.get(columns)
    if sql is None:
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        sql = _UPDATE_DELIVERY[columns] = (
            f"UPDATE deliveries SET {assignments} WHERE id = :where_id"
        )
    return sql


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

    def insert_notification(self, notification: Notification, data_text: str) -> bool:
        """Insert a notification with ``data_text``, its data's canonical JSON; False when
        (tenant, idempotency key) is taken."""
        try:
            self.execute(_INSERT_NOTIFICATION, [*_values_but_data(notification), data_text])
        except ConstraintFailed:
            return False
        return True

    def notification(self, notification_id: str) -> Notification | None:
        """A notification by id, or None."""
        row = self.one(_NOTIFICATION, {"id": notification_id})
        return None if row is None else convert.from_values(Notification, row)

    def notification_address(self, notification_id: str) -> tuple[str, str | None] | None:
        """A notification's recipient and correlation key, without its data, or None."""
        row = self.one(_ADDRESS, {"id": notification_id})
        return None if row is None else (row[0], row[1])

    def insert_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Insert planned deliveries."""
        self.insert_records(_INSERT_DELIVERY, deliveries)

    def delivery(
        self, delivery_id: str, *, tenant_id: str | None = None, lock: bool = False
    ) -> Delivery | None:
        """A delivery (of ``tenant_id`` when given), without data or config. A write unit
        holds the write lock already, so the read is locked."""
        if tenant_id is None:
            row = self.one(_DELIVERY, {"id": delivery_id})
        else:
            row = self.one(_DELIVERY_IN_TENANT, {"id": delivery_id, "tenant_id": tenant_id})
        return None if row is None else convert.from_values(Delivery, row)

    def update_delivery(self, before: Delivery, after: Delivery) -> None:
        """Write the delivery's changed columns."""
        columns = convert.changed_columns(before, after, exclude=("data", "config"))
        if columns:
            self.execute(_update_delivery_sql(tuple(columns)), {**columns, "where_id": before.id})

    def append_delivery_events(self, events: Sequence[DeliveryEvent]) -> None:
        """Append rows to the attempt history."""
        self.insert_records(_INSERT_EVENT, events)

    def pending_deliveries(self, run_id: str) -> list[Delivery]:
        """The run's pending deliveries (a cancel cancels them)."""
        return [convert.from_values(Delivery, r) for r in self.all(_PENDING_OF_RUN, {"id": run_id})]

    def delivery_events(self, delivery_id: str) -> list[DeliveryEvent]:
        """A delivery's attempt history, in order."""
        rows = self.all(_EVENTS, {"id": delivery_id})
        return [convert.from_values(DeliveryEvent, r) for r in rows]

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

    def claim(
        self, limit: int, channel: str | None, now: datetime, lease_expires_at: datetime
    ) -> list[Delivery | DamagedRow]:
        """Claim up to ``limit`` of the oldest claimable deliveries, with data and config (a
        damaged row as its :class:`DamagedRow`)."""
        params = {
            "now": to_text(now),
            "lease": to_text(lease_expires_at),
            "channel": channel,
            "limit": limit,
        }
        rows = self.all(_CLAIM, params)
        # RETURNING gives no order: restore the claim order (oldest first, then id).
        rows.sort(key=lambda r: (r[0], r[1]))
        return convert.each(Delivery, [tuple(r)[1:] for r in rows])

    def spent_leases(self, now: datetime) -> list[Delivery | DamagedRow]:
        """Dispatched deliveries whose lease ran out on their last allowed attempt (a
        damaged row as its :class:`DamagedRow`)."""
        return convert.each(Delivery, self.all(_SPENT_LEASES, {"now": to_text(now)}))

    def next_claimable_at(self, channel: str | None = None) -> datetime | None:
        """The earliest time a claim (of ``channel``, when given) finds a delivery to take,
        or None."""
        row = self.one(_NEXT_CLAIMABLE, {"channel": channel})
        if row[0] is None:
            return None
        try:
            return from_text(row[0])
        except ValueError:  # a damaged row sorts first: the earliest well-formed one
            row = self.one(_NEXT_CLAIMABLE_WELL_FORMED, {"channel": channel})
            return None if row[0] is None else from_text(row[0])

    def insert_signal(self, signal: Signal) -> None:
        """Record a signal."""
        self.execute(_INSERT_SIGNAL, convert.to_row(signal))
