"""Runs worth drawing: each function plays one journey on a store with a fake clock and
returns the run's id (tenant ``acme``). The timeline's tests draw them and look at them.

* :func:`escalated` — in-app, no read within 2 h, email, delivered (bob's path);
* :func:`read_in_time` — in-app read after 45 min: completed ``cancelled_by_signal``;
* :func:`cancelled` — the host cancels it during its wait: stopped ``cancelled``;
* :func:`stopped` — a stop rule on a permanent failure: stopped ``workflow_stopped``;
* :func:`retried` — 15 trace rows over five steps with retry policies: failed attempts,
  retries, exhausted retries, a bounce, a one-day wait and a signal;
* :func:`long_names` — step names of 60 characters, waiting;
* :func:`fresh` — just triggered: one pending delivery.
"""

from __future__ import annotations

from collections.abc import Callable

from factories import trigger, waiting

from chimeway_lite import (
    FakeClock,
    OnOutcome,
    Outcome,
    Retry,
    Signal,
    Step,
    Stop,
    Store,
    WaitUntil,
    Workflow,
)


def escalated(store: Store, clock: FakeClock) -> str:
    run_id = waiting(store, recipient="bob").run.id
    clock.advance(hours=2)
    (moved,) = store.progress_due_runs()
    clock.advance(minutes=1)
    store.record_outcome(moved.deliveries[0].id, "succeeded")
    return run_id


def read_in_time(store: Store, clock: FakeClock) -> str:
    run_id = waiting(store, recipient="ada").run.id
    clock.advance(minutes=45)
    store.route_signal(Signal("acme", "notification_read", actor_id="ada"))
    clock.advance(minutes=1)
    store.progress_due_runs()
    return run_id


def cancelled(store: Store, clock: FakeClock) -> str:
    run_id = waiting(store, recipient="cy").run.id
    clock.advance(minutes=20)
    store.cancel("acme", run_id=run_id)
    return run_id


def stopped(store: Store, clock: FakeClock) -> str:
    workflow = Workflow(
        "receipt",
        1,
        [
            Step("email", 1, "email", progress=[Stop(Outcome.PERMANENT_FAILURE)]),
            Step("sms", 2, "sms"),
        ],
    )
    result = trigger(store, recipient="dee", workflow=workflow, notification_key="receipt")
    clock.advance(seconds=30)
    store.claim_deliveries(channel="email")
    clock.advance(seconds=5)
    store.record_outcome(result.deliveries[0].id, "cancelled", "permanent_failure")
    return result.run.id


def _retry_workflow() -> Workflow:
    return Workflow(
        "retrying",
        1,
        [
            Step(
                "push",
                1,
                "push",
                progress=[WaitUntil(3600, "sms", ["notification_read"])],
                retry=Retry(3, 60),
            ),
            Step(
                "sms",
                2,
                "sms",
                progress=[OnOutcome(Outcome.RETRIES_EXHAUSTED, "email")],
                retry=Retry(3, 60, multiplier=2.0),
            ),
            Step(
                "email",
                3,
                "email",
                progress=[WaitUntil(86400, "reminder")],
                retry=Retry(2, 300),
            ),
            Step(
                "reminder",
                4,
                "in_app",
                progress=[OnOutcome(Outcome.BOUNCED, "final")],
                retry=Retry(2, 60),
            ),
            Step(
                "final",
                5,
                "email",
                progress=[WaitUntil(7200, "reminder", ["notification_read"])],
                retry=Retry(3, 120),
            ),
        ],
    )


def _attempt(store: Store, clock: FakeClock, channel: str, status: str, *reason: str) -> None:
    (claimed,) = store.claim_deliveries(channel=channel)
    clock.advance(seconds=20)
    store.record_outcome(claimed.id, status, *reason)


def retried(store: Store, clock: FakeClock) -> str:
    run_id = trigger(store, recipient="eve", workflow=_retry_workflow()).run.id
    _attempt(store, clock, "push", "failed")
    clock.advance(seconds=60)
    _attempt(store, clock, "push", "succeeded")  # the run waits 1 h for a read
    clock.advance(hours=1)
    store.progress_due_runs()  # -> sms
    for backoff in (60, 120):
        _attempt(store, clock, "sms", "failed")
        clock.advance(seconds=backoff)
    _attempt(store, clock, "sms", "failed")  # retries exhausted -> email
    _attempt(store, clock, "email", "failed")
    clock.advance(seconds=300)
    _attempt(store, clock, "email", "succeeded")  # the run waits a day
    clock.advance(days=1)
    store.progress_due_runs()  # -> reminder
    _attempt(store, clock, "in_app", "cancelled", "bounced")  # -> final
    _attempt(store, clock, "email", "failed")
    clock.advance(seconds=120)
    _attempt(store, clock, "email", "failed")
    clock.advance(seconds=240)
    _attempt(store, clock, "email", "succeeded")  # the run waits 2 h for a read
    clock.advance(minutes=30)
    store.route_signal(Signal("acme", "notification_read", actor_id="eve"))
    clock.advance(seconds=30)
    store.progress_due_runs()
    assert len(store.list_traces("acme", run_id)) == 15
    return run_id


def long_names(store: Store, clock: FakeClock) -> str:
    first = "remind-the-customer-about-the-unpaid-invoice-in-the-app-now!"[:60]
    second = "then-send-the-unpaid-invoice-reminder-by-email-to-the-account"[:60]
    assert len(first) == len(second) == 60
    workflow = Workflow(
        "invoice-reminder-with-a-rather-long-workflow-key",
        1,
        [
            Step(
                first,
                1,
                "in_app_notification_center",
                progress=[WaitUntil(7200, second, ["invoice_opened_in_the_customer_portal"])],
            ),
            Step(second, 2, "transactional_email_provider"),
        ],
    )
    result = trigger(
        store,
        recipient="customer-account-0000000000000000-owner@example.com",
        workflow=workflow,
        notification_key="invoice.unpaid.reminder.with.a.long.key",
    )
    clock.advance(seconds=2)
    store.record_outcome(result.deliveries[0].id, "succeeded")
    return result.run.id


def fresh(store: Store, clock: FakeClock) -> str:
    return trigger(store, recipient="fay").run.id


#: Every scenario by name, in the order the tests draw them.
SCENARIOS: dict[str, Callable[[Store, FakeClock], str]] = {
    "escalated": escalated,
    "read-in-time": read_in_time,
    "cancelled": cancelled,
    "stopped": stopped,
    "retried-15-rows": retried,
    "long-names": long_names,
    "fresh": fresh,
}
