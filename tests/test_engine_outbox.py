"""The outbox (CONTRACT §7): trigger plans the first delivery, every advance plans one more,
claims are oldest-first, atomic and never twice, and record_outcome updates a delivery and
progresses its run in one transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from backends import sql
from factories import trigger
from journeys import race
from strategies import table_dump

from chimeway_lite import (
    ChimewayError,
    Delivery,
    DeliveryStatus,
    FakeClock,
    OnOutcome,
    ProgressKind,
    RunState,
    Step,
    Store,
    WaitUntil,
    Workflow,
)

CHAIN = Workflow(
    "chain",
    1,
    [
        Step("a", 1, "in_app", [OnOutcome("delivered", "b")]),
        Step("b", 2, "email", [WaitUntil(60, "c")]),
        Step("c", 3, "sms"),
    ],
)


def test_trigger_plans_the_first_delivery(store: Store, clock: FakeClock) -> None:
    result = trigger(store, workflow=CHAIN)
    first = store.fetch_step_by_key(result.run.workflow_definition_id, "a")
    assert first is not None
    (planned,) = result.deliveries
    assert planned == Delivery(
        id=planned.id,
        tenant_id="acme",
        notification_id=result.notification.id,
        channel="in_app",
        status=DeliveryStatus.PENDING,
        suppression_reason=None,
        workflow_run_id=result.run.id,
        workflow_step_id=first.id,
        inserted_at=clock.now(),
        updated_at=clock.now(),
        recipient="ada",
        notification_key="welcome",
        step_key="a",
        attempt=0,
        config=first.config,
    )
    assert store.list_deliveries("acme", result.run.id) == [planned]
    assert not result.duplicate


def test_a_repeated_trigger_plans_nothing(store: Store, clock: FakeClock) -> None:
    result = trigger(store, workflow=CHAIN, key="k1")
    before = table_dump(store)
    clock.advance(5)
    again = trigger(store, workflow=CHAIN, key="k1")
    assert again.duplicate
    assert (again.notification, again.run, again.deliveries) == (
        result.notification,
        result.run,
        result.deliveries,
    )
    assert table_dump(store) == before


def test_each_advance_plans_one_delivery_for_the_new_step(store: Store, clock: FakeClock) -> None:
    result = trigger(store, workflow=CHAIN)
    steps = {
        k: s.id
        for k in "abc"
        if (s := store.fetch_step_by_key(result.run.workflow_definition_id, k)) is not None
    }
    (a,) = store.claim_deliveries(10)
    progress = store.record_outcome(a.id, "succeeded")
    assert progress is not None
    (b,) = progress.deliveries
    assert (b.channel, b.workflow_step_id, b.status) == (
        "email",
        steps["b"],
        DeliveryStatus.PENDING,
    )
    clock.advance(1)
    progress = store.record_outcome(b.id, "failed")  # b waits 60 s, then goes to c
    assert progress is not None and progress.kind is ProgressKind.WAITING
    assert progress.deliveries == ()
    clock.advance(60)
    (woken,) = store.progress_due_runs()
    (c,) = woken.deliveries
    assert (c.channel, c.workflow_step_id, c.inserted_at) == ("sms", steps["c"], clock.now())
    assert [d.id for d in store.list_deliveries("acme", result.run.id)] == [a.id, b.id, c.id]


# -- claims ----------------------------------------------------------------------------------------


def test_claims_take_the_oldest_first_and_never_twice(store: Store, clock: FakeClock) -> None:
    ids = []
    for i in range(5):
        ids.append(trigger(store, workflow=CHAIN, key=f"k{i}").deliveries[0].id)
        if i % 2:
            clock.advance(microseconds=1)  # some share an instant: then insertion order
    clock.advance(1)
    first = store.claim_deliveries(2)
    assert [d.id for d in first] == ids[:2]
    assert {(d.status, d.updated_at) for d in first} == {(DeliveryStatus.DISPATCHED, clock.now())}
    assert [d.id for d in store.claim_deliveries(10)] == ids[2:]
    assert store.claim_deliveries(10) == []
    statuses = {d.status for i in range(5) for d in _deliveries(store, f"k{i}")}
    assert statuses == {DeliveryStatus.DISPATCHED}


def _deliveries(store: Store, key: str) -> list[Delivery]:
    run_id = (
        sql(store)
        .execute(
            "SELECT r.id FROM workflow_runs r JOIN notifications n ON n.id = r.notification_id "
            "WHERE n.idempotency_key = ?",
            (key,),
        )
        .fetchone()[0]
    )
    return store.list_deliveries("acme", run_id)


def test_claims_by_channel(store: Store, clock: FakeClock) -> None:
    chained = trigger(store, workflow=CHAIN)
    (a,) = store.claim_deliveries(1)
    store.record_outcome(a.id, "succeeded")  # plans b on email
    inapp = [trigger(store, workflow=CHAIN).deliveries[0].id for _ in range(2)]
    assert store.claim_deliveries(10, channel="sms") == []
    emails = store.claim_deliveries(10, channel="email")
    assert [(d.channel, d.workflow_run_id) for d in emails] == [("email", chained.run.id)]
    assert [d.id for d in store.claim_deliveries(10, channel="in_app")] == inapp


def test_limit_zero_claims_nothing(store: Store) -> None:
    trigger(store, workflow=CHAIN)
    before = table_dump(store)
    assert store.claim_deliveries(0) == []
    assert table_dump(store) == before


@pytest.mark.parametrize(
    ("limit", "channel"),
    [(-1, None), (True, None), (1.5, None), ("3", None), (None, None), (1, ""), (1, "  "), (1, 7)],
)
def test_bad_claim_arguments(store: Store, limit: Any, channel: Any) -> None:
    trigger(store, workflow=CHAIN)
    before = table_dump(store)
    with pytest.raises(ChimewayError) as caught:
        store.claim_deliveries(limit, channel=channel)
    assert isinstance(caught.value, ValueError)
    assert table_dump(store) == before


def test_concurrent_claims_are_disjoint(store: Store, clock: FakeClock, location: str) -> None:
    planned = {trigger(store, workflow=CHAIN).deliveries[0].id for _ in range(40)}

    def claim_all(own: Store) -> list[str]:
        claimed: list[str] = []
        while batch := own.claim_deliveries(3):
            claimed.extend(d.id for d in batch)
        return claimed

    claimed = race(location, clock, claim_all, count=8)
    every = [d for batch in claimed for d in batch]
    assert len(every) == len(set(every)) == len(planned)
    assert set(every) == planned


# -- outcomes --------------------------------------------------------------------------------------


def test_record_outcome_returns_the_progress(store: Store, clock: FakeClock) -> None:
    result = trigger(store, workflow=CHAIN)
    clock.advance(3)
    progress = store.record_outcome(result.deliveries[0].id, DeliveryStatus.SUCCEEDED)
    assert progress is not None
    run = store.get_run(result.run.id)
    assert (progress.kind, progress.run, progress.reason) == (
        ProgressKind.ADVANCED,
        run,
        "progressed_on_delivery_outcome",
    )
    assert progress.deliveries == tuple(store.list_deliveries("acme", run.id)[1:])
    recorded = store.list_deliveries("acme", run.id)[0]
    assert (recorded.status, recorded.suppression_reason, recorded.updated_at) == (
        DeliveryStatus.SUCCEEDED,
        None,
        clock.now(),
    )


def test_a_run_whose_delivery_has_not_converged_is_a_noop(store: Store, clock: FakeClock) -> None:
    """A dispatched delivery (claimed, no outcome yet) has nothing to branch on. Recording
    "dispatched" as an outcome is refused now (CONTRACT §12): the claim is what makes it."""
    result = trigger(store, workflow=CHAIN)
    store.claim_deliveries()
    progress = store.progress_run(result.run.id)
    assert (progress.kind, progress.reason) == (ProgressKind.NOOP, "no_matching_progress_rule")
    assert store.list_deliveries("acme", result.run.id)[0].status is DeliveryStatus.DISPATCHED


def test_record_outcome_keeps_the_suppression_reason(store: Store) -> None:
    result = trigger(store)
    progress = store.record_outcome(result.deliveries[0].id, "cancelled", "bounced")
    assert progress is not None and progress.kind is ProgressKind.ADVANCED
    recorded = store.list_deliveries("acme", result.run.id)[0]
    assert (recorded.status, recorded.suppression_reason) == (DeliveryStatus.CANCELLED, "bounced")


def test_record_outcome_of_an_unknown_delivery(store: Store) -> None:
    trigger(store, workflow=CHAIN)
    before = table_dump(store)
    with pytest.raises(ChimewayError) as caught:
        store.record_outcome("5c1b5f46-18ad-4bd3-8df3-3f1b7f4c7c6e", "succeeded")
    assert isinstance(caught.value, LookupError)
    assert table_dump(store) == before


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("delivered", None),
        ("SUCCEEDED", None),
        (None, None),
        (3, None),
        ("failed", "  "),
        ("failed", 5),
    ],
)
def test_record_outcome_with_a_bad_status_writes_nothing(
    store: Store, status: Any, reason: Any
) -> None:
    result = trigger(store, workflow=CHAIN)
    before = table_dump(store)
    with pytest.raises(ChimewayError) as caught:
        store.record_outcome(result.deliveries[0].id, status, reason)
    assert isinstance(caught.value, ValueError)
    assert table_dump(store) == before


@pytest.mark.sqlite_only
def test_outcome_and_progression_are_one_transaction(store: Store, clock: FakeClock) -> None:
    result = trigger(store, workflow=CHAIN)
    delivery_id = result.deliveries[0].id
    conn = sql(store)
    conn.execute(
        "CREATE TEMP TRIGGER refuse_trace BEFORE INSERT ON workflow_transitions "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    before = table_dump(store)
    clock.advance(1)
    with pytest.raises(ChimewayError):
        store.record_outcome(delivery_id, "succeeded")
    conn.execute("DROP TRIGGER temp.refuse_trace")
    assert table_dump(store) == before  # the delivery kept its status too
    progress = store.record_outcome(delivery_id, "succeeded")
    assert progress is not None and progress.kind is ProgressKind.ADVANCED


def test_outcome_of_a_finished_run_updates_only_the_delivery(
    store: Store, clock: FakeClock
) -> None:
    """A delivery still open when its run finished (here the host closed the run) takes its
    outcome; the run does not move. (A final delivery takes no other outcome now, CONTRACT
    §12, so the run is closed by the host rather than by the delivery itself.)"""
    result = trigger(store)
    store.record_outcome(result.deliveries[0].id, "cancelled", "bounced")
    email = store.list_deliveries("acme", result.run.id)[1]
    with store.transaction() as tx:
        tx.append_transition(result.run.id, "completed", "host_closed", from_state="active")
        tx.update_run(result.run.id, state="completed", terminal_reason="host_closed")
    run = store.get_run(result.run.id)
    assert run.state is RunState.COMPLETED
    traces = len(store.list_traces("acme", run.id))
    clock.advance(1)
    progress = store.record_outcome(email.id, "failed")
    assert progress is not None
    assert (progress.kind, progress.reason, progress.run) == (
        ProgressKind.NOOP,
        "run_not_active",
        run,
    )
    assert store.list_deliveries("acme", run.id)[1].status is DeliveryStatus.FAILED
    assert len(store.list_traces("acme", run.id)) == traces


def test_a_late_outcome_of_an_earlier_step_does_not_move_the_run(
    store: Store, clock: FakeClock
) -> None:
    """The in-app message is still out (dispatched) when the host moves the run on; its
    late outcome is recorded, and the run is judged on its current step's delivery."""
    result = trigger(store)
    store.claim_deliveries()
    email = store.fetch_step_by_key(result.run.workflow_definition_id, "email")
    assert email is not None
    with store.transaction() as tx:
        tx.append_transition(result.run.id, "active", "host_moved", workflow_step_id=email.id)
        tx.update_run(result.run.id, current_step_id=email.id)
    run = store.get_run(result.run.id)
    clock.advance(timedelta(minutes=1).total_seconds())
    progress = store.record_outcome(result.deliveries[0].id, "succeeded")
    assert progress is not None
    # the run is judged on its current step's delivery (none is planned for email)
    assert (progress.kind, progress.reason, progress.run) == (
        ProgressKind.NOOP,
        "no_active_step_delivery",
        run,
    )
    assert store.list_deliveries("acme", run.id)[0].status is DeliveryStatus.SUCCEEDED
