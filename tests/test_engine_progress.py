"""Progression through the Store (CONTRACT §4): every move with its exact trace rows (order,
step and delivery ids, contexts) and run fields, noops that write nothing, exactly-once under
repetition, the due sweep (order, index use, next_due_at) and the injected clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from backends import sql
from factories import trigger
from journeys import race, stamp, trace
from strategies import table_dump

from chimeway_lite import (
    ChimewayError,
    DeliveryStatus,
    FakeClock,
    OnOutcome,
    Outcome,
    ProgressKind,
    RunNotFound,
    RunState,
    Signal,
    Step,
    Stop,
    Store,
    SystemClock,
    TriggerResult,
    WaitUntil,
    Workflow,
)
from chimeway_lite.backends.sqlite import runs as transaction

A, W, C, S = "active", "waiting", "completed", "stopped"


def step_ids(store: Store, result: TriggerResult, *keys: str) -> list[str]:
    """The ids of the named steps of the run's definition."""
    definition = result.run.workflow_definition_id
    found = [store.fetch_step_by_key(definition, k) for k in keys]
    return [s.id for s in found if s is not None]


def settle(
    store: Store,
    clock: FakeClock,
    delivery_id: str,
    status: str,
    reason: str | None = None,
    *,
    after: float = 5,
) -> Any:
    """Claim everything pending, move the clock, record one outcome."""
    store.claim_deliveries(100)
    clock.advance(after)
    return store.record_outcome(delivery_id, status, reason)


# -- start -----------------------------------------------------------------------------------------


def test_start_writes_two_rows_and_an_active_run(store: Store, clock: FakeClock) -> None:
    result = trigger(store)
    (inapp,) = step_ids(store, result, "inapp")
    now = clock.now()
    assert trace(store, result.run.id) == [
        ("workflow_started", None, A, None, None, {"source": "trigger"}),
        ("step_activated", A, A, inapp, None, {"source": "trigger", "step_key": "inapp"}),
    ]
    run = store.get_run(result.run.id)
    assert run == result.run
    assert (run.state, run.current_step_id, run.status_reason, run.status_context) == (
        RunState.ACTIVE,
        inapp,
        "workflow_started",
        {"source": "trigger"},
    )
    assert run.started_at == run.last_transition_at == now
    assert (run.suspended_until, run.pending_signals, run.terminal_reason) == (None, (), None)
    assert [t.inserted_at for t in store.list_traces("acme", run.id)] == [now, now]


# -- each move, through the store ------------------------------------------------------------------


def test_outcome_advance(store: Store, clock: FakeClock) -> None:
    result = trigger(store)
    inapp, email = step_ids(store, result, "inapp", "email")
    first = result.deliveries[0].id
    progress = settle(store, clock, first, "cancelled", "bounced")
    context = {
        "rule_kind": "on_outcome",
        "workflow_outcome": "bounced",
        "anchor_delivery_id": first,
        "from_step": "inapp",
        "to_step": "email",
        "delivery_status": "cancelled",
        "suppression_reason": "bounced",
    }
    assert trace(store, result.run.id)[2:] == [
        ("progressed_on_delivery_outcome", A, A, inapp, first, context),
        ("step_activated", A, A, email, None, {"step_key": "email", "source": "progression"}),
    ]
    run = store.get_run(result.run.id)
    assert progress.kind is ProgressKind.ADVANCED
    assert progress.reason == "progressed_on_delivery_outcome"
    assert progress.run == run
    assert (run.state, run.current_step_id, run.status_reason, run.status_context) == (
        RunState.ACTIVE,
        email,
        "progressed_on_delivery_outcome",
        context,
    )
    assert run.last_transition_at == clock.now()
    assert (run.suspended_until, run.pending_signals, run.terminal_reason) == (None, (), None)
    (planned,) = progress.deliveries
    assert (planned.channel, planned.status, planned.workflow_step_id) == (
        "email",
        DeliveryStatus.PENDING,
        email,
    )
    assert planned.inserted_at == planned.updated_at == clock.now()
    assert store.list_deliveries("acme", run.id)[-1] == planned


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_enter_waiting_anchors_on_the_recorded_outcome(
    store: Store, clock: FakeClock, status: str
) -> None:
    result = trigger(store)
    (inapp,) = step_ids(store, result, "inapp")
    first = result.deliveries[0].id
    progress = settle(store, clock, first, status, after=7)
    recorded = store.list_deliveries("acme", result.run.id)[0]
    assert recorded.updated_at == clock.now() == datetime(2026, 1, 5, 9, 30, 7, tzinfo=UTC)
    context = {
        "rule_kind": "wait_until",
        "anchor": "prior_delivery_terminal_at",
        "anchor_delivery_id": first,
        "anchor_delivery_status": status,
        "anchor_timestamp": "2026-01-05T09:30:07.000000+00:00",
        "due_at": "2026-01-05T11:30:07.000000+00:00",
        "to_step": "email",
    }
    assert trace(store, result.run.id)[2:] == [
        ("waiting_for_step_progression", A, W, inapp, first, context)
    ]
    run = store.get_run(result.run.id)
    assert (progress.kind, progress.reason, progress.run, progress.deliveries) == (
        ProgressKind.WAITING,
        "waiting_for_step_progression",
        run,
        (),
    )
    assert (run.state, run.current_step_id, run.status_reason, run.status_context) == (
        RunState.WAITING,
        inapp,
        "waiting_for_step_progression",
        context,
    )
    assert run.suspended_until == recorded.updated_at + timedelta(hours=2)
    assert run.pending_signals == ("notification_read",)
    assert run.last_transition_at == clock.now()
    assert run.terminal_reason is None


def test_wait_elapsed(store: Store, clock: FakeClock) -> None:
    result = trigger(store)
    inapp, email = step_ids(store, result, "inapp", "email")
    first = result.deliveries[0].id
    settle(store, clock, first, "succeeded")
    waited = store.get_run(result.run.id).status_context
    due = store.get_run(result.run.id).suspended_until
    assert due is not None
    later = due + timedelta(minutes=3, microseconds=17)
    progress = store.progress_run(result.run.id, now=later)
    assert trace(store, result.run.id)[3:] == [
        ("reactivated_from_wait", W, A, inapp, first, {**waited, "reactivated_at": stamp(later)}),
        ("step_activated", A, A, email, None, {"step_key": "email", "source": "progression"}),
    ]
    run = store.get_run(result.run.id)
    assert (progress.kind, progress.reason, progress.run) == (
        ProgressKind.ADVANCED,
        "progressed_on_delivery_outcome",
        run,
    )
    assert (run.state, run.current_step_id, run.status_reason) == (
        RunState.ACTIVE,
        email,
        "progressed_on_delivery_outcome",
    )
    assert run.status_context == {
        "rule_kind": "wait_until",
        "workflow_outcome": "wait_elapsed",
        "anchor_delivery_id": first,
        "from_step": "inapp",
        "to_step": "email",
    }
    assert (run.last_transition_at, run.suspended_until, run.pending_signals) == (later, None, ())
    (planned,) = progress.deliveries
    assert (planned.channel, planned.workflow_step_id, planned.inserted_at) == (
        "email",
        email,
        later,
    )


def test_settle_after_signal(store: Store, clock: FakeClock) -> None:
    result = trigger(store, recipient="alice")
    (inapp,) = step_ids(store, result, "inapp")
    first = result.deliveries[0].id
    settle(store, clock, first, "succeeded")
    clock.advance(minutes=10)
    resumed = store.route_signal(Signal("acme", "notification_read", "alice"))
    assert list(resumed) == [result.run.id]
    clock.advance(1)
    # the next progression completes it (its delivery is final, and a bounce would have
    # matched a rule: a settling run completes whatever its delivery says, see test_machine)
    progress = store.progress_run(result.run.id)
    context = {
        "rule_kind": "wait_cancelled",
        "event_name": "notification_read",
        "anchor_delivery_id": first,
    }
    assert trace(store, result.run.id)[3:] == [
        ("signal_received", W, A, None, None, {"event_name": "notification_read"}),
        ("workflow_completed", A, C, inapp, first, context),
    ]
    run = store.get_run(result.run.id)
    assert (progress.kind, progress.reason, progress.run, progress.deliveries) == (
        ProgressKind.COMPLETED,
        "workflow_completed",
        run,
        (),
    )
    assert (run.state, run.current_step_id, run.status_reason, run.status_context) == (
        RunState.COMPLETED,
        inapp,
        "workflow_completed",
        context,
    )
    assert run.terminal_reason == "cancelled_by_signal"
    assert run.last_transition_at == clock.now()
    assert len(store.list_deliveries("acme", run.id)) == 1


def test_settle_names_the_event_that_resumed_the_run(store: Store, clock: FakeClock) -> None:
    """The event is the run's own state (resumed_by), not whatever trace row came last: a
    host's note under the same reason does not change it; rewriting resumed_by does."""
    result = trigger(store)
    settle(store, clock, result.deliveries[0].id, "succeeded")
    store.route_signal(Signal("acme", "notification_read"))
    assert store.get_run(result.run.id).resumed_by == "notification_read"
    with store.transaction() as tx:  # a host's own note, under the same reason
        tx.append_transition(
            result.run.id,
            "active",
            "signal_received",
            from_state="active",
            context={"event_name": "clicked"},
        )
    with store.transaction() as tx:
        assert tx.lock_run(result.run.id).resumed_by == "notification_read"
        tx.update_run(result.run.id, resumed_by="clicked")
    progress = store.progress_run(result.run.id)
    assert progress.run.status_context["event_name"] == "clicked"
    assert trace(store, result.run.id)[-1][5]["event_name"] == "clicked"
    assert progress.run.resumed_by is None


def test_stop(store: Store, clock: FakeClock) -> None:
    workflow = Workflow(
        "stopper",
        1,
        [
            Step("a", 1, "sms", progress=[Stop(Outcome.RETRIES_EXHAUSTED), WaitUntil(60, "b")]),
            Step("b", 2, "email"),
        ],
    )
    result = trigger(store, workflow=workflow)
    (a,) = step_ids(store, result, "a")
    first = result.deliveries[0].id
    progress = settle(store, clock, first, "cancelled", "retries_exhausted")
    context = {
        "rule_kind": "stop",
        "workflow_outcome": "retries_exhausted",
        "anchor_delivery_id": first,
        "delivery_status": "cancelled",
        "suppression_reason": "retries_exhausted",
    }
    assert trace(store, result.run.id)[2:] == [("workflow_stopped", A, S, a, first, context)]
    run = store.get_run(result.run.id)
    assert (progress.kind, progress.run) == (ProgressKind.STOPPED, run)
    assert (run.state, run.status_reason, run.status_context, run.terminal_reason) == (
        RunState.STOPPED,
        "workflow_stopped",
        context,
        "workflow_stopped",
    )
    assert run.last_transition_at == clock.now()


def test_implicit_completion(store: Store, clock: FakeClock) -> None:
    result = trigger(store)
    settle(store, clock, result.deliveries[0].id, "cancelled", "bounced")
    (email,) = step_ids(store, result, "email")
    second = store.list_deliveries("acme", result.run.id)[1].id
    progress = settle(store, clock, second, "suppressed", "do_not_disturb")
    context = {
        "rule_kind": "implicit_completion",
        "workflow_outcome": "suppressed",
        "anchor_delivery_id": second,
        "delivery_status": "suppressed",
        "suppression_reason": "do_not_disturb",
    }
    assert trace(store, result.run.id)[4:] == [("workflow_completed", A, C, email, second, context)]
    run = store.get_run(result.run.id)
    assert progress.kind is ProgressKind.COMPLETED
    assert (run.state, run.current_step_id, run.status_context, run.terminal_reason) == (
        RunState.COMPLETED,
        email,
        context,
        "workflow_completed",
    )


def test_the_anchor_is_the_latest_delivery_of_the_current_step(
    store: Store, clock: FakeClock
) -> None:
    loop = Workflow(
        "loop",
        1,
        [
            Step("a", 1, "in_app", [OnOutcome("delivered", "b")]),
            Step("b", 2, "email", [OnOutcome("delivered", "a")]),
        ],
    )
    result = trigger(store, workflow=loop)
    first_a = result.deliveries[0].id
    (b,) = settle(store, clock, first_a, "succeeded").deliveries
    (second_a,) = settle(store, clock, b.id, "succeeded").deliveries
    run = store.get_run(result.run.id)
    assert run.current_step_id == step_ids(store, result, "a")[0]
    # the first "a" delivery succeeded; the run must judge the second one, still pending
    progress = store.progress_run(run.id)
    assert (progress.kind, progress.reason) == (ProgressKind.NOOP, "no_matching_progress_rule")
    progress = settle(store, clock, second_a.id, "succeeded")
    assert progress.kind is ProgressKind.ADVANCED
    assert trace(store, run.id)[-2][4] == second_a.id


# -- noops write nothing ---------------------------------------------------------------------------


def _noop_runs(store: Store, clock: FakeClock) -> Iterator[tuple[str, str]]:
    """(run id, expected noop reason) for every noop reachable through the store."""
    waiting = trigger(store, key="waiting")
    settle(store, clock, waiting.deliveries[0].id, "succeeded")
    yield waiting.run.id, "wait_not_due"
    converging = trigger(store, key="converging")
    store.claim_deliveries(100)
    yield converging.run.id, "prior_delivery_not_converged"
    done = trigger(store, key="done")
    settle(store, clock, done.deliveries[0].id, "cancelled", "bounced")
    email = store.list_deliveries("acme", done.run.id)[1]
    yield done.run.id, "no_progress_rules"
    settle(store, clock, email.id, "succeeded")
    yield done.run.id, "run_not_active"
    picky = trigger(
        store,
        workflow=Workflow(
            "picky", 1, [Step("a", 1, "sms", [OnOutcome("bounced", "b")]), Step("b", 2, "email")]
        ),
        key="picky",
    )
    yield picky.run.id, "no_matching_progress_rule"
    yield _bare_run(store, clock), "no_active_step_delivery"


def _bare_run(store: Store, clock: FakeClock) -> str:
    """A run started with tx.create_initial_run, which plans no delivery."""
    result = trigger(store, key="bare-source")
    definition = store.fetch_definition("escalation", 1)
    assert definition is not None
    with store.transaction() as tx:
        sql(store).execute(
            "INSERT INTO notifications (id, tenant_id, recipient, notification_key, "
            "idempotency_key, workflow_definition_id, inserted_at) "
            "SELECT 'bare-notification', tenant_id, recipient, notification_key, 'bare', "
            "workflow_definition_id, inserted_at FROM notifications WHERE id = ?",
            (result.notification.id,),
        )
        run = tx.create_initial_run("bare-notification", definition, clock.now(), "acme")
    return run.id


def test_noops_write_nothing(store: Store, clock: FakeClock) -> None:
    seen = []
    for run_id, reason in _noop_runs(store, clock):
        before = table_dump(store)
        run = store.get_run(run_id)
        progress = store.progress_run(run_id)
        assert (progress.kind, progress.reason, progress.run, progress.deliveries) == (
            ProgressKind.NOOP,
            reason,
            run,
            (),
        )
        assert table_dump(store) == before
        seen.append(reason)
    assert len(set(seen)) == 6


def test_progress_of_an_unknown_run_or_naive_time_writes_nothing(store: Store) -> None:
    result = trigger(store)
    before = table_dump(store)
    with pytest.raises(RunNotFound):
        store.progress_run("0b7ae6b2-7a0e-4a4e-9d5c-6a1e58d51a11")
    with pytest.raises(ChimewayError) as caught:
        store.progress_run(result.run.id, now=datetime(2026, 1, 5, 12))
    assert isinstance(caught.value, ValueError)
    assert table_dump(store) == before


# -- exactly once ----------------------------------------------------------------------------------


def test_repeating_a_progression_advances_once(store: Store, clock: FakeClock) -> None:
    result = trigger(store)
    first = result.deliveries[0].id
    sql(store).execute(  # the outcome is in, the progression has not run yet
        "UPDATE deliveries SET status = 'cancelled', suppression_reason = 'bounced' WHERE id = ?",
        (first,),
    )
    kinds = [store.progress_run(result.run.id).kind for _ in range(10)]
    assert kinds == [ProgressKind.ADVANCED] + [ProgressKind.NOOP] * 9
    reasons = [row[0] for row in trace(store, result.run.id)]
    assert reasons.count("progressed_on_delivery_outcome") == 1
    assert len(store.list_deliveries("acme", result.run.id)) == 2


def test_concurrent_progressions_of_a_converged_run_advance_once(
    store: Store, clock: FakeClock, location: str
) -> None:
    result = trigger(store)
    first = result.deliveries[0].id
    sql(store).execute(
        "UPDATE deliveries SET status = 'cancelled', suppression_reason = 'bounced' WHERE id = ?",
        (first,),
    )
    results = race(location, clock, lambda s: s.progress_run(result.run.id))
    assert sorted(p.kind.value for p in results) == ["advanced"] + ["noop"] * 9
    reasons = [row[0] for row in trace(store, result.run.id)]
    assert reasons.count("progressed_on_delivery_outcome") == 1
    assert reasons.count("step_activated") == 2
    assert [d.channel for d in store.list_deliveries("acme", result.run.id)] == [
        "in_app",
        "email",
    ]


def test_concurrent_due_sweeps_reactivate_once(
    store: Store, clock: FakeClock, location: str
) -> None:
    result = trigger(store)
    settle(store, clock, result.deliveries[0].id, "succeeded")
    clock.advance(hours=3)
    results = race(location, clock, lambda s: s.progress_due_runs())
    assert sorted(len(r) for r in results) == [0] * 9 + [1]
    reasons = [row[0] for row in trace(store, result.run.id)]
    assert reasons.count("reactivated_from_wait") == 1
    assert len(store.list_deliveries("acme", result.run.id)) == 2


# -- the due sweep ---------------------------------------------------------------------------------


def _waiting(store: Store, clock: FakeClock, key: str, *, delay_after: float) -> str:
    result = trigger(store, key=key)
    store.claim_deliveries(100)
    clock.advance(delay_after)
    store.record_outcome(result.deliveries[0].id, "succeeded")
    return result.run.id


def test_due_sweep_order_and_results(store: Store, clock: FakeClock) -> None:
    assert store.next_due_at() is None
    assert store.progress_due_runs() == []
    early, late, *tied = [_waiting(store, clock, f"k{i}", delay_after=0) for i in range(5)]
    signalled = trigger(store, key="signalled", recipient="bob")
    settle(store, clock, signalled.deliveries[0].id, "succeeded")
    clock.advance(minutes=1)
    assert list(store.route_signal(Signal("acme", "notification_read", "bob"))) == [
        signalled.run.id
    ]
    signal_time = clock.now()
    # the host's escape hatch sets due times around the signal's
    with store.transaction() as tx:
        tx.update_run(early, suspended_until=signal_time - timedelta(seconds=1))
        tx.update_run(late, suspended_until=signal_time + timedelta(hours=2))
        for run_id in tied:
            tx.update_run(run_id, suspended_until=signal_time + timedelta(hours=1))
    assert store.next_due_at() == signal_time - timedelta(seconds=1)
    assert store.progress_due_runs(now=signal_time - timedelta(seconds=1, microseconds=1)) == []
    clock.advance(hours=2)
    swept = store.progress_due_runs()
    assert [p.run.id for p in swept] == [early, signalled.run.id, *sorted(tied), late]
    assert [p.kind.value for p in swept] == ["advanced", "completed"] + ["advanced"] * 4
    assert swept[1].run.terminal_reason == "cancelled_by_signal"
    assert all(p.run == store.get_run(p.run.id) for p in swept)
    assert store.next_due_at() is None
    assert store.progress_due_runs() == []


def test_due_sweep_returns_only_changes(store: Store, clock: FakeClock) -> None:
    stuck = _waiting(store, clock, "stuck", delay_after=0)
    fine = _waiting(store, clock, "fine", delay_after=0)
    with store.transaction() as tx:  # a wait leading nowhere: due, but a noop
        tx.update_run(stuck, wait_target="nowhere")
    clock.advance(hours=3)
    before = store.get_run(stuck)
    swept = store.progress_due_runs()
    assert [p.run.id for p in swept] == [fine]
    assert store.get_run(stuck) == before
    assert store.progress_run(stuck).reason == "unknown_to_step"


def test_next_due_at_takes_the_earliest(store: Store, clock: FakeClock) -> None:
    first = _waiting(store, clock, "first", delay_after=0)
    due_first = store.get_run(first).suspended_until
    clock.advance(minutes=30)
    _waiting(store, clock, "second", delay_after=0)
    assert store.next_due_at() == due_first
    clock.advance(minutes=30)
    store.route_signal(Signal("acme", "notification_read"))
    assert store.next_due_at() == clock.now()  # both resumed: settle them at once
    store.progress_due_runs()
    assert store.next_due_at() is None


@pytest.mark.sqlite_only
def test_due_sweep_reads_only_the_partial_indexes(store: Store) -> None:
    plan = (
        sql(store)
        .execute(
            "EXPLAIN QUERY PLAN " + transaction.DUE_RUNS,
            {
                "now": "2026-01-05T09:30:00.000000+00:00",
                "limit": -1,
                "after_due": "",
                "after_id": "",
            },
        )
        .fetchall()
    )
    text = "\n".join(str(row["detail"]) for row in plan)
    assert "workflow_runs_waiting_due" in text
    assert "workflow_runs_signal_settle" in text
    assert "SCAN workflow_runs" not in text


# -- the injected clock ----------------------------------------------------------------------------


class RecordingClock:
    """Any object with now() is a clock; this one remembers what it said."""

    def __init__(self, start: datetime) -> None:
        self.fake = FakeClock(start)
        self.shown: set[datetime] = set()

    def now(self) -> datetime:
        """The fake clock's instant, remembered."""
        instant = self.fake.now()
        self.shown.add(instant)
        return instant


def _timestamps(store: Store) -> dict[str, set[str]]:
    """Every fixed-width timestamp text found in the store, by table.column (and context)."""
    found: dict[str, set[str]] = {}
    conn = sql(store)
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        rows = conn.execute(f'SELECT * FROM "{table}"')  # names from sqlite_master, not input
        names = [d[0] for d in rows.description]
        for row in rows:
            for name, value in zip(names, row, strict=True):
                if isinstance(value, str) and len(value) == 32 and value.endswith("+00:00"):
                    found.setdefault(f"{table}.{name}", set()).add(value)
    for t in sql(store).execute("SELECT context FROM workflow_transitions"):
        for key, value in json.loads(t[0]).items():
            if key in ("anchor_timestamp", "due_at", "reactivated_at"):
                found.setdefault(f"context.{key}", set()).add(value)
    return found


def test_every_recorded_time_comes_from_the_injected_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_wall_clock(self: SystemClock) -> datetime:
        raise AssertionError("the engine read the system clock")

    monkeypatch.setattr(SystemClock, "now", no_wall_clock)
    clock = RecordingClock(datetime(2031, 7, 4, 12, 0, 0, 123457, tzinfo=UTC))
    with Store(tmp_path / "clock.db", clock=clock) as store:
        bounced = trigger(store, key="bounced")
        waited = trigger(store, key="waited")
        read = trigger(store, key="read", recipient="bob")
        clock.fake.advance(seconds=3, microseconds=5)
        store.claim_deliveries(10)
        clock.fake.advance(seconds=1)
        store.record_outcome(bounced.deliveries[0].id, "cancelled", "bounced")
        clock.fake.advance(microseconds=1)
        store.record_outcome(waited.deliveries[0].id, "succeeded")
        clock.fake.advance(microseconds=1)
        store.record_outcome(read.deliveries[0].id, "failed")
        clock.fake.advance(minutes=5)
        store.track_signal(Signal("acme", "notification_read", payload={"x": 1}, actor_id="bob"))
        clock.fake.advance(hours=3)
        store.progress_due_runs()
        stamps = _timestamps(store)
    shown = {stamp(t) for t in clock.shown}
    due = {stamp(t + timedelta(hours=2)) for t in clock.shown}
    leased = {stamp(t + timedelta(seconds=300)) for t in clock.shown}  # the default lease
    derived = {
        "workflow_runs.suspended_until": due,
        "context.due_at": due,
        "deliveries.lease_expires_at": leased,
        "delivery_events.lease_expires_at": leased,
    }
    assert len(shown) >= 6
    for column, values in stamps.items():
        assert values <= derived.get(column, shown), column
    assert {
        "workflow_runs.started_at",
        "deliveries.updated_at",
        "signals.inserted_at",
        "context.anchor_timestamp",
        "context.reactivated_at",
        "workflow_transitions.inserted_at",
    } <= set(stamps)


def test_an_explicit_now_is_what_the_progression_records(store: Store, clock: FakeClock) -> None:
    result = trigger(store)
    settle(store, clock, result.deliveries[0].id, "succeeded")
    chosen = datetime(2026, 1, 6, tzinfo=UTC)
    progress = store.progress_run(result.run.id, now=chosen)
    assert progress.run.last_transition_at == chosen
    assert progress.deliveries[0].inserted_at == chosen
    assert store.list_traces("acme", result.run.id)[-1].inserted_at == chosen
    assert clock.now() < chosen
