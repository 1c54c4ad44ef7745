"""What only the PostgreSQL backend has (CONTRACT §15): its schema's version, its views and
its upgrade from version 1, creation by processes at once, a real deadlock run again, its
error mapping (no psycopg exception leaves the store, lock waits
bounded by busy_timeout, a lost connection replaced), the DSN's password never shown, the
clear error without psycopg, threads sharing one Store, and the hot queries on their
indexes. Collected only when a PostgreSQL server can be had (see ``backends``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backends
import pg_server
import proc_worker
import psycopg
import pytest
from factories import trigger
from proc_worker import run_processes

from chimeway_lite import (
    ChimewayError,
    FakeClock,
    SchemaMismatch,
    Signal,
    StorageError,
    Store,
    StoreBusy,
    Worker,
)
from chimeway_lite.backends.locations import redacted
from chimeway_lite.backends.postgres import runs
from chimeway_lite.backends.postgres.connection import SCHEMA_VERSION
from chimeway_lite.backends.postgres.executor import Retry
from chimeway_lite.backends.postgres.unit import PostgresUnit


@pytest.fixture
def dsn() -> Iterator[str]:
    """A new, empty schema on the server."""
    server = backends.postgres_dsn()
    assert server is not None
    fresh = pg_server.fresh_database(server)
    yield fresh
    backends.close_sql(fresh)
    pg_server.drop_fresh_database(fresh)


def _execute(dsn: str, statement: str, params: Any = None) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description is not None else []


# -- the schema -------------------------------------------------------------------------------


def test_a_new_schema_gets_the_tables_and_its_version(dsn: str) -> None:
    Store(dsn).close()
    assert _execute(dsn, "SELECT application, version FROM chimeway_lite_schema") == [
        ("chimeway_lite", SCHEMA_VERSION)
    ]
    tables = {r[0] for r in _execute(dsn, "SELECT tablename FROM pg_tables "
                                          "WHERE schemaname = current_schema()")}  # fmt: skip
    assert {"workflow_runs", "deliveries", "workflow_transitions", "signal_marks"} <= tables
    types = dict(_execute(dsn, "SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_schema = current_schema() "
                               "AND table_name = 'workflow_runs'"))  # fmt: skip
    assert types["last_transition_at"] == "timestamp with time zone"
    assert types["status_context"] == types["pending_signals"] == "jsonb"
    Store(dsn).close()  # opening again changes nothing
    assert len(_execute(dsn, "SELECT * FROM chimeway_lite_schema")) == 1


def test_a_newer_schema_version_is_refused(dsn: str) -> None:
    Store(dsn).close()
    _execute(dsn, "UPDATE chimeway_lite_schema SET version = %s", [SCHEMA_VERSION + 1])
    with pytest.raises(SchemaMismatch, match="newer chimeway_lite"):
        Store(dsn)


def test_a_foreign_schema_is_refused_and_left_alone(dsn: str) -> None:
    _execute(dsn, "CREATE TABLE workflow_runs (id integer PRIMARY KEY, mine text)")
    with pytest.raises(SchemaMismatch, match="not a chimeway_lite store"):
        Store(dsn)
    tables = _execute(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    assert tables == [("workflow_runs",)]


def test_a_version_table_of_another_application_is_refused(dsn: str) -> None:
    Store(dsn).close()
    _execute(dsn, "UPDATE chimeway_lite_schema SET application = 'other'")
    with pytest.raises(SchemaMismatch, match="names another"):
        Store(dsn)


VIEWS = {"runs_overview", "deliveries_overview", "trace_overview"}
_VERSION_ONE = Path(__file__).parent / "data" / "pg_schema_v1.sql"


def _views(dsn: str) -> set[str]:
    rows = _execute(dsn, "SELECT viewname FROM pg_views WHERE schemaname = current_schema()")
    return {r[0] for r in rows}


def _version_one_schema(dsn: str) -> None:
    """A schema as the first PostgreSQL landing made it (version 1: no views), plus a view
    of the host's own."""
    from chimeway_lite.backends.postgres.connection import _statements

    with psycopg.connect(dsn) as conn:  # one transaction
        for statement in _statements(_VERSION_ONE.read_text(encoding="utf-8")):
            conn.execute(statement.encode())
        conn.execute(
            "INSERT INTO chimeway_lite_schema (application, version) VALUES ('chimeway_lite', 1)"
        )
        conn.execute("CREATE VIEW host_report AS SELECT count(*) AS runs FROM workflow_runs")


def test_a_new_schema_has_the_views(dsn: str) -> None:
    Store(dsn).close()
    assert _views(dsn) == VIEWS


def test_a_version_one_schema_gains_the_views_and_keeps_the_hosts(
    dsn: str, clock: FakeClock
) -> None:
    _version_one_schema(dsn)
    assert _views(dsn) == {"host_report"}
    with Store(dsn, clock=clock) as store:
        assert _execute(dsn, "SELECT version FROM chimeway_lite_schema") == [(SCHEMA_VERSION,)]
        assert SCHEMA_VERSION == 2
        assert _views(dsn) == VIEWS | {"host_report"}
        run = trigger(store, recipient="ada").run
        assert _execute(dsn, "SELECT run_id, recipient, state FROM runs_overview") == [
            (run.id, "ada", "active")
        ]
        assert _execute(dsn, "SELECT runs FROM host_report") == [(1,)]
        assert store.verify() == []
    Store(dsn).close()  # opening again changes nothing
    assert _execute(dsn, "SELECT version FROM chimeway_lite_schema") == [(SCHEMA_VERSION,)]


def test_an_upgrade_that_fails_leaves_the_schema_at_version_one(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chimeway_lite.backends.postgres import connection

    _version_one_schema(dsn)
    broken = connection.schema_sql() + "\nCREATE VIEW broken_view AS SELECT nothing FROM nowhere;\n"
    monkeypatch.setattr(connection, "schema_sql", lambda: broken)
    with pytest.raises(SchemaMismatch, match='relation "nowhere" does not exist'):
        Store(dsn)
    assert _execute(dsn, "SELECT version FROM chimeway_lite_schema") == [(1,)]
    assert _views(dsn) == {"host_report"}


def test_an_unknown_older_schema_version_is_refused(dsn: str) -> None:
    Store(dsn).close()
    _execute(dsn, "UPDATE chimeway_lite_schema SET version = 0")
    with pytest.raises(SchemaMismatch, match="unknown chimeway_lite schema version 0"):
        Store(dsn)


@pytest.mark.slow
def test_processes_create_a_brand_new_schema_at_the_same_moment(dsn: str) -> None:
    run_ids = run_processes(proc_worker.open_new_and_trigger, [(dsn,)] * 6)
    assert len(set(run_ids)) == 6
    with Store(dsn) as store:
        assert len(_execute(dsn, "SELECT * FROM chimeway_lite_schema")) == 1
        assert _execute(dsn, "SELECT count(*) FROM workflow_definitions") == [(1,)]
        assert store.verify() == []


# -- errors -----------------------------------------------------------------------------------


def test_without_psycopg_the_error_names_the_extra(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(StorageError, match=r"chimeway-lite\[postgres\]"):
        Store(dsn)


def test_the_password_is_never_shown() -> None:
    location = "postgresql://ada:s3cret-pw@127.0.0.1:1/db?password=s3cret-pw"
    with pytest.raises(StorageError) as caught:
        Store(location, busy_timeout=1)
    assert "s3cret-pw" not in str(caught.value)
    assert "s3cret-pw" not in redacted("host=h password=s3cret-pw user=ada")
    assert redacted("postgresql://ada:s3cret-pw@h/db") == "postgresql://ada:***@h/db"


def test_a_lock_held_longer_than_busy_timeout_is_store_busy_and_writes_nothing(
    dsn: str, clock: FakeClock
) -> None:
    with Store(dsn, clock=clock, busy_timeout=0.3) as store:
        started = trigger(store)
        with psycopg.connect(dsn) as holder:
            holder.execute("SELECT * FROM workflow_runs WHERE id = %s FOR UPDATE", [started.run.id])
            with pytest.raises(StoreBusy):
                store.record_outcome(started.deliveries[0].id, "succeeded")
            holder.rollback()
        assert store.list_deliveries("acme", started.run.id)[0].status == "pending"
        assert store.record_outcome(started.deliveries[0].id, "succeeded") is not None


def test_a_lost_connection_is_a_chimeway_error_and_the_next_call_reconnects(
    dsn: str, clock: FakeClock
) -> None:
    with Store(dsn, clock=clock) as store:
        trigger(store)
        _execute(
            dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'chimeway_lite' AND pid != pg_backend_pid()",
        )
        with pytest.raises(ChimewayError) as caught:
            store.get_run("no-such-run")
        assert not isinstance(caught.value, psycopg.Error)
        assert trigger(store).run.state == "active"


def test_a_table_dropped_under_the_store_is_a_schema_mismatch(dsn: str, clock: FakeClock) -> None:
    with Store(dsn, clock=clock) as store:
        trigger(store)
        _execute(dsn, "DROP TABLE signal_marks")
        with pytest.raises(SchemaMismatch, match="missing"):
            store.route_signal(Signal("acme", "notification_read", "ada"))


# -- threads and locks ------------------------------------------------------------------------


def test_threads_sharing_one_store_each_work_on_a_connection_of_their_own(
    dsn: str, clock: FakeClock
) -> None:
    with Store(dsn, clock=clock) as store:
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def work(index: int) -> None:
            try:
                barrier.wait()
                for j in range(15):
                    trigger(store, recipient=f"r{index}", key=f"k-{index}-{j}")
                    trigger(store, recipient="shared", key=f"shared-{j}")
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert _execute(dsn, "SELECT count(*) FROM workflow_runs") == [(8 * 15 + 15,)]
        assert store.verify() == []


def test_a_units_trace_numbers_are_in_a_row_and_never_reused(dsn: str, clock: FakeClock) -> None:
    with Store(dsn, clock=clock) as store:
        first = trigger(store)
        second = trigger(store)
        a = [t.seq for t in store.list_traces("acme", first.run.id)]
        b = [t.seq for t in store.list_traces("acme", second.run.id)]
        assert a == [a[0], a[0] + 1] and b == [b[0], b[0] + 1]
        assert b[0] >= a[0] + runs.SEQ_BLOCK  # each unit reserved a block of its own


# -- the hot queries read their indexes -------------------------------------------------------

_PLANS = {
    "claim": ("deliveries_claimable", "deliveries_leased"),
    "due": ("workflow_runs_waiting_due", "workflow_runs_signal_settle"),
    "awaiting": ("notifications_by_recipient",),
}


def _plan(dsn: str, statement: str, params: dict[str, Any]) -> str:
    with psycopg.connect(dsn) as conn:
        conn.execute("SET enable_seqscan = off")
        rows = conn.execute(("EXPLAIN " + statement), params).fetchall()
        conn.rollback()
    return "\n".join(r[0] for r in rows)


def test_the_hot_queries_are_planned_on_their_indexes(dsn: str) -> None:
    Store(dsn).close()
    from chimeway_lite.backends.postgres import outbox

    now = "2026-01-05T09:30:00.000000+00:00"
    claim = _plan(dsn, outbox._CLAIM, {"now": now, "lease": now, "channel": None, "limit": 10})
    due = _plan(dsn, runs._DUE[False, True], {"now": now, "limit": 10})
    awaiting = _plan(
        dsn,
        runs._AWAITING_ACTOR_SIGNAL,
        {"tenant_id": "t", "actor_id": "a", "correlation_key": None, "event_name": "e"},
    )
    for name, plan in (("claim", claim), ("due", due), ("awaiting", awaiting)):
        assert "Seq Scan" not in plan, (name, plan)
        for index in _PLANS[name]:
            assert index in plan, (name, plan)
    tenant_wide = _plan(dsn, runs._AWAITING_SIGNAL, {"tenant_id": "t", "event_name": "e"})
    assert "workflow_runs_pending_signals" in tenant_wide or (
        "workflow_runs_waiting_by_tenant" in tenant_wide
    ), tenant_wide
    assert "SKIP LOCKED" not in claim  # EXPLAIN shows LockRows, not the clause
    assert claim.count("LockRows") == 2 and due.count("LockRows") == 2


def test_forget_deletes_the_rows_and_vacuums_their_tables(dsn: str, clock: FakeClock) -> None:
    with Store(dsn, clock=clock) as store:
        trigger(store, recipient="ada", data={"email": "ada@example.com"})
        trigger(store, recipient="bob")
        store.route_signal(Signal("acme", "notification_read", "ada"))
        assert store.forget("acme", recipient="ada") > 0
        found = _execute(dsn, "SELECT count(*) FROM notifications WHERE recipient = 'ada'")
        assert found == [(0,)]
        vacuumed = {
            r[0]
            for r in _execute(
                dsn,
                "SELECT relname FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND vacuum_count > 0",
            )
        }
        assert {"notifications", "workflow_runs", "signal_marks", "deliveries"} <= vacuumed


def _smoke(script_name: str) -> list[str]:
    """Run ``benchmarks/SCRIPT --smoke`` on the tests' server (no DBOS peer); its stdout lines."""
    server = backends.postgres_dsn()
    assert server is not None
    script = Path(__file__).resolve().parent.parent / "benchmarks" / script_name
    env = {**os.environ, "CHIMEWAY_BENCH_POSTGRES": server}
    env.pop("CHIMEWAY_BENCH_PEER_PYTHON", None)
    done = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


@pytest.mark.slow
def test_the_postgres_benchmark_runs_in_smoke_mode() -> None:
    lines = _smoke("postgres.py")
    assert any(line.startswith("| triggers/s |") for line in lines)
    assert any(line.startswith("| journeys/s |") for line in lines)
    assert [line.split("|")[1].strip() for line in lines if line.startswith("| ") and
            line.split("|")[1].strip().isdigit()] == ["1", "4", "8"]  # fmt: skip


@pytest.mark.slow
def test_the_wakeups_benchmark_runs_in_smoke_mode() -> None:
    lines = _smoke("wakeups.py")
    rows = [line.split("|")[1].strip() for line in lines if line[:2] == "| "]
    assert rows == [
        "backend",
        "---",
        "SQLite (sleeps)",
        "PostgreSQL (NOTIFY)",
        "commit of a write unit",
        "---",
        "COMMIT",
        "SELECT pg_notify(…); COMMIT (shipped)",
    ]


@pytest.mark.slow
def test_the_dbos_on_postgres_benchmark_runs_our_side_in_smoke_mode() -> None:
    lines = _smoke("dbos_postgres.py")
    rows = [line.split("|")[1:3] for line in lines if line[:2] == "| "]
    assert [r[0].strip() for r in rows[2:]] == ["starts/s", "signal → finished, ms"]
    assert all(float(r[1].replace(",", "")) > 0 for r in rows[2:])
    assert "DBOS: not measured" in "\n".join(lines)


def test_a_unit_the_server_ended_runs_again_and_only_its_last_attempt_counts(
    dsn: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[Any] = []
    with Store(dsn, clock=clock, on_event=events.append) as store:
        real = PostgresUnit.next_seqs
        failures = iter([True, False])

        def ended_once(unit: PostgresUnit, count: int) -> list[int]:
            if next(failures, False):  # the first attempt: the server picks it to fail
                raise Retry(unit.path, unit.busy_timeout)
            return real(unit, count)

        monkeypatch.setattr(PostgresUnit, "next_seqs", ended_once)
        started = trigger(store)  # the first attempt registered the journey, then failed
        monkeypatch.undo()
        assert _execute(dsn, "SELECT count(*) FROM workflow_runs") == [(1,)]
        assert _execute(dsn, "SELECT count(*) FROM workflow_definitions") == [(1,)]
        assert [e.run_id for e in events if e.run_id] == [started.run.id] * 2
        assert trigger(store).run.state == "active"  # the journey is known, and stored
        assert store.verify() == []


def test_a_real_deadlock_ends_one_unit_which_runs_again_and_both_commit(
    dsn: str, clock: FakeClock
) -> None:
    """Two units lock two runs in opposite orders: the server's deadlock detector ends one
    of them (SQLSTATE 40P01), the backend runs that unit again, and both commit."""
    with Store(dsn, clock=clock) as store:
        ada, bob = (trigger(store, recipient=r).run.id for r in ("ada", "bob"))
        deadlocks_before = _deadlocks(dsn)
        both_hold_one = threading.Barrier(2, timeout=30)
        attempts = {"ada-bob": 0, "bob-ada": 0}

        def locking(first: str, second: str, name: str) -> Any:
            def work(unit: PostgresUnit) -> int:
                attempts[name] += 1
                lock = "SELECT id FROM workflow_runs WHERE id = %s FOR UPDATE"
                unit.execute(lock, [first])
                if attempts[name] == 1:
                    both_hold_one.wait()  # each holds its first run: the cycle is made
                unit.execute(lock, [second])
                unit.execute(
                    "UPDATE workflow_runs SET status_reason = %s WHERE id = %s", [name, first]
                )
                return attempts[name]

            return work

        results: dict[str, Any] = {}

        def run(first: str, second: str, name: str) -> None:
            try:
                results[name] = store.backend.run(locking(first, second, name), write=True)
            except BaseException as exc:  # the assertion below shows it
                results[name] = exc

        threads = [
            threading.Thread(target=run, args=(ada, bob, "ada-bob")),
            threading.Thread(target=run, args=(bob, ada, "bob-ada")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(results.values()) == [1, 2], results  # one ran again, once
        assert _deadlocks(dsn, deadlocks_before + 1) == deadlocks_before + 1
        reasons = dict(_execute(dsn, "SELECT id, status_reason FROM workflow_runs"))
        assert (reasons[ada], reasons[bob]) == ("ada-bob", "bob-ada")


def _deadlocks(dsn: str, at_least: int = 0) -> int:
    """Deadlocks the server detected in this database so far, from its statistics, which a
    backend reports up to a second late: read again until they reach ``at_least`` (or ten
    seconds have passed)."""
    deadline = time.monotonic() + 10
    while True:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
        found = int(row[0]) if row else 0
        if found >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_retry_inside_a_callers_transaction_is_its_store_busy(
    dsn: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(dsn, clock=clock) as store:
        trigger(store)

        def ended(unit: PostgresUnit, count: int) -> list[int]:
            raise Retry(unit.path, unit.busy_timeout)

        monkeypatch.setattr(PostgresUnit, "next_seqs", ended)
        with pytest.raises(StoreBusy), store.transaction() as tx:
            trigger(tx)
        monkeypatch.undo()
        assert _execute(dsn, "SELECT count(*) FROM workflow_runs") == [(1,)]


def test_every_command_takes_a_postgresql_url(dsn: str) -> None:
    from click.testing import CliRunner

    from chimeway_lite.tools.cli import app as cli

    def run(*args: str) -> Any:
        result = CliRunner().invoke(cli.cli, ["--db", dsn, *args], prog_name="chimeway-lite")
        assert result.exit_code == 0, result.output
        return result

    demo = run("--json", "demo")
    assert "postgresql://" in demo.output
    runs = run("--json", "runs")
    listed = [line for line in runs.output.splitlines() if line.strip()]
    assert listed, runs.output
    run_id = _execute(dsn, "SELECT id, tenant_id FROM workflow_runs ORDER BY id LIMIT 1")[0]
    assert "workflow_started" in run("traces", run_id[1], run_id[0]).output
    assert run_id[0] in run("explain", run_id[1], run_id[0]).output
    assert "ok" in run("verify").output
    assert "workflow_runs" in run("tables").output
    run("tick")


# -- waking on LISTEN/NOTIFY --------------------------------------------------------------------

#: How long a test lets a wake take. The sleeps it would otherwise end are 60 s: a wake that
#: did not come fails the test; one that came late on a loaded machine does not.
WAKE_WITHIN = 20.0

_TRIGGER_ELSEWHERE = """
import sys
from chimeway_lite import Step, Store, Workflow
with Store(sys.argv[1]) as store:
    store.trigger(tenant_id="acme", notification_key="welcome", recipient="bob",
                  workflow=Workflow("email_only", 1, [Step("email", 1, "email")]),
                  idempotency_key="from-another-process")
"""


def _listener_pid(listener: Any) -> int:
    pid: int = listener._conn.info.backend_pid
    return pid


def test_a_listener_wakes_on_a_commit_of_work_in_its_schema_only(dsn: str) -> None:
    other = pg_server.fresh_database(backends.postgres_dsn() or "")
    try:
        with Store(dsn) as store, Store(other) as neighbour:
            listener = store.backend.listener()
            try:
                trigger(neighbour, recipient="ada")  # another store in the same database
                assert listener.wait(0.3) is False
                run_id = trigger(store, recipient="cy").run.id
                assert listener.wait(0.3) is True  # (that trigger's own wake, used up)
                store.explain("acme", run_id)
                store.verify()
                assert listener.wait(0.3) is False  # reads notify nobody
                with pytest.raises(RuntimeError), store.transaction() as tx:
                    trigger(tx, recipient="ada")
                    raise RuntimeError("rolled back")
                assert listener.wait(0.3) is False  # nor does a unit that rolled back
                started = time.monotonic()
                trigger(store, recipient="ada")
                assert listener.wait(60) is True
                assert time.monotonic() - started < WAKE_WITHIN
            finally:
                listener.close()
    finally:
        backends.close_sql(other)
        pg_server.drop_fresh_database(other)


def test_an_interrupt_ends_the_wait_at_once_from_another_thread(dsn: str) -> None:
    with Store(dsn) as store:
        listener = store.backend.listener()
        try:
            timer = threading.Timer(0.05, listener.interrupt)
            timer.start()
            started = time.monotonic()
            assert listener.wait(60) is True
            assert time.monotonic() - started < WAKE_WITHIN
            assert listener.wait(0.05) is False  # the interrupt was used up
        finally:
            listener.close()
        listener.close()  # twice is fine
        with pytest.raises(ChimewayError, match="closed"):
            listener.wait(0.01)


def test_a_lost_listening_connection_sleeps_then_listens_again(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(dsn) as store:
        listener = store.backend.listener()
        try:
            _execute(dsn, "SELECT pg_terminate_backend(%s)", [_listener_pid(listener)])
            started = time.monotonic()
            with caplog.at_level("WARNING", logger="chimeway_lite.postgres"):
                assert listener.wait(0.5) is False  # no error: the rest of the wait is a sleep
            assert time.monotonic() - started >= 0.45
            assert "was lost" in caplog.text
            assert listener.wait(0) is False  # connects and listens again
            trigger(store, recipient="ada")
            assert listener.wait(60) is True
        finally:
            listener.close()


def test_a_sleeping_worker_sends_at_once_what_another_process_triggers(dsn: str) -> None:
    sent: list[Any] = []
    passes: list[Any] = []
    first_pass = threading.Event()

    def on_pass(handled: Any, pause: float | None) -> None:
        passes.append((handled, pause))
        first_pass.set()

    with Store(dsn) as store:
        worker = Worker(store, {"email": sent.append}, max_sleep=60)
        thread = threading.Thread(target=lambda: worker.run(on_pass=on_pass))
        thread.start()
        try:
            assert first_pass.wait(WAKE_WITHIN)
            time.sleep(0.3)
            assert len(passes) == 1  # nothing to do and nobody wrote: it sleeps (60 s)
            started = time.monotonic()
            subprocess.run([sys.executable, "-c", _TRIGGER_ELSEWHERE, dsn], check=True, timeout=60)
            while not sent and time.monotonic() - started < WAKE_WITHIN:
                time.sleep(0.02)
            assert [d.recipient for d in sent] == ["bob"]
        finally:
            worker.stop()
            thread.join(WAKE_WITHIN)
        assert not thread.is_alive()
        (delivery,) = store.list_deliveries("acme", sent[0].workflow_run_id)
        assert delivery.status == "succeeded"


def test_tick_watch_wakes_when_another_process_routes_a_signal(dsn: str) -> None:
    with Store(dsn) as store:
        run_id = trigger(store, recipient="ada").run.id
        (in_app,) = store.claim_deliveries(channel="in_app")
        store.record_outcome(in_app.id, "succeeded")  # now it waits 2 h for notification_read
    script = Path(sys.executable).with_name("chimeway-lite")
    assert script.is_file(), "install the package (pip install -e .) to get the console script"
    watch = subprocess.Popen(
        [str(script), "--db", dsn, "tick", "--watch", "--cycles", "2", "--max-sleep", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        first = [watch.stdout.readline(), watch.stdout.readline()]
        assert "sleeping" in "".join(first), first  # the first sweep moved nothing
        started = time.monotonic()
        with Store(dsn) as store:
            store.route_signal(Signal("acme", "notification_read", actor_id="ada"))
        out, err = watch.communicate(timeout=WAKE_WITHIN)
        assert time.monotonic() - started < WAKE_WITHIN
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0, err
    assert "1 run progressed" in out
    with Store(dsn) as store:
        assert store.explain("acme", run_id).state == "completed"
