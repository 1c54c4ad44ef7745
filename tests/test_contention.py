"""Contention: StoreBusy when the write lock cannot be had in time, with nothing written;
the writer gate's own guarantees; and a fairness smoke test with real processes (issue 4).

The measured fairness figures are in ``benchmarks/FAIRNESS.md`` (``benchmarks/fairness.py``).
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import proc_worker
import pytest
from backends import sql
from factories import trigger
from proc_worker import SPAWN, run_processes, soak
from strategies import table_dump

from chimeway_lite import Store, StoreBusy
from chimeway_lite.backends.sqlite.gate import WriteGate


@contextmanager
def _held(target: Any, *args: Any) -> Iterator[None]:
    """Run ``target(*args, ready, release)`` in another process while the block runs."""
    ready, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=target, args=(*args, ready, release), daemon=True)
    holder.start()
    try:
        assert ready.wait(60), "the holder did not take its lock"
        yield
    finally:
        release.set()
        holder.join(30)
    assert holder.exitcode == 0


@pytest.fixture
def seeded(db_path: str) -> str:
    """A store file holding one journey."""
    with Store(db_path) as store:
        trigger(store, key="before")
    return db_path


HOLDERS = {
    "our writer gate": (proc_worker.hold_gate,),
    "a foreign BEGIN IMMEDIATE": (proc_worker.hold_sqlite, "BEGIN IMMEDIATE"),
    "a foreign BEGIN EXCLUSIVE": (proc_worker.hold_sqlite, "BEGIN EXCLUSIVE"),
}


@pytest.mark.slow
@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_store_busy_when_another_process_holds_the_lock(seeded: str, holder: str) -> None:
    target, *extra = HOLDERS[holder]
    with Store(seeded, busy_timeout=0.2) as store:
        before = table_dump(store)
        with _held(target, seeded, *extra):
            with pytest.raises(StoreBusy) as caught:
                trigger(store, key="during")
            assert caught.value.path == seeded and caught.value.timeout == 0.2
            with pytest.raises(StoreBusy):
                store.claim_deliveries(10)
            # Readers never wait for a writer (WAL): the store still answers.
            assert store.get_run(_first_run(store)).state == "active"
            assert store.verify() == []
        assert table_dump(store) == before  # nothing was written
        assert not trigger(store, key="during").duplicate  # the same call succeeds afterwards
        assert store.verify() == []


def _first_run(store: Store) -> str:
    return str(sql(store).execute("SELECT id FROM workflow_runs LIMIT 1").fetchone()[0])


@pytest.mark.slow
def test_store_busy_against_another_stores_open_transaction(seeded: str) -> None:
    ready = SPAWN.Event()
    holder = SPAWN.Process(
        target=proc_worker.hold_store_transaction, args=(seeded, ready), daemon=True
    )
    holder.start()
    try:
        assert ready.wait(60)
        with Store(seeded, busy_timeout=0) as store:
            before = table_dump(store)
            with pytest.raises(StoreBusy):
                trigger(store, key="during")
            with pytest.raises(StoreBusy), store.transaction() as tx:
                tx.now()
            assert table_dump(store) == before
    finally:
        proc_worker.kill(holder)


def test_store_busy_pickles_with_its_fields(db_path: str) -> None:
    error = pickle.loads(pickle.dumps(StoreBusy(db_path, 0.5)))
    assert isinstance(error, StoreBusy)
    assert (error.path, error.timeout) == (db_path, 0.5)
    assert "nothing was written" in str(error)


# -- the gate itself ----------------------------------------------------------------------------


def test_gate_excludes_another_holder_even_in_the_same_process(tmp_path: Any) -> None:
    path = str(tmp_path / "gate-lock")
    first, second = WriteGate(path), WriteGate(path)
    assert first.acquire(0)
    assert not second.acquire(0)
    assert not second.acquire(0.05)
    first.release()
    assert second.acquire(5)
    second.release()


def test_a_waiter_that_gave_up_does_not_keep_the_lock(tmp_path: Any) -> None:
    path = str(tmp_path / "gate-lock")
    holder, quitter, later = WriteGate(path), WriteGate(path), WriteGate(path)
    assert holder.acquire(0)
    assert not quitter.acquire(0.05)  # its helper thread is still queued in the kernel
    holder.release()
    # The abandoned waiter takes the lock when it frees up and lets it go at once.
    assert later.acquire(10)
    later.release()
    assert quitter.acquire(0)
    quitter.release()


def test_release_without_holding_is_harmless(tmp_path: Any) -> None:
    gate = WriteGate(str(tmp_path / "gate-lock"))
    gate.release()
    assert gate.acquire(0)
    gate.release()
    gate.release()


# -- fairness smoke ---------------------------------------------------------------------------


@pytest.mark.slow
def test_continuous_writers_at_the_default_timeout_never_see_store_busy(db_path: str) -> None:
    Store(db_path).close()
    seconds = 10.0 if soak() else 2.0
    results = run_processes(proc_worker.write_continuously, [(db_path, seconds)] * 4)
    assert [r["busy"] for r in results] == [0, 0, 0, 0]
    writes = [r["writes"] for r in results]
    # Smoke, not a measurement: every writer gets a fair part of the turns.
    assert min(writes) >= max(writes) // 4 > 0
    with Store(db_path) as store:
        assert sql(store).execute("SELECT count(*) FROM workflow_runs").fetchone()[0] == (
            sum(writes)
        )
        assert store.verify() == []


@pytest.mark.slow
def test_the_fairness_benchmark_runs_both_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keeps benchmarks/fairness.py (the figures of benchmarks/FAIRNESS.md) from rotting.
    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    monkeypatch.syspath_prepend(str(benchmarks))
    fairness = importlib.import_module("fairness")
    for gate in (True, False):
        rows = fairness.run_once(processes=2, seconds=0.3, gate=gate)
        assert len(rows) == 2
        for row in rows:
            assert row["writes"] > 0 and row["busy"] == 0
            assert 0 <= row["p50"] <= row["p99"] <= row["max"]
    assert "| process | p50 wait (ms) |" in fairness.table("t", rows)
