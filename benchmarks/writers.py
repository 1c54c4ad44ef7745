"""N writer processes on one store file: chimeway_lite against raw sqlite3, same writes, same N.

Each writer is a real process (multiprocessing ``spawn``) that opens its own store on a new
file — a :class:`~chimeway_lite.Store` (default busy timeout, 5 s) on the chimeway_lite
side, a plain sqlite3 connection (:class:`raw_side.RawStore`, the same rows written by hand)
on the raw side — waits for the others at a barrier, then triggers its share of ``--writes``
journeys back to back (notification + run + 2 transitions + delivery, one transaction
each). Throughput is all the writes divided by the span from the first writer's start to the
last one's end (process start-up is left out).

For every chimeway_lite write the process also times its wait for the write lock (the
writer gate plus ``BEGIN IMMEDIATE``); for every write of either side the whole call. A
write refused with StoreBusy is counted and tried again, so every measurement makes the same
rows; afterwards each file is checked to hold exactly ``--writes`` runs.

The sides and the process counts take turns (``--repeat`` rounds, each round every count on
both sides, the side that goes first alternating), so a busy neighbour or the page cache hits
both alike; the table gives medians over the rounds and the median of the per-round ratios.

    python benchmarks/writers.py                    # 1, 2, 4 processes, 6,000 writes, 3 rounds
    python benchmarks/writers.py --processes 1,4 --writes 2000 --repeat 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Any

from children import count_notifications_and_remove, gather

SPAWN = multiprocessing.get_context("spawn")
SIDES = ("engine", "raw")
#: chimeway_lite with its writer gate turned off (the private switch ``fairness.py`` uses):
#: SQLite's busy handler alone; measured with ``--gateless``.
GATELESS = "engine-gateless"


@dataclass(frozen=True)
class WritersRun:
    """One measurement: ``processes`` writers of ``side`` made ``writes`` runs in
    ``seconds``; the longest lock wait (chimeway_lite only, else 0) and the longest write, in
    seconds; the p99 lock wait; the StoreBusy refusals (each tried again); each writer's
    writes; the median and the mean time a write held SQLite's write lock (s)."""

    side: str
    processes: int
    writes: int
    seconds: float
    worst_wait: float
    p99_wait: float
    worst_write: float
    busy: int
    shares: tuple[int, ...]
    hold_p50: float
    hold_mean: float

    @property
    def per_second(self) -> float:
        """All the writers' writes per second."""
        return self.writes / self.seconds


class _Timed:
    """A connection that notes, for every write transaction, how long it held SQLite's write
    lock: from ``BEGIN IMMEDIATE`` returning to ``COMMIT`` returning. Both sides write
    through one, so both pay its (small) cost."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._began = 0.0
        self.holds: list[float] = []

    def execute(self, sql: str, *args: Any) -> Any:
        cursor = self._conn.execute(sql, *args)
        if sql == "BEGIN IMMEDIATE":
            self._began = time.perf_counter()
        elif sql == "COMMIT":
            self.holds.append(time.perf_counter() - self._began)
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _engine_writer(
    path: str, index: int, count: int, barrier: Any, gate: bool = True
) -> tuple[Any, ...]:
    from engine_side import trigger

    from chimeway_lite import Store, StoreBusy

    store = Store(path)
    backend = store.backend
    if not gate:
        backend._gate = None  # type: ignore[attr-defined]
    timed_conn = backend._conn = _Timed(backend._conn)  # type: ignore[attr-defined]
    original = backend._begin_immediate  # type: ignore[attr-defined]
    waits: list[float] = []

    def timed(sql: Any, deadline: float) -> None:
        started = time.perf_counter()
        try:
            original(sql, deadline)
        finally:
            waits.append(time.perf_counter() - started)

    backend._begin_immediate = timed  # type: ignore[attr-defined]
    trigger(store, "bench", f"warm-{index}", f"warm-{index}")  # statements and definition warm
    waits.clear()
    timed_conn.holds.clear()
    busy, worst = 0, 0.0
    barrier.wait(timeout=120)
    started = time.perf_counter()  # CLOCK_MONOTONIC: one clock for every process
    for i in range(count):
        while True:
            began = time.perf_counter()
            try:
                trigger(store, "bench", f"p{index}", f"p{index}-{i}")
            except StoreBusy:
                busy += 1
                continue
            worst = max(worst, time.perf_counter() - began)
            break
    ended = time.perf_counter()
    store.close()
    return started, ended, worst, waits, busy, timed_conn.holds


def _raw_writer(path: str, index: int, count: int, barrier: Any) -> tuple[Any, ...]:
    from raw_side import RawStore
    from shapes import T0

    raw = RawStore(path)
    timed_conn = raw.conn = _Timed(raw.conn)  # type: ignore[assignment]
    raw.trigger("bench", f"warm-{index}", f"warm-{index}", T0)
    timed_conn.holds.clear()
    busy, worst = 0, 0.0
    barrier.wait(timeout=120)
    started = time.perf_counter()
    for i in range(count):
        while True:
            began = time.perf_counter()
            try:
                raw.trigger("bench", f"p{index}", f"p{index}-{i}", T0)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                busy += 1
                continue
            worst = max(worst, time.perf_counter() - began)
            break
    ended = time.perf_counter()
    raw.close()
    return started, ended, worst, [], busy, timed_conn.holds


def _writer(side: str, path: str, index: int, count: int, barrier: Any, out: Any) -> None:
    try:
        if side == "raw":
            result = _raw_writer(path, index, count, barrier)
        else:
            result = _engine_writer(path, index, count, barrier, gate=side == "engine")
        out.put((index, "ok", result))
    except BaseException:
        barrier.abort()
        out.put((index, "error", traceback.format_exc()))


def _prepare(side: str, path: str) -> None:
    """The file with the store's schema (and, raw side, the journey registered): what every
    writer finds when it opens it."""
    from chimeway_lite import Store

    Store(path).close()
    if side == "raw":
        from raw_side import RawStore

        RawStore(path).close()


def run_once(
    side: str, processes: int, writes: int, directory: str, timeout: float = 600.0
) -> WritersRun:
    """``processes`` writers of ``side`` making ``writes`` runs between them on a new file in
    ``directory``; raises when a writer fails or the file does not hold every run."""
    path = os.path.join(directory, f"writers-{side}-{processes}-{time.monotonic_ns()}.db")
    _prepare(side, path)
    shares = [writes // processes + (1 if i < writes % processes else 0) for i in range(processes)]
    barrier = SPAWN.Barrier(processes)
    out = SPAWN.Queue()
    children = [
        SPAWN.Process(target=_writer, args=(side, path, i, shares[i], barrier, out), daemon=True)
        for i in range(processes)
    ]
    results: dict[int, tuple[Any, ...]] = gather(children, out, timeout, "writer")
    made = count_notifications_and_remove(path)
    if made != writes:
        raise RuntimeError(f"{side}, {processes} writers: {made} runs stored, {writes} made")
    values = list(results.values())
    waits = [w for value in values for w in value[3]]
    holds = [h for value in values for h in value[5]]
    return WritersRun(
        side=side,
        processes=processes,
        writes=writes,
        seconds=max(v[1] for v in values) - min(v[0] for v in values),
        worst_wait=max(waits, default=0.0),
        p99_wait=_quantile(waits, 0.99),
        worst_write=max(v[2] for v in values),
        busy=sum(v[4] for v in values),
        shares=tuple(shares),
        hold_p50=statistics.median(holds),
        hold_mean=statistics.fmean(holds),
    )


def measure(
    counts: list[int], writes: int, repeat: int, directory: str, sides: tuple[str, ...] = SIDES
) -> dict[tuple[str, int], list[WritersRun]]:
    """``repeat`` rounds; in each, every process count on every side, the sides taking turns
    at going first."""
    runs: dict[tuple[str, int], list[WritersRun]] = {}
    for round_ in range(repeat):
        for n, processes in enumerate(counts):
            order = sides if (round_ + n) % 2 == 0 else sides[::-1]
            for side in order:
                run = run_once(side, processes, writes, directory)
                runs.setdefault((side, processes), []).append(run)
                print(
                    f"  round {round_ + 1}, {side}, {processes} writer(s): "
                    f"{run.per_second:,.0f}/s, worst wait {1000 * run.worst_wait:.1f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    return runs


def _figure(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table(runs: dict[tuple[str, int], list[WritersRun]], counts: list[int]) -> str:
    """The markdown table: per process count, median writes/s of both sides, the median of
    the per-round ratios (with each round's), the scaling from one writer, and the lock
    waits and write latencies of chimeway_lite."""
    lines = [
        "| writers | chimeway_lite writes/s | raw sqlite3 writes/s | speed vs raw (rounds) "
        "| chimeway_lite vs its 1 writer | worst wait at the gate (ms) | p99 wait (ms) "
        "| worst write, chimeway_lite / raw (ms) | StoreBusy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = statistics.median(r.per_second for r in runs[("engine", counts[0])])
    for processes in counts:
        engine, raw = runs[("engine", processes)], runs[("raw", processes)]
        ratios = [e.per_second / r.per_second for e, r in zip(engine, raw, strict=True)]
        eng = statistics.median(r.per_second for r in engine)
        lines.append(
            f"| {processes} | {_figure(eng)} | "
            f"{_figure(statistics.median(r.per_second for r in raw))} | "
            f"**{statistics.median(ratios):.2f}** ({', '.join(f'{x:.2f}' for x in ratios)}) | "
            f"{eng / base:.2f} | "
            f"{1000 * statistics.median(r.worst_wait for r in engine):.1f} "
            f"(max {1000 * max(r.worst_wait for r in engine):.1f}) | "
            f"{1000 * statistics.median(r.p99_wait for r in engine):.2f} | "
            f"{1000 * statistics.median(r.worst_write for r in engine):.1f} / "
            f"{1000 * statistics.median(r.worst_write for r in raw):.1f} | "
            f"{sum(r.busy for r in engine)} / {sum(r.busy for r in raw)} |"
        )
    return "\n".join(lines)


def hold_table(runs: dict[tuple[str, int], list[WritersRun]], counts: list[int]) -> str:
    """Per side and process count: how long a write held SQLite's write lock (median and
    mean over its writes, median over the rounds), the most writes per second the median
    allows one writer at a time (1 / p50 hold), and the share of it the writers reached.
    (The mean includes the rare long ``COMMIT`` that runs SQLite's automatic checkpoint,
    after SQLite has released its lock but before ``COMMIT`` returns.)"""
    lines = [
        "| writers | side | write lock held per write, p50 / mean (µs) "
        "| ceiling 1 / p50 hold (writes/s) | reached |",
        "|---:|---|---:|---:|---:|",
    ]
    names = {"engine": "chimeway_lite", "raw": "raw sqlite3", GATELESS: "chimeway_lite, no gate"}
    for processes in counts:
        for side in names:
            if (side, processes) not in runs:
                continue
            these = runs[(side, processes)]
            p50 = statistics.median(r.hold_p50 for r in these)
            mean = statistics.median(r.hold_mean for r in these)
            reached = statistics.median(r.per_second * r.hold_p50 for r in these)
            lines.append(
                f"| {processes} | {names[side]} | {1e6 * p50:.0f} / {1e6 * mean:.0f} | "
                f"{_figure(1 / p50)} | {reached:.2f} |"
            )
    return "\n".join(lines)


def gateless_table(runs: dict[tuple[str, int], list[WritersRun]], counts: list[int]) -> str:
    """chimeway_lite with and without its writer gate: writes/s and the worst write."""
    lines = [
        "| writers | with the gate writes/s | without writes/s | worst write with / without (ms) |",
        "|---:|---:|---:|---:|",
    ]
    for processes in counts:
        gated, bare = runs[("engine", processes)], runs[(GATELESS, processes)]
        lines.append(
            f"| {processes} | {_figure(statistics.median(r.per_second for r in gated))} | "
            f"{_figure(statistics.median(r.per_second for r in bare))} | "
            f"{1000 * statistics.median(r.worst_write for r in gated):.1f} / "
            f"{1000 * statistics.median(r.worst_write for r in bare):.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    from fairness import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4", help="comma-separated counts")
    parser.add_argument("--writes", type=int, default=6000, help="per measurement, all writers")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the files go (default: temp dir)")
    parser.add_argument(
        "--gateless", action="store_true", help="also chimeway_lite without its writer gate"
    )
    args = parser.parse_args(argv)
    sides = (*SIDES, GATELESS) if args.gateless else SIDES
    counts = [int(c) for c in args.processes.split(",")]
    print(machine())
    print(
        f"{args.writes:,} triggers per measurement shared by the writers; medians of "
        f"{args.repeat} interleaved rounds; load average {os.getloadavg()[0]:.2f} at the start\n"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        runs = measure(counts, args.writes, args.repeat, directory, sides)
    print(table(runs, counts))
    print()
    print(hold_table(runs, counts))
    if args.gateless:
        print()
        print(gateless_table(runs, counts))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
