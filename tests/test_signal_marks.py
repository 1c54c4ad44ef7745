"""Signals, second part (CONTRACT §13): early signals, addressed signals, cancel, on_signal —
each rule pinned with its exact trace rows and contexts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from backends import sql
from factories import START, escalation_workflow, trigger
from journeys import trace
from strategies import table_dump

from chimeway_lite import (
    FakeClock,
    InvalidArgument,
    InvalidWorkflow,
    OnOutcome,
    OnSignal,
    Outcome,
    ProgressKind,
    RunState,
    Signal,
    Step,
    Store,
    WaitUntil,
    Workflow,
)
from chimeway_lite.declarations import coerce_workflow, workflow_to_dict

A, W, C, S = RunState.ACTIVE, RunState.WAITING, RunState.COMPLETED, RunState.STOPPED
READ = "notification_read"

#: Wait up to a day for the user to act; if they act, thank them; if not, remind them.
NUDGE = Workflow(
    "nudge",
    1,
    [
        Step(
            "ask",
            1,
            "in_app",
            progress=[
                OnOutcome(Outcome.BOUNCED, "remind"),
                WaitUntil(86400, "remind", ["dismissed"]),
                OnSignal("acted", "thanks"),
            ],
        ),
        Step("remind", 2, "email"),
        Step("thanks", 3, "email"),
    ],
)


def _step_id(store: Store, run_id: str, key: str) -> str:
    step = store.fetch_step_by_key(store.get_run(run_id).workflow_definition_id, key)
    assert step is not None
    return step.id


# -- 13.1 early signals ----------------------------------------------------------------------


def test_a_read_before_the_outcome_completes_the_run_at_the_outcome(
    store: Store, clock: FakeClock
) -> None:
    """The user opens the in-app message before its delivery webhook arrives: the read is
    routed while the run is active (it resumes nothing), and the outcome then completes the
    run at once instead of starting a 2-hour wait — no email."""
    result = trigger(store, recipient="ada")
    inapp = result.deliveries[0].id
    clock.advance(minutes=1)
    read_at = clock.now()
    assert store.route_signal(Signal("acme", READ, "ada")) == {}
    clock.advance(seconds=30)

    progress = store.record_outcome(inapp, "succeeded")

    assert progress is not None
    assert (progress.kind, progress.reason, progress.deliveries) == (
        ProgressKind.COMPLETED,
        "workflow_completed",
        (),
    )
    context = {
        "rule_kind": "wait_cancelled",
        "event_name": READ,
        "anchor_delivery_id": inapp,
        "signalled_at": "2026-01-05T09:31:00.000000+00:00",
    }
    step = _step_id(store, result.run.id, "inapp")
    assert trace(store, result.run.id)[2:] == [("workflow_completed", A, C, step, inapp, context)]
    run = progress.run
    assert (run.state, run.status_reason, run.status_context, run.terminal_reason) == (
        C,
        "workflow_completed",
        context,
        "cancelled_by_signal",
    )
    assert read_at.isoformat() in store.explain("acme", run.id).why
    assert "came before the wait on step 'inapp' began" in store.explain("acme", run.id).why
    assert store.claim_deliveries(channel="email") == []
    assert store.verify() == []


def test_a_read_from_before_the_run_started_does_not_count(store: Store, clock: FakeClock) -> None:
    store.route_signal(Signal("acme", READ, "ada"))
    clock.advance(seconds=1)
    result = trigger(store, recipient="ada")
    progress = store.record_outcome(result.deliveries[0].id, "succeeded")
    assert progress is not None and progress.kind is ProgressKind.WAITING


def test_a_read_from_before_the_run_entered_its_step_does_not_count(
    store: Store, clock: FakeClock
) -> None:
    """Marks count from the moment the cursor entered its current step, not from the
    trigger: a read of the first step's message does not end the second step's wait."""
    two_waits = Workflow(
        "two_waits",
        1,
        [
            Step("first", 1, "in_app", progress=[WaitUntil(60, "second", [READ])]),
            Step("second", 2, "email", progress=[WaitUntil(60, "third", [READ])]),
            Step("third", 3, "sms"),
        ],
    )
    result = trigger(store, recipient="ada", workflow=two_waits)
    store.record_outcome(result.deliveries[0].id, "succeeded")  # waits 60 s
    clock.advance(seconds=61)
    (moved,) = store.progress_due_runs()  # on to "second"
    clock.advance(seconds=1)
    (email,) = moved.deliveries
    store.route_signal(Signal("acme", READ, "ada"))  # while "second" is active: counts
    progress = store.record_outcome(email.id, "succeeded")
    assert progress is not None and progress.run.terminal_reason == "cancelled_by_signal"

    later = trigger(store, recipient="bob", workflow=two_waits)
    clock.advance(seconds=1)
    store.route_signal(Signal("acme", READ, "bob"))  # while "first" is active
    progress = store.record_outcome(later.deliveries[0].id, "succeeded")
    assert progress is not None and progress.run.terminal_reason == "cancelled_by_signal"
    # a new run of bob's, triggered after that read: the read does not count for it
    clock.advance(seconds=1)
    fresh = trigger(store, recipient="bob", workflow=two_waits)
    assert store.record_outcome(fresh.deliveries[0].id, "succeeded").kind is ProgressKind.WAITING


@pytest.mark.parametrize(
    ("mark", "counts"),
    [
        (Signal("acme", READ), True),  # no actor: any recipient of the tenant
        (Signal("acme", READ, "ada"), True),
        (Signal("acme", READ, "bob"), False),  # another recipient
        (Signal("globex", READ, "ada"), False),  # another tenant: the wall
        (Signal("acme", "clicked", "ada"), False),  # an event the wait does not pend on
        (Signal("acme", READ, "ada", correlation_key="o-100"), True),
        (Signal("acme", READ, "ada", correlation_key="o-200"), False),  # another order
    ],
    ids=["tenant", "actor", "other actor", "other tenant", "other event", "key", "other key"],
)
def test_which_marks_count(store: Store, clock: FakeClock, mark: Signal, counts: bool) -> None:
    result = trigger(store, recipient="ada", correlation_key="o-100")
    clock.advance(seconds=1)
    store.route_signal(mark)
    progress = store.record_outcome(result.deliveries[0].id, "succeeded")
    assert progress is not None
    assert progress.kind is (ProgressKind.COMPLETED if counts else ProgressKind.WAITING)


def test_a_keyed_mark_never_matches_an_unkeyed_run(store: Store, clock: FakeClock) -> None:
    result = trigger(store, recipient="ada")  # no correlation key
    store.route_signal(Signal("acme", READ, "ada", correlation_key="o-100"))
    progress = store.record_outcome(result.deliveries[0].id, "succeeded")
    assert progress is not None and progress.kind is ProgressKind.WAITING


def test_the_earliest_mark_decides(store: Store, clock: FakeClock) -> None:
    result = trigger(store, recipient="ada", workflow=NUDGE)
    clock.advance(seconds=1)
    store.route_signal(Signal("acme", "acted", "ada"))
    clock.advance(seconds=1)
    store.route_signal(Signal("acme", "dismissed", "ada"))
    progress = store.record_outcome(result.deliveries[0].id, "succeeded")
    assert progress is not None and progress.reason == "progressed_on_signal"
    assert progress.run.status_context["event_name"] == "acted"


# -- 13.2 addressed signals --------------------------------------------------------------------


def test_a_signal_with_a_correlation_key_reaches_only_that_notifications_runs(
    store: Store, clock: FakeClock
) -> None:
    """Bob has two shipments: viewing order o-100 ends o-100's reminder, not o-200's."""
    o100 = trigger(store, recipient="bob", correlation_key="o-100")
    o200 = trigger(store, recipient="bob", correlation_key="o-200")
    for result in (o100, o200):
        store.record_outcome(result.deliveries[0].id, "succeeded")
    clock.advance(minutes=5)
    signal = Signal("acme", READ, "bob", correlation_key="o-100")
    assert store.preview_signal(signal) == [o100.run.id]
    assert list(store.route_signal(signal)) == [o100.run.id]
    assert store.get_run(o200.run.id).state is W
    # without an actor too
    assert list(store.route_signal(Signal("acme", READ, correlation_key="o-200"))) == [o200.run.id]
    assert o100.notification.correlation_key == "o-100"


@pytest.mark.parametrize("key", ["", "  ", "x" * 256, "a\x00b", 5])
def test_a_bad_correlation_key_is_refused(store: Store, key: Any) -> None:
    before = table_dump(store)
    with pytest.raises(InvalidArgument):
        trigger(store, correlation_key=key)
    with pytest.raises(InvalidArgument):
        store.route_signal(Signal("acme", READ, correlation_key=key))
    assert table_dump(store) == before


# -- 13.3 cancel -----------------------------------------------------------------------------


def test_cancel_stops_active_and_waiting_runs_and_their_pending_deliveries(
    store: Store, clock: FakeClock
) -> None:
    active = trigger(store, recipient="ada", correlation_key="o-1")
    waiting = trigger(store, recipient="ada", correlation_key="o-1")
    store.record_outcome(waiting.deliveries[0].id, "succeeded")
    other = trigger(store, recipient="ada", correlation_key="o-2")
    clock.advance(minutes=1)

    stopped = store.cancel("acme", correlation_key="o-1")

    assert sorted(r.id for r in stopped) == sorted([active.run.id, waiting.run.id])
    for result, from_state, delivery in (
        (active, A, active.deliveries[0].id),
        (waiting, W, waiting.deliveries[0].id),
    ):
        run = store.get_run(result.run.id)
        assert (run.state, run.status_reason, run.terminal_reason, run.status_context) == (
            S,
            "workflow_cancelled",
            "cancelled",
            {"rule_kind": "cancel"},
        )
        step = _step_id(store, result.run.id, "inapp")
        assert trace(store, result.run.id)[-1] == (
            "workflow_cancelled",
            from_state,
            S,
            step,
            delivery,
            {"rule_kind": "cancel"},
        )
        assert run.pending_signals == () and run.suspended_until is None
    (pending,) = store.list_deliveries("acme", active.run.id)
    assert (pending.status, pending.suppression_reason) == ("cancelled", "workflow_cancelled")
    assert store.get_run(other.run.id).state is A
    assert store.cancel("acme", correlation_key="o-1") == []  # again: a no-op
    assert store.claim_deliveries(channel="in_app")[0].id == other.deliveries[0].id
    assert store.verify() == []


def test_cancel_leaves_a_dispatched_delivery_to_finish(store: Store) -> None:
    result = trigger(store, recipient="ada")
    (claimed,) = store.claim_deliveries()
    (stopped,) = store.cancel("acme", run_id=result.run.id)
    progress = store.record_outcome(claimed.id, "succeeded")
    assert progress is not None and (progress.kind, progress.reason) == (
        ProgressKind.NOOP,
        "run_not_active",
    )
    assert store.get_run(result.run.id) == stopped
    assert store.verify() == []


def test_cancel_by_recipient_and_every_selector_must_match(store: Store) -> None:
    ada = trigger(store, recipient="ada", correlation_key="o-1")
    bob = trigger(store, recipient="bob", correlation_key="o-1")
    assert store.cancel("acme", recipient="ada", correlation_key="o-2") == []
    assert store.cancel("acme", run_id=bob.run.id, recipient="ada") == []
    assert store.cancel("globex", recipient="ada") == []  # the tenant wall
    (stopped,) = store.cancel("acme", recipient="ada")
    assert stopped.id == ada.run.id
    assert store.get_run(bob.run.id).state is A


def test_cancel_of_a_finished_run_is_a_no_op(store: Store) -> None:
    result = trigger(store, recipient="ada")
    store.record_outcome(result.deliveries[0].id, "cancelled", "bounced")
    (email,) = store.claim_deliveries()
    store.record_outcome(email.id, "succeeded")
    before = table_dump(store)
    assert store.cancel("acme", run_id=result.run.id) == []
    assert table_dump(store) == before


@pytest.mark.parametrize(
    "selectors",
    [{}, {"run_id": ""}, {"recipient": " "}, {"correlation_key": "x" * 300}, {"run_id": 5}],
    ids=["none", "blank run", "blank recipient", "long key", "not a string"],
)
def test_cancel_needs_a_good_selector(store: Store, selectors: dict[str, Any]) -> None:
    trigger(store)
    before = table_dump(store)
    with pytest.raises(InvalidArgument):
        store.cancel("acme", **selectors)
    assert table_dump(store) == before


# -- 13.4 on_signal --------------------------------------------------------------------------


def test_on_signal_moves_the_run_after_the_signal(store: Store, clock: FakeClock) -> None:
    result = trigger(store, recipient="ada", workflow=NUDGE)
    ask = result.deliveries[0].id
    store.record_outcome(ask, "succeeded")
    run = store.get_run(result.run.id)
    assert run.pending_signals == ("dismissed", "acted")  # cancel signals first
    clock.advance(hours=3)
    (resumed,) = store.route_signal(Signal("acme", "acted", "ada")).values()
    assert resumed.transition.reason == "signal_received"
    (progress,) = store.progress_due_runs()
    assert (progress.kind, progress.reason) == (ProgressKind.ADVANCED, "progressed_on_signal")
    context = {
        "rule_kind": "on_signal",
        "event_name": "acted",
        "anchor_delivery_id": ask,
        "from_step": "ask",
        "to_step": "thanks",
    }
    ask_id, thanks_id = (_step_id(store, result.run.id, k) for k in ("ask", "thanks"))
    assert trace(store, result.run.id)[-2:] == [
        ("progressed_on_signal", A, A, ask_id, ask, context),
        ("step_activated", A, A, thanks_id, None, {"step_key": "thanks", "source": "progression"}),
    ]
    (planned,) = progress.deliveries
    assert planned.step_key == "thanks"
    assert progress.run.status_reason == "progressed_on_signal"
    assert "an on_signal rule leads there" in store.explain("acme", result.run.id).why
    assert store.verify() == []


def test_without_the_signal_the_wait_goes_to_its_own_target(store: Store, clock: FakeClock) -> None:
    result = trigger(store, recipient="ada", workflow=NUDGE)
    store.record_outcome(result.deliveries[0].id, "succeeded")
    clock.advance(days=1)
    (progress,) = store.progress_due_runs()
    assert store.get_current_step(progress.run).step_key == "remind"
    # the other pending signal still cancels (completes) as before
    other = trigger(store, recipient="bob", workflow=NUDGE)
    store.record_outcome(other.deliveries[0].id, "succeeded")
    store.route_signal(Signal("acme", "dismissed", "bob"))
    (done,) = store.progress_due_runs()
    assert done.run.terminal_reason == "cancelled_by_signal"


def test_an_early_signal_with_on_signal_moves_the_run_at_wait_entry(
    store: Store, clock: FakeClock
) -> None:
    result = trigger(store, recipient="ada", workflow=NUDGE)
    ask = result.deliveries[0].id
    clock.advance(seconds=10)
    store.route_signal(Signal("acme", "acted", "ada"))
    clock.advance(seconds=10)
    progress = store.record_outcome(ask, "succeeded")
    assert progress is not None and progress.reason == "progressed_on_signal"
    rows = trace(store, result.run.id)
    assert [r[0] for r in rows] == [
        "workflow_started",
        "step_activated",
        "progressed_on_signal",
        "step_activated",
    ]  # no waiting row, no signal_received row
    assert rows[2][5] == {
        "rule_kind": "on_signal",
        "event_name": "acted",
        "anchor_delivery_id": ask,
        "from_step": "ask",
        "to_step": "thanks",
        "signalled_at": "2026-01-05T09:30:10.000000+00:00",
    }
    assert "came before the wait on step 'ask' began" in store.explain("acme", result.run.id).why
    assert store.verify() == []


def test_on_signal_declarations() -> None:
    assert coerce_workflow(workflow_to_dict(NUDGE)) == NUDGE
    assert workflow_to_dict(NUDGE)["steps"][0]["config"]["progress"][2] == {
        "kind": "on_signal",
        "event_name": "acted",
        "to_step": "thanks",
    }
    lonely = Workflow("w", 1, [Step("a", 1, "x", [OnSignal("acted", "b")]), Step("b", 2, "y")])
    with pytest.raises(InvalidWorkflow) as caught:
        coerce_workflow(lonely)
    assert caught.value.path == "steps[0](a).progress[0](on_signal)"
    twice = Workflow(
        "w",
        1,
        [
            Step("a", 1, "x", [WaitUntil(5, "b"), OnSignal("go", "b"), OnSignal("go", "c")]),
            Step("b", 2, "y"),
            Step("c", 3, "z"),
        ],
    )
    with pytest.raises(InvalidWorkflow) as caught:
        coerce_workflow(twice)
    assert caught.value.path == "steps[0](a).progress[2](on_signal).event_name"
    for bad in ("", "a\x00b", 5):
        with pytest.raises(InvalidWorkflow):
            coerce_workflow(
                Workflow("w", 1, [Step("a", 1, "x", [WaitUntil(5, "a"), OnSignal(bad, "a")])])
            )
    with pytest.raises(InvalidWorkflow):
        coerce_workflow(
            Workflow("w", 1, [Step("a", 1, "x", [WaitUntil(5, "a"), OnSignal("go", "nope")])])
        )


# -- prune and forget ------------------------------------------------------------------------


def _marks(store: Store) -> list[tuple[Any, ...]]:
    rows = sql(store).execute("SELECT tenant_id, event_name, actor_id FROM signal_marks")
    return [tuple(r) for r in rows]


def test_prune_keeps_the_marks_an_active_run_may_still_count(
    store: Store, clock: FakeClock
) -> None:
    store.route_signal(Signal("acme", READ, "old"))
    clock.advance(hours=1)
    active = trigger(store, recipient="ada")  # entered its step after the first mark
    clock.advance(hours=1)
    store.route_signal(Signal("acme", READ, "ada"))
    store.route_signal(Signal("globex", READ, "zed"))
    clock.advance(days=2)
    store.prune(clock.now())
    assert sorted(_marks(store)) == [("acme", READ, "ada")]  # the one ada's run may count
    assert store.record_outcome(active.deliveries[0].id, "succeeded").kind is (
        ProgressKind.COMPLETED
    )
    store.prune(clock.now() + timedelta(seconds=1))
    assert _marks(store) == []


def test_forget_erases_a_recipients_marks(store: Store) -> None:
    store.route_signal(Signal("acme", READ, "ada"))
    store.route_signal(Signal("acme", READ, "bob"))
    store.route_signal(Signal("acme", READ))
    store.route_signal(Signal("globex", READ, "ada"))
    store.forget("acme", "ada")
    assert sorted(_marks(store), key=repr) == [
        ("acme", READ, "bob"),
        ("acme", READ, None),
        ("globex", READ, "ada"),
    ]
    store.forget("acme")
    assert _marks(store) == [("globex", READ, "ada")]


def test_marks_hold_no_payload(store: Store) -> None:
    store.route_signal(Signal("acme", READ, "ada", {"secret": "sekret-value-7"}))
    store.track_signal(Signal("acme", READ, "ada", {"secret": "sekret-value-8"}))
    rows = sql(store).execute("SELECT * FROM signal_marks").fetchall()
    assert len(rows) == 2
    assert not any("sekret" in str(tuple(r)) for r in rows)


def test_escalation_read_in_time_sends_no_email(store: Store, clock: FakeClock) -> None:
    """The journey of the README with the read coming first: no email, for either order."""
    for order in ("read first", "outcome first"):
        result = trigger(store, recipient=order, workflow=escalation_workflow())
        clock.advance(seconds=1)
        if order == "read first":
            store.route_signal(Signal("acme", READ, order))
            store.record_outcome(result.deliveries[0].id, "succeeded")
        else:
            store.record_outcome(result.deliveries[0].id, "succeeded")
            store.route_signal(Signal("acme", READ, order))
        clock.advance(hours=3)
        store.progress_due_runs()
        assert store.get_run(result.run.id).terminal_reason == "cancelled_by_signal"
    assert store.claim_deliveries(channel="email") == []
    assert clock.now() > START


# -- the CLI ---------------------------------------------------------------------------------


def test_the_cli_signals_by_correlation_key_and_cancels(tmp_path: Any) -> None:
    import json as json_module

    from click.testing import CliRunner

    from chimeway_lite.tools.cli import cli

    path = str(tmp_path / "cli.db")
    with Store(path, clock=FakeClock(START)) as store:
        o100 = trigger(store, recipient="bob", correlation_key="o-100")
        o200 = trigger(store, recipient="bob", correlation_key="o-200")
        for result in (o100, o200):
            store.record_outcome(result.deliveries[0].id, "succeeded")
    runner = CliRunner()
    out = runner.invoke(
        cli, ["--db", path, "--json", "signal", "acme", READ, "--correlation-key", "o-100"]
    )
    assert out.exit_code == 0, out.output
    assert json_module.loads(out.output)["run_ids"] == [o100.run.id]
    out = runner.invoke(cli, ["--db", path, "cancel", "acme", "--correlation-key", "o-200"])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == ["stopped 1 run", f"  {o200.run.id}"]
    out = runner.invoke(cli, ["--db", path, "cancel", "acme"])
    assert out.exit_code == 2 and "at least one of" in out.output
    with Store(path) as store:
        assert store.get_run(o200.run.id).terminal_reason == "cancelled"
