"""A lever measured on its own: triggers/s and journeys/s of one code tree on a copy of a big
store, for alternating runs of two variants (two checkouts, or two pragma settings).

    python benchmarks/ab.py ROOT build DIR [RUNS]      # DIR/base.db: a store of RUNS runs
    python benchmarks/ab.py ROOT run DIR [N]           # N triggers, then N / 2 journeys
    python benchmarks/ab.py ROOT run DIR [N] all|raw   # … and outcomes, batches (raw: sqlite3)
    python benchmarks/ab.py ROOT count                 # statements per operation, new file

``ROOT`` is the checkout whose ``chimeway_lite`` (and ``benchmarks/``) is measured, so a
store is built by the code that reads it (its schema version). ``run`` copies ``DIR/base.db``,
reads it once (warm page cache), opens it with the store, applies the pragmas of
``CHIMEWAY_AB_PRAGMAS`` (``;``-separated, e.g. ``wal_autocheckpoint=1000``) to the store's
connection, and prints one JSON line. The journeys start a day before the built store's
waiting runs are due, so the sweep moves theirs only. Alternate the variants yourself, e.g.
``for i in 1 2 3; do for v in a b; do ...; done; done``, and compare pair by pair.

``run … all`` measures, in this order: ``trigger`` (N triggers one by one, 30 days after the built
store's instant); ``outcome`` (claims of 100 over those N deliveries and one
``record_outcome(succeeded)`` each, only the record_outcome calls timed: each run enters its
wait); ``journeys`` (N / 2 full journeys one by one, a day before the store's waiting runs
are due) and ``batches`` (N / 2 full journeys in batches of 100: ``trigger_many``,
``record_outcomes``, the sweep 100 runs per transaction, two days before). With ``raw``
last, the same loops run on plain sqlite3 (``raw_side.RawStore``) on the same copy.

``count`` prints the statements SQLite runs per operation on a new file (every statement of
``set_trace_callback``: BEGIN and COMMIT included, each row of an ``executemany`` counted):
per trigger, per record_outcome, per journey one by one and per journey in batches of 100.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import datetime, timedelta
from typing import Any


def main(argv: list[str]) -> int:
    """Build or measure (see the module docstring)."""
    root, mode = argv[:2]
    folder = argv[2] if len(argv) > 2 else ""
    sys.path[:0] = [root, os.path.join(root, "benchmarks")]
    import bulk
    import engine_side
    from shapes import T0, WORKFLOW

    import chimeway_lite

    if not os.path.abspath(chimeway_lite.__file__).startswith(os.path.abspath(root)):
        raise SystemExit(f"chimeway_lite comes from {chimeway_lite.__file__}, not {root}")
    if mode == "count":
        return _count(engine_side, T0, WORKFLOW)
    base = os.path.join(folder, "base.db")
    if mode == "build":
        started = time.perf_counter()
        bulk.build(base, int(argv[3]) if len(argv) > 3 else 100_000)
        print(f"built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        return 0
    count = int(argv[3]) if len(argv) > 3 else 2000
    raw = len(argv) > 4 and argv[4] == "raw"
    everything = raw or (len(argv) > 4 and argv[4] == "all")
    work = os.path.join(folder, "work.db")
    for suffix in ("", "-wal", "-shm", "-lock"):
        if os.path.exists(work + suffix):
            os.remove(work + suffix)
    shutil.copyfile(base, work)
    with open(work, "rb") as data:
        while data.read(1 << 24):
            pass
    if raw:
        import raw_side

        print(json.dumps(_raw(raw_side.RawStore(work), count, T0)))
        return 0
    store, clock = engine_side.open_store(work, T0)
    for pragma in filter(None, os.environ.get("CHIMEWAY_AB_PRAGMAS", "").split(";")):
        store.connection.execute("PRAGMA " + pragma)
    store.upsert_definition("welcome", WORKFLOW)
    if not everything:
        started = time.perf_counter()
        for i in range(count):
            engine_side.trigger(store, "tenant-ab", f"user-{i}", f"ab-{i}")
        triggers = count / (time.perf_counter() - started)
        started = time.perf_counter()
        engine_side.journeys(store, clock, count // 2, T0 - timedelta(days=1), 100)
        journeys = (count // 2) / (time.perf_counter() - started)
        store.close()
        print(json.dumps({"trigger": triggers, "journeys": journeys}))
        return 0
    from chimeway_lite import DeliveryStatus

    clock.instant = T0 + timedelta(days=30)
    started = time.perf_counter()
    for i in range(count):
        engine_side.trigger(store, "tenant-ab", f"user-{i}", f"ab-{i}")
    triggers = count / (time.perf_counter() - started)
    spent = 0.0
    recorded = 0
    while claimed := store.claim_deliveries(100):
        started = time.perf_counter()
        for delivery in claimed:
            store.record_outcome(delivery.id, DeliveryStatus.SUCCEEDED)
        spent += time.perf_counter() - started
        recorded += len(claimed)
    half = count // 2
    started = time.perf_counter()
    engine_side.journeys(store, clock, half, T0 - timedelta(days=1), 100)
    journeys = half / (time.perf_counter() - started)
    started = time.perf_counter()
    engine_side.batched_journeys(store, clock, half, T0 - timedelta(days=2), 100, first=half)
    batches = half / (time.perf_counter() - started)
    store.close()
    figures = {"trigger": triggers, "outcome": recorded / spent, "journeys": journeys}
    print(json.dumps({**figures, "batches": batches}))
    return 0


def _raw(raw: Any, count: int, t0: datetime) -> dict[str, float]:
    """The loops of ``run`` on plain sqlite3."""
    later = t0 + timedelta(days=30)
    started = time.perf_counter()
    for i in range(count):
        raw.trigger("tenant-ab", f"user-{i}", f"ab-{i}", later)
    triggers = count / (time.perf_counter() - started)
    spent = 0.0
    recorded = 0
    while claimed := raw.claim(100, later):
        started = time.perf_counter()
        for delivery in claimed:
            raw.succeeded(delivery[1], later)
        spent += time.perf_counter() - started
        recorded += len(claimed)
    half = count // 2
    started = time.perf_counter()
    raw.journeys(half, t0 - timedelta(days=1), 100)
    journeys = half / (time.perf_counter() - started)
    started = time.perf_counter()
    raw.batched_journeys(half, t0 - timedelta(days=2), 100, first=half)
    batches = half / (time.perf_counter() - started)
    raw.close()
    return {
        "trigger": triggers,
        "outcome": recorded / spent,
        "journeys": journeys,
        "batches": batches,
    }


def _count(engine_side: Any, t0: datetime, workflow: Any) -> int:
    """Statements per operation on a new file (see the module docstring)."""
    import tempfile

    from chimeway_lite import DeliveryStatus

    folder = tempfile.mkdtemp(prefix="chimeway-ab-")
    store, clock = engine_side.open_store(os.path.join(folder, "count.db"), t0)
    store.upsert_definition("welcome", workflow)
    seen: list[str] = []
    store.connection.set_trace_callback(seen.append)
    n = 200
    figures = {}
    clock.instant = t0 + timedelta(days=30)  # its runs are never due in the journeys below
    for i in range(n):
        engine_side.trigger(store, "tenant-count", f"user-{i}", f"count-{i}")
    figures["trigger"] = len(seen) / n
    claimed = store.claim_deliveries(n)
    seen.clear()
    for delivery in claimed:
        store.record_outcome(delivery.id, DeliveryStatus.SUCCEEDED)
    figures["record_outcome"] = len(seen) / n
    seen.clear()
    engine_side.journeys(store, clock, n, t0, 100, first=n)
    figures["journey"] = len(seen) / n
    seen.clear()
    engine_side.batched_journeys(store, clock, n, t0 - timedelta(days=1), 100, first=2 * n)
    figures["journey in batches of 100"] = len(seen) / n
    store.close()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
