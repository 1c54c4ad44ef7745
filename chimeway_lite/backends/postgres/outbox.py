"""Notifications, deliveries and claims on PostgreSQL: the SQL, beside the code that runs it.

A claim is one ``UPDATE … RETURNING`` over the ids a subquery picked ``FOR UPDATE SKIP
LOCKED``: workers claiming at once each take other deliveries, never waiting on each other
and never taking one twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ...core.errors import DamagedRow
from ...core.records import Delivery, DeliveryEvent, Notification, Signal
from ...core.timestamps import to_text
from ..sqlite import convert
from ..sqlite.inserts import values_of
from .executor import Executor, sql

_NOTIFICATION_FIELDS = convert.field_names(Notification)
# Every column but the data, whose canonical JSON the caller made already.
_BUT_DATA = convert.field_names(Notification, exclude=("data",))
_values_but_data = values_of(Notification, _BUT_DATA)
_NOTIFICATION_BY_KEY = sql(f"""
SELECT {convert.columns(Notification)} FROM notifications
 WHERE tenant_id = :tenant_id AND idempotency_key = :key
""")
_NOTIFICATION_OWNER = sql("""
SELECT tenant_id, EXISTS (SELECT 1 FROM workflow_runs WHERE notification_id = :id)
  FROM notifications WHERE id = :id
""")
# Idempotent trigger: the unique (tenant, idempotency key) decides; a second unit inserting
# the same key at the same time waits for the first to commit, then inserts nothing.
_INSERT_NOTIFICATION = sql(
    f"INSERT INTO notifications ({', '.join(_NOTIFICATION_FIELDS)}) "
    f"VALUES ({', '.join(':' + c for c in _NOTIFICATION_FIELDS)}) ON CONFLICT DO NOTHING"
)

_DELIVERY_FIELDS = convert.field_names(Delivery, exclude=("data", "config"))
# A delivery's column values only: its data and config (not columns) are not serialised.
_delivery_values = values_of(Delivery, _DELIVERY_FIELDS)
_DELIVERY_COLUMNS = convert.columns(Delivery, stop="data")
_D_COLUMNS = convert.columns(Delivery, "d", stop="data")
_FILLED = (
    "(SELECT n.data FROM notifications AS n WHERE n.id = d.notification_id), "
    "(SELECT s.config FROM workflow_steps AS s WHERE s.id = d.workflow_step_id)"
)
_SELECT_DELIVERY = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries"
_SELECT_FILLED = f"SELECT {_D_COLUMNS}, {_FILLED} FROM deliveries AS d"
_INSERT_DELIVERY = sql(
    f"INSERT INTO deliveries ({', '.join(_DELIVERY_FIELDS)}) "
    f"VALUES ({', '.join(':' + c for c in _DELIVERY_FIELDS)})"
)
_DELIVERY = {
    (False, False): sql(_SELECT_DELIVERY + " WHERE id = :id"),
    (False, True): sql(_SELECT_DELIVERY + " WHERE id = :id FOR UPDATE"),
    (True, False): sql(_SELECT_DELIVERY + " WHERE id = :id AND tenant_id = :tenant_id"),
    (True, True): sql(_SELECT_DELIVERY + " WHERE id = :id AND tenant_id = :tenant_id FOR UPDATE"),
}
# The latest delivery of (run, step): deliveries_by_run_step, newest first.
_ANCHOR = sql(
    _SELECT_DELIVERY
    + " WHERE workflow_run_id = :run_id AND workflow_step_id = :step_id"
    + " ORDER BY seq DESC LIMIT 1"
)
_FIRST_DELIVERY = sql(_SELECT_FILLED + " WHERE d.notification_id = :id ORDER BY d.seq LIMIT 1")
_DELIVERIES_OF_RUN = sql(_SELECT_FILLED + " WHERE d.workflow_run_id = :id ORDER BY d.seq")
_DELIVERY_TENANT = sql("SELECT tenant_id FROM deliveries WHERE id = :id")
# Claimable: pending deliveries whose retry time has come and dispatched ones whose lease ran
# out (not on their last attempt), oldest first; each half reads its partial index
# (deliveries_claimable, deliveries_leased) and skips the rows other claimers hold.
_CLAIM = sql(f"""
WITH ready AS (
    SELECT id, coalesce(available_at, inserted_at) AS k FROM deliveries
     WHERE status = 'pending' AND coalesce(available_at, inserted_at) <= :now
       AND (available_at IS NULL OR available_at <= :now)
       AND (:channel::text IS NULL OR channel = :channel)
     ORDER BY coalesce(available_at, inserted_at), id LIMIT :limit
     FOR UPDATE SKIP LOCKED),
lapsed AS (
    SELECT id, coalesce(available_at, inserted_at) AS k FROM deliveries
     WHERE status = 'dispatched' AND lease_expires_at <= :now
       AND (max_attempts IS NULL OR attempt < max_attempts)
       AND (:channel::text IS NULL OR channel = :channel)
     ORDER BY coalesce(available_at, inserted_at), id LIMIT :limit
     FOR UPDATE SKIP LOCKED),
picked AS (
    SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM lapsed) AS c
     ORDER BY k, id LIMIT :limit)
UPDATE deliveries AS d
   SET status = 'dispatched', attempt = d.attempt + 1, lease_expires_at = :lease,
       updated_at = :now
  FROM picked WHERE d.id = picked.id
RETURNING coalesce(d.available_at, d.inserted_at) AS claim_key, {_D_COLUMNS}, {_FILLED}
""")
_SPENT = (
    _SELECT_DELIVERY
    + " WHERE status = 'dispatched' AND lease_expires_at <= :now AND attempt >= max_attempts"
    + " ORDER BY lease_expires_at, id"
)
# In a write unit the spent leases are locked, skipping those another claimer exhausts.
_SPENT_LEASES = {False: sql(_SPENT), True: sql(_SPENT + " FOR UPDATE SKIP LOCKED")}
_NEXT_CLAIMABLE = sql("""
SELECT least(
    (SELECT coalesce(available_at, inserted_at) FROM deliveries
      WHERE status = 'pending' AND (:channel::text IS NULL OR channel = :channel)
      ORDER BY coalesce(available_at, inserted_at) LIMIT 1),
    (SELECT lease_expires_at FROM deliveries
      WHERE status = 'dispatched' AND lease_expires_at IS NOT NULL
        AND (:channel::text IS NULL OR channel = :channel)
      ORDER BY lease_expires_at LIMIT 1))
""")
_NOTIFICATION = sql(f"SELECT {convert.columns(Notification)} FROM notifications WHERE id = :id")
_ADDRESS = sql("SELECT recipient, correlation_key FROM notifications WHERE id = :id")
_EVENT_FIELDS = convert.field_names(DeliveryEvent, exclude=("seq",))
_INSERT_EVENT = sql(
    f"INSERT INTO delivery_events ({', '.join(_EVENT_FIELDS)}) "
    f"VALUES ({', '.join(':' + c for c in _EVENT_FIELDS)})"
)
_EVENTS = sql(
    f"SELECT {convert.columns(DeliveryEvent)} FROM delivery_events"
    " WHERE delivery_id = :id ORDER BY seq"
)
_INSERT_SIGNAL = sql("""
INSERT INTO signals (id, tenant_id, event_name, actor_id, payload, inserted_at, correlation_key)
VALUES (:id, :tenant_id, :event_name, :actor_id, :payload, :inserted_at, :correlation_key)
""")
_PENDING_OF_RUN = sql(
    _SELECT_DELIVERY + " WHERE workflow_run_id = :id AND status = 'pending' ORDER BY seq"
)
_UPDATE_DELIVERY: dict[tuple[str, ...], str] = {}


def _update_delivery_sql(columns: tuple[str, ...]) -> str:
    """``UPDATE deliveries`` of these columns (record field names, never input)."""
    found = _UPDATE_DELIVERY.get(columns)
    if found is None:
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        found = _UPDATE_DELIVERY[columns] = sql(
            f"UPDATE deliveries SET {assignments} WHERE id = :where_id"
        )
    return found


class OutboxQueries(Executor):
    """The notification and delivery half of
    :class:`~chimeway_lite.backends.postgres.unit.PostgresUnit`."""

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
        row = dict(zip(_BUT_DATA, _values_but_data(notification), strict=True))
        row["data"] = data_text
        return self.rowcount(_INSERT_NOTIFICATION, row) == 1

    def notification(self, notification_id: str) -> Notification | None:
        """A notification by id, or None."""
        row = self.one(_NOTIFICATION, {"id": notification_id})
        return None if row is None else convert.from_values(Notification, row)

    def notification_address(self, notification_id: str) -> tuple[str, str | None] | None:
        """A notification's recipient and correlation key, without its data, or None."""
        row = self.one(_ADDRESS, {"id": notification_id})
        return None if row is None else (row[0], row[1])

    def insert_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Insert planned deliveries (in order: their seq is the planning order)."""
        self.work_changed()
        for delivery in deliveries:
            row = dict(zip(_DELIVERY_FIELDS, _delivery_values(delivery), strict=True))
            self.execute(_INSERT_DELIVERY, row)

    def delivery(
        self, delivery_id: str, *, tenant_id: str | None = None, lock: bool = False
    ) -> Delivery | None:
        """A delivery (of ``tenant_id`` when given), without data or config; ``FOR UPDATE``
        when ``lock`` in a write unit."""
        query = _DELIVERY[tenant_id is not None, lock and self.write]
        row = self.one(query, {"id": delivery_id, "tenant_id": tenant_id})
        return None if row is None else convert.from_values(Delivery, row)

    def update_delivery(self, before: Delivery, after: Delivery) -> None:
        """Write the delivery's changed columns."""
        self.work_changed()
        columns = convert.changed_columns(before, after, exclude=("data", "config"))
        if columns:
            self.execute(_update_delivery_sql(tuple(columns)), {**columns, "where_id": before.id})

    def append_delivery_events(self, events: Sequence[DeliveryEvent]) -> None:
        """Append rows to the attempt history (in order: their seq is the order)."""
        for event in events:
            self.execute(_INSERT_EVENT, convert.to_row(event, exclude=("seq",)))

    def pending_deliveries(self, run_id: str) -> list[Delivery]:
        """The run's pending deliveries."""
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
        """Claim up to ``limit`` of the oldest claimable deliveries, with data and config."""
        params = {
            "now": to_text(now),
            "lease": to_text(lease_expires_at),
            "channel": channel,
            "limit": limit,
        }
        rows = self.all(_CLAIM, params)
        rows.sort(key=lambda r: (r[0], r[1]))  # RETURNING gives no order
        return convert.each(Delivery, [tuple(r)[1:] for r in rows])

    def spent_leases(self, now: datetime) -> list[Delivery | DamagedRow]:
        """Dispatched deliveries whose lease ran out on their last allowed attempt."""
        return convert.each(Delivery, self.all(_SPENT_LEASES[self.write], {"now": to_text(now)}))

    def next_claimable_at(self, channel: str | None = None) -> datetime | None:
        """The earliest time a claim (of ``channel``, when given) finds a delivery to take."""
        row = self.one(_NEXT_CLAIMABLE, {"channel": channel})
        return None if row[0] is None else convert.time_of(row[0], "deliveries", None)

    def insert_signal(self, signal: Signal) -> None:
        """Record a signal."""
        self.execute(_INSERT_SIGNAL, convert.to_row(signal))
