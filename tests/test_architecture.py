"""The architecture's promises: layers, the move table as the one vocabulary, one notion of
"due", the machine's state kept explicit, one Store surface, and the schema upgrade."""

from __future__ import annotations

import inspect
import sqlite3
import string
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from backends import sql
from conftest import START, escalation_workflow
from hypothesis import given
from hypothesis import strategies as st
from imports import closure, imports_of, modules
from journeys import EVENTS, Case, cases

from chimeway_lite import FakeClock, Signal, Store
from chimeway_lite.backends.sqlite.connection import SCHEMA_VERSION
from chimeway_lite.core.records import DigestBatch
from chimeway_lite.engine.explanation import why_of
from chimeway_lite.engine.operations import Engine, Reader
from chimeway_lite.machine import MOVES, NOOP_REASONS, Journey, decide
from chimeway_lite.machine.kinds import Arrival
from chimeway_lite.machine.table import CONTEXT_KEYS, CONTEXT_RULE_KINDS, TERMINAL_REASONS
from chimeway_lite.tools.timeline import describe

DATA = Path(__file__).parent / "data"

# -- layers ------------------------------------------------------------------------------------


def test_only_the_sqlite_backend_imports_sqlite3() -> None:
    importers = sorted(m for m in modules() if "sqlite3" in imports_of(m))
    assert importers, "the SQLite backend must import sqlite3"
    assert all(m.startswith("chimeway_lite.backends.sqlite.") for m in importers), importers


def test_the_engine_knows_no_database() -> None:
    drivers = {"sqlite3", "sqlite_utils", "psycopg"}
    for name in modules():
        if name.startswith(("chimeway_lite.engine", "chimeway_lite.machine")):
            reached = closure(name)
            assert not {m for m in reached if m.startswith("chimeway_lite.backends.sqlite")}, name
            for module in reached:
                assert not drivers & {i.split(".")[0] for i in imports_of(module)}, module


# -- the move table: every reason the machine writes, and every reader of it ----------------------


def _decisions(case: Case) -> list[decide.Decision]:
    """Every decision the machine takes for a case: a progression, a resume, a start — each
    as the step options of a step it activates let it through (CONTRACT §14), seeing the
    case's facts — and the decisions on the other runs of a digest batch it closes."""
    journey = Journey.of(case.definition)
    facts = case.facts
    arrival = Arrival(
        activations=facts.activations,
        batch=None
        if facts.batch is None
        else DigestBatch("b", "acme", "a", "g", "s", case.now, facts.batch[0], size=facts.batch[1]),
        zone=UTC if facts.zone is None else ZoneInfo(facts.zone),
    )
    made = [decide.progress(case.run, journey, case.anchor, now=case.now)]
    made += [decide.resume(case.run, event, None, now=case.now) for event in EVENTS]
    made.append(
        decide.start(journey, run_id="r", tenant_id="acme", notification_id="n", now=case.now)
    )
    made = [d if d.is_noop else decide.enter(d, journey, arrival, now=case.now) for d in made]
    return made + [other for d in made for _, other in d.also]


@given(cases())
def test_every_reason_the_machine_writes_is_in_the_table(case: Case) -> None:
    for decision in _decisions(case):
        if decision.is_noop:
            assert decision.reason in NOOP_REASONS
            continue
        for row in decision.transitions:
            move = MOVES.get(row.reason)
            assert move is not None, f"{row.reason} is not in the move table"
            assert row.from_state in move.sources(row.context) and row.to_state is move.to_state
            kind = row.context.get("rule_kind")
            assert kind is None or kind in CONTEXT_RULE_KINDS
        after = decision.run
        if after.state.is_terminal:
            assert after.terminal_reason in TERMINAL_REASONS
            finishing = decision.transitions[-1]
            assert (
                after.terminal_reason
                == MOVES[finishing.reason].variant(finishing.context).terminal_reason
            )
        # every row that opens a step is followed by step_activated (which plans the
        # step's delivery) or by a row that stands in for it
        rows = decision.transitions
        for row, following in zip(rows, (*rows[1:], None), strict=True):
            if MOVES[row.reason].opens_step:
                assert following is not None
                assert following.reason == "step_activated" or MOVES[following.reason].enters_step
        activated = [r for r in rows if r.reason == "step_activated"]
        assert len(activated) == len(decision.deliveries)


def _variants() -> list[tuple[str, str | None]]:
    return [(m.reason, v.rule_kind) for m in MOVES.values() for v in m.variants]


@pytest.mark.parametrize(("reason", "rule_kind"), _variants())
def test_every_reason_is_rendered_by_every_reader(
    store: Store, reason: str, rule_kind: str | None
) -> None:
    """explain's why, the timeline's label and verify's fold know every engine reason: none
    falls through to the "host row" rendering."""
    run = store.trigger(
        tenant_id="acme",
        notification_key="n",
        recipient="ada",
        workflow=escalation_workflow(),
        idempotency_key=f"{reason}-{rule_kind}",
    ).run
    context = {"rule_kind": rule_kind} if rule_kind else {}
    with store.transaction() as tx:
        run = tx.update_run(run, status_reason=reason, status_context=context)
    sentence = why_of(run, "inapp")
    assert "recorded by the host" not in sentence
    transition = store.list_traces("acme", run.id)[-1]
    row = attrs.evolve(transition, reason=reason, context=context, to_state=MOVES[reason].to_state)
    label, detail, _ = describe(row, {})
    assert (label, detail) != (reason, f"-> {row.to_state.value}")


@pytest.mark.parametrize(("reason", "rule_kind"), _variants())
def test_every_step_change_and_every_end_tells_the_path(reason: str, rule_kind: str | None) -> None:
    """A row that moves the run to another step or ends it has a ``path`` clause: a
    finished run's ``why`` tells how it got there from the table, never by string hacks."""
    move = MOVES[reason]
    kind_variants = [v for v in move.variants if v.rule_kind == rule_kind]
    changes = move.opens_step or move.to_state.is_terminal
    for variant in kind_variants:
        if changes and reason != "workflow_started":
            assert variant.path, (reason, rule_kind)
        if variant.path:
            # a clause reads its row's context and the path's own names, nothing else
            names = {"step", "at", "waited", "awaited", "into", "wait_target"}
            fields = {f for _, f, _, _ in string.Formatter().parse(variant.path) if f}
            assert fields <= names | CONTEXT_KEYS, (reason, fields - names - CONTEXT_KEYS)


def test_a_reason_outside_the_table_is_a_host_row(store: Store) -> None:
    run = store.trigger(
        tenant_id="acme",
        notification_key="n",
        recipient="ada",
        workflow=escalation_workflow(),
        idempotency_key="k",
    ).run
    with store.transaction() as tx:
        run = tx.update_run(run, status_reason="host_note")
    assert why_of(run, "inapp") == "Status 'host_note' on step 'inapp' (recorded by the host)."


# -- one definition of "due" -------------------------------------------------------------------


@given(
    st.lists(
        st.tuples(
            st.sampled_from(("active", "waiting", "completed")),
            st.one_of(st.none(), st.integers(-7200, 7200)),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
    st.integers(-3600, 3600),
)
def test_the_due_sweep_next_due_at_and_the_machine_agree(
    runs: list[tuple[str, int | None, bool]], offset: int
) -> None:
    clock = FakeClock(START)
    with Store(":memory:", clock=clock) as store:
        made = []
        for i, (state, suspended, resumed) in enumerate(runs):
            run = store.trigger(
                tenant_id="acme",
                notification_key="n",
                recipient="ada",
                workflow=escalation_workflow(),
                idempotency_key=f"k{i}",
            ).run
            fields: dict[str, Any] = {
                "state": state,
                "suspended_until": None
                if suspended is None
                else START + timedelta(seconds=suspended),
                "resumed_by": "notification_read" if resumed else None,
            }
            if state == "completed":
                fields["terminal_reason"] = "workflow_completed"
            with store.transaction() as tx:
                made.append(tx.update_run(run, **fields))
        now = START + timedelta(seconds=offset)
        expected = sorted(
            (due, r.id) for r in made if (due := decide.due_at(r)) is not None and due <= now
        )
        with store.snapshot() as view:
            assert view.due_run_ids(now) == [run_id for _, run_id in expected]
        dues = [d for r in made if (d := decide.due_at(r)) is not None]
        assert store.next_due_at() == (min(dues) if dues else None)


# -- the machine's own state is explicit ----------------------------------------------------------


def _waiting(store: Store, clock: FakeClock, key: str = "k", recipient: str = "ada") -> str:
    result = store.trigger(
        tenant_id="acme",
        notification_key="n",
        recipient=recipient,
        workflow=escalation_workflow(),
        idempotency_key=key,
    )
    clock.advance(minutes=1)
    store.record_outcome(result.deliveries[0].id, "succeeded")
    return result.run.id


def test_the_wait_target_is_state_not_evidence(store: Store, clock: FakeClock) -> None:
    """Rewriting the evidence (status_context.to_step) changes nothing: the run still goes
    where its wait rule leads."""
    run_id = _waiting(store, clock)
    with store.transaction() as tx:
        run = tx.lock_run(run_id)
        assert (run.wait_kind, run.wait_target) == ("wait_until", "email")
        tx.update_run(run, status_context={**run.status_context, "to_step": "inapp"})
    clock.advance(hours=3)
    (moved,) = store.progress_due_runs()
    assert store.get_current_step(moved.run).step_key == "email"
    assert store.verify() == []


@pytest.mark.parametrize("with_host_row", [False, True])
def test_verify_reports_a_wait_target_no_rule_names(
    store: Store, clock: FakeClock, with_host_row: bool
) -> None:
    run_id = _waiting(store, clock)
    with store.transaction() as tx:
        if with_host_row:
            tx.append_transition(run_id, "waiting", "host_note")
        tx.update_run(run_id, wait_target="nowhere")
    problems = [p for p in store.verify() if run_id in p]
    assert any("'nowhere'" in p and "no rule" in p for p in problems), problems


def test_a_wait_without_a_due_time_is_explained_as_never_due(
    store: Store, clock: FakeClock
) -> None:
    run_id = _waiting(store, clock)
    with store.transaction() as tx:
        tx.update_run(run_id, suspended_until=None)
    clock.advance(hours=5)
    explanation = store.explain("acme", run_id)
    assert explanation.next_move.startswith("Nothing by itself: the wait has no due time")
    assert "due sweep moves it" not in explanation.next_move
    assert store.next_due_at() is None
    assert store.progress_due_runs() == []


def test_settling_is_state_not_a_status_reason(store: Store, clock: FakeClock) -> None:
    run_id = _waiting(store, clock)
    store.route_signal(Signal("acme", "notification_read"))
    with store.transaction() as tx:  # a host renames the status; the run still settles
        tx.update_run(run_id, status_reason="host_renamed")
    (settled,) = store.progress_due_runs()
    assert settled.run.terminal_reason == "cancelled_by_signal"


def test_a_version_four_file_keeps_its_trace_and_counter_without_the_unique_id_index(
    tmp_path: Path,
) -> None:
    """Version 5 copies the trace into a table without the unique index on id: every row
    keeps its seq and values, the sequence counter keeps the numbers prune already used up,
    the trace stays append-only, and prune reads the new index of finished runs."""
    clock = FakeClock(START)
    with Store(tmp_path / "model.db", clock=clock) as model:
        done = _waiting(model, clock, "d", recipient="cy")
        clock.advance(hours=3)
        (moved,) = model.progress_due_runs()
        model.record_outcome(moved.deliveries[0].id, "succeeded")
        assert model.get_run(done).state.value == "completed"
        waiting = _waiting(model, clock, "w", recipient="bob")
        tables = (
            "workflow_definitions",
            "workflow_steps",
            "notifications",
            "workflow_runs",
            "deliveries",
            "workflow_transitions",
            "delivery_events",
        )
        rows = {
            t: [dict(r) for r in model.connection.execute(f"SELECT * FROM {t}")] for t in tables
        }
    path = tmp_path / "v4.db"
    _older_store(path, 4, rows)
    raw = sqlite3.connect(path, isolation_level=None)
    # as if prune had removed the newest trace rows: the counter is ahead of max(seq)
    raw.execute("UPDATE sqlite_sequence SET seq = seq + 100 WHERE name = 'workflow_transitions'")
    (counter,) = raw.execute(
        "SELECT seq FROM sqlite_sequence WHERE name = 'workflow_transitions'"
    ).fetchone()
    assert [r[2] for r in raw.execute("PRAGMA index_list(workflow_transitions)")].count(1) == 1
    raw.close()

    with Store(path, clock=clock) as store:
        conn = store.connection
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        with Store(tmp_path / "fresh.db") as fresh:
            assert _schema(conn) == _schema(fresh.connection)
        assert [dict(r) for r in conn.execute("SELECT * FROM workflow_transitions")] == rows[
            "workflow_transitions"
        ]
        assert [r[2] for r in conn.execute("PRAGMA index_list(workflow_transitions)")] == [0]
        assert (
            conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'workflow_transitions'"
            ).fetchone()[0]
            == counter
        )
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE workflow_transitions SET reason = 'x'")
        assert store.verify() == []
        fresh_run = _waiting(store, clock, "new", recipient="dee")
        (first,) = conn.execute(
            "SELECT min(seq) FROM workflow_transitions WHERE workflow_run_id = ?", (fresh_run,)
        ).fetchone()
        assert first == counter + 1
        plan = " ".join(
            str(r[3])
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM workflow_runs "
                "WHERE state IN ('completed', 'stopped') AND last_transition_at < ? "
                "ORDER BY last_transition_at, id",
                ("9",),
            )
        )
        assert "workflow_runs_finished" in plan
        clock.advance(days=1)
        assert store.prune(clock.now()) > 0
        assert {r[0] for r in conn.execute("SELECT id FROM workflow_runs")} == {waiting, fresh_run}
        assert store.verify() == []


# -- one Store surface ---------------------------------------------------------------------------


def test_every_store_operation_is_an_engine_operation() -> None:
    made = {
        name: value
        for name, value in vars(Store).items()
        if hasattr(value, "method") and hasattr(value, "write")
    }
    assert len(made) >= 20
    for name, operation in made.items():
        owner = Engine if operation.write else Reader
        source = getattr(owner, operation.method.__name__)
        assert operation.method is source, name
        assert Store.__dict__[name].__doc__ == source.__doc__
        bound = inspect.signature(getattr(Store(":memory:"), name))
        assert list(bound.parameters) == list(inspect.signature(source).parameters)[1:]


# -- the schema upgrade from version 1 -------------------------------------------------------------


def _schema(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
    tables = [
        (t, [tuple(c)[1:] for c in conn.execute(f"PRAGMA table_info({t})")])
        for (t,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
    ]
    indexes = sorted(
        " ".join(str(sql).split())
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger', 'view')"
        )
        if sql
    )
    # The indexes of UNIQUE and PRIMARY KEY constraints have no SQL of their own: compare
    # each table's (origin, unique, partial, columns) so a constraint left behind counts.
    constraints = sorted(
        (
            t,
            row[3],
            row[2],
            row[4],
            tuple(c[2] for c in conn.execute(f"PRAGMA index_info({row[1]})")),
        )
        for t, _ in tables
        for row in conn.execute(f"PRAGMA index_list({t})")
        if row[3] != "c"
    )
    return tables, indexes + [repr(c) for c in constraints]


def _version_one_store(path: Path) -> None:
    """An empty store file as the previous landing made it: schema version 1."""
    from chimeway_lite.backends.sqlite.connection import schema_statements

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for statement in schema_statements((DATA / "schema_v1.sql").read_text()):
        conn.execute(statement)
    conn.execute("PRAGMA application_id = 1668770865")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("COMMIT")
    conn.close()


def test_a_version_one_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _version_one_store(path)
    clock = FakeClock(START)
    # Runs written by hand in the version-1 layout, as the previous landing left them.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    with Store(tmp_path / "model.db", clock=clock) as model:
        waiting = _waiting(model, clock, "w", recipient="bob")
        settling = _waiting(model, clock, "s", recipient="ada")
        model.route_signal(Signal("acme", "notification_read", "ada"))
        held = model.trigger(
            tenant_id="acme",
            notification_key="n",
            recipient="cy",
            workflow=escalation_workflow(),
            idempotency_key="h",
        ).deliveries[0]
        model.claim_deliveries()  # a version-1 worker claimed it, then died
        rows = {
            table: [dict(r) for r in model.connection.execute(f"SELECT * FROM {table}")]
            for table in (
                "workflow_definitions",
                "workflow_steps",
                "notifications",
                "workflow_runs",
                "deliveries",
                "workflow_transitions",
            )
        }
    conn.execute("BEGIN")
    for table, table_rows in rows.items():
        old_columns = {c[1] for c in conn.execute(f"PRAGMA table_info({table})")}
        for row in table_rows:
            row = {name: value for name, value in row.items() if name in old_columns}
            names = ", ".join(row)
            marks = ", ".join(f":{n}" for n in row)
            conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", row)
    conn.execute("COMMIT")
    conn.close()

    with Store(path, clock=clock) as store:
        conn = sql(store)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.verify() == []
        old = store.get_run(waiting)
        assert (old.wait_kind, old.wait_target, old.resumed_by) == ("wait_until", "email", None)
        assert store.get_run(settling).resumed_by == "notification_read"
        (stranded,) = [d for d in store.list_deliveries("acme", held.workflow_run_id or "")]
        assert (stranded.status, stranded.attempt, stranded.recipient, stranded.step_key) == (
            "dispatched",
            1,
            "cy",
            "inapp",
        )
        assert stranded.lease_expires_at == stranded.updated_at + timedelta(minutes=5)
        with Store(tmp_path / "fresh.db") as fresh:
            assert _schema(conn) == _schema(fresh.connection)
        clock.set(stranded.updated_at + timedelta(minutes=5))
        (rescued,) = store.claim_deliveries(channel="in_app")
        assert (rescued.id, rescued.attempt) == (held.id, 2)
        clock.advance(hours=3)
        moved = {p.run.id: p.run for p in store.progress_due_runs()}
        assert moved[settling].terminal_reason == "cancelled_by_signal"
        assert store.get_current_step(moved[waiting]).step_key == "email"
        assert store.verify() == []


# -- the schema upgrade from versions 2 and 3 ---------------------------------------------------


def _older_store(path: Path, version: int, rows: dict[str, list[dict[str, Any]]]) -> None:
    """A store file as an earlier landing made it (schema ``version``, from
    ``tests/data/schema_v<version>.sql``), holding ``rows`` (each cut to its columns)."""
    from chimeway_lite.backends.sqlite.connection import schema_statements

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN")
    for statement in schema_statements((DATA / f"schema_v{version}.sql").read_text()):
        conn.execute(statement)
    conn.execute("PRAGMA application_id = 1668770865")
    conn.execute(f"PRAGMA user_version = {version:d}")
    for table, table_rows in rows.items():
        old_columns = {c[1] for c in conn.execute(f"PRAGMA table_info({table})")}
        for row in table_rows:
            row = {name: value for name, value in row.items() if name in old_columns}
            names = ", ".join(row)
            marks = ", ".join(f":{n}" for n in row)
            conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", row)
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.parametrize("version", [2, 3, 4])
def test_a_version_two_three_or_four_file_is_upgraded_in_place(
    tmp_path: Path, version: int
) -> None:
    """Version 4 adds the recipient's time zone and the tables of throttles and digests;
    runs written by an older version go on as they were, and the step options work at once."""
    from chimeway_lite import Digest, SendWindow, Step, Throttle, Workflow

    clock = FakeClock(START)
    with Store(tmp_path / "model.db", clock=clock) as model:
        waiting = _waiting(model, clock, "w", recipient="bob")
        active = model.trigger(
            tenant_id="acme",
            notification_key="n",
            recipient="cy",
            workflow=escalation_workflow(),
            idempotency_key="a",
        ).run.id
        rows = {
            table: [dict(r) for r in model.connection.execute(f"SELECT * FROM {table}")]
            for table in (
                "workflow_definitions",
                "workflow_steps",
                "notifications",
                "workflow_runs",
                "deliveries",
                "workflow_transitions",
                "delivery_events",
            )
        }
    path = tmp_path / f"v{version}.db"
    _older_store(path, version, rows)

    with Store(path, clock=clock) as store:
        conn = store.connection
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        with Store(tmp_path / "fresh.db") as fresh:
            assert _schema(conn) == _schema(fresh.connection)
        assert store.verify() == []
        assert conn.execute("SELECT count(*) FROM notifications WHERE timezone IS NULL").fetchone()[
            0
        ] == len(rows["notifications"])
        # the version-2 runs go on
        clock.advance(hours=3)
        (moved,) = store.progress_due_runs()
        assert moved.run.id == waiting and store.get_current_step(moved.run).step_key == "email"
        assert store.get_run(active).state.value == "active"
        # and the step options of version 3 work on the upgraded file
        gated = Workflow(
            "gated",
            1,
            [
                Step(
                    "email",
                    1,
                    "email",
                    throttle=Throttle(5, 600),
                    window=SendWindow("08:00", "21:00"),
                    digest=Digest(600),
                ),
            ],
        )
        result = store.trigger(
            tenant_id="acme",
            notification_key="n",
            recipient="dee",
            workflow=gated,
            idempotency_key="g",
            timezone="Europe/Paris",
        )
        assert (result.run.status_reason, result.notification.timezone) == (
            "waiting_for_digest",
            "Europe/Paris",
        )
        clock.advance(minutes=10)
        (sent,) = store.progress_due_runs()
        assert sent.deliveries[0].digest_size == 1
        assert store.verify() == []
