"""explain(): the seed's eight fields, the evidence behind them, and the "why / why not"
sentences, for every place a run can stand."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest
from backends import sql
from factories import START, escalation_workflow, trigger

from chimeway_lite import (
    DeliveryStatus,
    FakeClock,
    OnOutcome,
    Outcome,
    ProgressKind,
    RunExplanation,
    RunState,
    Signal,
    Step,
    Stop,
    Store,
    WaitUntil,
    Workflow,
)
from chimeway_lite.declarations import rules_of, step_config
from chimeway_lite.engine.explanation import duration_text, explain_run, rules_text
from chimeway_lite.machine import Journey, progress

SEED_FIELDS = (
    "id",
    "tenant_id",
    "state",
    "status_reason",
    "current_step_name",
    "suspended_until",
    "pending_signals",
    "terminal_reason",
)


def deliver(store: Store, run_id: str, status: str, reason: str | None = None) -> str:
    (delivery,) = [
        d for d in store.list_deliveries("acme", run_id) if d.status is DeliveryStatus.PENDING
    ]
    store.record_outcome(delivery.id, status, reason)
    return delivery.id


def test_the_seed_fields_come_first_and_keep_their_names() -> None:
    names = tuple(f.name for f in attrs.fields(RunExplanation))
    assert names[: len(SEED_FIELDS)] == SEED_FIELDS


def test_a_new_run_waits_for_its_first_outcome_and_says_where_each_leads(store: Store) -> None:
    run_id = trigger(store).run.id
    (delivery,) = store.list_deliveries("acme", run_id)

    e = store.explain("acme", run_id)

    assert (e.state, e.status_reason, e.current_step_name) == (
        "active",
        "workflow_started",
        "inapp",
    )
    assert (e.suspended_until, e.pending_signals, e.terminal_reason) == (None, (), None)
    assert e.anchor_delivery_id == delivery.id
    assert e.anchor_delivery_status is DeliveryStatus.PENDING
    assert e.next_decision is ProgressKind.NOOP
    assert e.blocked_by == "prior_delivery_not_converged"
    assert e.why == "Started by a trigger; step 'inapp' is the first step."
    assert delivery.id in e.next_move and "'pending'" in e.next_move
    assert "record_outcome() decides" in e.next_move
    assert "bounced -> step 'email'" in e.next_move
    assert "any other outcome: wait 2 h -> step 'email' unless signal 'notification_read'" in (
        e.next_move
    )


def test_a_waiting_run_names_its_due_time_target_and_cancelling_signals(
    store: Store, clock: FakeClock
) -> None:
    run_id = trigger(store).run.id
    clock.advance(minutes=1)
    anchor = deliver(store, run_id, "succeeded")
    clock.advance(minutes=30)

    e = store.explain("acme", run_id)

    due = START + timedelta(minutes=1, hours=2)
    assert (e.state, e.status_reason) == (RunState.WAITING, "waiting_for_step_progression")
    assert e.suspended_until == due == e.due_at
    assert e.next_step == "email"
    assert e.pending_signals == ("notification_read",)
    assert (e.anchor_delivery_id, e.anchor_delivery_status) == (anchor, DeliveryStatus.SUCCEEDED)
    assert (e.next_decision, e.blocked_by) == (ProgressKind.NOOP, "wait_not_due")
    assert e.why == (
        f"Waiting on step 'inapp': delivery {anchor} settled 'succeeded' at "
        "2026-01-05T09:31:00+00:00, so the wait_until rule applies: step 'email' at "
        "2026-01-05T11:31:00+00:00."
    )
    assert e.next_move == (
        "At 2026-01-05T11:31:00+00:00 (in 1 h 30 min) the due sweep moves it to step 'email'; "
        "before then, signal 'notification_read' cancels the wait and completes the run."
    )
    assert e.last_transition is not None
    assert e.last_transition.reason == "waiting_for_step_progression"
    assert e.last_transition.context["due_at"] == "2026-01-05T11:31:00.000000+00:00"


def test_an_overdue_wait_says_that_only_the_sweep_is_missing(
    store: Store, clock: FakeClock
) -> None:
    run_id = trigger(store).run.id
    deliver(store, run_id, "succeeded")
    clock.advance(hours=2, minutes=5)

    e = store.explain("acme", run_id)

    assert e.state is RunState.WAITING
    assert (e.next_decision, e.blocked_by) == (ProgressKind.ADVANCED, None)
    assert e.next_move.startswith("It is due since 2026-01-05T11:30:00+00:00 (5 min ago)")
    assert "progress_due_runs()" in e.next_move and "moves it to step 'email'" in e.next_move


def test_a_wait_without_cancel_signals_says_so(store: Store) -> None:
    workflow = Workflow(
        "plain_wait", 1, [Step("a", 1, "in_app", progress=[WaitUntil(60, "b")]), Step("b", 2, "x")]
    )
    run_id = trigger(store, workflow=workflow).run.id
    deliver(store, run_id, "succeeded")

    e = store.explain("acme", run_id)

    assert e.pending_signals == ()
    assert e.next_move.endswith(
        "(in 1 min) the due sweep moves it to step 'b'; no signal cancels this wait."
    )


def test_a_signalled_run_is_settling_and_then_cancelled(store: Store, clock: FakeClock) -> None:
    run_id = trigger(store).run.id
    deliver(store, run_id, "succeeded")
    clock.advance(minutes=45)
    store.route_signal(Signal("acme", "notification_read"))

    settling = store.explain("acme", run_id)
    assert (settling.state, settling.status_reason) == ("active", "signal_received")
    assert settling.why == (
        "Signal 'notification_read' ended the wait on step 'inapp' at "
        "2026-01-05T10:15:00+00:00; the run is settling and will not wait again."
    )
    assert settling.next_decision is ProgressKind.COMPLETED
    assert "cancelled_by_signal" in settling.next_move

    store.progress_due_runs()
    done = store.explain("acme", run_id)
    assert (done.state, done.terminal_reason) == ("completed", "cancelled_by_signal")
    assert done.why == (
        "Completed: signal 'notification_read' cancelled the wait on step 'inapp', so the "
        "next step never ran."
    )
    assert done.next_move == "Nothing: completed is terminal (cancelled_by_signal)."
    assert (done.next_decision, done.blocked_by) == (ProgressKind.NOOP, "run_not_active")


def test_an_outcome_advance_names_the_delivery_and_its_outcome(store: Store) -> None:
    run_id = trigger(store).run.id
    anchor = deliver(store, run_id, "cancelled", "bounced")

    e = store.explain("acme", run_id)

    assert (e.current_step_name, e.status_reason) == ("email", "progressed_on_delivery_outcome")
    assert e.why == (
        f"Moved from step 'inapp' to 'email': delivery {anchor} ended 'bounced' (status "
        "'cancelled') and an on_outcome rule matched."
    )
    assert e.anchor_delivery_status is DeliveryStatus.PENDING  # the email's delivery now
    assert "no rules: its outcome completes the run" in e.next_move


def test_an_elapsed_wait_and_an_implicit_completion(store: Store, clock: FakeClock) -> None:
    run_id = trigger(store).run.id
    anchor = deliver(store, run_id, "succeeded")
    clock.advance(hours=2)
    store.progress_due_runs()

    moved = store.explain("acme", run_id)
    assert moved.why == (
        f"Moved from step 'inapp' to 'email': the wait after delivery {anchor} elapsed with "
        "no cancelling signal."
    )
    email = deliver(store, run_id, "succeeded")
    done = store.explain("acme", run_id)
    assert done.why == (
        f"Completed on step 'email': delivery {email} ended 'delivered' (status 'succeeded') "
        "and no rule leads further. Path: 'inapp' -> 'email' -> completed. 'email' ran "
        "because the 2 h wait after 'inapp' passed without 'notification_read'; it completed "
        "when the 'email' delivery ended 'delivered'."
    )
    assert done.why.endswith(str(done.path))
    assert done.next_move == "Nothing: completed is terminal (workflow_completed)."


def test_a_stop_names_the_rule(store: Store) -> None:
    workflow = Workflow(
        "stopper",
        1,
        [Step("a", 1, "email", progress=[Stop(Outcome.PERMANENT_FAILURE)]), Step("b", 2, "sms")],
    )
    run_id = trigger(store, workflow=workflow).run.id
    anchor = deliver(store, run_id, "cancelled", "permanent_failure")

    e = store.explain("acme", run_id)

    assert (e.state, e.terminal_reason) == ("stopped", "workflow_stopped")
    assert e.why == (
        f"Stopped on step 'a': delivery {anchor} ended 'permanent_failure' (status "
        "'cancelled') and a stop rule matched."
    )
    assert e.next_move == "Nothing: stopped is terminal (workflow_stopped)."


def test_a_run_without_a_delivery_says_none_is_planned(store: Store, clock: FakeClock) -> None:
    definition = store.upsert_definition("welcome", escalation_workflow())
    # A host's own notification row, started through the seed API: no delivery is planned.
    sql(store).execute(
        "INSERT INTO notifications (id, tenant_id, recipient, notification_key, "
        "idempotency_key, workflow_definition_id, inserted_at) VALUES ('n1', 'acme', 'ada', "
        "'welcome', 'k', ?, '2026-01-05T09:30:00.000000+00:00')",
        (definition.id,),
    )
    with store.transaction() as tx:
        run = tx.create_initial_run("n1", definition, clock.now(), "acme")

    e = store.explain("acme", run.id)

    assert (e.anchor_delivery_id, e.blocked_by) == (None, "no_active_step_delivery")
    assert e.next_move == "Waiting for input: no delivery is planned for step 'inapp'."


def test_a_host_reason_and_a_wait_towards_a_missing_step(store: Store, clock: FakeClock) -> None:
    run_id = trigger(store).run.id
    deliver(store, run_id, "succeeded")
    with store.transaction() as tx:
        run = tx.lock_run(run_id)
        tx.update_run(run, status_reason="host_note", wait_target="nowhere")
    clock.advance(hours=3)

    e = store.explain("acme", run_id)

    assert e.why == "Status 'host_note' on step 'inapp' (recorded by the host)."
    assert e.blocked_by == "unknown_to_step"
    assert "'nowhere' names no step of the definition (unknown_to_step)" in e.next_move


def test_explain_run_is_pure_and_the_extras_are_optional(store: Store) -> None:
    run_id = trigger(store).run.id
    run = store.get_run(run_id)
    definition = store.fetch_definition("escalation", 1)
    assert definition is not None
    journey = Journey.of(definition)

    e = explain_run(
        run,
        journey,
        None,
        progress(run, journey, None, now=START),
        workflow_key="escalation",
        workflow_version=1,
    )

    assert (e.anchor_delivery_id, e.anchor_delivery_status, e.last_transition) == (None,) * 3
    assert e.next_move == "Waiting for input: no delivery is planned for step 'inapp'."


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (45, "45 s"),
        (60, "1 min"),
        (3601, "1 h"),
        (5400, "1 h 30 min"),
        (7200, "2 h"),
        (90061, "1 d 1 h"),
        (-300, "5 min"),
    ],
)
def test_duration_text(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_rules_text_reads_like_the_machine_decides() -> None:
    steps = escalation_workflow().steps
    assert rules_text(rules_of(step_config(steps[0]))) == (
        "bounced -> step 'email'; any other outcome: wait 2 h -> step 'email' unless signal "
        "'notification_read'"
    )
    assert rules_text(()) == "no rules: its outcome completes the run"
    only_outcomes = (OnOutcome(Outcome.BOUNCED, "b"), Stop(Outcome.SUPPRESSED))
    assert rules_text(only_outcomes) == (
        "bounced -> step 'b'; suppressed -> stop; any other outcome completes the run"
    )
    assert rules_text((WaitUntil(30, "b", ["x", "y"]),)) == (
        "any outcome: wait 30 s -> step 'b' unless signal 'x' or 'y'"
    )


# -- whom, and the path -----------------------------------------------------------------------


def test_explain_says_whom_the_run_is_for(store: Store) -> None:
    run_id = trigger(store, recipient="ada", notification_key="welcome").run.id
    e = store.explain("acme", run_id)
    assert (e.recipient, e.notification_key) == ("ada", "welcome")


def test_the_path_of_a_run_on_its_way(store: Store, clock: FakeClock) -> None:
    run_id = trigger(store).run.id
    assert store.explain("acme", run_id).path == "Path: 'inapp' (active)."
    deliver(store, run_id, "succeeded")
    waiting = store.explain("acme", run_id)
    assert waiting.path == "Path: 'inapp' (waiting)."
    assert "Path" not in waiting.why  # an unfinished run's why is its last decision
    clock.advance(hours=2)
    store.progress_due_runs()
    assert store.explain("acme", run_id).path == (
        "Path: 'inapp' -> 'email' (active). 'email' ran because the 2 h wait after 'inapp' "
        "passed without 'notification_read'."
    )


def test_the_path_of_a_run_a_signal_ended_says_how_far_into_the_wait_it_came(
    store: Store, clock: FakeClock
) -> None:
    run_id = trigger(store).run.id
    clock.advance(minutes=1)
    deliver(store, run_id, "succeeded")
    clock.advance(minutes=44)
    store.route_signal(Signal("acme", "notification_read"))
    store.progress_due_runs()

    done = store.explain("acme", run_id)
    assert done.path == (
        "Path: 'inapp' -> completed. It completed because 'notification_read' came 44 min "
        "into the 2 h wait on 'inapp', so 'email' never ran."
    )
    # it ended on its first step: its last decision is all of its path
    assert "Path" not in done.why


def test_the_path_of_a_bounce_and_of_a_stop(store: Store) -> None:
    bounced = trigger(store).run.id
    deliver(store, bounced, "cancelled", "bounced")
    deliver(store, bounced, "succeeded")
    assert store.explain("acme", bounced).path == (
        "Path: 'inapp' -> 'email' -> completed. 'email' ran because the 'inapp' delivery "
        "ended 'bounced'; it completed when the 'email' delivery ended 'delivered'."
    )

    workflow = Workflow(
        "stopper",
        1,
        [
            Step("a", 1, "email", progress=[OnOutcome(Outcome.DELIVERED, "b")]),
            Step("b", 2, "sms", progress=[Stop(Outcome.PERMANENT_FAILURE)]),
        ],
    )
    stopped = trigger(store, workflow=workflow).run.id
    deliver(store, stopped, "succeeded")
    deliver(store, stopped, "cancelled", "permanent_failure")
    e = store.explain("acme", stopped)
    assert e.path == (
        "Path: 'a' -> 'b' -> stopped. 'b' ran because the 'a' delivery ended 'delivered'; "
        "it stopped because the 'b' delivery ended 'permanent_failure' and a stop rule matched."
    )
    assert e.why.endswith(e.path)


def test_the_path_of_a_cancelled_run(store: Store) -> None:
    run_id = trigger(store).run.id
    deliver(store, run_id, "succeeded")
    store.cancel("acme", run_id=run_id)
    assert store.explain("acme", run_id).path == (
        "Path: 'inapp' -> stopped. It was cancelled by the host on 'inapp'."
    )


def test_a_host_row_adds_nothing_to_the_path(store: Store) -> None:
    run_id = trigger(store).run.id
    with store.transaction() as tx:
        tx.append_transition(run_id, "active", "host_note", from_state="active")
    assert store.explain("acme", run_id).path == "Path: 'inapp' (active)."
