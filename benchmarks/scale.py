"""What a store's size costs: explain, a signal's fan-out and verify on a small store and on a
big one (issue 16: "fan-out at 1 M vs 10 K; explain stays flat; verify at 1 M ≤ 60 s").

    python benchmarks/scale.py                       # 10 K and 1 M runs, 5 repetitions
    python benchmarks/scale.py --big 100000          # 10 K and 100 K
    python benchmarks/scale.py --keep DIR            # build the stores once, reuse them
    python benchmarks/scale.py --no-verify           # skip verify (minutes at 1 M)
    python benchmarks/scale.py --verify-workers 1,2,4  # verify in 1, 2, 4 processes
    python benchmarks/scale.py --smoke               # tiny stores, one repetition (the test)

Both stores are built by ``bulk.build`` (finished journeys and runs waiting for their two hours,
over 100 tenants) and hold exactly ``--small`` and ``--big`` runs, of which ``2 * reps *
--fanout`` wait for ``notification_read`` in tenants of their own (``bulk.build_waiting``): one
tenant per side and repetition, so each fan-out resumes runs no signal has touched. The
fan-outs move those runs from waiting to active (the run count stays), so they run on copies
of the built stores, and ``--keep`` can measure the same stores again.

Each repetition, on each store in turn: ``explain`` of 400 runs picked at random (the same
runs for both sides, which take turns call by call; p50), then ``route_signal`` for one
tenant, resuming its ``--fanout`` runs (chimeway_lite, and raw sqlite3 doing the same writes
on the other tenant, ``raw_side.RawStore``). The ratio of each repetition is the big store's
figure over the small one's; the table shows medians and each repetition's ratio. The OS page
cache is warmed by reading both files first. Then ``verify(quick=True)`` and ``verify()`` once
on each store for each count of ``--verify-workers`` (``Store.verify(workers=N)``; after the
fan-outs; chimeway_lite only: raw sqlite3 has nothing to compare).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bulk
import engine_side
from raw_side import RawStore
from run import _explains, _label, _warm
from shapes import T0, after

from chimeway_lite import Store

EXPLAINS = 400


def build(path: str, runs: int, groups: dict[str, int]) -> None:
    """A store of ``runs`` runs in all, ``groups`` of them waiting in tenants of their own."""
    bulk.build(path, runs - sum(groups.values()))
    bulk.build_waiting(path, groups)


def groups_of(reps: int, fanout: int) -> dict[str, int]:
    """The fan-out tenants: one per side and repetition."""
    return {f"fanout-{side}-{rep}": fanout for rep in range(reps) for side in ("engine", "raw")}


def fanout_rate(path: str, rep: int, expected: int) -> tuple[float, float]:
    """Runs resumed per second by one route_signal: chimeway_lite, raw sqlite3."""
    at = after(T0, 600)
    store, _ = engine_side.open_store(path, at)
    raw = RawStore(path)
    rates = {}
    with store:
        calls = {
            "engine": lambda: engine_side.route(store, f"fanout-engine-{rep}", None),
            "raw": lambda: raw.route_signal(f"fanout-raw-{rep}", None, at),
        }
        for side in ("engine", "raw") if rep % 2 else ("raw", "engine"):
            started = time.perf_counter()
            resumed = calls[side]()
            elapsed = time.perf_counter() - started
            if resumed != expected:
                raise SystemExit(f"{side}: route_signal resumed {resumed} runs, not {expected}")
            rates[side] = resumed / elapsed
    raw.close()
    return rates["engine"], rates["raw"]


def verify_seconds(path: str, quick: bool, workers: int = 1) -> float:
    """How long Store.verify takes on the store (and that it finds nothing)."""
    with Store(path) as store:
        started = time.perf_counter()
        found = store.verify(quick=quick, workers=workers)
        elapsed = time.perf_counter() - started
    if found:
        raise SystemExit(f"verify found problems in {path}: {found[:3]}")
    return elapsed


def _row(name: str, unit: str, small: list[float], big: list[float]) -> str:
    """A table row: both medians, and the big store's figure over the small one's, taken per
    repetition (for a time: the cost at big ÷ the cost at small; for a rate: the speed)."""
    ratios = [b / s for s, b in zip(small, big, strict=True)]
    each = ", ".join(f"{r:.2f}" for r in ratios)
    return (
        f"| {name} | {unit} | {statistics.median(small):,.1f} | {statistics.median(big):,.1f} "
        f"| **{statistics.median(ratios):.2f}** ({each}) |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--fanout", type=int, default=500, help="runs one signal resumes")
    parser.add_argument("--keep", type=Path, help="a folder to build the stores in, or reuse")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument(
        "--verify-workers",
        default="1,2",
        help="comma-separated worker counts for verify (Store.verify(workers=N))",
    )
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.small, args.big, args.reps, args.fanout = 600, 1_200, 1, 20
    groups = groups_of(args.reps, args.fanout)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for size in (args.small, args.big):
            path = folder / f"scale-{size}-{args.reps}x{args.fanout}.db"
            if not path.exists():
                started = time.perf_counter()
                build(str(path) + ".part", size, groups)
                os.replace(str(path) + ".part", path)
                Path(str(path) + ".part-lock").unlink(missing_ok=True)
                print(f"built {_label(size)} runs in {time.perf_counter() - started:.0f} s")
            # measured on a copy: the fan-outs resume the built store's waiting tenants
            measured = folder / f"measured-{size}.db"
            shutil.copyfile(path, measured)
            paths[size] = str(measured)
        for path in paths.values():
            _warm(path)
        explains: dict[tuple[int, str], list[float]] = {}
        fanouts: dict[tuple[int, str], list[float]] = {}
        for rep in range(args.reps):
            for size, path in paths.items():
                e, r = _explains(path, EXPLAINS, rep)
                explains.setdefault((size, "engine"), []).append(e)
                explains.setdefault((size, "raw"), []).append(r)
                e, r = fanout_rate(path, rep, args.fanout)
                fanouts.setdefault((size, "engine"), []).append(e)
                fanouts.setdefault((size, "raw"), []).append(r)
        small, big = _label(args.small), _label(args.big)
        print(f"\n{args.reps} repetitions; ratio = the {big} store's figure ÷ the {small} one's\n")
        print(f"| operation | unit | {small} runs | {big} runs | ratio (each repetition) |")
        print("|---|---|---:|---:|---:|")
        measured = (
            ("explain p50", "µs", explains),
            (f"route_signal resuming {args.fanout} runs", "runs/s", fanouts),
        )
        for what, unit, figures in measured:
            for side, name in (("engine", "chimeway_lite"), ("raw", "raw sqlite3")):
                small_figures, big_figures = figures[(args.small, side)], figures[(args.big, side)]
                print(_row(f"{what}, {name}", unit, small_figures, big_figures))
        if not args.no_verify:
            print("\n| verify | " + " | ".join(f"{_label(s)} runs, s" for s in paths) + " |")
            print("|---|" + "---:|" * len(paths))
            for quick in (True, False):
                for workers in [int(n) for n in args.verify_workers.split(",")]:
                    seconds = [verify_seconds(path, quick, workers) for path in paths.values()]
                    name = "verify(quick=True" if quick else "verify("
                    name += f"{', ' if quick else ''}workers={workers})" if workers > 1 else ")"
                    print(f"| {name} | " + " | ".join(f"{s:.1f}" for s in seconds) + " |")
        for path in paths.values():
            for suffix in ("", "-wal", "-shm", "-lock"):
                Path(path + suffix).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
