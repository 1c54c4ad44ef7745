"""AsyncStore (CONTRACT §17): every Store method as ``async def`` with the same signature,
units of work of your own with ``async with``, and an event loop that never stalls — not
even while another process holds the write lock. The scenarios run on both backends; the
stall tests hold SQLite's write lock."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from backends import sql
from factories import START, escalation_workflow, fresh_key

from chimeway_lite import (
    AsyncStore,
    ChimewayError,
    FakeClock,
    InvalidArgument,
    RunNotFound,
    Signal,
    StorageError,
    Store,
    StoreBusy,
    StoreEvent,
)
from chimeway_lite.async_store import AsyncReader, AsyncTransaction
from chimeway_lite.engine.operations import Engine, Reader

ROOT = Path(__file__).resolve().parent.parent


def run(coroutine: Awaitable[Any]) -> Any:
    """Run a scenario; one that hangs (a call waiting for a unit that never ends) fails."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


async def atrigger(store: Any, recipient: str = "ada", **extra: Any) -> Any:
    return await store.trigger(
        tenant_id="acme",
        notification_key="welcome",
        recipient=recipient,
        workflow=escalation_workflow(),
        idempotency_key=fresh_key(),
        **extra,
    )


def _public_methods(cls: type) -> dict[str, Any]:
    """Public methods of a class and its bases: functions and the Store's operations."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if name.startswith("_") or isinstance(value, property):
                continue
            if inspect.isfunction(value) or (hasattr(value, "method") and hasattr(value, "write")):
                found[name] = value
    return found


def _parameters(function: Any) -> list[tuple[str, Any, Any]]:
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self"
    ]


@pytest.mark.parametrize(
    ("sync", "twin"),
    [(Store, AsyncStore), (Reader, AsyncReader), (Engine, AsyncTransaction)],
    ids=["store", "snapshot-view", "tx"],
)
def test_every_public_method_has_an_async_twin_with_the_same_signature(
    sync: type, twin: type
) -> None:
    methods = _public_methods(sync)
    assert len(methods) >= 15
    for name, method in methods.items():
        counterpart = getattr(twin, name, None)
        assert counterpart is not None, f"{twin.__name__} has no {name}"
        assert _parameters(counterpart) == _parameters(method), name
        if name in ("close", "transaction", "snapshot"):
            assert counterpart.__doc__, name  # written for the async form
        else:
            assert counterpart.__doc__ == method.__doc__, name  # written once
        if name in ("transaction", "snapshot"):
            continue
        assert inspect.iscoroutinefunction(counterpart), f"{twin.__name__}.{name} is not async"


def test_the_constructor_takes_the_stores_arguments() -> None:
    assert _parameters(AsyncStore) == _parameters(Store)


def test_a_journey_through_the_async_store(location: str) -> None:
    clock = FakeClock(START)

    async def journey() -> tuple[str, list[str]]:
        async with AsyncStore(location, clock=clock) as store:
            bob = await atrigger(store, "bob")
            ada = await atrigger(store, "ada")
            for delivery in await store.claim_deliveries(10):
                await store.record_outcome(delivery.id, "succeeded")
            resumed = await store.route_signal(Signal("acme", "notification_read", "ada"))
            assert list(resumed) == [ada.run.id]
            clock.advance(hours=2)
            moved = await store.progress_due_runs()
            assert {p.run.id for p in moved} == {ada.run.id, bob.run.id}
            (email,) = await store.claim_deliveries(10, channel="email")
            await store.record_outcome(email.id, "succeeded")
            explanation = await store.explain("acme", bob.run.id)
            trace = await store.list_traces("acme", bob.run.id)
            return explanation.state, [t.reason for t in trace]

    state, reasons = run(journey())
    assert state == "completed"
    assert reasons[-1] == "workflow_completed"
    with Store(location) as sync:  # what the async store wrote, the sync one reads
        assert sync.verify() == []
        rows = sql(sync).execute("SELECT count(*) FROM workflow_runs").fetchone()[0]
        assert rows == 2


def test_errors_come_through_await(location: str) -> None:
    async def ask() -> None:
        async with AsyncStore(location) as store:
            await store.explain("acme", "01a23425-1106-7000-ab78-bb1c9bf89059")

    with pytest.raises(RunNotFound):
        run(ask())


def test_bad_arguments_raise_at_once_and_an_unusable_file_on_open(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="busy_timeout"):
        AsyncStore(tmp_path / "x.db", busy_timeout=-1)

    async def open_missing() -> None:
        async with AsyncStore(tmp_path / "missing" / "x.db"):
            pass

    with pytest.raises(StorageError, match="does not exist"):
        run(open_missing())


def test_close_twice_and_calls_after_close(location: str) -> None:
    async def scenario() -> None:
        store = AsyncStore(location)
        await atrigger(store)
        await store.close()
        await store.close()
        with pytest.raises(ChimewayError, match="closed"):
            await store.next_due_at()

    run(scenario())


def test_hooks_run_on_the_worker_thread_after_commit(location: str) -> None:
    heard: list[tuple[str, str]] = []

    def hook(event: StoreEvent) -> None:
        heard.append((event.reason, threading.current_thread().name))

    async def scenario() -> None:
        async with AsyncStore(location, on_event=hook) as store:
            await atrigger(store)

    run(scenario())
    assert [r for r, _ in heard] == ["workflow_started", "step_activated"]
    assert all(name.startswith("chimeway-async") for _, name in heard)


# -- units of your own ----------------------------------------------------------------------


def test_a_transaction_commits_or_rolls_back_as_a_unit(location: str) -> None:
    async def scenario() -> tuple[int, int]:
        async with AsyncStore(location) as store:
            async with store.transaction() as tx:
                kept = await atrigger(tx, "ada")
                await tx.append_transition(kept.run.id, "active", "host_note")
            with pytest.raises(RuntimeError):
                async with store.transaction() as tx:
                    await atrigger(tx, "bob")
                    await atrigger(store, "cy")  # the same task: joins the transaction
                    raise RuntimeError("changed my mind")
            with pytest.raises(ChimewayError, match="ended"):
                await tx.now()
            trace = await store.list_traces("acme", kept.run.id)
            rows = await store.call(
                lambda s: sql(s).execute("SELECT count(*) FROM workflow_runs").fetchone()
            )
            return len(trace), rows[0]

    assert run(scenario()) == (3, 1)


def test_other_tasks_wait_for_an_open_transaction_and_never_join_it(location: str) -> None:
    async def scenario() -> list[str]:
        order: list[str] = []
        async with AsyncStore(location) as store:
            opened = asyncio.Event()

            async def owner() -> None:
                with pytest.raises(RuntimeError):
                    async with store.transaction() as tx:
                        await atrigger(tx, "ada")
                        opened.set()
                        await asyncio.sleep(0.2)  # the other task calls meanwhile
                        order.append("owner rolls back")
                        raise RuntimeError("rolled back")

            async def other() -> None:
                await opened.wait()
                await atrigger(store, "bob")
                order.append("other wrote")

            await asyncio.gather(owner(), other())
            runs = await store.call(
                lambda s: [
                    r[0]
                    for r in sql(s).execute(
                        "SELECT recipient FROM notifications ORDER BY recipient"
                    )
                ]
            )
            return [*order, *runs]

    assert run(scenario()) == ["owner rolls back", "other wrote", "bob"]


def test_a_task_started_inside_the_block_is_part_of_it(location: str) -> None:
    async def scenario() -> int:
        async with AsyncStore(location) as store:
            with pytest.raises(RuntimeError):
                async with store.transaction():
                    await asyncio.create_task(atrigger(store, "ada"))
                    raise RuntimeError("rolled back")
            return await store.call(
                lambda s: sql(s).execute("SELECT count(*) FROM workflow_runs").fetchone()[0]
            )

    assert run(scenario()) == 0


def test_a_nested_transaction_is_a_savepoint(location: str) -> None:
    async def scenario() -> list[str]:
        async with AsyncStore(location) as store:
            async with store.transaction():
                await atrigger(store, "ada")
                with pytest.raises(RuntimeError):
                    async with store.transaction() as inner:
                        await atrigger(inner, "bob")
                        raise RuntimeError("only the inner block")
            return await store.call(
                lambda s: [r[0] for r in sql(s).execute("SELECT recipient FROM notifications")]
            )

    assert run(scenario()) == ["ada"]


def test_cancelling_a_task_inside_its_transaction_rolls_it_back(location: str) -> None:
    async def scenario() -> int:
        async with AsyncStore(location) as store:
            inside = asyncio.Event()

            async def owner() -> None:
                async with store.transaction() as tx:
                    await atrigger(tx, "ada")
                    inside.set()
                    await asyncio.sleep(10)

            task = asyncio.create_task(owner())
            await inside.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await atrigger(store, "bob")  # the store is free again
            return await store.call(
                lambda s: sql(s).execute("SELECT count(*) FROM workflow_runs").fetchone()[0]
            )

    assert run(scenario()) == 1


def test_close_waits_for_an_open_transaction_and_is_refused_inside_it(location: str) -> None:
    async def scenario() -> int:
        store = AsyncStore(location)
        inside = asyncio.Event()

        async def owner() -> None:
            async with store.transaction() as tx:
                with pytest.raises(ChimewayError, match="inside"):
                    await store.close()
                inside.set()
                await asyncio.sleep(0.1)
                await atrigger(tx, "ada")

        task = asyncio.create_task(owner())
        await inside.wait()
        await store.close()  # waits for the block to commit
        await task
        with Store(location) as sync:
            return sql(sync).execute("SELECT count(*) FROM workflow_runs").fetchone()[0]

    assert run(scenario()) == 1


def test_a_snapshot_is_read_only_and_consistent(location: str) -> None:
    async def scenario() -> None:
        async with AsyncStore(location) as store:
            started = await atrigger(store)
            async with store.snapshot() as view:
                assert (await view.get_run(started.run.id)).state == "active"
                assert len(await view.list_traces("acme", started.run.id)) == 2
                with pytest.raises(ChimewayError, match="read-only"):
                    await atrigger(store, "bob")

    run(scenario())


def test_call_runs_sync_logic_with_the_store_on_the_worker(location: str) -> None:
    def two_in_one_unit(store: Store, who: str) -> tuple[str, str]:
        with store.transaction() as tx:
            first = tx.trigger(
                tenant_id="acme",
                notification_key="welcome",
                recipient=who,
                workflow=escalation_workflow(),
                idempotency_key="k",
            )
            again = store.trigger(
                tenant_id="acme",
                notification_key="welcome",
                recipient=who,
                workflow=escalation_workflow(),
                idempotency_key="k",
            )
        assert again.duplicate
        return first.run.id, threading.current_thread().name

    async def scenario() -> tuple[str, str]:
        async with AsyncStore(location) as store:
            return await store.call(two_in_one_unit, "ada")

    _, thread = run(scenario())
    assert thread.startswith("chimeway-async")


# -- the event loop never stalls ------------------------------------------------------------

HOLDERS = {
    # A plain sqlite3 writer (the sqlite3 shell, another library): SQLite's busy handler.
    "sqlite3": """
        import sqlite3, sys, time
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
        conn.execute("COMMIT")
    """,
    # Another chimeway process: its transaction holds the writer gate and BEGIN IMMEDIATE.
    "chimeway": """
        import sys, time
        from chimeway_lite import Store
        with Store(sys.argv[1]) as store, store.transaction():
            print("locked", flush=True)
            time.sleep(float(sys.argv[2]))
    """,
}
HOLD_SECONDS = 1.0
MAX_STALL = 0.050


def _hold_the_write_lock(path: str, holder: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDERS[holder]), path, str(HOLD_SECONDS)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    return process


async def _longest_stall(work: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    """Run ``work`` while a ticker samples the loop's lag every 5 ms; return the longest
    lag, how long the work took and its result (or the exception it raised)."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - before - 0.005)

    sampling = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    started = time.monotonic()
    try:
        result: Any = await work()
    except Exception as exc:
        result = exc
    took = time.monotonic() - started
    done.set()
    await sampling
    return max(lags), took, result


@pytest.mark.slow
@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_the_loop_never_stalls_while_another_process_holds_the_write_lock(
    db_path: str, holder: str
) -> None:
    async def scenario() -> tuple[float, float, Any, float, float, Any]:
        async with AsyncStore(db_path) as store, AsyncStore(db_path, busy_timeout=0.2) as brief:
            await atrigger(store)  # the file exists, the definition is known
            process = _hold_the_write_lock(db_path, holder)
            try:
                stall, took, result = await _longest_stall(lambda: atrigger(store, "bob"))
            finally:
                process.wait(timeout=30)
            process = _hold_the_write_lock(db_path, holder)
            try:
                busy_stall, busy_took, busy = await _longest_stall(lambda: atrigger(brief, "cy"))
            finally:
                process.wait(timeout=30)
            return stall, took, result, busy_stall, busy_took, busy

    stall, took, result, busy_stall, busy_took, busy = run(scenario())
    print(f"\n{holder}: waited {took * 1000:.0f} ms for the lock, stall {stall * 1000:.1f} ms")
    print(f"{holder}: StoreBusy after {busy_took * 1000:.0f} ms, stall {busy_stall * 1000:.1f} ms")
    assert not isinstance(result, Exception), result
    assert took >= 0.5 * HOLD_SECONDS  # it really waited for the other process
    assert stall < MAX_STALL
    assert isinstance(busy, StoreBusy)
    assert busy_stall < MAX_STALL


@pytest.mark.slow
def test_the_ticker_sees_the_stall_of_a_sync_store_called_on_the_loop(db_path: str) -> None:
    """The measurement above can fail: a sync Store on the loop stalls it for the whole wait."""

    async def scenario() -> tuple[float, float, Any]:
        with Store(db_path) as store:
            store.trigger(
                tenant_id="acme",
                notification_key="welcome",
                recipient="ada",
                workflow=escalation_workflow(),
                idempotency_key=fresh_key(),
            )
            process = _hold_the_write_lock(db_path, "sqlite3")

            async def blocking() -> Any:
                return store.trigger(
                    tenant_id="acme",
                    notification_key="welcome",
                    recipient="bob",
                    workflow=escalation_workflow(),
                    idempotency_key=fresh_key(),
                )

            try:
                return await _longest_stall(blocking)
            finally:
                process.wait(timeout=30)

    stall, took, _ = run(scenario())
    assert stall > 0.5 * HOLD_SECONDS
    assert took >= 0.5 * HOLD_SECONDS


def test_two_hundred_concurrent_requests_run_no_sql_on_the_loop_thread(db_path: str) -> None:
    """Every statement of 200 concurrent requests runs on the store's worker thread: the
    loop thread only hands them over (the sync Store in the issue froze it for 309 ms)."""
    threads: list[str] = []

    async def scenario() -> list[Any]:
        async with AsyncStore(db_path) as store:
            await store.call(
                lambda s: s.connection.set_trace_callback(
                    lambda _: threads.append(threading.current_thread().name)
                )
            )
            calls = [atrigger(store, f"user-{n}") for n in range(100)]
            calls += [store.next_due_at() for _ in range(100)]
            return await asyncio.gather(*calls)

    results = run(scenario())
    assert len(results) == 200
    assert len(threads) > 400  # at least a BEGIN and a COMMIT per request
    assert {name.rsplit("_", 1)[0] for name in threads} == {"chimeway-async"}
