"""Where ``Store.verify()``'s time goes on a big store: each stage of its per-run checks timed
on its own, every stage doing all that the one before it did and one step more.

    python benchmarks/verify_stages.py                      # a store of 100,000 runs, 3 rounds
    python benchmarks/verify_stages.py --runs 1000000 --keep DIR --rounds 1

The store is :func:`bulk.build`'s (the shapes of ``run.py``; built once into ``--keep DIR``
when given). The stages, in one process, each in a read unit of its own:

* ``scan`` — verify's four scans (runs, trace rows, deliveries, attempt history, in the
  order verify reads them), every row stepped through and dropped: SQLite's part;
* ``merge`` — the same, each run with its trace rows and each delivery with its history
  grouped as verify groups them (:func:`chimeway_lite.backends.scans.with_children`);
* ``records`` — the same, every row read into its record (the readers verify uses, which
  are also its check that a row reads back at all);
* ``traces`` and ``deliveries`` — verify's own per-run and per-delivery checks (the fold
  of each trace against its run, each delivery against its history), records included;
* ``store checks`` — the store-wide checks of ``verify(quick=True)`` (foreign keys, the
  trace counter, evidence and tenancy, the rows of the other tables, the definitions);
* ``verify(quick=True)`` — the whole call, for the sum.

The table gives medians over the rounds (the stages take turns), µs per run and what each
stage adds to the one before it. Nothing is asserted about time (benchmarks/README.md, "Where
verify's time goes").
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import bulk

from chimeway_lite import Store
from chimeway_lite.backends import scans
from chimeway_lite.backends.base import EVERY_ID
from chimeway_lite.backends.sqlite import upkeep
from chimeway_lite.engine import audit

#: verify's four scans, in the order it reads them.
SCANS = (
    upkeep._SCOPED_RUNS,
    upkeep._SCOPED_TRANSITIONS,
    upkeep._SCOPED_DELIVERIES,
    upkeep._SCOPED_EVENTS,
)


def stages(store: Store, path: str) -> dict[str, Callable[[], int]]:
    """Each stage by name, in order; each returns how many things it went through (rows,
    runs and deliveries, or problems found), so a stage that reads nothing shows."""
    scope = scans.scope(None, None, EVERY_ID)

    def rows(conn: sqlite3.Connection, query: tuple[str, str, str]) -> Any:
        return conn.execute(upkeep._scan(query, EVERY_ID), scope)

    def in_unit(step: Callable[[sqlite3.Connection], int]) -> Callable[[], int]:
        def stage() -> int:
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute("BEGIN")
                found = step(conn)
                conn.execute("COMMIT")
            finally:
                conn.close()
            return found

        return stage

    def scan(conn: sqlite3.Connection) -> int:
        return sum(1 for query in SCANS for _ in rows(conn, query))

    def merge(conn: sqlite3.Connection) -> int:
        runs, transitions, deliveries, events = (rows(conn, q) for q in SCANS)
        traces = scans.with_children(runs, transitions, 2)
        histories = scans.with_children(deliveries, events, 0)
        return sum(1 for _ in traces) + sum(1 for _ in histories)

    def records(conn: sqlite3.Connection) -> int:
        runs, transitions, deliveries, events = (rows(conn, q) for q in SCANS)
        traces = scans.run_traces(runs, transitions)
        histories = scans.delivery_histories(deliveries, events)
        return sum(1 for _ in traces) + sum(1 for _ in histories)

    def in_snapshot(check: Callable[[Any], list[str]]) -> Callable[[], int]:
        def stage() -> int:
            with store.snapshot() as view:
                return len(check(view._work))

        return stage

    return {
        "scan": in_unit(scan),
        "merge": in_unit(merge),
        "records": in_unit(records),
        "traces": in_snapshot(lambda work: audit._trace_checks(work, None, None, EVERY_ID)),
        "deliveries": in_snapshot(
            lambda work: audit._delivery_checks(work, audit._policies(work), None, None, EVERY_ID)
        ),
        "store checks": in_snapshot(lambda work: audit.store_checks(work, quick=True)),
        "verify(quick=True)": lambda: len(store.verify(quick=True)),
    }


def measure(path: str, rounds: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds of every stage, one figure per round, and what each went through."""
    with Store(path) as store:
        return _measured(stages(store, path), rounds)


def _measured(
    timed: dict[str, Callable[[], int]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    figures: dict[str, list[float]] = {name: [] for name in timed}
    counts: dict[str, int] = {}
    for _ in range(rounds):
        for name, stage in timed.items():
            started = time.perf_counter()
            counts[name] = stage()
            figures[name].append(time.perf_counter() - started)
    return figures, counts


#: The stage each one adds to (the per-run stages build on each other).
BUILDS_ON = {"merge": "scan", "records": "merge"}


def table(figures: dict[str, list[float]], counts: dict[str, int], runs: int) -> str:
    """The Markdown table: seconds and µs per run, what a stage adds, what it went through."""
    lines = [
        "| stage | s, median (range) | µs per run | adds (µs per run) | went through |",
        "|---|---:|---:|---:|---:|",
    ]
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for name, values in figures.items():
        per_run = medians[name] / runs * 1e6
        before = BUILDS_ON.get(name)
        adds = "" if before is None else f"{(medians[name] - medians[before]) / runs * 1e6:+.1f}"
        lines.append(
            f"| {name} | {medians[name]:.2f} ({min(values):.2f}-{max(values):.2f}) "
            f"| {per_run:.1f} | {adds} | {counts[name]:,} |"
        )
    return "\n".join(lines)


def run_count(path: str) -> int:
    """How many runs the store holds."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM workflow_runs").fetchone()[0])
    finally:
        conn.close()


def main() -> int:
    """Build (or reuse) the store, measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the store")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", help="build the store here once and reuse it")
    args = parser.parse_args()
    if args.runs < 1 or args.rounds < 1:
        parser.error("--runs and --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="chimeway-verify-stages-") as scratch:
        folder = args.keep or scratch
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"verify-{args.runs}.db")
        if not os.path.exists(path):
            started = time.perf_counter()
            bulk.build(path, args.runs)
            print(f"built a store of {args.runs:,} runs in {time.perf_counter() - started:.1f} s")
        figures, counts = measure(path, args.rounds)
        runs = run_count(path)
    print(f"{runs:,} runs, {args.rounds} rounds, medians")
    print()
    print(table(figures, counts, runs))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
