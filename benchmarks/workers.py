"""Worker processes on one store file: claim → send → outcome, N processes at once.

Each worker is a real process (multiprocessing, ``spawn``: a fresh interpreter) that opens
its own store on the shared file — a :class:`~chimeway_lite.Store` on the chimeway_lite
side, a plain sqlite3 connection (:class:`raw_side.RawStore`) on the raw side — and loops:
claim a batch with a lease, "send" each delivery (a no-op), record ``succeeded`` for each,
until a claim finds no work. The workers start together (a barrier, after each has opened
its store and imported everything), so the time measured is the span from the first
worker's start to the last one's end; process start-up is not in it.

:func:`run_workers` returns that span and what each worker did; the caller checks that
every delivery was recorded exactly once.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from children import gather

SPAWN = multiprocessing.get_context("spawn")
# Generous: four writers on two CPUs queue for the write lock, and a timeout would only
# turn a slow run into a failed one.
BUSY_TIMEOUT = 60.0


@dataclass(frozen=True)
class WorkersRun:
    """What one run of the workers did: the span from first start to last end (s) and the
    deliveries each worker recorded."""

    seconds: float
    done: tuple[int, ...]

    @property
    def total(self) -> int:
        """Deliveries recorded by all the workers."""
        return sum(self.done)


def _loop(side: str, path: str, now: datetime, batch: int, lease: int) -> Any:
    """Open this worker's store and return the loop to time (opened before the barrier)."""
    if side == "engine":
        import engine_side

        from chimeway_lite import FakeClock, Store

        store = Store(path, clock=FakeClock(now), busy_timeout=BUSY_TIMEOUT)
        store.next_claimable_at()  # a first read: the schema checked, the statements warm

        def engine_loop() -> int:
            try:
                return engine_side.succeed_all(store, batch, lease)
            finally:
                store.close()

        return engine_loop
    from raw_side import RawStore

    raw = RawStore(path, timeout=BUSY_TIMEOUT)

    def raw_loop() -> int:
        try:
            return raw.succeed_all(batch, now, lease)
        finally:
            raw.close()

    return raw_loop


def _worker(
    index: int,
    side: str,
    path: str,
    now: datetime,
    batch: int,
    lease: int,
    barrier: Any,
    out: Any,
) -> None:
    """One worker process: open the store, wait for the others, claim and record until no
    work is left; report (index, start, end, recorded) or the traceback."""
    try:
        loop = _loop(side, path, now, batch, lease)
        barrier.wait(timeout=120)
        started = time.perf_counter()  # CLOCK_MONOTONIC: one clock for every process
        done = loop()
        out.put((index, "ok", (started, time.perf_counter(), done)))
    except BaseException:
        out.put((index, "error", traceback.format_exc()))


def run_workers(
    side: str,
    path: str,
    processes: int,
    *,
    now: datetime,
    batch: int = 100,
    lease_seconds: int = 300,
    timeout: float = 600.0,
) -> WorkersRun:
    """Run ``processes`` workers of ``side`` ("engine" or "raw") on ``path`` at the instant
    ``now`` until the outbox is empty; a worker's exception fails the call."""
    barrier = SPAWN.Barrier(processes)
    out = SPAWN.Queue()
    children = [
        SPAWN.Process(
            target=_worker,
            args=(i, side, path, now, batch, lease_seconds, barrier, out),
            daemon=True,
        )
        for i in range(processes)
    ]
    results: dict[int, tuple[float, float, int]] = gather(children, out, timeout, "worker", barrier)
    starts = [start for start, _, _ in results.values()]
    ends = [end for _, end, _ in results.values()]
    done = tuple(results[i][2] for i in range(processes))
    return WorkersRun(max(ends) - min(starts), done)
