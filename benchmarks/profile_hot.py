"""Profile one chimeway_lite hot path with cProfile and print where the time goes.

    python benchmarks/profile_hot.py
        {trigger,journey,batch,retry,outcomes,resume,fanout,sweep,explain} [-n N]
        [--sort tottime|cumulative] [--limit 30] [--dir DIR] [--bare]

The workloads are those of run.py (same journeys, same store shapes); ``outcomes`` is one
worker's loop of the workers benchmark (claim 100, record each succeeded, over N pending
deliveries), in this process. The setup is not profiled.
``{method 'execute' of 'sqlite3.Connection'}`` and ``executemany`` are SQLite's own work
(statements and COMMIT); the rest is Python on top of it. ``--bare`` runs the workload
without cProfile, for a sampling profiler outside the process (``layers.py``).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import bulk
import engine_side
from shapes import RETRY_WORKFLOW, T0, WORKFLOW, after

from chimeway_lite import FakeClock, Store

KINDS = ("trigger", "journey", "batch", "retry", "outcomes", "resume", "fanout", "sweep", "explain")


def _setup(kind: str, path: str, n: int) -> tuple[Store, object]:
    if kind in ("resume", "fanout"):
        bulk.build_waiting(path, {"tenant-signal": max(n, 2000), "tenant-fanout": n})
        store, _ = engine_side.open_store(path, after(T0, 600))
        return store, None
    if kind in ("sweep", "explain"):
        bulk.build(path, 10_000)
    if kind == "retry":
        fake = FakeClock(T0)
        store = Store(path, clock=fake)
        store.upsert_definition("welcome", RETRY_WORKFLOW)
        return store, fake
    if kind == "outcomes":
        bulk.build_pending(path, n)
        store, _ = engine_side.open_store(path, after(T0, 60))
        return store, None
    store, clock = engine_side.open_store(path, T0)
    store.upsert_definition("welcome", WORKFLOW)
    if kind == "sweep":
        engine_side.waiting_batch(store, clock, n, "p", T0 - timedelta(seconds=7260))
    return store, clock


def measured(kind: str, store: Store, clock: object, n: int, runs: list[tuple[str, str]]) -> None:
    """The workload itself (what is profiled; ``layers.py`` keeps the samples under it)."""
    if kind == "trigger":
        for i in range(n):
            engine_side.trigger(store, "tenant-0", f"user-{i}", f"key-{i}")
    elif kind == "journey":
        engine_side.journeys(store, clock, n, T0, 100)  # type: ignore[arg-type]
    elif kind == "batch":
        engine_side.batched_journeys(store, clock, n, T0, 100)  # type: ignore[arg-type]
    elif kind == "retry":
        engine_side.retry_journeys(store, clock, n, T0, 100)  # type: ignore[arg-type]
    elif kind == "outcomes":
        engine_side.succeed_all(store, 100)
    elif kind == "resume":
        for i in range(n):
            engine_side.route(store, "tenant-signal", f"tenant-signal-user-{i}")
    elif kind == "fanout":
        engine_side.route(store, "tenant-fanout", None)
    elif kind == "sweep":
        store.progress_due_runs(now=T0)
    else:
        for run_id, tenant_id in runs:
            store.explain(tenant_id, run_id)


def main() -> int:
    """Run one workload under cProfile and print the top of the profile."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("-n", type=int, default=1000, help="how many operations")
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--dir", type=Path)
    parser.add_argument(
        "--bare", action="store_true", help="run the workload without cProfile (for py-spy)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chimeway-profile-", dir=args.dir))
    store, clock = _setup(args.kind, str(work / "profile.db"), args.n)
    runs: list[tuple[str, str]] = []
    if args.kind == "explain":
        conn = store.connection
        runs = conn.execute(
            "SELECT id, tenant_id FROM workflow_runs ORDER BY random() LIMIT ?", (args.n,)
        ).fetchall()
    if args.bare:  # for a sampling profiler outside the process (layers.py)
        with store:
            measured(args.kind, store, clock, args.n, runs)
        return 0
    profile = cProfile.Profile()
    with store:
        profile.enable()
        measured(args.kind, store, clock, args.n, runs)
        profile.disable()
    stats = pstats.Stats(profile, stream=sys.stdout)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
