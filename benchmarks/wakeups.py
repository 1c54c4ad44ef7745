"""How soon a sleeping worker sends what another process triggers, and what the wake costs
(CONTRACT §15: LISTEN/NOTIFY on PostgreSQL).

    python benchmarks/wakeups.py             # 30 wakes per backend, 9 interleaved A/B runs
    python benchmarks/wakeups.py --smoke     # 3 wakes, 1 run each (the test)
    CHIMEWAY_BENCH_POSTGRES=postgresql://… python benchmarks/wakeups.py   # your server

Latency: a ``Worker`` runs in a thread of this process, idle and sleeping (``max_sleep``
below); a child process triggers a one-email journey, one at a time, at random moments; each
figure is the time from the trigger's return in the child to the sender's call in the worker
(both read ``time.time()`` on one machine). On SQLite the worker wakes at its ``max_sleep``
(nothing tells it); on PostgreSQL the trigger's commit notifies it.

Cost: ``Store.trigger`` one call at a time on PostgreSQL with the unit's commit as shipped
(``SELECT pg_notify(…); COMMIT``, one round trip) against a plain ``COMMIT``, interleaved,
each run on a fresh schema; the median of the runs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import pg_server
from dbos_postgres import starts

from chimeway_lite import Delivery, Step, Store, Worker, Workflow
from chimeway_lite.backends.postgres import backend as postgres_backend
from chimeway_lite.backends.postgres.listener import COMMIT_AND_NOTIFY

EMAIL = Workflow("email_only", 1, [Step("email", 1, "email")])
MAX_SLEEP = 2.0


def _trigger_child(location: str, count: int, stamps: Any, go: Any) -> None:
    """Trigger ``count`` journeys at random moments; put each return's time on ``stamps``."""
    rng = random.Random(7)
    with Store(location) as store:
        for i in range(count):
            go.wait()
            go.clear()
            time.sleep(rng.uniform(0.05, MAX_SLEEP))
            store.trigger(
                tenant_id="bench",
                notification_key="wake",
                recipient=f"r{i}",
                workflow=EMAIL,
                idempotency_key=f"wake-{i}",
            )
            stamps.put(time.time())


def latency(location: str, count: int) -> list[float]:
    """Seconds from each trigger's return (another process) to its send by a sleeping worker."""
    sent: list[float] = []
    arrived = threading.Event()

    def send(delivery: Delivery) -> None:
        sent.append(time.time())
        arrived.set()

    context = multiprocessing.get_context("spawn")
    stamps, go = context.Queue(), context.Event()
    with Store(location) as store:
        worker = Worker(store, {"email": send}, max_sleep=MAX_SLEEP)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        child = context.Process(target=_trigger_child, args=(location, count, stamps, go))
        child.start()
        delays = []
        try:
            for _ in range(count):
                arrived.clear()
                go.set()
                returned = stamps.get(timeout=60)
                if not arrived.wait(60):
                    raise RuntimeError("the worker never sent a delivery")
                delays.append(max(0.0, sent[-1] - returned))
        finally:
            worker.stop()
            thread.join(30)
            child.join(30)
    return delays


def trigger_rate(server: str, count: int, *, notify: bool) -> float:
    """Triggers per second on a fresh schema, with the shipped commit or a plain one."""
    postgres_backend.COMMIT_AND_NOTIFY = COMMIT_AND_NOTIFY if notify else "COMMIT"
    dsn = pg_server.fresh_database(server)
    try:
        return starts(dsn, count)
    finally:
        postgres_backend.COMMIT_AND_NOTIFY = COMMIT_AND_NOTIFY
        pg_server.drop_fresh_database(dsn)


def _ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few wakes and triggers")
    args = parser.parse_args()
    wakes, runs, triggers = (3, 1, 50) if args.smoke else (30, 9, 1000)
    server = os.environ.get("CHIMEWAY_BENCH_POSTGRES") or pg_server.postgres_dsn()
    if server is None:
        raise SystemExit(f"no PostgreSQL server: {pg_server.last_error()}")

    print(f"Wake latency: {wakes} triggers by another process, worker max_sleep {MAX_SLEEP} s\n")
    print("| backend | median ms | p90 ms | max ms |")
    print("| --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        sqlite_delays = latency(str(Path(folder) / "wake.db"), wakes)
    dsn = pg_server.fresh_database(server)
    try:
        postgres_delays = latency(dsn, wakes)
    finally:
        pg_server.drop_fresh_database(dsn)
    for name, delays in (
        ("SQLite (sleeps)", sqlite_delays),
        ("PostgreSQL (NOTIFY)", postgres_delays),
    ):
        print(f"| {name} | {_ms(delays, 0.5)} | {_ms(delays, 0.9)} | {_ms(delays, 1.0)} |")

    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for notify in (False, True):
            rates[notify].append(trigger_rate(server, triggers, notify=notify))
    plain, notified = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"\nThe wake's cost: {triggers} triggers, median of {runs} interleaved runs\n")
    print("| commit of a write unit | triggers/s | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| COMMIT | {plain:.0f} | 1.00 |")
    print(f"| SELECT pg_notify(…); COMMIT (shipped) | {notified:.0f} | {notified / plain:.2f} |")


if __name__ == "__main__":
    main()
