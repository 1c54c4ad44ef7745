"""Would another page layout lift the journeys-per-second ceiling? Two levers, measured.

A trigger commits on its own, and each commit appends to the WAL every page it dirtied:
the last leaf of every table and index a trigger writes to (about twenty of them), whole,
however few bytes changed. Two ways to write fewer bytes per commit:

* **a smaller page** (``PRAGMA page_size``, fixed when the file is created): each dirtied
  leaf costs 1 or 2 KiB instead of 4, but trees are deeper and every read walks more pages;
* **WITHOUT ROWID** tables for the rows keyed by their UUID (definitions, steps,
  notifications, runs, deliveries): the row lives in its primary-key tree, so the separate
  ``sqlite_autoindex`` tree of each is no longer written (secondary indexes then hold the
  36-character key instead of an 8-byte rowid).

Each variant is a new file of ``--stored`` finished journeys (written in batches first),
measured with the store's own pragmas (WAL, synchronous NORMAL, its checkpoint interval):
triggers one by one, then full journeys (trigger, claim, outcome, due sweep, claim,
outcome: :func:`engine_side.journeys` and :meth:`raw_side.RawStore.journeys`), raw sqlite3
for every variant and chimeway_lite for the page sizes (its schema is ``schema.sql``). The
variants take turns for ``--rounds`` rounds; the table gives medians and each round's
figure. WAL bytes per operation are counted on the raw side in a separate pass with
checkpoints off (a checkpoint would reset the count).

    python benchmarks/page_layout.py                 # 10 K stored, 1,000 per round, 3 rounds
    python benchmarks/page_layout.py --stored 100000 --ops 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import engine_side
from raw_side import RawStore
from shapes import T0, count_rows, median_and_rounds

from chimeway_lite.backends.sqlite.connection import schema_statements

#: The tables keyed by a UUID that a WITHOUT ROWID variant keeps in their key's tree.
UUID_TABLES = (
    "workflow_definitions",
    "workflow_steps",
    "notifications",
    "workflow_runs",
    "deliveries",
)
_CREATE_TABLE = re.compile(r"CREATE TABLE (\w+)")


def without_rowid() -> list[str]:
    """``schema.sql`` with the UUID-keyed tables declared WITHOUT ROWID."""
    statements = []
    for statement in schema_statements():
        match = _CREATE_TABLE.match(statement)
        if match is not None and match.group(1) in UUID_TABLES:
            statement = statement.rstrip().rstrip(";").rstrip() + " WITHOUT ROWID"
        statements.append(statement)
    return statements


@dataclass(frozen=True)
class Variant:
    """One layout: its page size, and whether the UUID tables are WITHOUT ROWID."""

    page_size: int
    without_rowid: bool = False

    @property
    def name(self) -> str:
        return f"{self.page_size} B pages" + (", WITHOUT ROWID" if self.without_rowid else "")


@dataclass
class Figures:
    """Per-round figures of one variant and side."""

    triggers: list[float] = field(default_factory=list)
    journeys: list[float] = field(default_factory=list)
    wal_trigger: float = 0.0
    wal_journey: float = 0.0
    file_mib: float = 0.0


def new_file(path: str, page_size: int) -> None:
    """An empty SQLite file whose pages are ``page_size`` bytes (what either side then
    creates in it keeps that size)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA page_size = {page_size:d}")
        conn.execute("VACUUM")
    finally:
        conn.close()


class RawSide:
    """Raw sqlite3 on one variant's file."""

    def __init__(self, path: str, variant: Variant, stored: int) -> None:
        new_file(path, variant.page_size)
        self.path = path
        self.store = RawStore(path, statements=without_rowid() if variant.without_rowid else None)
        for first in range(0, stored, 1000):
            self.store.journeys(min(1000, stored - first), T0, 100, first=first)

    def triggers(self, count: int, first: int) -> None:
        for i in range(first, first + count):
            self.store.trigger("tenant-trigger", f"user-{i}", f"trigger-{i}", T0)

    def journeys(self, count: int, first: int) -> None:
        self.store.journeys(count, T0, 100, first=first)

    def close(self) -> None:
        self.store.conn.close()


class EngineSide:
    """chimeway_lite on one variant's file (``schema.sql``: page sizes only)."""

    def __init__(self, path: str, variant: Variant, stored: int) -> None:
        new_file(path, variant.page_size)
        self.path = path
        self.store, self.clock = engine_side.open_store(path, T0)
        for first in range(0, stored, 1000):
            engine_side.journeys(self.store, self.clock, min(1000, stored - first), T0, 100, first)

    def triggers(self, count: int, first: int) -> None:
        for i in range(first, first + count):
            engine_side.trigger(self.store, "tenant-trigger", f"user-{i}", f"trigger-{i}")

    def journeys(self, count: int, first: int) -> None:
        engine_side.journeys(self.store, self.clock, count, T0, 100, first)

    def close(self) -> None:
        self.store.close()


def _per_second(action: Callable[[int, int], None], count: int, first: int) -> float:
    started = time.perf_counter()
    action(count, first)
    return count / (time.perf_counter() - started)


def _wal_bytes(side: RawSide, action: Callable[[int, int], None], count: int, first: int) -> float:
    """WAL bytes per operation of ``count`` operations, checkpoints off meanwhile."""
    conn = side.store.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        action(count, first)
        return os.path.getsize(side.path + "-wal") / count
    finally:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA wal_autocheckpoint = 10000")


def measure(
    variants: list[Variant], stored: int, ops: int, rounds: int, where: str
) -> dict[tuple[str, str], Figures]:
    """Every variant's figures on both sides (raw only for WITHOUT ROWID)."""
    sides: dict[tuple[str, str], RawSide | EngineSide] = {}
    for variant in variants:
        sides[variant.name, "raw sqlite3"] = RawSide(
            os.path.join(where, f"raw-{len(sides)}.db"), variant, stored
        )
        if not variant.without_rowid:
            sides[variant.name, "chimeway_lite"] = EngineSide(
                os.path.join(where, f"engine-{len(sides)}.db"), variant, stored
            )
    figures = {key: Figures() for key in sides}
    first = 10 * stored + 10_000
    try:
        for _ in range(rounds):
            for key, side in sides.items():
                figures[key].triggers.append(_per_second(side.triggers, ops, first))
                figures[key].journeys.append(_per_second(side.journeys, ops, first))
                first += ops
        for key, side in sides.items():
            if isinstance(side, RawSide):
                sample = max(10, ops // 10)
                figures[key].wal_trigger = _wal_bytes(side, side.triggers, sample, first)
                figures[key].wal_journey = _wal_bytes(side, side.journeys, sample, first + sample)
                first += 2 * sample
    finally:
        for side in sides.values():
            side.close()
    for key, side in sides.items():
        figures[key].file_mib = os.path.getsize(side.path) / 2**20
        rows = count_rows(side.path)
        expected = (
            stored + rounds * ops * 2 + (2 * max(10, ops // 10) if key[1] == "raw sqlite3" else 0)
        )
        if rows["notifications"] != expected:
            raise SystemExit(f"{key}: {rows['notifications']} notifications, {expected} written")
    return figures


def table(figures: dict[tuple[str, str], Figures]) -> str:
    """The Markdown table of the figures."""

    lines = [
        "| layout | side | triggers/s | journeys/s | WAL KiB per trigger | WAL KiB per "
        "journey | file MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (name, side), f in figures.items():
        wal = (
            (f"{f.wal_trigger / 1024:.1f}", f"{f.wal_journey / 1024:.1f}")
            if side == "raw sqlite3"
            else ("", "")
        )
        cells = [name, side, median_and_rounds(f.triggers), median_and_rounds(f.journeys)]
        cells += [*wal, f"{f.file_mib:.1f}"]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=10_000, help="journeys stored first")
    parser.add_argument("--ops", type=int, default=1000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--page-sizes", default="1024,2048,4096,8192")
    parser.add_argument("--smoke", action="store_true", help="a few operations, for the tests")
    args = parser.parse_args(argv)
    if args.smoke:
        args.stored, args.ops, args.rounds, args.page_sizes = 200, 30, 1, "1024,4096"
    sizes = [int(size) for size in args.page_sizes.split(",")]
    variants = [Variant(size) for size in sizes] + [Variant(4096, without_rowid=True)]
    where = tempfile.mkdtemp(prefix="page-layout-")
    try:
        figures = measure(variants, args.stored, args.ops, args.rounds, where)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    print(
        f"{args.stored:,} journeys stored; {args.ops:,} triggers and {args.ops:,} journeys per "
        f"round; {args.rounds} rounds (median, then each round)\n"
    )
    print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
