"""How much would deciding outside the write lock buy N writer processes? A bound, measured.

chimeway_lite runs its Python (validation, the machine, records to rows) inside the write
transaction; raw sqlite3 builds its tuples before ``BEGIN IMMEDIATE``. This study asks what
moving the engine's Python out of the lock could give at best, without writing that engine:
each writer is raw sqlite3 (:class:`raw_side.RawStore`, the rows of one trigger) taking the
writer gate (:mod:`chimeway_lite.backends.sqlite.gate`) around every transaction, plus
``--python`` µs of pure-Python busy work per write — spent **inside** the lock (after
``BEGIN IMMEDIATE``, as the engine does now) or **outside** it (before the gate, as an
engine that decided first and only wrote under the lock would). Three references: raw
sqlite3 alone, raw sqlite3 through the gate with no extra work, and raw sqlite3 under a plain
blocking ``flock`` taken by the caller itself (no waiting thread, but no timeout either: what
the gate's thread hop costs).

Every writer is a real process (``spawn``); the sides and the process counts take turns
(``--repeat`` rounds); the table gives medians and each round's figure, and every file is
checked to hold exactly the rows written.

    python benchmarks/lock_scope.py                      # 1, 2, 4 writers, 200 µs, 3 rounds
    python benchmarks/lock_scope.py --python 300 --writes 4000 --processes 1,4
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import traceback
from typing import Any

from children import count_notifications_and_remove, gather

SPAWN = multiprocessing.get_context("spawn")
#: The writers compared: (name, the lock taken around each transaction besides SQLite's own —
#: none, the writer gate, or a blocking ``flock`` of the caller's — and where the extra
#: Python runs).
SIDES = (
    ("raw sqlite3", "none", None),
    ("raw + gate", "gate", None),
    ("raw + blocking flock, no timeout", "flock", None),
    ("gate, Python inside the lock", "gate", "inside"),
    ("gate, Python outside the lock", "gate", "outside"),
)


def _spin(microseconds: float) -> None:
    """Busy Python for ``microseconds`` (what a decision costs; no I/O, holds the GIL)."""
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def _writer(
    path: str, index: int, count: int, side: int, python_us: float, barrier: Any, out: Any
) -> None:
    try:
        from raw_side import RawStore
        from shapes import T0

        from chimeway_lite.backends.sqlite.gate import WriteGate

        _, lock, where = SIDES[side]
        raw = RawStore(path)
        gate = WriteGate(path + "-lock") if lock == "gate" else None
        lock_fd = os.open(path + "-lock", os.O_RDONLY | os.O_CREAT) if lock == "flock" else None
        begin, commit = raw._begin, raw._commit

        def gated_begin() -> None:
            if gate is not None and not gate.acquire(30.0):
                raise RuntimeError("the gate was not obtained within 30 s")
            if lock_fd is not None:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)  # blocks in this thread: no timeout
            begin()
            if where == "inside":
                _spin(python_us)

        def gated_commit() -> None:
            commit()
            if gate is not None:
                gate.release()
            if lock_fd is not None:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

        raw._begin, raw._commit = gated_begin, gated_commit  # type: ignore[method-assign]
        raw.trigger("bench", f"warm-{index}", f"warm-{index}", T0)
        barrier.wait(timeout=120)
        started = time.perf_counter()
        for i in range(count):
            if where == "outside":
                _spin(python_us)
            raw.trigger("bench", f"p{index}", f"p{index}-{i}", T0)
        out.put((index, "ok", (started, time.perf_counter())))
        raw.close()
    except BaseException:
        barrier.abort()
        out.put((index, "error", traceback.format_exc()))


def run_once(side: int, processes: int, writes: int, python_us: float, directory: str) -> float:
    """Writes per second of ``processes`` writers of ``SIDES[side]`` sharing ``writes``."""
    from raw_side import RawStore

    from chimeway_lite import Store

    path = os.path.join(directory, f"scope-{side}-{processes}-{time.monotonic_ns()}.db")
    Store(path).close()
    RawStore(path).close()
    shares = [writes // processes + (1 if i < writes % processes else 0) for i in range(processes)]
    barrier = SPAWN.Barrier(processes)
    out = SPAWN.Queue()
    children = [
        SPAWN.Process(
            target=_writer,
            args=(path, i, shares[i], side, python_us, barrier, out),
            daemon=True,
        )
        for i in range(processes)
    ]
    spans = list(gather(children, out, 600.0, "writer").values())
    made = count_notifications_and_remove(path)
    if made != writes:
        raise RuntimeError(f"{SIDES[side][0]}, {processes} writers: {made} rows of {writes}")
    return float(writes / (max(end for _, end in spans) - min(start for start, _ in spans)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", default="1,2,4", help="comma-separated counts")
    parser.add_argument("--writes", type=int, default=4000, help="writes per measurement")
    parser.add_argument("--python", type=float, default=200.0, help="µs of Python per write")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.processes.split(",")]
    figures: dict[tuple[int, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="chimeway-scope-") as directory:
        for round_ in range(args.repeat):
            for processes in counts:
                order = list(range(len(SIDES)))
                if (round_ + processes) % 2:
                    order.reverse()
                for side in order:
                    rate = run_once(side, processes, args.writes, args.python, directory)
                    figures.setdefault((side, processes), []).append(rate)
                    print(
                        f"  round {round_ + 1}, {SIDES[side][0]}, {processes}: {rate:,.0f}/s",
                        file=sys.stderr,
                        flush=True,
                    )
    print(
        f"{os.cpu_count()} CPUs, {args.writes:,} writes per measurement, "
        f"{args.python:.0f} µs of Python per write, medians of {args.repeat} rounds\n"
    )
    print(
        "| writers | "
        + " | ".join(name + " (/s)" for name, _, _ in SIDES)
        + " | outside ÷ inside |"
    )
    print("|---:|" + "---:|" * (len(SIDES) + 1))
    for processes in counts:
        cells = []
        for side in range(len(SIDES)):
            values = figures[(side, processes)]
            low, high = min(values), max(values)
            cells.append(f"{statistics.median(values):,.0f} ({low:,.0f}-{high:,.0f})")
        ratios = [
            o / i for i, o in zip(figures[(3, processes)], figures[(4, processes)], strict=True)
        ]
        print(f"| {processes} | " + " | ".join(cells) + f" | {statistics.median(ratios):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
