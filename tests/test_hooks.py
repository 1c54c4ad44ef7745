"""Hooks (CONTRACT §17): ``Store(..., on_event=...)`` hears every transition and delivery
attempt once its unit committed, never rolled-back work, and can never break the store;
the ``chimeway_lite`` loggers say the same, payload-free."""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pytest
from factories import START, escalation_workflow, trigger

from chimeway_lite import (
    EventKind,
    FakeClock,
    InvalidTransition,
    Retry,
    RunNotFound,
    Signal,
    Step,
    Store,
    StoreEvent,
    WaitUntil,
    Workflow,
)

MARKER = "PAYLOAD-MARKER-7f3a"


def _journey(events: list[StoreEvent]) -> list[tuple[str, str]]:
    return [(e.kind.value, e.reason) for e in events]


@pytest.fixture
def events() -> list[StoreEvent]:
    return []


@pytest.fixture
def observed(location: str, clock: FakeClock, events: list[StoreEvent]) -> Store:
    with Store(location, clock=clock, on_event=events.append) as store:
        yield store


def test_every_transition_and_delivery_attempt_is_an_event(
    observed: Store, clock: FakeClock, events: list[StoreEvent]
) -> None:
    started = trigger(observed, recipient="ada")
    (in_app,) = observed.claim_deliveries()
    observed.record_outcome(in_app.id, "succeeded")
    clock.advance(hours=2)
    observed.progress_due_runs()
    (email,) = observed.claim_deliveries(lease_seconds=60)
    observed.extend_lease(email.id, 120)
    observed.record_outcome(email.id, "succeeded")

    run_id = started.run.id
    assert _journey(events) == [
        ("transition", "workflow_started"),
        ("transition", "step_activated"),
        ("delivery_claimed", "claimed"),
        ("delivery_outcome", "succeeded"),
        ("transition", "waiting_for_step_progression"),
        ("transition", "reactivated_from_wait"),
        ("transition", "step_activated"),
        ("delivery_claimed", "claimed"),
        ("delivery_lease_extended", "lease_extended"),
        ("delivery_outcome", "succeeded"),
        ("transition", "workflow_completed"),
    ]
    assert {e.run_id for e in events} == {run_id}
    assert {e.tenant_id for e in events} == {"acme"}
    # Transitions match the trace row for row; delivery events carry the attempt.
    trace = observed.list_traces("acme", run_id)
    transitions = [e for e in events if e.kind is EventKind.TRANSITION]
    assert [(e.seq, e.reason, e.from_state, e.to_state, e.delivery_id) for e in transitions] == [
        (t.seq, t.reason, t.from_state, t.to_state, t.delivery_id) for t in trace
    ]
    assert [e.step_key for e in transitions] == [None, "inapp", "inapp", "inapp", "email", "email"]
    claimed, outcome = events[2], events[3]
    assert (claimed.delivery_id, claimed.attempt, claimed.to_state) == (in_app.id, 1, "dispatched")
    assert (outcome.from_state, outcome.to_state, outcome.step_key) == (
        "dispatched",
        "succeeded",
        "inapp",
    )
    assert outcome.at == START


def test_a_retried_failure_and_an_exhausted_one_say_where_the_delivery_went(
    observed: Store, events: list[StoreEvent]
) -> None:
    workflow = Workflow(
        "retrying", 1, [Step("email", 1, "email", retry=Retry(max_attempts=2, backoff_seconds=1))]
    )
    trigger(observed, workflow=workflow)
    observed.record_outcome(observed.claim_deliveries()[0].id, "failed")
    events.clear()
    observed.clock.advance(seconds=1)  # type: ignore[attr-defined]
    (again,) = observed.claim_deliveries()
    observed.record_outcome(again.id, "failed")

    claimed, exhausted, completed = events
    assert (claimed.reason, claimed.attempt) == ("claimed", 2)
    assert (exhausted.reason, exhausted.from_state, exhausted.to_state) == (
        "failed",
        "dispatched",
        "cancelled",
    )
    assert exhausted.suppression_reason == "retries_exhausted"
    assert (completed.kind, completed.reason) == (EventKind.TRANSITION, "workflow_completed")


def test_signals_cancel_and_the_seed_api_are_events_too(
    observed: Store, events: list[StoreEvent]
) -> None:
    waiting = trigger(observed, recipient="ada").run.id
    observed.record_outcome(observed.claim_deliveries()[0].id, "succeeded")
    cancelled = trigger(observed, recipient="bob").run.id
    events.clear()

    observed.route_signal(Signal("acme", "notification_read", actor_id="ada"))
    observed.cancel("acme", run_id=cancelled)
    with observed.transaction() as tx:
        tx.append_transition(waiting, "active", "host_note", from_state="active")

    assert [(e.run_id, e.kind.value, e.reason) for e in events] == [
        (waiting, "transition", "signal_received"),
        (cancelled, "transition", "workflow_cancelled"),
        (cancelled, "delivery_outcome", "cancelled"),
        (waiting, "transition", "host_note"),
    ]
    assert events[2].suppression_reason == "workflow_cancelled"


def test_the_hook_runs_after_commit(location: str, clock: FakeClock) -> None:
    """A second connection already sees what each event reports when the hook hears it."""
    seen: list[tuple[str, str]] = []
    with Store(location, clock=clock) as other:

        def hook(event: StoreEvent) -> None:
            assert event.run_id is not None
            seen.append((event.reason, other.get_run(event.run_id).state.value))

        with Store(location, clock=clock, on_event=hook) as store:
            trigger(store)
            with store.transaction() as tx:
                trigger(tx, recipient="bob")
                assert seen == [("workflow_started", "active"), ("step_activated", "active")]
    assert len(seen) == 4


def test_rolled_back_work_reports_nothing(observed: Store, events: list[StoreEvent]) -> None:
    with pytest.raises(RuntimeError), observed.transaction() as tx:
        trigger(tx, recipient="ada")
        raise RuntimeError("the host changed its mind")
    assert events == []

    delivery = trigger(observed, recipient="bob").deliveries[0]
    observed.record_outcome(delivery.id, "succeeded")
    events.clear()
    with pytest.raises(InvalidTransition):
        observed.record_outcome(delivery.id, "failed")  # final already: nothing written
    assert events == []


def test_a_failed_call_inside_a_transaction_drops_only_its_own_events(
    observed: Store, events: list[StoreEvent]
) -> None:
    with observed.transaction():
        kept = trigger(observed, recipient="ada").run.id  # a savepoint of the transaction
        with pytest.raises(RuntimeError), observed.transaction():
            trigger(observed, recipient="bob")  # rolled back with its savepoint
            raise RuntimeError("inner block fails")
        with pytest.raises(RunNotFound):
            observed.progress_run("01a23425-1106-7000-ab78-bb1c9bf89059")
        assert events == []  # nothing before the outer commit
    assert {e.run_id for e in events} == {kept}
    assert _journey(events) == [
        ("transition", "workflow_started"),
        ("transition", "step_activated"),
    ]


def test_an_exception_in_the_hook_is_logged_not_raised(
    location: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[str] = []

    def hook(event: StoreEvent) -> None:
        heard.append(event.reason)
        raise ValueError("the host's hook is broken")

    with Store(location, clock=clock, on_event=hook) as store, caplog.at_level(logging.WARNING):
        started = trigger(store)
        assert store.get_run(started.run.id).state == "active"  # committed all the same

    assert heard == ["workflow_started", "step_activated"]  # one failure stops no other event
    warnings = [r for r in caplog.records if r.name == "chimeway_lite"]
    assert len(warnings) == 2
    assert all(r.levelno == logging.WARNING and r.exc_info for r in warnings)
    assert "ValueError" in warnings[0].getMessage()
    assert started.run.id in warnings[0].getMessage()


def test_on_event_must_be_callable(location: str) -> None:
    from chimeway_lite import InvalidArgument

    with pytest.raises(InvalidArgument, match="on_event"):
        Store(location, on_event="print")  # type: ignore[arg-type]


def test_debug_logging_reports_each_transition_without_a_hook(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="chimeway_lite"):
        started = trigger(store)
        store.record_outcome(store.claim_deliveries()[0].id, "succeeded")

    lines = [r for r in caplog.records if r.name == "chimeway_lite.events"]
    assert [r.levelno for r in lines] == [logging.DEBUG] * 5
    assert [r.chimeway_event.reason for r in lines] == [  # type: ignore[attr-defined]
        "workflow_started",
        "step_activated",
        "claimed",
        "succeeded",
        "waiting_for_step_progression",
    ]
    assert lines[2].getMessage() == (
        f"delivery_claimed tenant=acme run={started.run.id} step=inapp "
        f"delivery={started.deliveries[0].id} attempt=1 - -> dispatched (claimed)"
    )


def test_nothing_is_observed_while_nobody_listens(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No hook, no debug logging, no span: the engine works on the backend's own unit."""
    from chimeway_lite.hooks import observation

    made: list[object] = []
    original = observation.ObservedUnit.__init__

    def counting(self: observation.ObservedUnit, *args: object) -> None:
        made.append(self)
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(observation.ObservedUnit, "__init__", counting)
    trigger(store)
    assert made == []
    logging.getLogger("chimeway_lite").setLevel(logging.DEBUG)
    try:
        trigger(store)
    finally:
        logging.getLogger("chimeway_lite").setLevel(logging.NOTSET)
    assert len(made) == 1


def test_logs_and_events_are_payload_free(
    location: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[StoreEvent] = []
    workflow = Workflow(
        "marked",
        1,
        [
            Step(
                "inapp",
                1,
                "in_app",
                progress=[WaitUntil(60, "email", ["read"])],
                config={"template": MARKER},
            ),
            Step("email", 2, "email", config={"subject": MARKER}),
        ],
    )
    with (
        Store(location, clock=clock, on_event=events.append) as store,
        caplog.at_level(logging.DEBUG, logger="chimeway_lite"),
    ):
        trigger(store, workflow=workflow, data={"secret": MARKER, MARKER: [MARKER]})
        store.record_outcome(store.claim_deliveries()[0].id, "succeeded")
        store.track_signal(Signal("acme", "read", actor_id="ada", payload={"why": MARKER}))
        clock.advance(minutes=5)
        store.progress_due_runs()
        trigger(store, workflow=workflow, data={"again": MARKER})
        clock.advance(minutes=5)
        store.record_outcome(store.claim_deliveries()[0].id, "suppressed", "user_opted_out")

    assert len(events) >= 8
    assert caplog.records
    for record in caplog.records:
        assert MARKER not in record.getMessage()
        assert MARKER not in repr(vars(record))
    for event in events:
        assert MARKER not in repr(attrs.asdict(event))


def test_hook_events_are_frozen_records(observed: Store, events: list[StoreEvent]) -> None:
    trigger(observed)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        events[0].reason = "changed"  # type: ignore[misc]


def test_an_escalation_on_a_memory_store_is_observed_too(tmp_path: Path) -> None:
    events: list[StoreEvent] = []
    with Store(":memory:", clock=FakeClock(START), on_event=events.append) as store:
        trigger(store, workflow=escalation_workflow())
    assert _journey(events) == [
        ("transition", "workflow_started"),
        ("transition", "step_activated"),
    ]


def test_a_workers_claims_and_outcomes_reach_the_hook(
    observed: Store, events: list[StoreEvent]
) -> None:
    """The Worker calls the store like any host: its attempts are reported with no help."""
    from chimeway_lite import Worker

    trigger(observed, recipient="ada")
    events.clear()

    Worker(observed, {"in_app": lambda delivery: ("cancelled", "bounced")}).run_once()

    assert _journey(events)[:2] == [
        ("delivery_claimed", "claimed"),
        ("delivery_outcome", "cancelled"),
    ]
    assert ("transition", "progressed_on_delivery_outcome") in _journey(events)
    assert events[1].suppression_reason == "bounced"


def test_a_batch_reports_every_item_once_it_commits(
    observed: Store, events: list[StoreEvent]
) -> None:
    requests = [
        {
            "tenant_id": "acme",
            "notification_key": "welcome",
            "recipient": who,
            "workflow": escalation_workflow(),
            "idempotency_key": f"batch-{who}",
        }
        for who in ("ada", "bob", "cy")
    ]
    started = observed.trigger_many(requests)

    assert [e.run_id for e in events] == [r.run.id for r in started for _ in range(2)]
    assert {e.reason for e in events} == {"workflow_started", "step_activated"}
