"""The hardening promises (CONTRACT §16), one test per finding of the hostile review: each of
these failed before the promise was kept.

Tampering goes through a raw sqlite3 connection (foreign keys off, the append-only trigger
left in place unless a test says otherwise): the rows pass the schema's CHECKs but hold
what the engine never writes.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from factories import START, trigger, waiting
from strategies import table_dump

from chimeway_lite import (
    DamagedRow,
    DeliveryNotFound,
    FakeClock,
    InvalidArgument,
    InvalidSignal,
    InvalidTransition,
    InvalidWorkflow,
    RunState,
    Signal,
    Step,
    StorageError,
    Store,
    StoreBusy,
    UnitClosed,
    WaitUntil,
    Workflow,
)
from chimeway_lite.tools import cli

READ = "notification_read"


@contextmanager
def raw(path: str) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to tamper with the file (autocommit, no foreign keys)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        yield conn
    finally:
        conn.close()


def run_cli(*args: str) -> Any:
    result = CliRunner().invoke(cli.cli, list(args), prog_name="chimeway-lite")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


# -- privacy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason", ["user ada@example.com opted out", "Opted-Out", "1abc", "a" * 65, "", "x y"]
)
def test_a_suppression_reason_must_be_a_reason_code(store: Store, reason: str) -> None:
    result = trigger(store)
    before = table_dump(store)
    with pytest.raises(InvalidArgument) as caught:
        store.record_outcome(result.deliveries[0].id, "suppressed", reason)
    assert caught.value.name == "suppression_reason"
    assert "ada@example.com" not in str(caught.value)
    assert table_dump(store) == before


@pytest.mark.parametrize("reason", ["opted_out", "user.opted-out", "a", "a" + "b" * 63])
def test_reason_codes_are_kept_as_they_are(store: Store, reason: str) -> None:
    result = trigger(store)
    store.record_outcome(result.deliveries[0].id, "suppressed", reason)
    (delivery,) = store.list_deliveries("acme", result.run.id)
    assert delivery.suppression_reason == reason


def test_host_context_values_are_short_scalars(store: Store) -> None:
    run = trigger(store).run
    before = table_dump(store)
    for context in (
        {"source": "x" * 1_000_000},
        {"source": "x" * 256},
        {"anchor_delivery_id": {"id": "d"}},
        {"to_step": ["email"]},
        {"due_at": "whenever"},
        {"suppression_reason": "user ada opted out"},
        {"source": 2**64},
    ):
        with pytest.raises(InvalidTransition), store.transaction() as tx:
            tx.append_transition(run.id, "active", "host_note", context=context)
        with pytest.raises(InvalidTransition), store.transaction() as tx:
            tx.update_run(run.id, status_context=context)
    assert table_dump(store) == before
    with store.transaction() as tx:
        tx.append_transition(run.id, "active", "host_note", context={"source": "x" * 255})
    assert store.verify() == []


def test_errors_never_echo_a_whole_input_or_a_payload_value(store: Store) -> None:
    huge = "tenant-" + "x" * 10_000_000
    with pytest.raises(InvalidArgument) as caught:
        trigger(store, tenant=huge)
    assert len(str(caught.value)) < 300
    with pytest.raises(InvalidArgument) as caught:
        store.record_outcome(trigger(store).deliveries[0].id, "bogus-" + "y" * 100_000)
    assert len(str(caught.value)) < 300
    secret = "not-a-uuid-but-a-secret-4711"
    with pytest.raises(InvalidSignal) as signalled:
        store.route_signal(Signal("acme", READ, payload={"delivery_id": secret}))
    assert secret not in str(signalled.value)
    with pytest.raises(InvalidWorkflow) as declared:
        store.upsert_definition(
            "n", Workflow("w", 1, [Step("a", 1, "c", [WaitUntil(10**5000, "a")])])
        )
    assert len(str(declared.value)) < 300


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenant_id", "ac\x00me"),
        ("tenant_id", "t" * 256),
        ("tenant_id", "\ud800"),
        ("actor_id", "ada\x00"),
        ("actor_id", "a" * 256),
        ("actor_id", "a" * 10_000_000),
        ("actor_id", " "),
        ("event_name", "read\x00"),
    ],
)
def test_a_signal_stores_only_ids_that_forget_can_erase(
    store: Store, field: str, value: str
) -> None:
    fields: dict[str, Any] = {"tenant_id": "acme", "event_name": READ, "actor_id": "ada"}
    fields[field] = value
    before = table_dump(store)
    with pytest.raises(InvalidSignal) as caught:
        store.track_signal(Signal(**fields))
    assert caught.value.field == field
    assert len(str(caught.value)) < 300
    assert table_dump(store) == before


# -- availability: the sweep ------------------------------------------------------------------


def _due(store: Store, clock: FakeClock, count: int, recipient: str = "r") -> list[str]:
    ids = [waiting(store, recipient=f"{recipient}{i}").run.id for i in range(count)]
    clock.advance(hours=3)
    return ids


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("status_context", "[1, 2]"),
        ("pending_signals", '{"notification_read": 1}'),
        ("pending_signals", '[1, "x"]'),
        ("suspended_until", "2000-01-01 is not a time"),  # sorts as due
        ("last_transition_at", "2026-01-05T09:30:00"),  # no offset
        ("entered_step_at", "soon"),
    ],
)
@pytest.mark.sqlite_only
def test_the_sweep_skips_a_damaged_run_reports_it_and_moves_every_other(
    store: Store,
    db_path: str,
    clock: FakeClock,
    column: str,
    value: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = _due(store, clock, 4)
    damaged = sorted(ids)[0]
    with raw(db_path) as conn:
        conn.execute(f"UPDATE workflow_runs SET {column} = ? WHERE id = ?", (value, damaged))
    with caplog.at_level(logging.WARNING, logger="chimeway_lite"):
        moved = store.progress_due_runs()
    assert sorted(p.run.id for p in moved) == sorted(set(ids) - {damaged})
    assert any(damaged in r.getMessage() for r in caplog.records)
    assert all("Traceback" not in r.getMessage() for r in caplog.records)
    problems = store.verify()
    assert any(damaged in p for p in problems), problems
    with pytest.raises(DamagedRow) as caught:
        store.explain("acme", damaged)
    assert caught.value.table == "workflow_runs" and caught.value.row_id == damaged


def test_a_run_deleted_mid_sweep_is_skipped_and_the_sweep_goes_on(
    store: Store, location: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = sorted(_due(store, clock, 3))
    progress_run = store.progress_run
    vanished = ids[1]

    def racing(run_id: str, **kwargs: Any) -> Any:
        if run_id == vanished:  # another process forgets the person between read and write
            with Store(location, clock=clock) as other:
                other.forget("acme", store.explain("acme", run_id).recipient)
        return progress_run(run_id, **kwargs)

    monkeypatch.setattr(store, "progress_run", racing)
    moved = store.progress_due_runs()
    assert sorted(p.run.id for p in moved) == [ids[0], ids[2]]


def test_a_sweep_limit_counts_runs_that_moved_not_runs_that_cannot(
    store: Store, clock: FakeClock
) -> None:
    stuck = [waiting(store, recipient=f"stuck{i}").run.id for i in range(5)]
    with store.transaction() as tx:
        for run_id in stuck:
            # A host write the machine cannot follow: the wait leads nowhere (a noop).
            tx.update_run(run_id, wait_target="nowhere")
    clock.advance(minutes=1)
    movable = [waiting(store, recipient=f"ok{i}").run.id for i in range(3)]
    clock.advance(hours=3)
    first = store.progress_due_runs(limit=2)
    assert len(first) == 2 and {p.run.id for p in first} <= set(movable)
    rest = store.progress_due_runs(limit=5)
    assert {p.run.id for p in first + rest} == set(movable)


@pytest.mark.sqlite_only
def test_fan_out_skips_a_damaged_run_and_resumes_the_others(
    store: Store, db_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    ids = sorted(waiting(store, recipient=f"r{i}").run.id for i in range(3))
    with raw(db_path) as conn:
        conn.execute("UPDATE workflow_runs SET status_context = '7' WHERE id = ?", (ids[1],))
    with caplog.at_level(logging.WARNING, logger="chimeway_lite"):
        resumed = store.route_signal(Signal("acme", READ))
    assert sorted(resumed) == [ids[0], ids[2]]
    assert any(ids[1] in r.getMessage() for r in caplog.records)


def test_tx_update_run_cannot_write_what_stops_the_sweep(store: Store, clock: FakeClock) -> None:
    run_id = waiting(store).run.id
    for fields in (
        {"status_context": {"to_step": ["email"]}},
        {"status_context": {"anchor_delivery_id": {"a": 1}}},
        {"pending_signals": "notification_read"},
        {"pending_signals": [READ] * 100},
        {"wait_target": ["email"]},
        {"entered_step_at": "yesterday"},
    ):
        with pytest.raises((InvalidArgument, InvalidTransition)), store.transaction() as tx:
            tx.update_run(run_id, **fields)
    clock.advance(hours=3)
    assert [p.run.id for p in store.progress_due_runs()] == [run_id]


@pytest.mark.sqlite_only
def test_tick_reports_a_skipped_run_instead_of_a_traceback(
    store: Store, db_path: str, clock: FakeClock
) -> None:
    ids = sorted(_due(store, clock, 2))
    with raw(db_path) as conn:
        conn.execute(
            "UPDATE workflow_runs SET suspended_until = '2000-01-01x' WHERE id = ?", (ids[0],)
        )
    store.close()
    result = run_cli("--db", db_path, "tick", "--now", (START + timedelta(hours=4)).isoformat())
    assert result.exit_code == 0
    assert ids[0] in result.stderr and "warning:" in result.stderr
    assert ids[1] in result.stdout


def test_tick_watch_survives_a_busy_store(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Store(db_path).close()
    calls = []
    real = Store.progress_due_runs

    def flaky(self: Store, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise StoreBusy(self.path, 0.1)
        return real(self, **kwargs)

    monkeypatch.setattr(Store, "progress_due_runs", flaky)
    monkeypatch.setattr(cli.sweep, "_sleep", lambda seconds, listener=None: None)
    result = run_cli("--db", db_path, "tick", "--watch", "--cycles", "2")
    assert result.exit_code == 0, result.output
    assert "busy" in result.stderr and len(calls) == 3


def test_tick_now_out_of_range_is_a_usage_error(db_path: str) -> None:
    Store(db_path).close()
    for now in (
        "9999-12-31T23:59:59-05:00",
        "9500-01-01T00:00:00+00:00",
        "0001-01-01T00:00:00+05:00",
    ):
        result = run_cli("--db", db_path, "tick", "--now", now)
        assert result.exit_code == 2, result.output


# -- availability: locks ----------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1, 10**9, "5"])
def test_busy_timeout_must_be_a_finite_number_of_seconds(db_path: str, timeout: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Store(db_path, busy_timeout=timeout)
    assert caught.value.name == "busy_timeout"


_HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""

_TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("busy")
else:
    print("free")
"""


def _hold(lock: str, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, lock, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_interrupted_at_the_gate_never_keeps_the_lock(db_path: str) -> None:
    store = Store(db_path, busy_timeout=30)
    holder = _hold(db_path + "-lock", 1.5)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            trigger(store)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    holder.wait(timeout=30)
    time.sleep(0.3)  # the abandoned waiter gets the lock now, and must give it up at once
    probe = subprocess.run(
        [sys.executable, "-c", _TRY_LOCK, db_path + "-lock"], capture_output=True, text=True
    )
    assert probe.stdout.strip() == "free"
    trigger(store)  # and this process still writes
    store.close()


def test_threads_sharing_a_store_wait_no_longer_than_busy_timeout(db_path: str) -> None:
    store = Store(db_path, busy_timeout=0.5)
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(10)
    started = time.monotonic()
    try:
        with pytest.raises(StoreBusy):
            trigger(store)
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join()
    # The holder held on for up to 10 s; the waiter gave up after its own 0.5 s.
    assert waited < 5
    trigger(store)
    store.close()


def test_a_transaction_used_after_its_block_writes_nothing(store: Store) -> None:
    run = trigger(store).run
    with store.transaction() as tx:
        kept = tx
    before = table_dump(store)
    with pytest.raises(UnitClosed):
        kept.update_run(run.id, status_reason="late")
    with pytest.raises(UnitClosed):
        trigger(kept)
    with pytest.raises(UnitClosed):
        kept.get_run(run.id)
    assert table_dump(store) == before


def test_a_fifo_at_the_lock_path_is_refused_at_once(db_path: str) -> None:
    Store(db_path).close()
    if os.path.exists(db_path + "-lock"):
        os.unlink(db_path + "-lock")
    os.mkfifo(db_path + "-lock")
    store = Store(db_path, busy_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        trigger(store)
    assert "not a regular file" in caught.value.problem
    assert time.monotonic() - started < 5
    store.close()


def test_a_dangling_symlink_at_the_lock_path_is_refused(db_path: str, tmp_path: Path) -> None:
    Store(db_path).close()
    if os.path.exists(db_path + "-lock"):
        os.unlink(db_path + "-lock")
    target = tmp_path / "elsewhere" / "created-by-accident"
    (tmp_path / "elsewhere").mkdir()
    os.symlink(target, db_path + "-lock")
    store = Store(db_path)
    with pytest.raises(StorageError) as caught:
        trigger(store)
    assert "symbolic link" in caught.value.problem
    assert not target.exists()
    store.close()


# -- integrity ----------------------------------------------------------------------------------


class BackwardsClock:
    """A clock that reads 30 s earlier on every call (another process's clock behind)."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        self.at -= timedelta(seconds=30)
        return self.at


def _stamps_never_go_back(store: Store, run_id: str) -> None:
    trace = store.list_traces("acme", run_id)
    stamps = [t.inserted_at for t in trace]
    assert stamps == sorted(stamps), [s.isoformat() for s in stamps]


def test_trace_time_never_goes_backwards_for_a_run(db_path: str) -> None:
    store = Store(db_path, clock=BackwardsClock(START))
    result = trigger(store)
    store.record_outcome(result.deliveries[0].id, "succeeded")
    store.route_signal(Signal("acme", READ))
    store.progress_run(result.run.id)  # the settle, at a reading earlier than the signal
    run = store.get_run(result.run.id)
    assert run.state is RunState.COMPLETED
    _stamps_never_go_back(store, result.run.id)
    assert store.verify() == []
    store.close()


def test_the_sweep_stamps_each_decision_in_its_own_unit(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(START)
    store = Store(db_path, clock=clock)
    ids = [waiting(store, recipient=f"r{i}").run.id for i in range(2)]
    clock.advance(hours=3)
    progress_run = store.progress_run

    def late(run_id: str, **kwargs: Any) -> Any:
        clock.advance(seconds=30)  # time passes while the sweep works through its page
        return progress_run(run_id, **kwargs)

    monkeypatch.setattr(store, "progress_run", late)
    store.progress_due_runs()
    stamps = [store.list_traces("acme", i)[-1].inserted_at for i in sorted(ids)]
    assert stamps[1] - stamps[0] == timedelta(seconds=30)
    store.close()


def _tamper(db_path: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    with raw(db_path) as conn:
        conn.execute(sql, params)


@pytest.mark.sqlite_only
def test_verify_reports_a_notification_without_its_run(store: Store, db_path: str) -> None:
    result = trigger(store, key="k1")
    _tamper(db_path, "DELETE FROM deliveries")
    with raw(db_path) as conn:
        conn.execute("DROP TRIGGER IF EXISTS workflow_transitions_append_only")
        conn.execute("DELETE FROM workflow_transitions")
        conn.execute("DELETE FROM workflow_runs")
    problems = store.verify()
    assert any(result.notification.id in p and "has no run" in p for p in problems), problems
    with pytest.raises(InvalidArgument):
        trigger(store, key="k1")


@pytest.mark.sqlite_only
def test_verify_reports_a_delivery_time_that_does_not_parse(store: Store, db_path: str) -> None:
    delivery = trigger(store).deliveries[0]
    _tamper(db_path, "UPDATE deliveries SET updated_at = 'late' WHERE id = ?", (delivery.id,))
    problems = store.verify()
    assert any(delivery.id in p for p in problems), problems
    with pytest.raises(DamagedRow):
        store.record_outcome(delivery.id, "succeeded")
    # A claim rewrites the column, so the delivery can still be sent.
    assert [d.id for d in store.claim_deliveries()] == [delivery.id]


@pytest.mark.sqlite_only
def test_verify_reports_the_trace_sequence_near_its_end(store: Store, db_path: str) -> None:
    result = trigger(store)
    _tamper(
        db_path,
        "UPDATE sqlite_sequence SET seq = ? WHERE name = 'workflow_transitions'",
        (2**63 - 1,),
    )
    assert any("trace sequence" in p for p in store.verify())
    before = table_dump(store)
    with pytest.raises(StorageError) as caught:
        store.record_outcome(result.deliveries[0].id, "succeeded")
    assert "exhausted" in caught.value.problem
    assert table_dump(store) == before


@pytest.mark.sqlite_only
def test_verify_reports_pending_signals_that_are_not_a_list(store: Store, db_path: str) -> None:
    run_id = waiting(store).run.id
    _tamper(
        db_path,
        "UPDATE workflow_runs SET pending_signals = '{\"notification_read\": 1}' WHERE id = ?",
        (run_id,),
    )
    assert any(run_id in p for p in store.verify())
    assert store.route_signal(Signal("acme", READ)) == {}


@pytest.mark.sqlite_only
def test_verify_reports_a_rule_that_names_a_deleted_step(store: Store, db_path: str) -> None:
    result = trigger(store)
    definition = store.fetch_definition("escalation", 1)
    assert definition is not None
    email = next(s for s in definition.steps if s.step_key == "email")
    _tamper(db_path, "DELETE FROM workflow_steps WHERE id = ?", (email.id,))
    fresh = Store(db_path)  # a store that never cached the definition
    problems = fresh.verify()
    assert any("leads to a step the definition does not have" in p for p in problems), problems
    fresh.record_outcome(result.deliveries[0].id, "cancelled", "bounced")  # no raw error
    fresh.close()


@pytest.mark.sqlite_only
def test_verify_reports_a_wait_target_that_is_a_list(store: Store, db_path: str) -> None:
    run_id = waiting(store).run.id
    _tamper(db_path, "UPDATE workflow_runs SET wait_target = '[\"email\"]' WHERE id = ?", (run_id,))
    assert any(run_id in p and "waits for step" in p for p in store.verify())


@pytest.mark.parametrize("config", ['{"progress": 5}', '{"progress": [5]}', "[]", '{"retry": 3}'])
@pytest.mark.sqlite_only
def test_verify_never_raises_on_a_damaged_step_config(
    store: Store, db_path: str, config: str
) -> None:
    trigger(store)
    _tamper(db_path, "UPDATE workflow_steps SET config = ? WHERE step_key = 'inapp'", (config,))
    fresh = Store(db_path)
    problems = fresh.verify()
    assert any("definition" in p for p in problems), problems
    fresh.close()


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("workflow_runs", "status_context", "[]"),
        ("workflow_runs", "started_at", "not a time"),
        ("workflow_runs", "state", "active"),  # active, though its trace says waiting
        ("workflow_transitions", "context", "[1]"),
        ("workflow_transitions", "inserted_at", "tuesday"),
        ("deliveries", "inserted_at", "x"),
        ("notifications", "data", "[]"),
        ("notifications", "inserted_at", "x"),
    ],
)
@pytest.mark.sqlite_only
def test_reads_of_a_damaged_row_raise_damaged_row_never_a_raw_error(
    store: Store, db_path: str, table: str, column: str, value: str
) -> None:
    result = waiting(store)
    other = waiting(store, recipient="bob")
    with raw(db_path) as conn:
        conn.execute("DROP TRIGGER IF EXISTS workflow_transitions_append_only")
        key = "workflow_run_id" if table == "workflow_transitions" else "id"
        ids = {
            "workflow_runs": result.run.id,
            "workflow_transitions": result.run.id,
            "deliveries": result.deliveries[0].id,
            "notifications": result.notification.id,
        }
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (value, ids[table]))
    fresh = Store(db_path)
    for call in (
        lambda: fresh.explain("acme", result.run.id),
        lambda: fresh.list_traces("acme", result.run.id),
        lambda: fresh.get_run(result.run.id),
        lambda: fresh.list_deliveries("acme", result.run.id),
        lambda: fresh.explain_delivery("acme", result.deliveries[0].id),
        lambda: trigger(fresh, key=None),
        lambda: fresh.progress_run(result.run.id),
    ):
        with suppress(DamagedRow, InvalidTransition, InvalidArgument):
            call()
    assert fresh.verify(), "verify must notice"
    # The other run is served as ever.
    assert fresh.explain("acme", other.run.id).state == "waiting"
    assert other.run.id in fresh.route_signal(Signal("acme", READ, actor_id="bob"))
    for args in (("runs",), ("explain", "acme", result.run.id), ("traces", "acme", result.run.id)):
        outcome = run_cli("--db", db_path, *args)
        assert outcome.exit_code in (0, 1)
    fresh.close()


# -- inputs that raised raw exceptions ----------------------------------------------------------


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_nesting_100000_deep_is_a_clear_error(store: Store) -> None:
    deep = _deep(100_000)
    with pytest.raises(InvalidSignal):
        store.route_signal(Signal("acme", READ, payload=deep))
    with pytest.raises(InvalidArgument):
        trigger(store, data=deep)
    run = trigger(store).run
    with pytest.raises(InvalidArgument), store.transaction() as tx:
        tx.append_transition(run.id, "active", "note", context=deep)
    with pytest.raises(InvalidArgument), store.transaction() as tx:
        tx.update_run(run.id, status_context=deep)
    with pytest.raises(InvalidWorkflow):
        store.upsert_definition("n", Workflow("w", 1, [Step("a", 1, "c", config=deep)]))


@pytest.mark.parametrize("path", ["\ud800", "a\x00b", "", "   ", b"bytes.db", 7])
def test_a_store_path_that_is_not_usable_text_is_a_clear_error(path: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Store(path)
    assert caught.value.name == "path"


def test_lookups_with_unencodable_text_are_clear_errors(store: Store) -> None:
    with pytest.raises(InvalidArgument):
        store.fetch_definition("\ud800", 1)
    with pytest.raises(InvalidArgument):
        store.fetch_definition("a\x00", 1)
    assert store.fetch_definition("escalation", 10**5000) is None


def test_numbers_that_do_not_fit_are_clear_errors(store: Store) -> None:
    for rule in (WaitUntil(10**5000, "a"), WaitUntil(10**12, "a")):
        with pytest.raises(InvalidWorkflow) as caught:
            store.upsert_definition("n", Workflow("w", 1, [Step("a", 1, "c", [rule])]))
        assert caught.value.path.endswith("delay_seconds")
    with pytest.raises(InvalidWorkflow):
        store.upsert_definition(
            "n",
            {
                "workflow_key": "w",
                "workflow_version": 1,
                "steps": [
                    {
                        "step_key": "a",
                        "step_order": 1,
                        "channel": "c",
                        "config": {"progress": [{"kind": ["x"]}]},
                    }
                ],
            },
        )
    clock = FakeClock(START)
    with pytest.raises(InvalidArgument):
        clock.advance(math.nan)
    assert clock.now() == START


# -- tenancy ------------------------------------------------------------------------------------


def test_record_outcome_of_another_tenants_delivery_names_no_delivery(store: Store) -> None:
    theirs = trigger(store, tenant="globex").deliveries[0]
    before = table_dump(store)
    with pytest.raises(DeliveryNotFound) as other:
        store.record_outcome(theirs.id, "succeeded", tenant_id="acme")
    with pytest.raises(DeliveryNotFound) as missing:
        store.record_outcome("01000000-0000-7000-8000-000000000000", "succeeded", tenant_id="acme")
    assert str(other.value).replace(theirs.id, "X") == str(missing.value).replace(
        "01000000-0000-7000-8000-000000000000", "X"
    )
    assert table_dump(store) == before


# -- the CLI's output ---------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_stored_text_never_reaches_a_terminal_raw(store: Store, db_path: str) -> None:
    hostile = "acme\x1b[2J\x1b]0;pwned\x07\u202e"
    trigger(store, tenant=hostile)
    store.close()
    result = run_cli("--db", db_path, "runs")
    assert result.exit_code == 0
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\u202e" not in result.output
    assert "\\x1b[2J" in result.output


@pytest.mark.sqlite_only
def test_csv_cells_that_would_run_as_formulas_are_neutralised(store: Store, db_path: str) -> None:
    trigger(store, tenant='=HYPERLINK("http://x")')
    trigger(store, tenant="@SUM(A1)")
    store.close()
    result = run_cli("--db", db_path, "runs", "--csv")
    assert result.exit_code == 0
    cells = [line.split(",")[1] for line in result.output.splitlines()[1:]]
    assert cells and all(c.lstrip('"').startswith("'") for c in cells), cells


# -- a store that cannot be written -----------------------------------------------------------


def _unprivileged(work: Any) -> Any:
    from test_open_errors import _unprivileged as run_as_nobody

    return run_as_nobody(work)


def test_a_store_this_process_cannot_write_opens_for_reading() -> None:
    # pytest's tmp_path is private to root: the unprivileged child needs a directory it
    # can reach.
    shared = Path(tempfile.mkdtemp(prefix="chimeway-ro-"))
    shared.chmod(0o755)
    path = str(shared / "store.db")
    with Store(path, clock=FakeClock(START)) as store:
        run_id = trigger(store).run.id
    os.chmod(path, 0o644)
    files = sorted(os.listdir(shared))
    shared.chmod(0o555)
    try:

        def read_then_write() -> tuple[str, str]:
            with Store(path) as store:
                state = store.explain("acme", run_id).state
                try:
                    trigger(store)
                except StorageError as exc:
                    return state, exc.problem
                return state, "wrote"

        state, problem = _unprivileged(read_then_write)
        assert sorted(os.listdir(shared)) == files  # nothing created, nothing changed
    finally:
        shared.chmod(0o755)
        shutil.rmtree(shared)
    assert state == "active"
    assert "opened for reading only" in problem
