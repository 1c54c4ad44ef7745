"""The writer gate's waiting thread (one per gate, never one per wait) and what it must keep
promising with real processes: no lost writes while waits are given up all the time,
StoreBusy on timeout, and a holder's SIGKILL handing the gate to the writer waiting for it.

The figures (throughput and worst wait against raw sqlite3) are in ``benchmarks/FAIRNESS.md``;
nothing here is timed.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import proc_worker
import pytest
from factories import trigger
from proc_worker import SPAWN, kill, run_processes

from chimeway_lite import Store, StoreBusy
from chimeway_lite.backends.sqlite import gate as gate_module
from chimeway_lite.backends.sqlite.gate import WriteGate

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


def _lock_is_free(lock: str) -> bool:
    """Whether another process could take the lock file's flock right now."""
    probe = subprocess.run(
        [sys.executable, "-c", _TRY_LOCK, lock], capture_output=True, text=True, timeout=60
    )
    assert probe.stdout.strip() in ("free", "busy"), probe.stderr
    return probe.stdout.strip() == "free"


def _waiting_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "chimeway-write-gate" and t.is_alive()]


@pytest.fixture
def lock(tmp_path: Path) -> Iterator[str]:
    """A lock file path; every gate thread the test started has ended afterwards."""
    before = set(_waiting_threads())
    yield str(tmp_path / "gate-lock")
    for thread in set(_waiting_threads()) - before:
        thread.join(30)
        assert not thread.is_alive(), "a gate's waiting thread outlived its gate"


def _until(condition: Callable[[], bool], what: str, within: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``within`` seconds
    (a test that waits on a race must never hang the suite)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so within {within} s")
        threading.Event().wait(0.005)


def _waits_at(gate: WriteGate) -> int:
    """The waits at ``gate``'s waiting thread that nobody has given up on."""
    return 0 if gate._waiter is None else gate._waiter.live_waits()


def _release_later(gate: WriteGate, waiter: WriteGate) -> threading.Thread:
    """Release ``gate`` once ``waiter`` is waiting for it (a live wait at its thread)."""

    def release() -> None:
        _until(lambda: _waits_at(waiter) > 0, "the second gate waits for the lock")
        gate.release()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_an_uncontended_acquire_starts_no_thread(lock: str) -> None:
    gate = WriteGate(lock)
    for _ in range(3):
        assert gate.acquire(5)
        gate.release()
    assert gate._waiter is None
    gate.close()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_uncontended_acquires_reuse_one_description_and_release_it(lock: str) -> None:
    gate = WriteGate(lock)
    assert gate.acquire(5)
    kept = gate._kept.fd
    assert kept is not None
    gate.release()
    for _ in range(50):
        assert gate.acquire(5)
        assert gate._kept.fd == kept  # the same description, not a new one per acquire
        assert not _lock_is_free(lock)  # held: another process cannot take it
        gate.release()
        assert _is_open(kept)  # kept open across the release
        assert _lock_is_free(lock)  # which unlocked it without closing it
    gate.close()
    assert gate._kept.fd is None and not _is_open(kept)  # closed with the gate
    assert gate.acquire(5)  # and usable again afterwards
    gate.release()
    gate.close()


def test_a_forked_child_never_shares_its_parents_kept_description(lock: str) -> None:
    gate = WriteGate(lock)
    assert gate.acquire(5)  # the parent holds the lock on its kept description
    pid = os.fork()
    if pid == 0:  # the child: the inherited description would lock at once, its own cannot
        code = 1
        try:
            code = 0 if not gate.acquire(0) else 3
            gate.close()  # must not unlock the parent's description
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not _lock_is_free(lock)  # still the parent's
    gate.release()
    assert _lock_is_free(lock)
    gate.close()


def test_contended_acquires_share_one_waiting_thread(lock: str) -> None:
    holder, gate = WriteGate(lock), WriteGate(lock)
    seen = []
    for _ in range(5):
        assert holder.acquire(0)
        releaser = _release_later(holder, gate)
        assert gate.acquire(60)  # waited: the holder let go only once we were queued
        releaser.join()
        assert gate._waiter is not None
        seen.append(gate._waiter.thread)
        gate.release()
    assert len(set(seen)) == 1 and seen[0].is_alive()
    assert holder.acquire(0)  # free again: nobody kept it
    holder.release()
    gate.close()
    seen[0].join(30)
    assert not seen[0].is_alive()  # close ends the thread
    holder.close()


def test_timeouts_share_the_thread_and_leave_the_lock_free(lock: str) -> None:
    holder, gate = WriteGate(lock), WriteGate(lock)
    assert holder.acquire(0)
    before = len(_waiting_threads())
    for _ in range(4):
        assert not gate.acquire(0.02)
    assert len(_waiting_threads()) == before + 1  # one thread waits for all four
    holder.release()
    # The first abandoned wait takes the lock when it frees up and lets it go at once; the
    # others were given up before their turn and never take it.
    assert gate.acquire(60)
    gate.release()
    assert _lock_is_free(lock)
    gate.close()
    holder.close()


def test_a_wait_given_up_before_its_turn_never_takes_the_lock(lock: str) -> None:
    holder, gate = WriteGate(lock), WriteGate(lock)
    assert holder.acquire(0)
    assert not gate.acquire(0.02)  # the thread now blocks in flock for this abandoned wait
    assert not gate.acquire(0.02)  # queued behind it, given up before its turn
    assert gate._waiter is not None
    waiter = gate._waiter
    holder.release()
    # the thread reaches the second wait and drops it
    _until(lambda: not waiter.queue, "the waiting thread drops the wait given up on")
    assert holder.acquire(30)  # the lock came back: neither abandoned wait kept it
    holder.release()
    gate.close()
    holder.close()


# -- batches: a writer back at once while others wait keeps the lock a moment ----------------


def _contended(gate: WriteGate, lock: str) -> None:
    """Make ``gate`` take the lock once by waiting for it (another gate held it), then let
    it go: a wait at this gate is now recent."""
    holder = WriteGate(lock)
    assert holder.acquire(0)
    releaser = _release_later(holder, gate)
    assert gate.acquire(60)
    releaser.join()
    holder.close()
    gate.release()  # (a plain release: no batch)


def _released_at_once(gate: WriteGate, probe: WriteGate) -> None:
    """End ``gate``'s unit asking to keep the lock, check that it did not (``probe``, another
    gate on the same file, takes it at once), and close both."""
    gate.release(linger=True)
    assert probe.acquire(0)
    probe.release()
    gate.close()
    probe.close()


@pytest.fixture
def slow_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch limits long enough that a loaded machine cannot end a batch by the clock while
    a test looks at it (the limits themselves are the tests' subject where they matter)."""
    monkeypatch.setattr(gate_module, "LINGER", 30.0)
    monkeypatch.setattr(gate_module, "BATCH_TIME", 300.0)


def test_a_lone_writer_never_keeps_the_lock_after_a_unit(lock: str) -> None:
    gate, probe = WriteGate(lock), WriteGate(lock)
    for _ in range(5):  # back to back, but no acquire of this gate ever waited
        assert gate.acquire(5)
        gate.release(linger=True)
        assert probe.acquire(0)  # free at once
        probe.release()
    assert gate._lingerer is None  # and no timer thread was started
    gate.close()
    probe.close()


def test_a_writer_back_at_once_while_others_wait_keeps_the_lock(
    lock: str, slow_batches: None
) -> None:
    gate, probe = WriteGate(lock), WriteGate(lock)
    _contended(gate, lock)
    assert gate.acquire(0)  # back at once: the gap since the last unit is tiny
    gate.release(linger=True)
    assert not probe.acquire(0)  # kept: another writer cannot take it
    kept = gate._lingerer.fd if gate._lingerer is not None else None
    assert kept is not None
    for turn in (2, 3):
        assert gate.acquire(0)  # taken back without waiting
        assert gate._held == kept and gate._turns == turn
        gate.release(linger=True)
        assert not probe.acquire(0)
    thread = gate._lingerer.thread if gate._lingerer is not None else None
    gate.close()  # closing the gate gives a kept lock up and ends the timer thread
    assert probe.acquire(0)
    probe.release()
    assert thread is not None
    thread.join(30)
    assert not thread.is_alive()
    probe.close()


def test_a_kept_lock_is_released_when_its_writer_does_not_come_back(
    lock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_module, "LINGER", 2.0)
    monkeypatch.setattr(gate_module, "BATCH_TIME", 300.0)
    gate, probe = WriteGate(lock), WriteGate(lock)
    _contended(gate, lock)
    assert gate.acquire(0)
    gate.release(linger=True)
    assert not probe.acquire(0)  # kept for its moment ...
    _until(lambda: _lock_is_free(lock), "the timer thread releases the kept lock")  # ... then not
    assert gate.acquire(0)  # and the gate takes it anew
    gate.release()
    gate.close()
    probe.close()


def test_a_batch_ends_after_its_turns(
    lock: str, slow_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_module, "BATCH_TURNS", 3)
    gate, probe = WriteGate(lock), WriteGate(lock)
    _contended(gate, lock)
    for _ in range(2):  # turns 1 and 2 are kept
        assert gate.acquire(0)
        gate.release(linger=True)
        assert not probe.acquire(0)
    assert gate.acquire(0)  # the third ends the batch: released, others get their turn
    _released_at_once(gate, probe)


def test_a_batch_ends_after_its_time(
    lock: str, slow_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_module, "BATCH_TIME", 0.05)
    gate, probe = WriteGate(lock), WriteGate(lock)
    _contended(gate, lock)
    assert gate.acquire(0)
    time.sleep(0.1)  # a unit longer than the batch may last
    _released_at_once(gate, probe)


def test_a_writer_that_pauses_between_units_does_not_keep_the_lock(
    lock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_module, "LINGER", 0.05)
    monkeypatch.setattr(gate_module, "BATCH_TIME", 300.0)
    gate, probe = WriteGate(lock), WriteGate(lock)
    _contended(gate, lock)
    time.sleep(0.1)  # other work between two units: longer than LINGER
    assert gate.acquire(0)
    _released_at_once(gate, probe)


def test_without_a_recent_wait_no_batch(
    lock: str, slow_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_module, "CONTENDED_WITHIN", 0.05)
    gate, probe = WriteGate(lock), WriteGate(lock)
    _contended(gate, lock)
    time.sleep(0.1)  # the wait is no longer recent
    assert gate.acquire(0)
    gate.release()
    assert gate.acquire(0)  # back to back, yet nobody else has waited lately
    _released_at_once(gate, probe)


def test_a_kept_lock_outliving_its_closed_description_closes_no_other_file(
    lock: str, tmp_path: Path, slow_batches: None
) -> None:
    # When a gate is collected, its kept description may be closed (which releases the
    # lock) before its timer thread is told to stop; the thread must then leave alone the
    # number, which the next open may have given to another file.
    gate = WriteGate(lock)
    _contended(gate, lock)
    assert gate.acquire(0)
    gate.release(linger=True)
    lingerer = gate._lingerer
    assert lingerer is not None and lingerer.fd == gate._kept.fd
    number = gate._kept.fd
    gate._kept.close()  # the collection's first finalizer
    opened: list[int] = []
    try:
        while not opened or opened[-1] != number:  # until a file gets the number just freed
            assert len(opened) < 10_000
            opened.append(os.open(tmp_path / "another-file", os.O_RDONLY | os.O_CREAT))
        lingerer.stop()  # the second finalizer
        lingerer.thread.join(30)
        assert not lingerer.thread.is_alive()
        assert _is_open(number)  # the other file's: not closed by the thread
    finally:
        for fd in opened:
            os.close(fd)
    assert _lock_is_free(lock)
    gate.close()


def test_a_forked_child_writes_though_its_parent_held_the_kept_guard(lock: str) -> None:
    # The parent's timer thread may hold the kept description's guard at the moment of a
    # fork; the child must not wait for a release that can never come in it.
    gate = WriteGate(lock)
    assert gate.acquire(0)
    gate.release()
    with gate._kept.guard:  # held, as by the timer thread, across the fork
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.alarm(30)  # a deadlock ends the child instead of hanging the suite
                ok = gate.acquire(0)
                gate.release()
                gate.close()
                code = 0 if ok else 3
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _lock_is_free(lock)
    gate.close()


def test_a_forked_child_never_takes_its_parents_kept_lock(lock: str, slow_batches: None) -> None:
    gate = WriteGate(lock)
    _contended(gate, lock)
    assert gate.acquire(0)
    gate.release(linger=True)  # the parent keeps the lock for its next unit
    pid = os.fork()
    if pid == 0:  # the child: taking the parent's kept lock would succeed at once
        code = 1
        try:
            code = 0 if not gate.acquire(0) else 3
            gate.close()  # must not release the parent's kept lock
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not _lock_is_free(lock)  # still kept for the parent
    assert gate.acquire(0)
    gate.release()
    assert _lock_is_free(lock)
    gate.close()


def test_a_store_writing_back_to_back_after_a_wait_keeps_the_gate_between_units(
    db_path: str, slow_batches: None
) -> None:
    Store(db_path).close()
    writer, other = Store(db_path), Store(db_path)
    gate = writer.backend._gate
    assert gate is not None
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with other.transaction():
            held.set()
            _until(lambda: _waits_at(gate) > 0, "the writer waits at the gate")
        done.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(60)
    trigger(writer, key="waited")  # waited for the other store's unit
    holder.join(60)
    assert done.is_set()
    trigger(writer, key="back-at-once")
    probe = WriteGate(db_path + "-lock")
    assert not probe.acquire(0)  # the gate kept the lock for the writer's next unit
    assert not trigger(writer, key="third").duplicate  # which takes it without waiting
    writer.close()  # and closing the store gives it up
    assert probe.acquire(0)
    probe.release()
    probe.close()
    keys = [r[0] for r in other.connection.execute("SELECT idempotency_key FROM notifications")]
    assert sorted(keys) == ["back-at-once", "third", "waited"]
    other.close()


def test_an_interrupted_wait_gives_the_lock_up(lock: str) -> None:
    holder, gate = WriteGate(lock), WriteGate(lock)
    assert holder.acquire(0)
    with pytest.raises(OverflowError):
        gate.acquire(float("inf"))  # Event.wait refuses it: the wait is abandoned
    holder.release()
    assert gate.acquire(60)
    gate.release()
    assert _lock_is_free(lock)
    gate.close()
    holder.close()


def test_closing_a_store_ends_its_gate_thread(db_path: str) -> None:
    Store(db_path).close()
    ready = SPAWN.Event()
    holder = SPAWN.Process(
        target=proc_worker.hold_store_transaction, args=(db_path, ready), daemon=True
    )
    holder.start()
    try:
        assert ready.wait(60)
        store = Store(db_path, busy_timeout=0.05)
        with pytest.raises(StoreBusy):
            trigger(store)
        gate = store.backend._gate
        assert gate is not None and gate._waiter is not None
        thread = gate._waiter.thread
        store.close()
    finally:
        kill(holder)
    thread.join(30)  # blocked in flock until the holder died, then it ends
    assert not thread.is_alive()


# -- real processes ---------------------------------------------------------------------------


@pytest.mark.slow
def test_impatient_writers_lose_no_write_and_leave_the_gate_free(db_path: str) -> None:
    # A 20 ms busy timeout with four processes writing: waits are given up at the gate all
    # the time, and every refused write is tried again.
    Store(db_path).close()
    each = 40
    results = run_processes(proc_worker.write_impatiently, [(db_path, each, 0.02)] * 4)
    keys = [key for result in results for key in result["keys"]]
    assert len(keys) == len(set(keys)) == 4 * each
    with Store(db_path) as store:
        stored = {
            row[0]
            for row in store.connection.execute(
                "SELECT idempotency_key FROM notifications WHERE idempotency_key LIKE 'impatient-%'"
            )
        }
        assert stored == set(keys)
        assert store.verify() == []
    assert _lock_is_free(db_path + "-lock")


@pytest.mark.slow
def test_a_writer_waiting_at_the_gate_gets_it_when_the_holder_is_killed(db_path: str) -> None:
    Store(db_path).close()
    ready = SPAWN.Event()
    holder = SPAWN.Process(
        target=proc_worker.hold_store_transaction, args=(db_path, ready), daemon=True
    )
    holder.start()
    outcome: dict[str, Any] = {}
    with Store(db_path, busy_timeout=0.05) as store:
        try:
            assert ready.wait(60)
            with pytest.raises(StoreBusy):  # the holder keeps it past the timeout
                trigger(store, key="refused")
            store.backend.busy_timeout = 120.0  # now wait as long as it takes

            def write() -> None:
                try:
                    outcome["result"] = trigger(store, key="waited")
                except BaseException as exc:  # pragma: no cover - reported below
                    outcome["error"] = exc

            writer = threading.Thread(target=write)
            writer.start()
            gate = store.backend._gate
            assert gate is not None
            # The refused write's wait is abandoned but its flock is still blocked: only the
            # writer's own wait counts (waiting for "the thread serves one wait, none
            # queued" raced: it held for the abandoned wait before the writer queued, and
            # never again once the writer queued behind it, until the holder died).
            _until(lambda: _waits_at(gate) == 1, "the writer waits at the gate")
        finally:
            kill(holder)  # SIGKILL: the kernel drops its flock, the waiting thread gets it
        writer.join(120)
        assert not writer.is_alive() and "error" not in outcome
        assert not outcome["result"].duplicate
        keys = [r[0] for r in store.connection.execute("SELECT idempotency_key FROM notifications")]
        assert keys == ["waited"]  # the refused write wrote nothing
        assert store.verify() == []
    assert os.path.exists(db_path + "-lock") and _lock_is_free(db_path + "-lock")


@pytest.mark.slow
def test_the_writers_benchmark_runs_every_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keeps benchmarks/writers.py (the N-writer table of benchmarks/FAIRNESS.md) from rotting;
    # run_once itself checks that the file holds every run the writers made.
    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    monkeypatch.syspath_prepend(str(benchmarks))
    writers = importlib.import_module("writers")
    counts = [1, 2]
    runs = writers.measure(counts, 30, 1, str(tmp_path), (*writers.SIDES, writers.GATELESS))
    for (side, processes), [run] in runs.items():
        assert run.writes == 30 and sum(run.shares) == 30 and len(run.shares) == processes
        assert run.per_second > 0 and run.hold_p50 > 0 and run.busy == 0
        assert (run.worst_wait > 0) == (side != "raw")  # only chimeway_lite times its waits
    assert "| writers | chimeway_lite writes/s |" in writers.table(runs, counts)
    assert "ceiling" in writers.hold_table(runs, counts)
    assert "with the gate" in writers.gateless_table(runs, counts)
