"""Where the time of a write goes: SQLite's own work against the Python on top of it, for
chimeway_lite and for raw sqlite3 writing the same rows, in this process.

    python benchmarks/time_split.py                  # 3,000 of each, 5 rounds
    python benchmarks/time_split.py -n 2000 --rounds 3 --only trigger,journeys

Each statement's ``execute`` / ``executemany`` is timed (``BEGIN`` and ``COMMIT``
included): on the chimeway_lite side through its one executor
(:class:`~chimeway_lite.backends.sqlite.executor.Executor`, whose own few lines count as
SQL here), on the raw side through a thin wrapper of its connection. Everything else in
the operation is Python: argument checks, the machine's decision, building records and
parameters, converting rows read back, the writer gate. The workloads are run.py's
(:mod:`engine_side` and :mod:`raw_side`): single triggers, full journeys one by one, full
journeys in batches of 100, each on a new file, the two sides taking turns round by round.

The last column is what a ratio target of run.py needs: the Python per operation
chimeway_lite may spend for ``total ≤ raw total ÷ 0.8`` with its SQL time as measured.
Medians over the rounds; the machine is shared, so compare within one run only.

``--replay`` adds a third side: every statement chimeway_lite ran in the round (its text and
its parameters, ``BEGIN`` and ``COMMIT`` included) run again, one after the other with
nothing between them, on a copy of the file as it was before the workload, through a plain
connection with the store's pragmas. It writes the same rows. Its SQL time against
chimeway_lite's own tells what the statements cost in themselves from what they cost
amid the engine's Python (most likely slower there because that Python leaves SQLite's code
and pages colder in the CPU's caches; not established, see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import engine_side
from raw_side import RawStore
from shapes import T0, WORKFLOW, connect_raw

from chimeway_lite.backends.sqlite import executor

WORKLOADS = ("trigger", "journeys", "batches")
BATCH = 100
TARGET = 0.8

_clock = time.perf_counter
_spent = [0.0, 0]  # seconds inside execute/executemany, statements run
# The engine's statements of the round (text, parameters), when --replay asks for them.
_captured: list[tuple[str, Any, bool]] | None = None
_replayed: list[tuple[str, Any, bool]] = []  # those of the workload, for _replay


def _time(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``, its time and one statement added to :data:`_spent`."""
    start = _clock()
    try:
        return call(*args)
    finally:
        _spent[0] += _clock() - start
        _spent[1] += 1


def _timed(method: Callable[..., Any], many: bool) -> Callable[..., Any]:
    def run(self: Any, sql: str, params: Any = ()) -> Any:
        if _captured is not None:
            if many:
                params = list(params)
            _captured.append((sql, params, many))
        return _time(method, self, sql, params)

    return run


class _TimedConnection:
    """A sqlite3 connection whose ``execute`` and ``executemany`` are timed."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, sql: str, params: Any = ()) -> Any:
        return _time(self._conn.execute, sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        return _time(self._conn.executemany, sql, rows)


def _engine(workload: str, path: str, count: int) -> float:
    store, clock = engine_side.open_store(path, T0)
    with store:
        store.upsert_definition("welcome", WORKFLOW)
    shutil.copy(path, path + ".before")  # closed: the WAL is checkpointed into the file
    store, clock = engine_side.open_store(path, T0)
    with store:
        if _captured is not None:
            _captured.clear()
        _spent[:] = [0.0, 0]
        start = _clock()
        if workload == "trigger":
            for i in range(count):
                engine_side.trigger(store, "tenant-0", f"user-{i}", f"key-{i}")
        elif workload == "journeys":
            engine_side.journeys(store, clock, count, T0, BATCH)
        else:
            engine_side.batched_journeys(store, clock, count, T0, BATCH)
        elapsed = _clock() - start
        if _captured is not None:  # the workload's statements, not those of closing
            _replayed[:] = _captured
        return elapsed


def _raw(workload: str, path: str, count: int) -> float:
    raw = RawStore(path)
    raw.conn = _TimedConnection(raw.conn)  # type: ignore[assignment]
    try:
        _spent[:] = [0.0, 0]
        start = _clock()
        if workload == "trigger":
            for i in range(count):
                raw.trigger("tenant-0", f"user-{i}", f"key-{i}", T0)
        elif workload == "journeys":
            raw.journeys(count, T0, BATCH)
        else:
            raw.batched_journeys(count, T0, BATCH)
        return _clock() - start
    finally:
        raw.close()


def _replay(workload: str, path: str, count: int) -> float:
    """The statements chimeway_lite ran for this workload in this round, again, on a copy of
    its file as it was before them; only ``execute`` is timed (as on the other sides)."""
    shutil.copy(path.replace("-replay-", "-chimeway_lite-") + ".before", path)
    conn = connect_raw(path)
    conn.row_factory = sqlite3.Row  # as the store's connection
    timed = _TimedConnection(conn)
    try:
        _spent[:] = [0.0, 0]
        start = _clock()
        for sql, params, many in _replayed:
            cursor = timed.executemany(sql, params) if many else timed.execute(sql, params)
            cursor.fetchall()
        return _clock() - start
    finally:
        conn.close()


def _measure(
    side: Callable[[str, str, int], float], workload: str, path: str, count: int
) -> tuple[float, float, float]:
    """(total µs, SQL µs, statements) per operation; the file's setup (schema, definition)
    is not timed."""
    total = side(workload, path, count)
    return total / count * 1e6, _spent[0] / count * 1e6, _spent[1] / count


def main() -> int:
    """Measure every workload on both sides and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=3000, help="operations per workload")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    parser.add_argument("--dir", type=Path)
    parser.add_argument(
        "--replay", action="store_true", help="replay chimeway_lite's statements alone too"
    )
    args = parser.parse_args()
    workloads = [w for w in args.only.split(",") if w]
    if not workloads or any(w not in WORKLOADS for w in workloads):
        parser.error(f"--only takes {', '.join(WORKLOADS)}")
    global _captured
    executor.Executor.execute = _timed(executor.Executor.execute, False)  # type: ignore[method-assign]
    executor.Executor.executemany = _timed(executor.Executor.executemany, True)  # type: ignore[method-assign]
    work = Path(tempfile.mkdtemp(prefix="chimeway-split-", dir=args.dir))
    sides: dict[str, Callable[[str, str, int], float]] = {"chimeway_lite": _engine, "raw": _raw}
    if args.replay:
        _captured = []
    found: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for rep in range(args.rounds):
        print(f"  round {rep + 1}/{args.rounds}", file=sys.stderr)
        for workload in workloads:
            order = list(sides.items()) if rep % 2 == 0 else list(sides.items())[::-1]
            for name, side in order:
                path = str(work / f"{workload}-{name}-{rep}.db")
                found.setdefault((workload, name), []).append(
                    _measure(side, workload, path, args.n)
                )
            if args.replay:  # right after the round's engine side, whichever came last
                path = str(work / f"{workload}-replay-{rep}.db")
                found.setdefault((workload, "replay"), []).append(
                    _measure(_replay, workload, path, args.n)
                )
    print(
        f"\n{args.n:,} operations per workload; medians of {args.rounds} rounds "
        "(µs per operation)\n"
    )
    print("| workload | side | total | SQL | Python | statements | Python allowed at 0.8x raw |")
    print("|---|---|---:|---:|---:|---:|---:|")
    shown = [*sides, *(["replay"] if args.replay else [])]
    for workload in workloads:
        raw_total = statistics.median(t for t, _, _ in found[(workload, "raw")])
        for name in shown:
            rows = found[(workload, name)]
            total = statistics.median(t for t, _, _ in rows)
            sql = statistics.median(s for _, s, _ in rows)
            python = statistics.median(t - s for t, s, _ in rows)
            statements = statistics.median(n for _, _, n in rows)
            allowed = f"{raw_total / TARGET - sql:,.0f}" if name == "chimeway_lite" else ""
            print(
                f"| {workload} | {name} | {total:,.0f} | {sql:,.0f} | {python:,.0f} | "
                f"{statements:.1f} | {allowed} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
