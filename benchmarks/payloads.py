"""What a notification's data costs: triggers, and claims with their outcomes, per second by
payload size, against raw sqlite3.

A host's data is checked (plain JSON, valid Unicode, at most 32 levels, at most 64 KiB as
canonical JSON) and written as canonical JSON in the notification row; raw sqlite3 writes
the same rows and serialises the same data the same way (``json.dumps`` with sorted keys,
compact separators), without checking it. The payload is a small record with a list of
short strings, of about 0, 1, 10 and 30 KB as JSON. Then every delivery those triggers
planned is claimed, 100 per claim, and its outcome recorded, one unit each: the outcome
leaves the run waiting, so the engine checks for a read that came early
(:func:`engine_side.succeed_all`; raw sqlite3's :meth:`~raw_side.RawStore.succeed_all`
neither reads the data with its claim nor looks for early signals). The sizes and the sides
take turns for ``--rounds`` rounds; the table gives medians and each round's figure.

    python benchmarks/payloads.py                  # 1,000 triggers per size and round, 3 rounds
    python benchmarks/payloads.py --triggers 3000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import engine_side
from raw_side import RawStore
from shapes import T0, count_rows, median_and_rounds

from chimeway_lite.core.text import canonical_json

#: Payload sizes measured, in bytes of canonical JSON (about).
SIZES = (0, 1000, 10_000, 30_000)


def payload(size: int) -> dict[str, Any]:
    """Data of about ``size`` bytes as canonical JSON (empty for 0)."""
    if size == 0:
        return {}
    items = [f"item-{i:06d}" for i in range(max(1, (size - 40) // 14))]
    return {"user": {"name": "Ada", "plan": "pro"}, "items": items}


#: What is measured, by column of the table.
MEASURES = ("trigger", "outcome")
SIDES = ("chimeway_lite", "raw sqlite3")

Figures = dict[tuple[int, str, str], list[float]]


def measure(triggers: int, rounds: int, where: str) -> Figures:
    """Operations per second per payload size, measure and side, one figure per round."""
    figures: Figures = {
        (size, what, side): [] for size in SIZES for what in MEASURES for side in SIDES
    }
    store, _ = engine_side.open_store(os.path.join(where, "engine.db"), T0)
    raw = RawStore(os.path.join(where, "raw.db"))
    first = 0
    try:
        for _ in range(rounds):
            for size in SIZES:
                data = payload(size)
                started = time.perf_counter()
                for i in range(first, first + triggers):
                    engine_side.trigger(store, "tenant-data", f"user-{i}", f"data-{i}", data=data)
                figures[size, "trigger", SIDES[0]].append(triggers / _since(started))
                started = time.perf_counter()
                for i in range(first, first + triggers):
                    raw.trigger("tenant-data", f"user-{i}", f"data-{i}", T0, data=data)
                figures[size, "trigger", SIDES[1]].append(triggers / _since(started))
                started = time.perf_counter()
                done = engine_side.succeed_all(store, 100)
                figures[size, "outcome", SIDES[0]].append(done / _since(started))
                started = time.perf_counter()
                raw_done = raw.succeed_all(100, T0)
                figures[size, "outcome", SIDES[1]].append(raw_done / _since(started))
                if done != triggers or raw_done != triggers:
                    raise SystemExit(f"outcomes recorded: {done} and {raw_done} of {triggers}")
                first += triggers
    finally:
        store.close()
        raw.close()
    for side in ("engine", "raw"):
        found = count_rows(os.path.join(where, f"{side}.db"))["notifications"]
        if found != first:
            raise SystemExit(f"{side}: {found} notifications, {first} written")
    return figures


def _since(started: float) -> float:
    return time.perf_counter() - started


def table(figures: Figures) -> str:
    """The Markdown table of the figures."""

    lines = [
        "| data as JSON | chimeway_lite triggers/s | raw sqlite3 triggers/s | speed vs raw "
        "| chimeway_lite outcomes/s | raw sqlite3 outcomes/s | speed vs raw |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        cells = [f"{len(canonical_json(payload(size)).encode('utf-8')):,} B"]
        for what in MEASURES:
            engine, raw = figures[size, what, SIDES[0]], figures[size, what, SIDES[1]]
            ratio = statistics.median(e / r for e, r in zip(engine, raw, strict=True))
            cells += [median_and_rounds(engine), median_and_rounds(raw), f"{ratio:.2f}"]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=1000, help="per size, side and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    where = tempfile.mkdtemp(prefix="payloads-")
    try:
        figures = measure(args.triggers, args.rounds, where)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    print(
        f"{args.triggers:,} triggers, then claims and outcomes, per size, side and round; "
        f"{args.rounds} rounds\n"
    )
    print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
