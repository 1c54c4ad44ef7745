"""A lever measured on its own: triggers/s and journeys/s of one code tree on a copy of a big
store, for alternating runs of two variants (two checkouts, or two pragma settings).

    python benchmarks/ab.py ROOT build DIR [RUNS]      # DIR/base.db: a store of RUNS runs
    python benchmarks/ab.py ROOT run DIR [N]           # N triggers, then N / 2 journeys

``ROOT`` is the checkout whose ``chimeway_lite`` (and ``benchmarks/``) is measured, so a
store is built by the code that reads it (its schema version). ``run`` copies ``DIR/base.db``,
reads it once (warm page cache), opens it with the store, applies the pragmas of
``CHIMEWAY_AB_PRAGMAS`` (``;``-separated, e.g. ``wal_autocheckpoint=1000``) to the store's
connection, and prints one JSON line. The journeys start a day before the built store's
waiting runs are due, so the sweep moves theirs only. Alternate the variants yourself, e.g.
``for i in 1 2 3; do for v in a b; do ...; done; done``, and compare pair by pair.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import timedelta


def main(argv: list[str]) -> int:
    """Build or measure (see the module docstring)."""
    root, mode, folder = argv[:3]
    sys.path[:0] = [root, os.path.join(root, "benchmarks")]
    import bulk
    import engine_side
    from shapes import T0, WORKFLOW

    import chimeway_lite

    if not os.path.abspath(chimeway_lite.__file__).startswith(os.path.abspath(root)):
        raise SystemExit(f"chimeway_lite comes from {chimeway_lite.__file__}, not {root}")
    base = os.path.join(folder, "base.db")
    if mode == "build":
        started = time.perf_counter()
        bulk.build(base, int(argv[3]) if len(argv) > 3 else 100_000)
        print(f"built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        return 0
    count = int(argv[3]) if len(argv) > 3 else 2000
    work = os.path.join(folder, "work.db")
    for suffix in ("", "-wal", "-shm", "-lock"):
        if os.path.exists(work + suffix):
            os.remove(work + suffix)
    shutil.copyfile(base, work)
    with open(work, "rb") as data:
        while data.read(1 << 24):
            pass
    store, clock = engine_side.open_store(work, T0)
    for pragma in filter(None, os.environ.get("CHIMEWAY_AB_PRAGMAS", "").split(";")):
        store.connection.execute("PRAGMA " + pragma)
    store.upsert_definition("welcome", WORKFLOW)
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
