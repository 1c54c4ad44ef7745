"""Signals (CONTRACT §5): who is resumed (tenant always, actor when given, only runs waiting for
the event), the signal_received row, all-or-nothing, InvalidSignal before any write,
track_signal in one transaction, preview_signal."""

from __future__ import annotations

import json
import uuid
from typing import Any

import attrs
import pytest
from backends import sql
from factories import trigger, waiting
from journeys import RECIPIENTS, TENANTS, tenant_rows
from strategies import table_dump

from chimeway_lite import (
    FakeClock,
    InvalidSignal,
    ProgressKind,
    RunState,
    Signal,
    Step,
    Store,
    WaitUntil,
    Workflow,
    WorkflowTransition,
)

CLICK = Workflow(
    "click",
    1,
    [Step("inapp", 1, "in_app", [WaitUntil(600, "email", ["clicked"])]), Step("email", 2, "email")],
)


@attrs.frozen
class World:
    """Waiting escalation runs for every tenant x recipient, plus runs a signal must skip."""

    waiting: dict[tuple[str, str], str]
    active: str
    clicky: str
    finished: str


def world(store: Store, clock: FakeClock) -> World:
    """Build the world: same recipient names in every tenant, on purpose."""
    runs = {
        (t, r): waiting(store, tenant=t, recipient=r).run.id for t in TENANTS for r in RECIPIENTS
    }
    active = trigger(store, recipient="alice").run.id
    clicky = waiting(store, recipient="alice", workflow=CLICK).run.id
    done = trigger(store, recipient="alice")
    store.record_outcome(done.deliveries[0].id, "cancelled", "bounced")
    email = store.list_deliveries("acme", done.run.id)[1]
    store.record_outcome(email.id, "succeeded")
    clock.advance(60)
    return World(runs, active, clicky, done.run.id)


def test_a_signal_resumes_only_its_tenant(store: Store, clock: FakeClock) -> None:
    w = world(store, clock)
    others = {t: tenant_rows(store, t) for t in TENANTS[1:]}
    resumed = store.route_signal(Signal("acme", "notification_read"))
    assert sorted(resumed) == sorted(w.waiting[("acme", r)] for r in RECIPIENTS)
    for t in TENANTS[1:]:
        assert tenant_rows(store, t) == others[t]
    for run_id, outcome in resumed.items():
        run = store.get_run(run_id)
        assert outcome.run == run
        assert outcome.transition == store.list_traces("acme", run_id)[-1]
        assert (run.state, run.status_reason, run.suspended_until, run.pending_signals) == (
            RunState.ACTIVE,
            "signal_received",
            None,
            (),
        )
        assert run.last_transition_at == clock.now()


def test_the_actor_filter_is_the_notification_recipient(store: Store, clock: FakeClock) -> None:
    w = world(store, clock)
    assert store.route_signal(Signal("acme", "notification_read", "dave")) == {}
    resumed = store.route_signal(Signal("globex", "notification_read", "bob"))
    assert list(resumed) == [w.waiting[("globex", "bob")]]
    resumed = store.route_signal(Signal("globex", "notification_read"))
    assert sorted(resumed) == sorted(w.waiting[("globex", r)] for r in ("alice", "carol"))


def test_only_runs_waiting_for_the_event_are_resumed(store: Store, clock: FakeClock) -> None:
    w = world(store, clock)
    before = {r: store.get_run(r) for r in (w.active, w.finished)}
    resumed = store.route_signal(Signal("acme", "notification_read", "alice"))
    assert list(resumed) == [w.waiting[("acme", "alice")]]
    assert store.get_run(w.clicky).state is RunState.WAITING  # waits for "clicked" only
    assert {r: store.get_run(r) for r in before} == before
    assert list(store.route_signal(Signal("acme", "clicked", "alice"))) == [w.clicky]
    assert store.route_signal(Signal("acme", "dismissed")) == {}


def test_routing_twice_resumes_nothing_the_second_time(store: Store, clock: FakeClock) -> None:
    world(store, clock)
    signal = Signal("initech", "notification_read")
    assert len(store.route_signal(signal)) == 3
    before = _without_marks(table_dump(store))
    clock.advance(1)
    assert store.route_signal(signal) == {}
    # the second routing resumes nothing and changes no run: it only leaves its mark
    assert _without_marks(table_dump(store)) == before
    assert _marks(store) == 2


def test_a_wait_without_cancel_signals_ignores_every_signal(store: Store) -> None:
    silent = Workflow(
        "silent", 1, [Step("a", 1, "in_app", [WaitUntil(60, "b")]), Step("b", 2, "email")]
    )
    result = waiting(store, recipient="alice", workflow=silent)
    before = _without_marks(table_dump(store))
    for event in ("notification_read", "clicked", "dismissed"):
        assert store.route_signal(Signal("acme", event, "alice")) == {}
    assert _without_marks(table_dump(store)) == before
    assert _marks(store) == 3
    assert store.get_run(result.run.id).pending_signals == ()


# -- the signal_received row -----------------------------------------------------------------------


def _without_marks(dump: dict[str, Any]) -> dict[str, Any]:
    """A table dump but for the signal marks, which every routed signal leaves (CONTRACT
    §13.1)."""
    return {k: v for k, v in dump.items() if k != "signal_marks"}


def _marks(store: Store) -> int:
    return int(sql(store).execute("SELECT count(*) FROM signal_marks").fetchone()[0])


def _resume_with(store: Store, payload: dict[str, Any]) -> WorkflowTransition:
    # A new run each time, a second after the last signal: a mark routed at or after the
    # run entered its step would end its wait at once (CONTRACT §13.1).
    assert isinstance(store.clock, FakeClock)
    store.clock.advance(seconds=1)
    result = waiting(store, recipient="alice")
    (resumed,) = store.route_signal(Signal("acme", "notification_read", "alice", payload)).values()
    assert resumed.run.id == result.run.id
    return resumed.transition


def test_the_row_names_a_same_tenant_delivery(store: Store) -> None:
    other = waiting(store, recipient="bob").deliveries[0].id  # another run, same tenant
    row = _resume_with(store, {"delivery_id": other})
    assert (row.from_state, row.to_state, row.reason) == (
        RunState.WAITING,
        RunState.ACTIVE,
        "signal_received",
    )
    assert (row.workflow_step_id, row.delivery_id, row.context) == (
        None,
        other,
        {"event_name": "notification_read"},
    )
    row = _resume_with(store, {"delivery_id": other.upper(), "note": "x"})
    assert row.delivery_id == other  # ids are lower case
    row = _resume_with(store, {})
    assert row.delivery_id is None


def test_the_row_never_names_another_tenants_delivery(store: Store) -> None:
    foreign = waiting(store, tenant="globex", recipient="alice").deliveries[0].id
    row = _resume_with(store, {"delivery_id": foreign})
    assert row.delivery_id is None
    row = _resume_with(store, {"delivery_id": str(uuid.uuid4())})  # no such delivery
    assert row.delivery_id is None
    assert store.get_run(row.workflow_run_id).status_reason == "signal_received"


def test_the_payload_never_reaches_a_trace(store: Store, clock: FakeClock) -> None:
    secret = "hunter2-☃"
    payload = {
        "event_name": secret,
        "due_at": secret,
        "anchor_delivery_id": secret,
        "nested": {"password": [secret, 1234567890123]},
    }
    result = waiting(store, recipient="alice")
    store.track_signal(Signal("acme", "notification_read", "alice", payload))
    clock.advance(1)
    store.progress_due_runs()
    run = store.get_run(result.run.id)
    assert run.terminal_reason == "cancelled_by_signal"
    assert run.status_context["event_name"] == "notification_read"
    rows = sql(store).execute("SELECT * FROM workflow_transitions").fetchall()
    text = repr([tuple(r) for r in rows])
    assert secret not in text and "1234567890123" not in text and "password" not in text


# -- bad input -------------------------------------------------------------------------------------

BAD_SIGNALS = [
    Signal("", "notification_read"),
    Signal("   ", "notification_read"),
    Signal("acme", ""),
    Signal("acme", " \t"),
    Signal(None, "notification_read"),  # type: ignore[arg-type]
    Signal("acme", 5),  # type: ignore[arg-type]
    Signal("acme", "notification_read", ""),
    Signal("acme", "notification_read", payload=["not", "a", "dict"]),
    Signal("acme", "notification_read", payload="text"),
    Signal("acme", "notification_read", payload={"delivery_id": "not-an-id"}),
    Signal("acme", "notification_read", payload={"delivery_id": 12}),
    Signal("acme", "notification_read", payload={"delivery_id": uuid.uuid4().hex}),
    Signal("acme", "notification_read", payload={"delivery_id": ""}),
    Signal("acme", "notification_read", payload={"x": {1, 2}}),
    Signal("acme", "notification_read", payload={"x": float("nan")}),
]


@pytest.mark.parametrize("signal", BAD_SIGNALS)
@pytest.mark.parametrize("method", ["route_signal", "track_signal", "preview_signal"])
def test_bad_signals_raise_before_any_write(
    store: Store, clock: FakeClock, signal: Signal, method: str
) -> None:
    waiting(store, recipient="alice")
    before = table_dump(store)
    with pytest.raises(InvalidSignal) as caught:
        getattr(store, method)(signal)
    assert isinstance(caught.value, ValueError)
    assert table_dump(store) == before


def test_a_non_signal_is_refused(store: Store) -> None:
    with pytest.raises(InvalidSignal):
        store.route_signal({"tenant_id": "acme", "event_name": "x"})  # type: ignore[arg-type]


# -- all or nothing --------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_a_failure_half_way_leaves_every_run_unchanged(store: Store, clock: FakeClock) -> None:
    w = world(store, clock)
    victims = sorted(w.waiting[("acme", r)] for r in RECIPIENTS)
    conn = sql(store)
    conn.execute("CREATE TEMP TABLE victims (id TEXT)")
    conn.execute("INSERT INTO temp.victims VALUES (?)", (victims[1],))  # the second row fails
    conn.execute(
        "CREATE TEMP TRIGGER fail_one BEFORE INSERT ON main.workflow_transitions "
        "WHEN NEW.workflow_run_id IN (SELECT id FROM temp.victims) "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    before = table_dump(store)
    with pytest.raises(Exception, match="injected failure"):
        store.route_signal(Signal("acme", "notification_read"))
    with pytest.raises(Exception, match="injected failure"):
        store.track_signal(Signal("acme", "notification_read"))
    assert table_dump(store) == before  # no run moved, no row, no signal stored
    conn.execute("DROP TRIGGER temp.fail_one")
    assert sorted(store.route_signal(Signal("acme", "notification_read"))) == victims


def test_a_callers_rollback_undoes_the_routing(store: Store, clock: FakeClock) -> None:
    world(store, clock)
    before = table_dump(store)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert len(tx.route_signal(Signal("acme", "notification_read"))) == 3
        raise RuntimeError("the host changed its mind")
    assert table_dump(store) == before


# -- track_signal and preview_signal ---------------------------------------------------------------


def test_track_signal_stores_the_fact_and_routes_it(store: Store, clock: FakeClock) -> None:
    w = world(store, clock)
    payload = {"delivery_id": None, "source": "web", "n": [1, {"x": "☃"}]}
    stored, resumed = store.track_signal(Signal("acme", "notification_read", "bob", payload))
    assert list(resumed) == [w.waiting[("acme", "bob")]]
    assert stored.id is not None and stored.inserted_at == clock.now()
    assert (stored.tenant_id, stored.event_name, stored.actor_id, stored.payload) == (
        "acme",
        "notification_read",
        "bob",
        payload,
    )
    (row,) = sql(store).execute("SELECT * FROM signals").fetchall()
    assert row["id"] == stored.id
    assert (row["tenant_id"], row["event_name"], row["actor_id"]) == (
        "acme",
        "notification_read",
        "bob",
    )
    assert json.loads(row["payload"]) == payload
    # a signal nobody waits for is still a fact worth keeping
    stored, resumed = store.track_signal(Signal("initech", "dismissed"))
    assert resumed == {}
    assert sql(store).execute("SELECT count(*) FROM signals").fetchone()[0] == 2


@pytest.mark.parametrize(
    "signal",
    [
        Signal("acme", "notification_read"),
        Signal("acme", "notification_read", "carol"),
        Signal("globex", "notification_read", "alice"),
        Signal("acme", "clicked"),
        Signal("acme", "dismissed"),
        Signal("nobody", "notification_read"),
    ],
)
def test_preview_names_exactly_what_routing_resumes(
    store: Store, clock: FakeClock, signal: Signal
) -> None:
    world(store, clock)
    before = table_dump(store)
    preview = store.preview_signal(signal)
    assert table_dump(store) == before
    assert sorted(preview) == sorted(store.route_signal(signal))
    assert store.preview_signal(signal) == []


def test_a_resumed_run_settles_instead_of_escalating(store: Store, clock: FakeClock) -> None:
    w = world(store, clock)
    store.route_signal(Signal("acme", "notification_read"))
    clock.advance(hours=5)
    swept = {p.run.id: p for p in store.progress_due_runs()}
    for r in RECIPIENTS:
        progress = swept[w.waiting[("acme", r)]]
        assert progress.kind is ProgressKind.COMPLETED and progress.deliveries == ()
        assert progress.run.terminal_reason == "cancelled_by_signal"
    for t in TENANTS[1:]:  # the others were not read: they escalate
        for r in RECIPIENTS:
            assert swept[w.waiting[(t, r)]].deliveries[0].channel == "email"
