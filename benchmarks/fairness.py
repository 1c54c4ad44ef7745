"""Writer fairness: N processes writing continuously to one store, with and without the gate.

Each process opens its own Store on one file (default busy timeout, 5 s), waits for the
others, then triggers journeys back to back for ``--seconds``. For every write it records
how long it waited for the write lock (the writer gate plus ``BEGIN IMMEDIATE``) and counts
the writes that failed with StoreBusy. The same load runs with the writer gate of
:mod:`chimeway_lite.backends.sqlite.gate` (the default) and without it
(``store.backend._gate = None``: SQLite's busy handler alone), ``--repeat`` times each;
the table shows, per process, the median over
the repetitions of its p50 / p99 / max wait, its writes and its StoreBusy count.

    python benchmarks/fairness.py                       # 4 processes, 10 s, 3 runs per mode
    python benchmarks/fairness.py --seconds 3 --repeat 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from chimeway_lite import Step, Store, StoreBusy, Workflow

WORKFLOW = Workflow("fairness", 1, [Step("inapp", 1, "in_app")])


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def writer(path: str, index: int, seconds: float, gate: bool, barrier: Any, out: Any) -> None:
    """One writing process: trigger journeys for ``seconds``, timing each lock wait."""
    store = Store(path)
    if not gate:
        store.backend._gate = None  # type: ignore[attr-defined]  # the private switch: SQLite's busy handler alone
    waits: list[float] = []
    backend = store.backend
    original = backend._begin_immediate  # type: ignore[attr-defined]

    def timed(conn: sqlite3.Connection, sql: Any) -> None:
        started = time.perf_counter()
        try:
            original(conn, sql)
        finally:
            waits.append(time.perf_counter() - started)

    backend._begin_immediate = timed  # type: ignore[attr-defined]
    busy = 0
    barrier.wait()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            store.trigger(
                tenant_id="bench",
                notification_key="fairness",
                recipient=f"p{index}",
                workflow=WORKFLOW,
                idempotency_key=f"p{index}-{n}",
            )
        except StoreBusy:
            busy += 1
    store.close()
    out.put((index, waits, busy))


def run_once(processes: int, seconds: float, gate: bool) -> list[dict[str, float]]:
    """One measurement; per process: p50, p99, max wait (ms), writes, StoreBusy count."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "fairness.db")
        Store(path).close()  # create the file once, outside the measurement
        barrier = context.Barrier(processes)
        out = context.Queue()
        workers = [
            context.Process(target=writer, args=(path, i, seconds, gate, barrier, out))
            for i in range(processes)
        ]
        for worker in workers:
            worker.start()
        results = sorted(out.get(timeout=seconds + 120) for _ in workers)
        for worker in workers:
            worker.join()
        rows = []
        for _, waits, busy in results:
            rows.append(
                {
                    "p50": 1000 * _quantile(waits, 0.50),
                    "p99": 1000 * _quantile(waits, 0.99),
                    "max": 1000 * max(waits, default=0.0),
                    "writes": float(len(waits) - busy),
                    "busy": float(busy),
                }
            )
        return rows


def measure(processes: int, seconds: float, repeat: int, gate: bool) -> list[dict[str, float]]:
    """Median over ``repeat`` runs of each per-process figure."""
    runs = [run_once(processes, seconds, gate) for _ in range(repeat)]
    return [
        {key: statistics.median(run[i][key] for run in runs) for key in runs[0][i]}
        for i in range(processes)
    ]


def machine() -> str:
    """nproc, file system of the temporary directory, Python and SQLite versions."""
    fs = "?"
    with suppress(OSError):
        target = os.path.realpath(tempfile.gettempdir())
        best = ""
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, kind, *_ = line.split()
            if target.startswith(mount) and len(mount) > len(best):
                best, fs = mount, kind
    return (
        f"nproc {os.cpu_count()}, {platform.system()} {platform.release()}, "
        f"temporary directory on {fs}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )


def table(title: str, rows: list[dict[str, float]]) -> str:
    """A markdown table of per-process figures."""
    lines = [
        f"**{title}**",
        "",
        "| process | p50 wait (ms) | p99 wait (ms) | max wait (ms) | writes | StoreBusy |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i, row in enumerate(rows):
        lines.append(
            f"| {i} | {row['p50']:.2f} | {row['p99']:.2f} | {row['max']:.1f} | "
            f"{row['writes']:.0f} | {row['busy']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure both modes and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(machine())
    print(
        f"{args.processes} processes, {args.seconds:g} s of back-to-back triggers each, "
        f"busy timeout 5 s; medians of {args.repeat} runs per mode\n"
    )
    for gate in (True, False):
        rows = measure(args.processes, args.seconds, args.repeat, gate)
        title = "with the writer gate" if gate else "without the gate (SQLite busy handler alone)"
        print(table(title, rows))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
