"""verify(workers=N): the per-run checks in N worker processes, the same problems in the
same order as one process finds them (chimeway_lite.verify_processes)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

import pytest
from backends import sql
from factories import START, trigger
from test_verify import _every_path

from chimeway_lite import (
    AsyncStore,
    ChimewayError,
    FakeClock,
    InvalidArgument,
    Step,
    Store,
    Workflow,
    verify_processes,
)

ONE_STEP = Workflow("one", 1, [Step("in_app", 1, "in_app")])


def _damage(store: Store, runs: dict[str, str]) -> None:
    """Damage of every kind the per-run checks find, spread over several runs and
    deliveries, plus one store-wide finding."""
    conn = sql(store)
    conn.execute("UPDATE workflow_runs SET state = 'waiting' WHERE id = ?", (runs["fresh"],))
    conn.execute("DELETE FROM workflow_transitions WHERE workflow_run_id = ?", (runs["stopped"],))
    conn.execute(
        "UPDATE workflow_runs SET terminal_reason = NULL WHERE id = ?", (runs["completed"],)
    )
    conn.execute(
        "UPDATE deliveries SET lease_expires_at = ? WHERE workflow_run_id = ? AND status = ?",
        ("2026-01-05T10:00:00.000000+00:00", runs["waiting"], "succeeded"),
    )
    conn.execute(
        "UPDATE notifications SET tenant_id = 'globex' WHERE id = "
        "(SELECT notification_id FROM workflow_runs WHERE id = ?)",
        (runs["advanced"],),
    )


@pytest.fixture
def damaged(store: Store, clock: FakeClock) -> Store:
    runs = _every_path(store, clock)
    for i in range(12):  # more runs, so that every share holds some
        trigger(store, key=f"more-{i}", recipient=f"r{i}")
    _damage(store, runs)
    return store


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_workers_find_what_one_process_finds_in_its_order(damaged: Store, workers: int) -> None:
    alone = damaged.verify()
    assert any("has no trace" in p for p in alone)
    assert any("a lease belongs to a dispatched delivery only" in p for p in alone)
    assert any("differs from its notification's tenant" in p for p in alone)
    assert damaged.verify(workers=workers) == alone
    assert damaged.verify(workers=workers, quick=True) == damaged.verify(quick=True)


def test_workers_keep_the_scope(damaged: Store, clock: FakeClock) -> None:
    for tenant in ("acme", "globex"):
        assert damaged.verify(tenant_id=tenant, workers=2) == damaged.verify(tenant_id=tenant)
    later = START + timedelta(hours=1)
    assert damaged.verify(since=later, workers=3) == damaged.verify(since=later)
    assert damaged.verify(since=later) != damaged.verify()


def test_more_workers_than_rows(store: Store) -> None:
    assert store.verify(workers=4) == []
    trigger(store)
    assert store.verify(workers=4) == [] == store.verify()
    sql(store).execute("UPDATE workflow_runs SET state = 'waiting'")
    assert store.verify(workers=5) == store.verify() != []


def test_the_shares_cover_every_run_and_delivery_once(store: Store) -> None:
    for i in range(10):
        trigger(store, key=f"k{i}", recipient=f"r{i}")
    with store.snapshot() as view:
        unit = view._work.unit  # type: ignore[attr-defined]
        every_run = [t.run_id for t in unit.run_traces()]
        every_delivery = [h.delivery_id for h in unit.delivery_histories()]
        for parts in (1, 2, 3, 4, 10, 11, 25):
            shares = store._verify_shares(parts)
            # as many shares as parts, or one per run when there are fewer runs
            assert len(shares) == min(parts, len(every_run))
            runs = [t.run_id for share in shares for t in unit.run_traces(ids=share[0])]
            deliveries = [
                h.delivery_id for share in shares for h in unit.delivery_histories(ids=share[1])
            ]
            assert runs == every_run and deliveries == every_delivery


@pytest.mark.parametrize("workers", [0, -1, 65, True, "2", 1.5, None])
def test_a_bad_workers_value_is_refused(store: Store, workers: object) -> None:
    with pytest.raises(InvalidArgument, match="workers"):
        store.verify(workers=workers)  # type: ignore[arg-type]


def test_workers_are_refused_inside_a_transaction_and_in_memory(
    store: Store, memory_store: Store
) -> None:
    with store.transaction(), pytest.raises(InvalidArgument, match="one snapshot"):
        store.verify(workers=2)
    with store.transaction():
        assert store.verify(workers=1) == []
    if memory_store.path == ":memory:":
        with pytest.raises(InvalidArgument, match="memory"):
            memory_store.verify(workers=2)


def test_bad_arguments_are_refused_before_any_worker_starts(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_processes, "command", lambda: pytest.fail("a worker started"))
    with pytest.raises(InvalidArgument, match="quick"):
        store.verify(workers=2, quick="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="tenant_id"):
        store.verify(workers=2, tenant_id=" ")


@pytest.mark.parametrize(
    ("script", "phrase"),
    [
        ("import sys; sys.stderr.write('StorageError: it broke\\n'); sys.exit(1)", "it broke"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "exit status -9"),
        ("print('not json')", "not its report"),
        ('print(\'{"traces": [1], "deliveries": []}\')', "not its report"),
        ('print(\'{"traces": {"a": 1}, "deliveries": []}\')', "not its report"),
    ],
)
def test_a_failing_worker_fails_the_call_naming_its_share(
    store: Store, monkeypatch: pytest.MonkeyPatch, script: str, phrase: str
) -> None:
    trigger(store)
    started: list[object] = []
    real = verify_processes._start

    def start(request: dict[str, object]) -> object:
        process = real(request)
        started.append(process)
        return process

    monkeypatch.setattr(verify_processes, "command", lambda: [sys.executable, "-c", script])
    monkeypatch.setattr(verify_processes, "_start", start)
    with pytest.raises(ChimewayError, match=r"share 1 of \d") as caught:
        store.verify(workers=2)
    assert phrase in str(caught.value)
    assert started and all(p.poll() is not None for p in started)  # type: ignore[attr-defined]


def test_a_worker_that_cannot_open_the_store_says_why() -> None:
    """The worker's own side: a request it cannot serve is one line on stderr, exit 1/2."""
    import subprocess

    def run(request: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            verify_processes.command(), input=request, capture_output=True, check=False
        )

    bad = run(
        b'{"location": "/nonexistent/dir/x.db", "busy_timeout": 1, "tenant_id": null,'
        b' "since": null, "share": [[null, null], [null, null]]}'
    )
    assert bad.returncode == 1 and b"x.db" in bad.stderr and not bad.stdout
    garbled = run(b"{not json")
    assert garbled.returncode == 2 and b"cannot be read" in garbled.stderr


def test_the_async_store_verifies_with_workers(location: str) -> None:
    async def check() -> list[str]:
        async with AsyncStore(location, clock=FakeClock(START)) as store:
            await store.trigger(
                tenant_id="acme",
                notification_key="welcome",
                recipient="ada",
                workflow=ONE_STEP,
                idempotency_key="k",
            )
            return await store.verify(workers=2)

    assert asyncio.run(asyncio.wait_for(check(), timeout=60)) == []


_WRITER = """
import sys, os
sys.path[:0] = sys.argv[3:]
from factories import trigger
from chimeway_lite import Store
location, stop = sys.argv[1], sys.argv[2]
with Store(location) as store:
    i = 0
    while not os.path.exists(stop):
        started = trigger(store, key=f"w{i}", recipient=f"w{i}")
        if i % 2:
            store.record_outcome(started.deliveries[0].id, "succeeded")
        for delivery in store.claim_deliveries(5):
            store.record_outcome(delivery.id, "cancelled", "bounced")
        i += 1
        if i <= 20:  # then no more: nobody reads the pipe while verify runs
            print(i, flush=True)
"""


@pytest.mark.slow
def test_shares_read_while_another_process_writes_find_nothing(
    location: str, tmp_path: Any
) -> None:
    """Each share reads in a snapshot of its own while a writer process goes on: a run with
    its trace, and a delivery with its history, is read whole in one, so a healthy store
    verifies clean however the shares' snapshots differ."""
    import os
    import subprocess
    from pathlib import Path

    Store(location).close()  # the schema, before two processes race to create it
    stop = tmp_path / "stop"
    here = str(Path(__file__).parent)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, location, str(stop), here],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([here, *sys.path])},
    )
    try:
        assert writer.stdout is not None
        for _ in range(20):  # the writer is under way
            writer.stdout.readline()
        with Store(location) as store:
            for workers in (3, 2, 4):
                assert store.verify(workers=workers, quick=True) == []
            stop.touch()
            assert writer.wait(timeout=60) == 0
            final = store.verify()
            assert final == [] and store.verify(workers=3) == final
            (count,) = sql(store).execute("SELECT count(*) FROM workflow_runs").fetchone()
            assert count >= 20
    finally:
        stop.touch()
        if writer.poll() is None:
            writer.kill()
        writer.wait()
