"""The chimeway_lite side of each benchmark: the journeys through the public Store API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shapes import (
    EVENT,
    NOTIFICATION_KEY,
    RETRY_BACKOFF_SECONDS,
    RETRY_WORKFLOW,
    WORKFLOW,
    MovableClock,
    after,
)

from chimeway_lite import DeliveryStatus, FakeClock, ProgressKind, Signal, Store, Workflow


def open_store(path: str, now: datetime) -> tuple[Store, MovableClock]:
    """A store on ``path`` driven by a clock the benchmark moves."""
    clock = MovableClock(now)
    return Store(path, clock=clock), clock


def trigger(
    store: Store,
    tenant_id: str,
    recipient: str,
    key: str,
    workflow: Workflow = WORKFLOW,
    data: dict[str, Any] | None = None,
) -> str:
    """One trigger with the declaration object (as a host passes it on every call)."""
    result = store.trigger(
        tenant_id=tenant_id,
        notification_key=NOTIFICATION_KEY,
        recipient=recipient,
        workflow=workflow,
        idempotency_key=key,
        data=data,
    )
    return result.run.id


def succeed_all(store: Store, batch: int, lease_seconds: int = 300) -> int:
    """Claim deliveries ``batch`` at a time and record each as succeeded (the send is a
    no-op); until a claim finds nothing. Returns the deliveries recorded."""
    done = 0
    while True:
        claimed = store.claim_deliveries(batch, lease_seconds=lease_seconds)
        if not claimed:
            return done
        for delivery in claimed:
            store.record_outcome(delivery.id, DeliveryStatus.SUCCEEDED)
            done += 1


def fail_all(store: Store, batch: int) -> int:
    """Claim deliveries ``batch`` at a time and record each as failed."""
    done = 0
    while True:
        claimed = store.claim_deliveries(batch)
        if not claimed:
            return done
        for delivery in claimed:
            store.record_outcome(delivery.id, DeliveryStatus.FAILED)
            done += 1


def journeys(
    store: Store, clock: MovableClock, count: int, start: datetime, batch: int, first: int = 0
) -> int:
    """``count`` full journeys as a host drives them: trigger each; claim and succeed the
    in-app deliveries (each run waits); sweep once the wait is due (each run moves to the
    email step); claim and succeed the emails (each run completes). Returns runs completed."""
    clock.instant = start
    for i in range(first, first + count):
        trigger(store, "tenant-journey", f"user-{i}", f"journey-{i}")
    succeed_all(store, batch)
    clock.instant = after(start, 7200 + 1)
    moved = store.progress_due_runs()
    succeed_all(store, batch)
    completed = sum(1 for p in moved if p.kind is ProgressKind.ADVANCED)
    return completed


def succeed_batches(store: Store, batch: int, lease_seconds: int = 300) -> int:
    """Claim deliveries ``batch`` at a time and record each claim's outcomes with one
    ``record_outcomes`` (one transaction); until a claim finds nothing."""
    done = 0
    while True:
        claimed = store.claim_deliveries(batch, lease_seconds=lease_seconds)
        if not claimed:
            return done
        store.record_outcomes([(d.id, DeliveryStatus.SUCCEEDED) for d in claimed])
        done += len(claimed)


def sweep_batches(store: Store, now: datetime, batch: int) -> int:
    """The due sweep ``batch`` runs per transaction (``store.transaction()``, a page of
    due runs, ``progress_run`` of each); runs advanced."""
    moved = 0
    cursor = None
    while True:
        with store.transaction() as tx:
            page = tx.due_page(now, batch, cursor)
            for run_id, position in page:
                moved += tx.progress_run(run_id, now=now).kind is ProgressKind.ADVANCED
                cursor = position
        if len(page) < batch:
            return moved


def trigger_batch(store: Store, tenant_id: str, first: int, count: int) -> int:
    """``count`` triggers in one ``trigger_many`` (one unit of work); returns the runs started."""
    results = store.trigger_many(
        [
            {
                "tenant_id": tenant_id,
                "notification_key": NOTIFICATION_KEY,
                "recipient": f"user-{i}",
                "workflow": WORKFLOW,
                "idempotency_key": f"key-{i}",
            }
            for i in range(first, first + count)
        ]
    )
    return len(results)


def batched_journeys(
    store: Store, clock: MovableClock, count: int, start: datetime, batch: int, first: int = 0
) -> int:
    """The full journeys of :func:`journeys` as a host with many at once drives them:
    ``trigger_many`` of ``batch`` requests, ``record_outcomes`` of each claim of ``batch``,
    the due sweep ``batch`` runs per transaction. Returns runs the sweep advanced."""
    clock.instant = start
    for low in range(first, first + count, batch):
        store.trigger_many(
            [
                {
                    "tenant_id": "tenant-journey",
                    "notification_key": NOTIFICATION_KEY,
                    "recipient": f"user-{i}",
                    "workflow": WORKFLOW,
                    "idempotency_key": f"journey-{i}",
                }
                for i in range(low, min(low + batch, first + count))
            ]
        )
    succeed_batches(store, batch)
    later = after(start, 7200 + 1)
    clock.instant = later
    moved = sweep_batches(store, later, batch)
    succeed_batches(store, batch)
    return moved


def retry_journeys(
    store: Store, clock: FakeClock, count: int, start: datetime, batch: int, first: int = 0
) -> int:
    """``count`` retrying journeys (:data:`shapes.RETRY_WORKFLOW`): trigger each; claim
    and fail every first attempt (each delivery goes back to pending, claimable 1 s later);
    move the clock past that; claim and succeed every second attempt (each run completes).
    Returns the deliveries that succeeded."""
    clock.set(start)
    for i in range(first, first + count):
        trigger(store, "tenant-retry", f"user-{i}", f"retry-{i}", RETRY_WORKFLOW)
    fail_all(store, batch)
    clock.advance(RETRY_BACKOFF_SECONDS + 1)
    return succeed_all(store, batch)


def waiting_batch(store: Store, clock: MovableClock, count: int, tag: str, at: datetime) -> None:
    """``count`` runs that enter their wait at ``at`` (due two hours later)."""
    clock.instant = at
    for i in range(count):
        trigger(store, f"tenant-{i % 100}", f"due-{tag}-{i}", f"due-{tag}-{i}")
    succeed_all(store, 100)


def route(store: Store, tenant_id: str, actor_id: str | None) -> int:
    """Route ``notification_read`` for a tenant (and a recipient); runs resumed."""
    return len(store.route_signal(Signal(tenant_id, EVENT, actor_id=actor_id)))
