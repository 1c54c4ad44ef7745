"""What a unit of work costs before its first statement: each layer between a store call and
SQLite's ``BEGIN IMMEDIATE … COMMIT``, timed on an empty unit, in this process.

    python benchmarks/unit_cost.py                 # 20,000 units per layer, 7 rounds
    python benchmarks/unit_cost.py -n 5000 --rounds 3

The layers, each one wrapping the one before (a write unit that writes nothing):

* ``raw sqlite3`` — ``BEGIN IMMEDIATE`` and ``COMMIT`` on a plain connection with the store's
  pragmas (:func:`shapes.connect_raw`);
* ``raw + writer gate`` — the same inside the store's writer gate (its uncontended acquire
  and release, :mod:`chimeway_lite.backends.sqlite.gate`);
* ``backend unit`` — ``store.backend.run(work, write=True)``: the connection's thread lock,
  the unit's executor, the gate, BEGIN and COMMIT;
* ``store call`` — the path every store method takes (``Store._call``): the engine of the
  unit, its definition index, the hooks' check;
* ``store method`` — the same behind a public method's wrapper (``_Operation``: the
  tracing check, the unit-in-a-unit check), timed through the operation object the
  store's methods are made of, here wrapping an empty engine method;
* ``store.transaction()`` — the public block, empty.

And a read unit the same way (``BEGIN`` … ``COMMIT``; ``backend.run(write=False)``;
``store.snapshot()``). The table gives medians over the rounds (the rounds interleave the
layers) and what each layer adds to the one before: the part of every write's Python that
is the unit's plumbing rather than its work. No figure here is a target; compare within
one run (benchmarks/README.md, "What a unit of work costs before its first statement").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import engine_side
from shapes import T0, WORKFLOW, connect_raw

from chimeway_lite import Store
from chimeway_lite.backends.sqlite.gate import WriteGate
from chimeway_lite.store import _Operation


def _noop(engine: Any) -> None:
    """An engine method that does nothing (the unit's plumbing alone)."""


def layers(store: Store, directory: str) -> dict[str, Callable[[], object]]:
    """Each layer's empty unit, by name, in the order they wrap each other."""
    raw = connect_raw(os.path.join(directory, "raw.db"))
    raw.execute("CREATE TABLE IF NOT EXISTS t (x)")
    gate = WriteGate(os.path.join(directory, "raw.db-lock"))
    backend = store.backend
    operation = _Operation(_noop, write=True)
    read_operation = _Operation(_noop, write=False)

    def raw_unit() -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("COMMIT")

    def gated_unit() -> None:
        if not gate.acquire(5.0):
            raise RuntimeError("the gate is held by another process")
        try:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("COMMIT")
        finally:
            gate.release()

    def raw_read() -> None:
        raw.execute("BEGIN")
        raw.execute("COMMIT")

    def transaction() -> None:
        with store.transaction():
            pass

    def snapshot() -> None:
        with store.snapshot():
            pass

    return {
        "raw sqlite3": raw_unit,
        "raw + writer gate": gated_unit,
        "backend unit": lambda: backend.run(lambda unit: None, write=True),
        "store call": lambda: store._call(_noop, True, (), {}),
        "store method": lambda: operation(store),
        "store.transaction()": transaction,
        "read: raw sqlite3": raw_read,
        "read: backend unit": lambda: backend.run(lambda unit: None, write=False),
        "read: store call": lambda: store._call(_noop, False, (), {}),
        "read: store method": lambda: read_operation(store),
        "read: store.snapshot()": snapshot,
    }


def measure(count: int, rounds: int, directory: str) -> dict[str, list[float]]:
    """µs per empty unit of every layer, one figure per round (the layers take turns)."""
    store, _ = engine_side.open_store(os.path.join(directory, "store.db"), T0)
    store.upsert_definition("welcome", WORKFLOW)
    units = layers(store, directory)
    figures: dict[str, list[float]] = {name: [] for name in units}
    for unit in units.values():  # warm every path once
        for _ in range(min(count, 200)):
            unit()
    for _ in range(rounds):
        for name, unit in units.items():
            started = time.perf_counter()
            for _ in range(count):
                unit()
            figures[name].append((time.perf_counter() - started) / count * 1e6)
    store.close()
    return figures


#: The layer each one wraps (the transaction and snapshot blocks wrap the backend's unit as a
#: context manager, beside the plain-call path), and the raw unit of its group.
WRAPS = {
    "raw + writer gate": "raw sqlite3",
    "backend unit": "raw + writer gate",
    "store call": "backend unit",
    "store method": "store call",
    "store.transaction()": "backend unit",
    "read: backend unit": "read: raw sqlite3",
    "read: store call": "read: backend unit",
    "read: store method": "read: store call",
    "read: store.snapshot()": "read: backend unit",
}


def table(figures: dict[str, list[float]]) -> str:
    """The Markdown table: µs per unit (median, range), over raw sqlite3 and over the layer
    it wraps."""
    lines = [
        "| layer | µs per empty unit, median (range) | over raw sqlite3 "
        "| over the layer it wraps |",
        "|---|---:|---:|---:|",
    ]
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for name, values in figures.items():
        median = medians[name]
        raw = medians["read: raw sqlite3" if name.startswith("read:") else "raw sqlite3"]
        inner = WRAPS.get(name)
        over_raw = "" if inner is None else f"{median - raw:+.1f}"
        over_inner = "" if inner is None else f"{median - medians[inner]:+.1f} ({inner})"
        lines.append(
            f"| {name} | {median:.1f} ({min(values):.1f}-{max(values):.1f}) "
            f"| {over_raw} | {over_inner} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="empty units per layer and round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.n < 1 or args.rounds < 1:
        parser.error("-n and --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="chimeway-unit-cost-") as directory:
        figures = measure(args.n, args.rounds, directory)
    print(f"{args.n:,} empty units per layer and round, {args.rounds} rounds, medians")
    print()
    print(table(figures))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
