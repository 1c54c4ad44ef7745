"""The Store: opening and reopening files, the schema, transactions, tenant-scoped inspection,
trigger's checks and idempotency, and the low-level seed API of CONTRACT §8."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from backends import sql
from factories import START, escalation_workflow, trigger
from strategies import new_id, table_dump

from chimeway_lite import (
    ChimewayError,
    DefinitionConflict,
    FakeClock,
    InvalidArgument,
    InvalidTransition,
    InvalidWorkflow,
    RunNotFound,
    RunState,
    SchemaMismatch,
    Signal,
    Step,
    StepLinkage,
    StepNotFound,
    StorageError,
    Store,
    WaitUntil,
    Workflow,
    WorkflowRun,
)
from chimeway_lite.backends.sqlite import connection
from chimeway_lite.backends.sqlite.convert import field_names
from chimeway_lite.core.records import (
    Delivery,
    Notification,
    WorkflowDefinition,
    WorkflowStep,
    WorkflowTransition,
)

MISSING = "00000000-0000-4000-8000-000000000000"


def insert_notification(store: Store, tenant: str, definition_id: str, key: str) -> str:
    """A notification row without a run, as a host using ``create_initial_run`` writes it."""
    notification_id = new_id()
    sql(store).execute(
        "INSERT INTO notifications (id, tenant_id, recipient, notification_key, "
        "idempotency_key, workflow_definition_id, inserted_at) "
        "VALUES (?, ?, 'u1', 'escalate', ?, ?, '2026-01-05T09:30:00.000000+00:00')",
        (notification_id, tenant, key, definition_id),
    )
    return notification_id


class ScriptedClock:
    """A clock that serves ``START`` until told to misbehave: a naive datetime from call
    number ``naive_from`` on (counting from 1), to make a store method fail midway."""

    def __init__(self) -> None:
        self.calls = 0
        self.naive_from: int | None = None

    def now(self) -> datetime:
        """START, or a naive datetime once ``naive_from`` calls have been made."""
        self.calls += 1
        if self.naive_from is not None and self.calls >= self.naive_from:
            return datetime(2026, 1, 5, 9, 30)
        return START


# -- opening, schema, reopening ---------------------------------------------------------------


@pytest.mark.sqlite_only
def test_a_new_file_gets_the_schema_and_the_pragmas(store: Store) -> None:
    conn = sql(store)
    assert conn.isolation_level is None
    assert conn.execute("PRAGMA user_version").fetchone()[0] == connection.SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x63776C31
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000
    assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 64 * 1024 * 1024
    assert not conn.in_transaction


@pytest.mark.slow
def test_the_wal_stays_bounded_while_many_units_commit(db_path: str) -> None:
    """Checkpoints come every 10,000 pages: far more writes than that leave a WAL no larger
    than what the checkpoint interval lets it reach (never the sum of all the writes)."""
    with Store(db_path) as store:
        page = store.connection.execute("PRAGMA page_size").fetchone()[0]
        batch = [
            {
                "tenant_id": "acme",
                "notification_key": "welcome",
                "recipient": f"r{i}",
                "workflow": escalation_workflow(),
                "idempotency_key": f"k{i}",
                "data": {"pad": "x" * 6000},
            }
            for i in range(100)
        ]
        largest = 0
        for round_ in range(120):
            for request in batch:
                request["idempotency_key"] = f"k{round_}-{request['recipient']}"
            store.trigger_many(batch)
            largest = max(largest, os.path.getsize(db_path + "-wal"))
        written = os.path.getsize(db_path)
    # the rows written are several times what one checkpoint interval holds ...
    assert written > 2 * 10_000 * page
    # ... yet the WAL never held much more than one interval (and one unit) of pages
    assert largest <= 11_000 * page + 8 * 4096
    assert largest <= 64 * 1024 * 1024


@pytest.mark.sqlite_only
def test_busy_timeout_is_passed_to_sqlite(location: str) -> None:
    with Store(location, busy_timeout=0.25) as store:
        assert sql(store).execute("PRAGMA busy_timeout").fetchone()[0] == 250


@pytest.mark.parametrize(
    ("cls", "table"),
    [
        (WorkflowDefinition, "workflow_definitions"),
        (WorkflowStep, "workflow_steps"),
        (Notification, "notifications"),
        (Delivery, "deliveries"),
        (WorkflowRun, "workflow_runs"),
        (WorkflowTransition, "workflow_transitions"),
        (Signal, "signals"),
    ],
)
@pytest.mark.sqlite_only
def test_each_table_has_a_column_for_every_scalar_field(
    store: Store, cls: type[Any], table: str
) -> None:
    columns = {r[1] for r in sql(store).execute(f"PRAGMA table_info({table})")}
    # a delivery's data and config are read from its notification and step (CONTRACT §12)
    filled = ("data", "config") if cls is Delivery else ()
    assert set(field_names(cls, exclude=("steps", *filled))) <= columns


@pytest.mark.sqlite_only
def test_the_schema_is_applied_once(location: str) -> None:
    with Store(location) as store:
        objects = sql(store).execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    with Store(location) as store:
        again = sql(store).execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    assert again == objects > 7


def test_reopening_a_file_keeps_everything(location: str, clock: FakeClock) -> None:
    with Store(location, clock=clock) as store:
        result = trigger(store, recipient="u1", key="k1")
        trigger(store, tenant="globex")
        (claimed, *_) = store.claim_deliveries()
        clock.advance(minutes=5)
        store.record_outcome(claimed.id, "succeeded")
        stored_signal, _ = store.track_signal(Signal("acme", "notification_read", "u1", {"a": 1}))
        with store.transaction() as tx:
            tx.append_transition(result.run.id, "active", "host_note", context={"source": "x"})
        dump = table_dump(store)
        run = store.get_run(result.run.id)
        traces = store.list_traces("acme", result.run.id)
        explanation = store.explain("acme", result.run.id)
        definition = store.fetch_definition("escalation", 1)
    with Store(location, clock=clock) as store:
        assert table_dump(store) == dump
        assert store.get_run(result.run.id) == run
        assert store.list_traces("acme", result.run.id) == traces
        assert store.explain("acme", result.run.id) == explanation
        assert store.fetch_definition("escalation", 1) == definition
        assert store.persisted_workflow(run.workflow_definition_id) == escalation_workflow()
        row = (
            sql(store)
            .execute("SELECT payload FROM signals WHERE id = ?", (stored_signal.id,))
            .fetchone()
        )
        assert row[0] == '{"a":1}'
        # the sequence carries on after the last number, and the run's state spine too
        note = _append(store, result.run.id, "host_note")
        assert note.seq > traces[-1].seq
        assert trigger(store, key="k1").duplicate


def _append(store: Store, run_id: str, reason: str, **kwargs: Any) -> WorkflowTransition:
    with store.transaction() as tx:
        return tx.append_transition(run_id, kwargs.pop("to_state", "active"), reason, **kwargs)


@pytest.mark.sqlite_only
def test_a_failing_schema_leaves_the_file_empty(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema goes in as one transaction: a failure halfway leaves no table behind, and
    the next open creates the whole schema."""
    statements = connection.schema_statements()
    monkeypatch.setattr(
        connection, "schema_statements", lambda: [*statements[:3], "CREATE TABLE broken ("]
    )
    with pytest.raises(ChimewayError):
        Store(location)
    with sqlite3.connect(location) as raw:
        assert raw.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 0
    raw.close()
    monkeypatch.undo()
    with Store(location) as store:
        assert trigger(store).duplicate is False


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with Store(path) as store:
        assert sql(store).execute("PRAGMA user_version").fetchone()[0] == connection.SCHEMA_VERSION


def test_a_path_like_is_accepted(tmp_path: Path) -> None:
    with Store(tmp_path / "p.db") as store:
        assert store.path == str(tmp_path / "p.db")


def test_memory_stores_are_separate() -> None:
    with Store(":memory:") as one, Store(":memory:") as two:
        one.upsert_definition("escalate", escalation_workflow())
        assert two.fetch_definition("escalation", 1) is None


@pytest.mark.sqlite_only
def test_a_newer_schema_version_is_refused(location: str) -> None:
    Store(location).close()
    with sqlite3.connect(location) as raw:
        raw.execute(f"PRAGMA user_version = {connection.SCHEMA_VERSION + 1:d}")
    raw.close()
    with pytest.raises(SchemaMismatch) as caught:
        Store(location)
    assert caught.value.path == location
    assert "newer" in caught.value.problem


@pytest.mark.sqlite_only
def test_an_unknown_older_schema_version_is_refused(location: str) -> None:
    Store(location).close()
    with sqlite3.connect(location) as raw:
        raw.execute("PRAGMA user_version = 0")
    raw.close()
    with pytest.raises(SchemaMismatch):
        Store(location)


@pytest.mark.sqlite_only
def test_a_foreign_sqlite_database_is_refused_and_left_alone(location: str) -> None:
    raw = sqlite3.connect(location)
    raw.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    raw.execute("INSERT INTO invoices (total) VALUES (9.5)")
    raw.commit()
    raw.close()
    content = Path(location).read_bytes()
    with pytest.raises(SchemaMismatch) as caught:
        Store(location)
    assert "not a chimeway_lite store" in caught.value.problem
    assert Path(location).read_bytes() == content


@pytest.mark.sqlite_only
def test_another_application_id_is_refused(location: str) -> None:
    raw = sqlite3.connect(location)
    raw.execute("PRAGMA application_id = 42")
    raw.commit()
    raw.close()
    with pytest.raises(SchemaMismatch):
        Store(location)


@pytest.mark.parametrize(
    "content",
    [b"this is a text file, not a database at all\n" * 40, os.urandom(4096), b"SQLite format 3"],
    ids=["text", "random", "short header"],
)
@pytest.mark.sqlite_only
def test_a_file_that_is_not_sqlite_is_a_schema_mismatch(location: str, content: bytes) -> None:
    Path(location).write_bytes(content)
    with pytest.raises(SchemaMismatch) as caught:
        Store(location)
    assert isinstance(caught.value, ChimewayError)
    assert not isinstance(caught.value, sqlite3.Error)
    assert Path(location).read_bytes() == content


def test_a_missing_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        Store(tmp_path / "nope" / "x.db")
    assert "does not exist" in caught.value.problem


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        Store(tmp_path)


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"path": 5}, "path"),
        ({"path": ":memory:", "busy_timeout": -1}, "busy_timeout"),
        ({"path": ":memory:", "busy_timeout": "5"}, "busy_timeout"),
        ({"path": ":memory:", "busy_timeout": True}, "busy_timeout"),
        ({"path": ":memory:", "busy_timeout": float("nan")}, "busy_timeout"),
        ({"path": ":memory:", "clock": object()}, "clock"),
    ],
)
def test_bad_store_arguments_are_refused(arguments: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Store(**arguments)
    assert caught.value.name == name


def test_a_closed_store_raises_a_chimeway_error(location: str) -> None:
    store = Store(location)
    store.close()
    store.close()  # twice is fine
    with pytest.raises(ChimewayError, match="closed"):
        store.fetch_definition("escalation", 1)
    with pytest.raises(ChimewayError):
        trigger(store)


def test_the_store_is_a_context_manager_that_closes(location: str) -> None:
    with Store(location) as store:
        assert repr(store) == f"Store({location!r})"
    with pytest.raises(ChimewayError):
        store.fetch_definition("escalation", 1)


# -- transactions -------------------------------------------------------------------------------


def test_a_caller_transaction_commits_as_a_unit(store: Store) -> None:
    result = trigger(store)
    with store.transaction() as tx:
        tx.append_transition(result.run.id, "active", "host_note")
        tx.update_run(result.run.id, status_reason="host_paused")
        assert sql(store).in_transaction
    assert not sql(store).in_transaction
    assert store.get_run(result.run.id).status_reason == "host_paused"
    assert store.list_traces("acme", result.run.id)[-1].reason == "host_note"


def test_a_caller_transaction_that_raises_leaves_no_trace_and_no_run_change(
    store: Store,
) -> None:
    result = trigger(store)
    before = table_dump(store)
    with pytest.raises(KeyError), store.transaction() as tx:
        tx.append_transition(result.run.id, "waiting", "host_note", context={"source": "host"})
        tx.update_run(result.run.id, state="waiting", status_reason="host_paused")
        tx.ensure_definition("other", Workflow("other", 1, [Step("sms", 1, "sms")]))
        store.track_signal(Signal("acme", "notification_read"))  # a store call joins in
        raise KeyError("host failure")
    assert table_dump(store) == before
    assert store.get_run(result.run.id) == result.run
    assert store.fetch_definition("other", 1) is None
    assert not sql(store).in_transaction


def test_base_exceptions_roll_back_too(store: Store) -> None:
    result = trigger(store)
    before = table_dump(store)
    with pytest.raises(KeyboardInterrupt), store.transaction() as tx:
        tx.append_transition(result.run.id, "active", "host_note")
        raise KeyboardInterrupt
    assert table_dump(store) == before


def _fail_after_registering(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next trigger fail midway: it registers its definition (writes), then the
    machine's start raises. The clock is read once per unit of work, so it can no longer
    be the thing that fails halfway through."""
    from chimeway_lite.machine import decide

    def start(*args: object, **kwargs: object) -> None:
        raise InvalidArgument("start", "injected failure after the registration")

    monkeypatch.setattr(decide, "start", start)


def test_a_store_method_failing_inside_a_caller_transaction_is_undone_alone(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(location, clock=FakeClock(START)) as store:
        result = trigger(store)
        with store.transaction() as tx:
            note = tx.append_transition(result.run.id, "active", "host_note")
            inside = table_dump(store)
            # trigger registers the definition, then fails: its savepoint must undo the
            # registration.
            with monkeypatch.context() as patch:
                _fail_after_registering(patch)
                with pytest.raises(InvalidArgument):
                    trigger(
                        store,
                        recipient="u2",
                        workflow=Workflow("other", 1, [Step("sms", 1, "sms")]),
                        key="k2",
                        notification_key="n",
                    )
            assert table_dump(store) == inside
            later = tx.append_transition(result.run.id, "active", "host_note_2")
        traces = store.list_traces("acme", result.run.id)
        assert [t.id for t in traces[-2:]] == [note.id, later.id]
        assert store.fetch_definition("other", 1) is None
        # the failed registration was not cached either: other steps register fine
        assert store.upsert_definition("n", Workflow("other", 1, [Step("email", 1, "email")]))


def test_a_store_method_failing_midway_outside_a_transaction_writes_nothing(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(location, clock=FakeClock(START)) as store:
        trigger(store)
        before = table_dump(store)
        with monkeypatch.context() as patch:
            _fail_after_registering(patch)
            with pytest.raises(InvalidArgument) as caught:
                trigger(store, key="k2", workflow=Workflow("other", 1, [Step("sms", 1, "sms")]))
        assert caught.value.name == "start"
        assert table_dump(store) == before
        assert not sql(store).in_transaction
        assert store.fetch_definition("other", 1) is None


def test_the_clock_is_read_once_per_unit_of_work(location: str) -> None:
    clock = ScriptedClock()
    with Store(location, clock=clock) as store:
        calls = clock.calls
        trigger(store, key="k1")
        assert clock.calls == calls + 1
        with store.transaction() as tx:
            tx.append_transition(store.get_run(trigger(store, key="k2").run.id).id, "active", "n")
        # the caller's unit reads it once, and the trigger inside it (a savepoint) once more
        assert clock.calls == calls + 3


def test_a_conflict_inside_a_caller_transaction_keeps_the_callers_writes(store: Store) -> None:
    result = trigger(store)
    other = Workflow("escalation", 1, [Step("sms", 1, "sms")])
    with store.transaction() as tx:
        note = tx.append_transition(result.run.id, "active", "host_note")
        with pytest.raises(DefinitionConflict):
            store.upsert_definition("escalate", other)
    assert store.list_traces("acme", result.run.id)[-1] == note


def test_a_nested_transaction_is_a_savepoint(store: Store) -> None:
    result = trigger(store)
    with store.transaction() as outer:
        kept = outer.append_transition(result.run.id, "active", "host_note")
        with pytest.raises(RuntimeError), store.transaction() as inner:
            inner.append_transition(result.run.id, "active", "host_discarded")
            raise RuntimeError
        with store.transaction() as inner:
            inner.append_transition(result.run.id, "active", "host_kept")
    reasons = [t.reason for t in store.list_traces("acme", result.run.id)]
    assert reasons[-2:] == ["host_note", "host_kept"]
    assert kept.reason == "host_note"


def test_the_store_is_usable_after_a_failed_transaction(store: Store) -> None:
    with pytest.raises(ValueError), store.transaction():
        raise ValueError
    assert trigger(store).duplicate is False


def test_each_store_call_is_its_own_unit(store: Store) -> None:
    """A failing call after a successful one leaves the first committed."""
    first = trigger(store)
    with pytest.raises(InvalidArgument):
        trigger(store, tenant=" ")
    assert store.get_run(first.run.id) == first.run


# -- the trigger ----------------------------------------------------------------------------------


def test_trigger_records_notification_run_first_delivery_and_two_trace_rows(
    store: Store, clock: FakeClock
) -> None:
    result = trigger(store, recipient="u1", notification_key="escalate", key="k1")
    now = clock.now()
    definition = store.fetch_definition("escalation", 1)
    assert definition is not None
    first_step = definition.steps[0]
    assert result.duplicate is False
    assert result.notification.tenant_id == "acme"
    assert result.notification.recipient == "u1"
    assert result.notification.notification_key == "escalate"
    assert result.notification.idempotency_key == "k1"
    assert result.notification.workflow_definition_id == definition.id
    assert result.run == WorkflowRun(
        id=result.run.id,
        tenant_id="acme",
        notification_id=result.notification.id,
        workflow_definition_id=definition.id,
        current_step_id=first_step.id,
        state=RunState.ACTIVE,
        status_reason="workflow_started",
        status_context={"source": "trigger"},
        started_at=now,
        last_transition_at=now,
        suspended_until=None,
        pending_signals=(),
        terminal_reason=None,
        entered_step_at=now,
    )
    (delivery,) = result.deliveries
    assert (delivery.channel, delivery.status, delivery.workflow_step_id) == (
        "in_app",
        "pending",
        first_step.id,
    )
    assert delivery.workflow_run_id == result.run.id
    started, activated = store.list_traces("acme", result.run.id)
    assert (started.from_state, started.to_state, started.reason, started.context) == (
        None,
        RunState.ACTIVE,
        "workflow_started",
        {"source": "trigger"},
    )
    assert started.workflow_step_id is None
    assert (activated.from_state, activated.to_state, activated.reason) == (
        RunState.ACTIVE,
        RunState.ACTIVE,
        "step_activated",
    )
    assert activated.workflow_step_id == first_step.id
    assert activated.context == {"source": "trigger", "step_key": "inapp"}
    assert started.seq < activated.seq


def test_trigger_starts_on_the_lowest_order_whatever_the_declaration_order(
    store: Store,
) -> None:
    workflow = Workflow("w", 1, [Step("second", 2, "email"), Step("first", 1, "sms")])
    result = trigger(store, workflow=workflow)
    assert store.get_current_step(result.run).step_key == "first"
    assert result.deliveries[0].channel == "sms"


def test_the_same_idempotency_key_is_a_duplicate_and_writes_nothing(
    store: Store, clock: FakeClock
) -> None:
    first = trigger(store, key="k1")
    clock.advance(60)
    before = table_dump(store)
    again = trigger(store, recipient="someone else", notification_key="other", key="k1")
    assert again.duplicate is True
    assert again.notification == first.notification
    assert again.run == first.run
    assert again.deliveries == first.deliveries
    assert table_dump(store) == before
    # even a conflicting workflow is not looked at: the first result stands
    conflicting = trigger(store, key="k1", workflow=Workflow("escalation", 1, [Step("x", 1, "x")]))
    assert conflicting.duplicate and conflicting.run == first.run
    assert table_dump(store) == before


def test_the_same_key_in_another_tenant_is_a_new_run(store: Store) -> None:
    one = trigger(store, tenant="acme", key="k1")
    two = trigger(store, tenant="globex", key="k1")
    assert two.duplicate is False
    assert two.run.id != one.run.id
    assert two.notification.id != one.notification.id
    assert two.run.tenant_id == "globex"
    assert sql(store).execute("SELECT count(*) FROM workflow_runs").fetchone()[0] == 2


def test_trigger_with_a_registered_definition(store: Store) -> None:
    definition = store.upsert_definition("escalate", escalation_workflow())
    result = trigger(store, notification_key="escalate", workflow=definition)
    assert result.run.workflow_definition_id == definition.id
    unknown = attrs.evolve(definition, id=MISSING)
    with pytest.raises(InvalidArgument) as caught:
        trigger(store, notification_key="escalate", key="k2", workflow=unknown)
    assert caught.value.name == "workflow"


BAD_IDS = ["", "   ", "\t\n", None, 5, b"acme", ["acme"], "x" * 256, "a\x00b"]


@pytest.mark.parametrize(
    "parameter", ["tenant_id", "recipient", "idempotency_key", "notification_key"]
)
@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_blank_or_non_string_trigger_ids_are_refused_naming_the_parameter(
    store: Store, parameter: str, bad: Any
) -> None:
    trigger(store, key="existing")
    before = table_dump(store)
    with pytest.raises(ChimewayError) as caught:
        trigger(store, key="k-new", **{parameter: bad})
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, InvalidArgument)
    assert caught.value.name == parameter
    assert parameter in str(caught.value)
    assert table_dump(store) == before


def test_ids_are_opaque_not_trimmed(store: Store) -> None:
    one = trigger(store, tenant="acme", key="k")
    two = trigger(store, tenant="acme", key=" k ")
    assert two.duplicate is False and two.run.id != one.run.id
    assert two.notification.idempotency_key == " k "


# -- inspection: tenant scoping -----------------------------------------------------------------


def _failure(call: Any) -> RunNotFound:
    with pytest.raises(RunNotFound) as caught:
        call()
    return caught.value


def _shape(error: RunNotFound, run_id: str) -> tuple[Any, ...]:
    fields = {k: v for k, v in vars(error).items() if k != "_fields"}
    fields = {
        k: (v.replace(run_id, "<id>") if isinstance(v, str) else v) for k, v in fields.items()
    }
    return (
        type(error),
        str(error).replace(run_id, "<id>"),
        error.args[0].replace(run_id, "<id>"),
        fields,
    )


@pytest.mark.parametrize("operation", ["explain", "list_traces", "list_traces_limit"])
def test_another_tenants_run_is_indistinguishable_from_a_missing_one(
    store: Store, operation: str
) -> None:
    mine = trigger(store, tenant="acme").run.id

    def call(tenant: str, run_id: str) -> Any:
        if operation == "explain":
            return store.explain(tenant, run_id)
        if operation == "list_traces":
            return store.list_traces(tenant, run_id)
        return store.list_traces(tenant, run_id, limit=1)

    assert call("acme", mine)  # visible to its owner
    foreign = _failure(lambda: call("globex", mine))
    missing = _failure(lambda: call("globex", MISSING))
    missing_for_owner = _failure(lambda: call("acme", MISSING))
    assert _shape(foreign, mine) == _shape(missing, MISSING) == _shape(missing_for_owner, MISSING)
    assert isinstance(foreign, LookupError) and isinstance(foreign, ChimewayError)
    assert "acme" not in str(foreign) and "globex" not in str(foreign)
    assert foreign.run_id == mine


def test_tenant_ids_are_matched_exactly(store: Store) -> None:
    mine = trigger(store, tenant="acme").run.id
    for near in ("ACME", "acme ", "acm", "%"):
        _failure(lambda near=near: store.explain(near, mine))


@pytest.mark.parametrize("bad", ["", "  ", None, 7])
def test_inspection_refuses_blank_ids(store: Store, bad: Any) -> None:
    run_id = trigger(store).run.id
    with pytest.raises(InvalidArgument) as caught:
        store.explain(bad, run_id)
    assert caught.value.name == "tenant_id"
    with pytest.raises(InvalidArgument) as caught:
        store.list_traces("acme", bad)
    assert caught.value.name == "run_id"


def test_explain_gives_the_seed_fields(store: Store) -> None:
    result = trigger(store)
    explanation = store.explain("acme", result.run.id)
    assert explanation.id == result.run.id
    assert explanation.tenant_id == "acme"
    assert explanation.state is RunState.ACTIVE
    assert explanation.status_reason == "workflow_started"
    assert explanation.current_step_name == "inapp"
    assert explanation.suspended_until is None
    assert explanation.pending_signals == ()
    assert explanation.terminal_reason is None


def test_list_traces_limit(store: Store) -> None:
    run_id = trigger(store).run.id
    for i in range(3):
        _append(store, run_id, f"host_note_{i}")
    everything = store.list_traces("acme", run_id)
    assert [t.reason for t in everything] == [
        "workflow_started",
        "step_activated",
        "host_note_0",
        "host_note_1",
        "host_note_2",
    ]
    assert store.list_traces("acme", run_id, limit=None) == everything
    assert store.list_traces("acme", run_id, limit=0) == []
    assert store.list_traces("acme", run_id, limit=1) == everything[:1]
    assert store.list_traces("acme", run_id, limit=3) == everything[:3]
    assert store.list_traces("acme", run_id, limit=5) == everything
    assert store.list_traces("acme", run_id, limit=50) == everything
    assert store.list_traces("acme", run_id, limit=2**64) == everything  # no overflow


@pytest.mark.parametrize("bad", [-1, -100, 1.5, "2", True, False, [1], 2.0])
def test_a_bad_limit_is_a_chimeway_error_and_a_value_error(store: Store, bad: Any) -> None:
    run_id = trigger(store).run.id
    with pytest.raises(ChimewayError) as caught:
        store.list_traces("acme", run_id, limit=bad)
    assert isinstance(caught.value, ValueError)
    assert caught.value.name == "limit"


def test_the_trace_sequence_is_store_wide_and_strictly_increasing(store: Store) -> None:
    one = trigger(store, tenant="acme").run.id
    two = trigger(store, tenant="globex").run.id
    _append(store, one, "host_note")
    _append(store, two, "host_note")
    seqs = [
        t.seq
        for run_id, tenant in ((one, "acme"), (two, "globex"))
        for t in store.list_traces(tenant, run_id)
    ]
    assert len(set(seqs)) == 6
    all_rows = (
        sql(store)
        .execute("SELECT seq, workflow_run_id FROM workflow_transitions ORDER BY rowid")
        .fetchall()
    )
    assert [r[0] for r in all_rows] == sorted(r[0] for r in all_rows)
    assert [r[1] for r in all_rows] == [one, one, two, two, one, two]


def test_a_sequence_number_is_never_reused_after_a_rollback(store: Store) -> None:
    run_id = trigger(store).run.id
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.append_transition(run_id, "active", "host_discarded")
        raise RuntimeError
    kept = _append(store, run_id, "host_note")
    traces = store.list_traces("acme", run_id)
    assert traces[-1] == kept
    assert kept.seq > traces[-2].seq


# -- the low-level seed API -----------------------------------------------------------------------


def test_get_run_and_lock_run(store: Store) -> None:
    result = trigger(store, tenant="acme")
    assert store.get_run(result.run.id) == result.run  # any tenant: the seed's low-level read
    with store.transaction() as tx:
        assert tx.lock_run(result.run.id) == result.run
        assert tx.get_run(result.run.id) == result.run
        with pytest.raises(RunNotFound) as caught:
            tx.lock_run(MISSING)
        assert caught.value.run_id == MISSING
    with pytest.raises(RunNotFound):
        store.get_run(MISSING)
    with pytest.raises(InvalidArgument):
        store.get_run("")


def test_get_current_step(store: Store) -> None:
    result = trigger(store)
    step = store.get_current_step(result.run)
    assert (step.step_key, step.step_order, step.channel) == ("inapp", 1, "in_app")
    assert step.id == result.run.current_step_id
    with pytest.raises(StepNotFound) as caught:
        store.get_current_step(attrs.evolve(result.run, current_step_id=MISSING))
    assert caught.value.step == MISSING
    assert isinstance(caught.value, LookupError)
    other = store.upsert_definition("x", Workflow("other", 1, [Step("sms", 1, "sms")]))
    with pytest.raises(StepNotFound):  # a step of another definition is not the run's
        store.get_current_step(attrs.evolve(result.run, current_step_id=other.steps[0].id))
    with pytest.raises(InvalidArgument):
        store.get_current_step(result.run.id)  # type: ignore[arg-type]


def test_active_step_linkage(store: Store) -> None:
    result = trigger(store)
    assert store.active_step_linkage(result.notification.id) == StepLinkage(
        result.run.id, result.run.current_step_id, "in_app"
    )
    assert store.active_step_linkage(MISSING) is None
    with store.transaction() as tx:
        tx.update_run(result.run.id, state="waiting")
    assert store.active_step_linkage(result.notification.id) is not None
    with store.transaction() as tx:
        tx.update_run(result.run.id, state="stopped", terminal_reason="host_stopped")
    assert store.active_step_linkage(result.notification.id) is None


def test_create_initial_run(store: Store, clock: FakeClock) -> None:
    definition = store.upsert_definition("escalate", escalation_workflow())
    at = clock.now() - timedelta(minutes=3)
    with store.transaction() as tx:
        notification_id = insert_notification(store, "acme", definition.id, "k")
        run = tx.create_initial_run(notification_id, definition, at, "acme")
    assert run == store.get_run(run.id)
    assert (run.state, run.status_reason, run.status_context) == (
        RunState.ACTIVE,
        "workflow_started",
        {"source": "trigger"},
    )
    assert run.started_at == run.last_transition_at == at
    assert run.current_step_id == definition.steps[0].id
    traces = store.list_traces("acme", run.id)
    assert [(t.reason, t.inserted_at) for t in traces] == [
        ("workflow_started", at),
        ("step_activated", at),
    ]
    # planning deliveries is the trigger's job, not this helper's
    assert store.list_deliveries("acme", run.id) == []
    assert store.active_step_linkage(notification_id) == StepLinkage(
        run.id, definition.steps[0].id, "in_app"
    )


def test_create_initial_run_refuses_bad_input_and_writes_nothing(
    store: Store, clock: FakeClock
) -> None:
    definition = store.upsert_definition("escalate", escalation_workflow())
    with store.transaction() as tx:
        mine = insert_notification(store, "acme", definition.id, "k")
        tx.create_initial_run(mine, definition, clock.now(), "acme")
        fresh = insert_notification(store, "acme", definition.id, "k2")
    before = table_dump(store)
    attempts: list[tuple[tuple[Any, ...], type[Exception]]] = [
        ((mine, definition, clock.now(), "acme"), InvalidArgument),  # one run per notification
        ((fresh, definition, clock.now(), "globex"), InvalidArgument),  # another tenant's
        ((MISSING, definition, clock.now(), "acme"), InvalidArgument),
        ((fresh, definition, datetime(2026, 1, 5), "acme"), InvalidArgument),  # naive
        ((fresh, attrs.evolve(definition, steps=()), clock.now(), "acme"), InvalidWorkflow),
        ((fresh, "escalation", clock.now(), "acme"), InvalidArgument),
        (("", definition, clock.now(), "acme"), InvalidArgument),
    ]
    for arguments, error in attempts:
        with pytest.raises(error), store.transaction() as tx:
            tx.create_initial_run(*arguments)
    assert table_dump(store) == before


@pytest.mark.parametrize("from_state", [None, "active", "waiting", RunState.WAITING])
def test_append_transition_accepts_host_reasons_and_any_live_from_state(
    store: Store, clock: FakeClock, from_state: Any
) -> None:
    result = trigger(store)
    clock.advance(seconds=1.5)
    note = _append(
        store,
        result.run.id,
        "host_note",
        to_state="active",
        from_state=from_state,
        workflow_step_id=result.run.current_step_id,
        delivery_id=result.deliveries[0].id,
        context={"source": "host", "step_key": "inapp"},
    )
    assert note == store.list_traces("acme", result.run.id)[-1]
    assert note.from_state == (None if from_state is None else RunState(from_state))
    assert (note.to_state, note.reason, note.context) == (
        RunState.ACTIVE,
        "host_note",
        {"source": "host", "step_key": "inapp"},
    )
    assert note.inserted_at == clock.now()
    assert note.workflow_step_id == result.run.current_step_id
    assert note.delivery_id == result.deliveries[0].id
    assert store.get_run(result.run.id) == result.run  # a trace row only: the run is as it was


def test_append_transition_records_a_host_terminal_reason(store: Store) -> None:
    result = trigger(store)
    with store.transaction() as tx:
        tx.update_run(result.run.id, state="stopped", terminal_reason="max_escalations_reached")
        row = tx.append_transition(
            result.run.id, RunState.STOPPED, "max_escalations_reached", from_state="active"
        )
    assert row.to_state is RunState.STOPPED
    # a terminal run may still get rows that keep its state
    again = _append(store, result.run.id, "host_note", to_state="stopped", from_state="stopped")
    assert again.seq > row.seq


@pytest.mark.parametrize("terminal", ["completed", "stopped"])
@pytest.mark.parametrize("target", ["active", "waiting", "completed", "stopped"])
def test_append_transition_refuses_to_move_a_terminal_run(
    store: Store, terminal: str, target: str
) -> None:
    result = trigger(store)
    with store.transaction() as tx:
        tx.update_run(result.run.id, state=terminal)
    before = table_dump(store)
    if target == terminal:
        _append(store, result.run.id, "host_note", to_state=target)
        return
    with pytest.raises(InvalidTransition) as caught, store.transaction() as tx:
        tx.append_transition(result.run.id, target, "host_note")
    assert (caught.value.from_state, caught.value.to_state) == (terminal, target)
    assert caught.value.run_id == result.run.id
    assert table_dump(store) == before


def test_append_transition_refuses_a_row_that_leaves_a_terminal_from_state(store: Store) -> None:
    """A row claiming ``completed -> active`` would record a move the spine forbids."""
    result = trigger(store)
    with pytest.raises(InvalidTransition), store.transaction() as tx:
        tx.append_transition(result.run.id, "active", "host_note", from_state="completed")


@pytest.mark.parametrize(
    "context",
    [{"payload": "secret"}, {"source": "host", "email": "a@b.c"}, {"Source": "x"}],
    ids=["payload", "one extra", "case"],
)
def test_append_transition_refuses_off_catalogue_context_keys(
    store: Store, context: dict[str, Any]
) -> None:
    result = trigger(store)
    before = table_dump(store)
    with pytest.raises(InvalidTransition), store.transaction() as tx:
        tx.append_transition(result.run.id, "active", "host_note", context=context)
    assert table_dump(store) == before


@pytest.mark.parametrize(
    ("arguments", "error", "name"),
    [
        ({"reason": ""}, InvalidArgument, "reason"),
        ({"reason": "  "}, InvalidArgument, "reason"),
        ({"reason": None}, InvalidArgument, "reason"),
        ({"to_state": "paused"}, InvalidArgument, "to_state"),
        ({"from_state": "paused"}, InvalidArgument, "from_state"),
        ({"context": ["source"]}, InvalidArgument, "context"),
        ({"context": {"source": float("nan")}}, InvalidArgument, "context"),
        ({"workflow_step_id": ""}, InvalidArgument, "workflow_step_id"),
        ({"run_id": MISSING}, RunNotFound, "run_id"),
    ],
)
def test_append_transition_checks_its_arguments_before_writing(
    store: Store, arguments: dict[str, Any], error: type[Exception], name: str
) -> None:
    result = trigger(store)
    call: dict[str, Any] = {"run_id": result.run.id, "to_state": "active", "reason": "note"}
    call.update(arguments)
    before = table_dump(store)
    with pytest.raises(error) as caught, store.transaction() as tx:
        tx.append_transition(**call)
    assert getattr(caught.value, "name", "run_id") == name
    assert table_dump(store) == before


def test_update_run_writes_the_fields_as_given(store: Store, clock: FakeClock) -> None:
    result = trigger(store)
    due = clock.now() + timedelta(hours=1, microseconds=1)
    changes: dict[str, Any] = {
        "state": "waiting",
        "status_reason": "host_paused",
        "status_context": {"source": "host", "due_at": "2030-01-01T00:00:00.000000+00:00"},
        "last_transition_at": clock.now(),
        "suspended_until": due,
        "pending_signals": ["read", "clicked"],
        "terminal_reason": "not really terminal",
    }
    before_traces = store.list_traces("acme", result.run.id)
    with store.transaction() as tx:
        updated = tx.update_run(result.run, **changes)
    assert updated == store.get_run(result.run.id)
    assert updated == attrs.evolve(
        result.run,
        state=RunState.WAITING,
        status_reason="host_paused",
        status_context={"source": "host", "due_at": "2030-01-01T00:00:00.000000+00:00"},
        last_transition_at=clock.now(),
        suspended_until=due,
        pending_signals=("read", "clicked"),
        terminal_reason="not really terminal",
    )
    assert store.list_traces("acme", result.run.id) == before_traces  # no row appended


def test_update_run_moves_the_cursor_to_any_step(store: Store) -> None:
    result = trigger(store)
    definition = store.fetch_definition("escalation", 1)
    assert definition is not None
    email = definition.steps[1]
    with store.transaction() as tx:
        tx.update_run(result.run.id, current_step_id=email.id)
    assert store.get_current_step(store.get_run(result.run.id)) == email
    before = table_dump(store)
    with pytest.raises(InvalidArgument), store.transaction() as tx:
        tx.update_run(result.run.id, current_step_id=MISSING)  # foreign key
    assert table_dump(store) == before


@pytest.mark.parametrize("terminal", ["completed", "stopped"])
def test_update_run_refuses_to_change_a_terminal_state(store: Store, terminal: str) -> None:
    result = trigger(store)
    with store.transaction() as tx:
        tx.update_run(result.run.id, state=terminal, terminal_reason="done")
    before = table_dump(store)
    for target in {"active", "waiting", "completed", "stopped"} - {terminal}:
        with pytest.raises(InvalidTransition) as caught, store.transaction() as tx:
            tx.update_run(result.run.id, state=target, status_reason="revived")
        assert (caught.value.from_state, caught.value.to_state) == (terminal, target)
    assert table_dump(store) == before
    # the escape hatch still writes the other fields of a finished run
    with store.transaction() as tx:
        tx.update_run(result.run.id, state=terminal, status_reason="archived")
    assert store.get_run(result.run.id).status_reason == "archived"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"id": MISSING}, InvalidArgument),
        ({"tenant_id": "globex"}, InvalidArgument),
        ({"notification_id": MISSING}, InvalidArgument),
        ({"started_at": START}, InvalidArgument),
        ({"colour": "red"}, InvalidArgument),
        ({"state": "paused"}, InvalidArgument),
        ({"status_context": {"payload": "x"}}, InvalidTransition),
        ({"status_context": "source"}, InvalidArgument),
        ({"suspended_until": datetime(2026, 1, 5)}, InvalidArgument),
        ({"pending_signals": "read"}, InvalidArgument),
        ({"pending_signals": ["read", " "]}, InvalidArgument),
        ({"status_reason": ""}, InvalidArgument),
    ],
    ids=repr,
)
def test_update_run_refuses_what_it_cannot_write(
    store: Store, changes: dict[str, Any], error: type[Exception]
) -> None:
    result = trigger(store)
    before = table_dump(store)
    with pytest.raises(error), store.transaction() as tx:
        tx.update_run(result.run.id, **changes)
    assert table_dump(store) == before


def test_update_run_of_a_missing_run(store: Store) -> None:
    with pytest.raises(RunNotFound), store.transaction() as tx:
        tx.update_run(MISSING, status_reason="x")


# -- the clock --------------------------------------------------------------------------------


def test_every_time_the_store_writes_comes_from_its_clock(store: Store, clock: FakeClock) -> None:
    clock.set(datetime(2031, 7, 1, 12, 0, 0, 123456, tzinfo=UTC))
    result = trigger(store)
    assert result.notification.inserted_at == clock.now()
    assert result.run.started_at == clock.now()
    assert all(t.inserted_at == clock.now() for t in store.list_traces("acme", result.run.id))


def test_any_object_with_now_is_a_clock() -> None:
    class Fixed:
        def now(self) -> datetime:
            return datetime(2030, 1, 1, tzinfo=UTC)

    with Store(":memory:", clock=Fixed()) as store:
        assert trigger(store).run.started_at == datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def naive_store() -> Iterator[Store]:
    """A store whose clock returns naive datetimes."""

    class Naive:
        def now(self) -> datetime:
            return datetime(2030, 1, 1)

    with Store(":memory:", clock=Naive()) as opened:
        yield opened


def test_a_clock_giving_naive_times_is_refused_before_any_write(naive_store: Store) -> None:
    before = table_dump(naive_store)
    with pytest.raises(InvalidArgument) as caught:
        trigger(naive_store)
    assert caught.value.name == "clock.now()"
    assert table_dump(naive_store) == before


def test_waits_are_kept_exactly(store: Store, clock: FakeClock) -> None:
    """Timestamps survive the store to the microsecond (zero microseconds included)."""
    workflow = Workflow("w", 1, [Step("a", 1, "in_app", [WaitUntil(1, "b")]), Step("b", 2, "e")])
    result = trigger(store, workflow=workflow)
    clock.advance(microseconds=999_999)
    with store.transaction() as tx:
        tx.update_run(result.run.id, suspended_until=clock.now(), last_transition_at=START)
    run = store.get_run(result.run.id)
    assert run.suspended_until == START + timedelta(microseconds=999_999)
    assert run.last_transition_at == START and run.last_transition_at.microsecond == 0
    text = (
        sql(store)
        .execute("SELECT suspended_until, last_transition_at FROM workflow_runs")
        .fetchone()
    )
    assert tuple(text) == ("2026-01-05T09:30:00.999999+00:00", "2026-01-05T09:30:00.000000+00:00")
