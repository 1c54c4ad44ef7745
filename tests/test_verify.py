"""verify(): each run's trace folded and checked against its row, plus SQLite's own checks.

Healthy stores — every engine path, host rows written through the seed API, prune and
forget — verify clean; each kind of damage, done by hand with plain SQL, is reported with
the run it concerns.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import timedelta

import pytest
from backends import sql
from factories import START, escalation_workflow, trigger

from chimeway_lite import (
    FakeClock,
    Outcome,
    Signal,
    Step,
    Stop,
    Store,
    Workflow,
)

STOPPING = Workflow(
    "stopping", 1, [Step("sms", 1, "sms", progress=[Stop(Outcome.PERMANENT_FAILURE)])]
)


def _every_path(store: Store, clock: FakeClock) -> dict[str, str]:
    """One run in each place the engine can put a run; returns name -> run id."""
    runs = {"fresh": trigger(store, key="fresh", recipient="f").run.id}
    for name in ("advanced", "settled", "reactivated", "completed"):
        started = trigger(store, key=name, recipient=name)
        runs[name] = started.run.id
        if name == "advanced":
            store.record_outcome(started.deliveries[0].id, "cancelled", "bounced")
        else:
            store.record_outcome(started.deliveries[0].id, "succeeded")  # enters the wait
    store.route_signal(Signal("acme", "notification_read", "settled"))
    stopped = trigger(store, key="stopped", recipient="s", workflow=STOPPING)
    runs["stopped"] = stopped.run.id
    store.record_outcome(stopped.deliveries[0].id, "cancelled", "permanent_failure")
    clock.advance(hours=3)
    store.progress_due_runs()  # settles "settled", reactivates the other two waits
    for delivery in store.claim_deliveries(100, channel="email"):
        if delivery.workflow_run_id == runs["completed"]:
            store.record_outcome(delivery.id, "succeeded")  # no rules: implicit completion
    waiting = trigger(store, key="waiting", recipient="w")
    store.record_outcome(waiting.deliveries[0].id, "succeeded")
    runs["waiting"] = waiting.run.id
    return runs


@pytest.fixture
def runs(store: Store, clock: FakeClock) -> dict[str, str]:
    """The store of the ``store`` fixture with a run in every engine state."""
    return _every_path(store, clock)


def _sql(store: Store, statement: str, *params: object) -> None:
    sql(store).execute(statement, params)


def _problems_of(store: Store, run_id: str) -> str:
    problems = store.verify()
    assert problems, "the damage was not reported"
    return "\n".join(p for p in problems if run_id in p)


# -- healthy stores ---------------------------------------------------------------------------


def test_an_empty_store_is_healthy(store: Store, memory_store: Store) -> None:
    assert store.verify() == []
    assert memory_store.verify() == []


def test_every_engine_path_verifies_clean(store: Store, runs: dict[str, str]) -> None:
    states = {name: store.get_run(run_id) for name, run_id in runs.items()}
    assert states["fresh"].state == "active"
    assert states["waiting"].state == "waiting" and states["waiting"].pending_signals
    assert states["settled"].terminal_reason == "cancelled_by_signal"
    assert states["reactivated"].status_reason == "progressed_on_delivery_outcome"
    assert states["completed"].terminal_reason == "workflow_completed"
    assert states["stopped"].terminal_reason == "workflow_stopped"
    assert store.verify() == []


def test_host_rows_through_the_seed_api_verify_clean(store: Store, runs: dict[str, str]) -> None:
    email_step = store.fetch_step_by_key(
        store.get_run(runs["fresh"]).workflow_definition_id, "email"
    )
    assert email_step is not None
    with store.transaction() as tx:
        # A note that changes nothing.
        tx.append_transition(runs["fresh"], "active", "host_note", from_state="active")
        # A host stop with its own terminal reason, recorded by the host.
        tx.append_transition(
            runs["advanced"], "stopped", "max_escalations_reached", from_state="active"
        )
        tx.update_run(
            runs["advanced"],
            state="stopped",
            status_reason="max_escalations_reached",
            terminal_reason="max_escalations_reached",
        )
        # A host extending a wait, recorded by the host.
        run = tx.get_run(runs["waiting"])
        assert run.suspended_until is not None
        tx.append_transition(run.id, "waiting", "wait_extended", from_state="waiting")
        tx.update_run(run, suspended_until=run.suspended_until + timedelta(days=1))
        # A note on a finished run, in its own state.
        tx.append_transition(runs["completed"], "completed", "archived_by_host")
        # status_reason and status_context are the host's to rewrite without a row.
        tx.update_run(runs["reactivated"], status_reason="host_touched", status_context={})
    assert store.verify() == []
    # A host moving the cursor records it with step_activated, the engine's own meaning.
    with store.transaction() as tx:
        tx.update_run(runs["fresh"], current_step_id=email_step.id)
        tx.append_transition(
            runs["fresh"],
            "active",
            "step_activated",
            from_state="active",
            workflow_step_id=email_step.id,
            context={"source": "host", "step_key": "email"},
        )
    assert store.verify() == []


def test_the_engine_takes_over_again_after_host_rows(store: Store, clock: FakeClock) -> None:
    started = trigger(store, key="k", recipient="ada")
    with store.transaction() as tx:
        tx.append_transition(started.run.id, "active", "host_note", from_state="active")
    store.record_outcome(started.deliveries[0].id, "succeeded")  # enters the wait
    assert store.verify() == []
    _sql(store, "UPDATE workflow_runs SET pending_signals = '[]' WHERE id = ?", started.run.id)
    assert "pending_signals" in _problems_of(store, started.run.id)


def test_a_run_created_without_a_delivery_verifies_clean(store: Store) -> None:
    definition = store.upsert_definition("welcome", escalation_workflow())
    with store.transaction() as tx:
        sql(store).execute(
            "INSERT INTO notifications (id, tenant_id, recipient, notification_key, "
            "idempotency_key, workflow_definition_id, inserted_at) "
            "VALUES ('n1', 'acme', 'ada', 'welcome', 'k1', ?, '2026-01-05T09:30:00.000000+00:00')",
            (definition.id,),
        )
        tx.create_initial_run("n1", definition, START, "acme")
    assert store.verify() == []


def test_prune_and_forget_leave_a_healthy_store(store: Store, runs: dict[str, str]) -> None:
    # A signal that names another recipient's delivery links two runs; erasing the other
    # recipient must not make the survivor's trace "broken".
    other = trigger(store, key="other", recipient="other")
    mine = trigger(store, key="mine", recipient="mine")
    store.record_outcome(mine.deliveries[0].id, "succeeded")
    resumed = store.route_signal(
        Signal("acme", "notification_read", "mine", {"delivery_id": other.deliveries[0].id})
    )
    assert resumed[mine.run.id].transition.delivery_id == other.deliveries[0].id
    assert store.forget("acme", "other") > 0
    assert store.verify() == []
    assert store.prune(START + timedelta(days=1)) > 0
    assert store.verify() == []
    assert store.forget("acme") > 0
    assert store.verify() == []


# -- damage, one kind at a time ---------------------------------------------------------------


@pytest.mark.parametrize(
    "column, value, phrase",
    [
        ("state", "stopped", "state is stopped but the trace says waiting"),
        ("suspended_until", "2030-01-01T00:00:00.000000+00:00", "suspended_until is"),
        ("suspended_until", None, "suspended_until is None"),
        ("pending_signals", '["something_else"]', "pending_signals is ['something_else']"),
        ("terminal_reason", "workflow_completed", "terminal_reason is 'workflow_completed'"),
        ("started_at", "2020-01-01T00:00:00.000000+00:00", "started_at"),
    ],
)
def test_a_run_row_the_trace_does_not_explain_is_reported(
    store: Store, runs: dict[str, str], column: str, value: object, phrase: str
) -> None:
    run_id = runs["waiting"]
    # The column name comes from the parameter list above, never from input.
    _sql(store, f"UPDATE workflow_runs SET {column} = ? WHERE id = ?", value, run_id)
    assert phrase in _problems_of(store, run_id)


def test_a_moved_cursor_without_a_row_is_reported(store: Store, runs: dict[str, str]) -> None:
    run = store.get_run(runs["fresh"])
    email = store.fetch_step_by_key(run.workflow_definition_id, "email")
    assert email is not None
    with store.transaction() as tx:
        tx.update_run(run, current_step_id=email.id)  # the seed API allows it; no row says so
    assert f"current_step_id is {email.id!r}" in _problems_of(store, run.id)


def test_a_state_change_without_a_row_is_reported(store: Store, runs: dict[str, str]) -> None:
    with store.transaction() as tx:
        tx.update_run(runs["fresh"], state="waiting")
    assert "state is waiting but the trace says active" in _problems_of(store, runs["fresh"])


def test_a_half_written_decision_is_reported(store: Store, runs: dict[str, str]) -> None:
    run_id = runs["advanced"]
    _sql(
        store,
        "DELETE FROM workflow_transitions WHERE seq = (SELECT max(seq) FROM workflow_transitions "
        "WHERE workflow_run_id = ? AND reason = 'step_activated')",
        run_id,
    )
    problems = _problems_of(store, run_id)
    assert "without its step_activated row" in problems
    assert "current_step_id" in problems


def test_a_run_without_a_trace_is_reported(store: Store, runs: dict[str, str]) -> None:
    _sql(store, "DELETE FROM workflow_transitions WHERE workflow_run_id = ?", runs["fresh"])
    assert "has no trace" in _problems_of(store, runs["fresh"])


def test_a_trace_that_does_not_open_with_workflow_started_is_reported(
    store: Store, runs: dict[str, str]
) -> None:
    _sql(
        store,
        "DELETE FROM workflow_transitions "
        "WHERE workflow_run_id = ? AND reason = 'workflow_started'",
        runs["fresh"],
    )
    assert "does not open with workflow_started" in _problems_of(store, runs["fresh"])


def _insert_transition(store: Store, run_id: str, **fields: object) -> None:
    row = {
        "id": str(uuid.uuid4()),
        "workflow_run_id": run_id,
        "workflow_step_id": None,
        "delivery_id": None,
        "from_state": "active",
        "to_state": "active",
        "reason": "host_note",
        "context": "{}",
        "inserted_at": "2026-01-05T12:00:00.000000+00:00",
        **fields,
    }
    sql(store).execute(
        "INSERT INTO workflow_transitions (id, workflow_run_id, workflow_step_id, delivery_id, "
        "from_state, to_state, reason, context, inserted_at) VALUES "
        "(:id, :workflow_run_id, :workflow_step_id, :delivery_id, :from_state, :to_state, "
        ":reason, :context, :inserted_at)",
        row,
    )


def test_an_engine_row_after_the_end_is_reported(store: Store, runs: dict[str, str]) -> None:
    _insert_transition(
        store,
        runs["completed"],
        reason="workflow_completed",
        from_state="completed",
        to_state="completed",
    )
    problems = _problems_of(store, runs["completed"])
    assert "an engine row after the run became completed" in problems


def test_an_engine_row_with_the_wrong_states_is_reported(
    store: Store, runs: dict[str, str]
) -> None:
    _insert_transition(store, runs["fresh"], reason="signal_received", from_state="active")
    problems = _problems_of(store, runs["fresh"])
    assert "records active -> active; the reason means waiting -> active" in problems
    assert "starts from waiting but the run was active" in problems


def test_a_context_key_outside_the_catalogue_is_reported(
    store: Store, runs: dict[str, str]
) -> None:
    _insert_transition(store, runs["fresh"], context=json.dumps({"email": "ada@example.com"}))
    assert "context keys outside the catalogue: email" in _problems_of(store, runs["fresh"])


def test_a_missing_anchor_delivery_is_reported(store: Store, runs: dict[str, str]) -> None:
    anchor = store.list_deliveries("acme", runs["waiting"])[0]
    _sql(store, "DELETE FROM delivery_events WHERE delivery_id = ?", anchor.id)
    _sql(store, "DELETE FROM deliveries WHERE id = ?", anchor.id)
    problems = _problems_of(store, runs["waiting"])
    assert f"its anchor delivery {anchor.id} does not exist" in problems


def test_an_anchor_delivery_of_another_run_is_reported(store: Store, runs: dict[str, str]) -> None:
    anchor = store.list_deliveries("acme", runs["waiting"])[0]
    _sql(
        store,
        "UPDATE deliveries SET workflow_run_id = ? WHERE id = ?",
        runs["fresh"],
        anchor.id,
    )
    problems = _problems_of(store, runs["waiting"])
    assert f"its anchor delivery {anchor.id} belongs to run {runs['fresh']}" in problems


def test_a_duplicated_delivery_is_reported(store: Store, runs: dict[str, str]) -> None:
    first = store.list_deliveries("acme", runs["fresh"])[0]
    _sql(
        store,
        "INSERT INTO deliveries (id, tenant_id, notification_id, channel, status, "
        "suppression_reason, workflow_run_id, workflow_step_id, inserted_at, updated_at) "
        "SELECT ?, tenant_id, notification_id, channel, status, "
        "suppression_reason, workflow_run_id, workflow_step_id, inserted_at, updated_at "
        "FROM deliveries WHERE id = ?",
        str(uuid.uuid4()),
        first.id,
    )
    assert "2 deliveries planned for step" in _problems_of(store, runs["fresh"])


@pytest.mark.sqlite_only
def test_a_signal_row_naming_another_tenants_delivery_is_reported(
    store: Store, runs: dict[str, str]
) -> None:
    foreign = trigger(store, tenant="globex", recipient="bob", key="g")
    settled = store.list_traces("acme", runs["settled"])
    signal_row = next(t for t in settled if t.reason == "signal_received")
    # The trace is append-only: rebuild the row with the foreign delivery as its evidence.
    sql(store).execute("DROP TRIGGER workflow_transitions_append_only")
    _sql(
        store,
        "UPDATE workflow_transitions SET delivery_id = ? WHERE id = ?",
        foreign.deliveries[0].id,
        signal_row.id,
    )
    assert "of another tenant" in _problems_of(store, runs["settled"])


def test_tenant_mismatches_are_reported(store: Store, runs: dict[str, str]) -> None:
    _sql(store, "UPDATE workflow_runs SET tenant_id = 'globex' WHERE id = ?", runs["fresh"])
    assert "differs from its notification's tenant" in _problems_of(store, runs["fresh"])


def test_a_current_step_of_another_definition_is_reported(
    store: Store, runs: dict[str, str]
) -> None:
    stopped = store.get_run(runs["stopped"])
    _sql(
        store,
        "UPDATE workflow_runs SET current_step_id = ? WHERE id = ?",
        stopped.current_step_id,
        runs["fresh"],
    )
    assert "is not a step of the run's definition" in _problems_of(store, runs["fresh"])


@pytest.mark.sqlite_only
def test_a_sequence_counter_behind_the_trace_is_reported(
    store: Store, runs: dict[str, str]
) -> None:
    _sql(store, "UPDATE sqlite_sequence SET seq = 1 WHERE name = 'workflow_transitions'")
    assert any("the next append would collide" in p for p in store.verify())


@pytest.mark.sqlite_only
def test_foreign_key_violations_are_reported(store: Store, runs: dict[str, str]) -> None:
    run = store.get_run(runs["fresh"])
    sql(store).execute("PRAGMA foreign_keys = OFF")
    try:
        _sql(store, "DELETE FROM deliveries WHERE notification_id = ?", run.notification_id)
        _sql(store, "DELETE FROM notifications WHERE id = ?", run.notification_id)
    finally:
        sql(store).execute("PRAGMA foreign_keys = ON")
    problems = store.verify()
    assert "foreign key: workflow_runs row" in "\n".join(problems)
    assert "names a missing notifications row" in "\n".join(problems)


@pytest.mark.sqlite_only
def test_a_damaged_index_is_reported_by_integrity_check(location: str, clock: FakeClock) -> None:
    with Store(location, clock=clock) as store:
        _every_path(store, clock)
    # Point one index at another's pages: every table still reads, the index is wrong.
    conn = sqlite3.connect(location, isolation_level=None)
    root = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'deliveries_by_notification'"
    ).fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_master SET rootpage = ? WHERE name = 'notifications_by_recipient'", (root,)
    )
    conn.execute("PRAGMA writable_schema = OFF")
    conn.close()
    with Store(location, clock=clock) as store:
        problems = store.verify()
    assert any(p.startswith("integrity_check:") for p in problems)
    assert any("notifications_by_recipient" in p for p in problems)


@pytest.mark.sqlite_only
def test_a_row_that_cannot_be_read_is_reported_not_raised(
    store: Store, runs: dict[str, str]
) -> None:
    _sql(store, "UPDATE workflow_runs SET started_at = 'yesterday' WHERE id = ?", runs["fresh"])
    assert "the row cannot be read" in _problems_of(store, runs["fresh"])


# -- waits with on_signal, and the step options of CONTRACT §14 ----------------------------------


def test_a_run_waiting_with_an_on_signal_rule_verifies_clean(store: Store) -> None:
    """The wait pends on its cancel signals and the events of the step's on_signal rules;
    the fold reads them the way the machine does."""
    from chimeway_lite import OnSignal, WaitUntil

    workflow = Workflow(
        "branching",
        1,
        [
            Step(
                "inapp",
                1,
                "in_app",
                progress=[WaitUntil(60, "email"), OnSignal("clicked", "email")],
            ),
            Step("email", 2, "email"),
        ],
    )
    started = trigger(store, workflow=workflow)
    store.record_outcome(started.deliveries[0].id, "succeeded")
    assert store.get_run(started.run.id).pending_signals == ("clicked",)
    assert store.verify() == []


def _gated(store: Store, clock: FakeClock) -> dict[str, str]:
    """A run held by each step option, one sent by its closed digest and one throttled."""
    from chimeway_lite import Digest, SendWindow, Throttle

    digest = Workflow("digest", 1, [Step("email", 1, "email", digest=Digest(600))])
    window = Workflow("window", 1, [Step("push", 1, "push", window=SendWindow("08:00", "09:00"))])
    throttle = Workflow("throttle", 1, [Step("sms", 1, "sms", throttle=Throttle(1, 600))])
    runs = {
        "sent": trigger(store, workflow=digest, recipient="d").run.id,
        "merged": trigger(store, workflow=digest, recipient="d").run.id,
        "window": trigger(store, workflow=window, recipient="w").run.id,
        "passed": trigger(store, workflow=throttle, recipient="t").run.id,
        "throttled": trigger(store, workflow=throttle, recipient="t").run.id,
    }
    clock.advance(minutes=10)
    store.progress_due_runs()  # closes the digest; the window opens tomorrow
    runs["collecting"] = trigger(store, workflow=digest, recipient="c").run.id
    return runs


def test_every_path_of_the_step_options_verifies_clean(store: Store, clock: FakeClock) -> None:
    runs = _gated(store, clock)
    assert store.get_run(runs["merged"]).terminal_reason == "merged_into_digest"
    assert store.get_run(runs["throttled"]).terminal_reason == "throttled"
    assert store.get_run(runs["window"]).wait_kind == "window"
    assert store.verify() == []
    clock.advance(days=1)
    store.progress_due_runs()
    assert store.verify() == []


def test_a_digest_delivery_speaking_for_more_runs_than_its_batch_is_reported(
    store: Store, clock: FakeClock
) -> None:
    runs = _gated(store, clock)
    (delivery,) = store.list_deliveries("acme", runs["sent"])
    _sql(store, "UPDATE deliveries SET digest_size = 1 WHERE id = ?", delivery.id)
    assert f"delivery {delivery.id}: digest_size 1 but its digest batch lists 2 runs" in (
        " ".join(store.verify())
    )
    _sql(store, "UPDATE deliveries SET digest_size = 2 WHERE id = ?", delivery.id)
    _sql(store, "UPDATE digest_batches SET delivery_id = NULL")
    assert f"delivery {delivery.id}: digest_size 2 but its digest batch lists 0 runs" in (
        " ".join(store.verify())
    )


def test_a_run_waiting_for_a_digest_outside_any_batch_is_reported(
    store: Store, clock: FakeClock
) -> None:
    runs = _gated(store, clock)
    _sql(store, "DELETE FROM digest_members WHERE workflow_run_id = ?", runs["collecting"])
    assert "belongs to no open batch" in _problems_of(store, runs["collecting"])


def test_a_gate_wait_on_a_step_without_that_option_is_reported(
    store: Store, clock: FakeClock
) -> None:
    runs = _gated(store, clock)
    with store.transaction() as tx:
        tx.update_run(runs["window"], wait_kind="digest")
    problems = _problems_of(store, runs["window"])
    assert "wait_kind is 'digest' but the trace says 'window'" in problems
    assert "which no rule of its current step names" in problems
