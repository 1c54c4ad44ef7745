"""The escalation journey end to end: in-app now; email after 2 h unless read; email at once
if the in-app message bounces (``factories.escalation_workflow``)."""

from __future__ import annotations

from datetime import timedelta

from factories import trigger

from chimeway_lite import (
    DeliveryStatus,
    FakeClock,
    ProgressKind,
    RunState,
    Signal,
    Store,
    TriggerResult,
    Workflow,
)


def send_inapp(store: Store, escalation: Workflow, *, recipient: str = "alice") -> TriggerResult:
    """Trigger the journey and claim its in-app delivery."""
    result = trigger(
        store,
        recipient=recipient,
        workflow=escalation,
        key=f"invoice-{recipient}",
        notification_key="invoice_ready",
    )
    (claimed,) = store.claim_deliveries(10, channel="in_app")
    assert claimed.id == result.deliveries[0].id
    return result


def emails(store: Store, run_id: str) -> list[str]:
    """Ids of the email deliveries ever planned for the run."""
    return [d.id for d in store.list_deliveries("acme", run_id) if d.channel == "email"]


def reasons(store: Store, run_id: str) -> list[str]:
    """The run's trace, by reason."""
    return [t.reason for t in store.list_traces("acme", run_id)]


def test_read_before_due_never_sends_the_email(
    store: Store, clock: FakeClock, escalation: Workflow
) -> None:
    result = send_inapp(store, escalation)
    run_id = result.run.id
    clock.advance(seconds=2)
    store.record_outcome(result.deliveries[0].id, "succeeded")
    clock.advance(minutes=40)
    _, resumed = store.track_signal(Signal("acme", "notification_read", "alice"))
    assert list(resumed) == [run_id]
    # the host does not sweep until long after the wait would have ended
    clock.advance(hours=3)
    for _ in range(20):
        store.progress_due_runs()
        store.progress_run(run_id)
        clock.advance(hours=7)
        assert store.claim_deliveries(100) == []
    run = store.get_run(run_id)
    assert (run.state, run.terminal_reason) == (RunState.COMPLETED, "cancelled_by_signal")
    assert emails(store, run_id) == []
    assert reasons(store, run_id) == [
        "workflow_started",
        "step_activated",
        "waiting_for_step_progression",
        "signal_received",
        "workflow_completed",
    ]
    assert store.next_due_at() is None
    explained = store.explain("acme", run_id)
    assert (explained.state, explained.terminal_reason) == (
        RunState.COMPLETED,
        "cancelled_by_signal",
    )


def test_read_before_due_settles_at_the_next_sweep(
    store: Store, clock: FakeClock, escalation: Workflow
) -> None:
    result = send_inapp(store, escalation)
    store.record_outcome(result.deliveries[0].id, "succeeded")
    clock.advance(minutes=1)
    store.route_signal(Signal("acme", "notification_read"))
    assert store.next_due_at() == clock.now()
    (settled,) = store.progress_due_runs()
    assert (settled.kind, settled.run.terminal_reason) == (
        ProgressKind.COMPLETED,
        "cancelled_by_signal",
    )


def test_not_read_sends_exactly_one_email_at_due_time(
    store: Store, clock: FakeClock, escalation: Workflow
) -> None:
    result = send_inapp(store, escalation)
    run_id = result.run.id
    clock.advance(seconds=9, microseconds=41)
    store.record_outcome(result.deliveries[0].id, "succeeded")
    due = clock.now() + timedelta(hours=2)
    assert store.next_due_at() == due
    clock.set(due - timedelta(microseconds=1))
    assert store.progress_due_runs() == []
    assert store.progress_run(run_id).reason == "wait_not_due"
    assert emails(store, run_id) == []
    clock.advance(microseconds=1)
    (woken,) = store.progress_due_runs()
    (email,) = woken.deliveries
    assert (email.channel, email.status, email.inserted_at) == (
        "email",
        DeliveryStatus.PENDING,
        due,
    )
    for _ in range(5):
        clock.advance(hours=1)
        assert store.progress_due_runs() == []
    assert emails(store, run_id) == [email.id]
    # a read arriving now changes nothing: the run is no longer waiting
    assert store.route_signal(Signal("acme", "notification_read", "alice")) == {}
    (claimed,) = store.claim_deliveries(10)
    assert claimed.id == email.id
    done = store.record_outcome(email.id, "succeeded")
    assert done is not None
    assert (done.kind, done.run.terminal_reason) == (ProgressKind.COMPLETED, "workflow_completed")
    assert reasons(store, run_id) == [
        "workflow_started",
        "step_activated",
        "waiting_for_step_progression",
        "reactivated_from_wait",
        "step_activated",
        "workflow_completed",
    ]


def test_bounce_sends_the_email_at_once(
    store: Store, clock: FakeClock, escalation: Workflow
) -> None:
    result = send_inapp(store, escalation)
    run_id = result.run.id
    clock.advance(seconds=3)
    progress = store.record_outcome(result.deliveries[0].id, "cancelled", "bounced")
    assert progress is not None
    (email,) = progress.deliveries
    assert (progress.kind, email.channel, email.inserted_at) == (
        ProgressKind.ADVANCED,
        "email",
        clock.now(),
    )
    assert [d.id for d in store.claim_deliveries(10, channel="email")] == [email.id]
    assert store.next_due_at() is None
    assert emails(store, run_id) == [email.id]
    assert reasons(store, run_id) == [
        "workflow_started",
        "step_activated",
        "progressed_on_delivery_outcome",
        "step_activated",
    ]


def test_the_read_of_one_recipient_does_not_cancel_anothers(
    store: Store, clock: FakeClock, escalation: Workflow
) -> None:
    alice = send_inapp(store, escalation, recipient="alice")
    bob = send_inapp(store, escalation, recipient="bob")
    store.record_outcome(alice.deliveries[0].id, "succeeded")
    store.record_outcome(bob.deliveries[0].id, "succeeded")
    clock.advance(minutes=5)
    store.track_signal(Signal("acme", "notification_read", "alice"))
    clock.advance(hours=2)
    swept = {p.run.id: p for p in store.progress_due_runs()}
    assert swept[alice.run.id].run.terminal_reason == "cancelled_by_signal"
    assert [d.channel for d in swept[bob.run.id].deliveries] == ["email"]
    assert emails(store, alice.run.id) == []
