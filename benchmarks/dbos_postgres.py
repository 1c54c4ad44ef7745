"""chimeway_lite on PostgreSQL against DBOS Transact on PostgreSQL, its home backend.

    python benchmarks/dbos_postgres.py --peer-python ~/dbos-peer/bin/python    # 3 runs
    python benchmarks/dbos_postgres.py --peer-python … --smoke                 # a few rows
    CHIMEWAY_BENCH_POSTGRES=postgresql://… python benchmarks/dbos_postgres.py …  # your server

Both on the same server (without ``CHIMEWAY_BENCH_POSTGRES``: a throwaway cluster of the
distribution's PostgreSQL, ``tests/pg_server.py``), each run on a database of its own:

* starts/s: ``Store.trigger`` of the escalation journey one call at a time (notification,
  run, trace, the in-app delivery; durable when it returns) against a one-step DBOS workflow
  called N times (``benchmarks/peer_dbos.py``: the step plans the in-app message);
* signal → finished: the journey waits for ``notification_read``; the time from sending the
  signal to the run being finished. chimeway_lite: ``route_signal`` in one Store, and a
  ``Worker`` of another Store, asleep (``max_sleep`` 60 s), woken by the commit's NOTIFY,
  progresses the run to ``completed``. DBOS: ``DBOS.send`` to a workflow parked in
  ``DBOS.recv`` (woken by its own LISTEN/NOTIFY), until ``handle.get_result()`` returns.

Medians of ``--runs`` runs; DBOS's interpreter comes from ``--peer-python`` or
``$CHIMEWAY_BENCH_PEER_PYTHON`` (install ``dbos`` and ``psycopg[binary]`` there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import pg_server
from factories import escalation_workflow

from chimeway_lite import Delivery, Handled, Signal, Store, Worker

HERE = Path(__file__).resolve().parent


def _server() -> str:
    found = os.environ.get("CHIMEWAY_BENCH_POSTGRES") or pg_server.postgres_dsn()
    if found is None:
        raise SystemExit(f"no PostgreSQL server: {pg_server.last_error()}")
    return found


def starts(location: str, count: int) -> float:
    """Triggers per second, one at a time (the definition registered before the timing)."""
    workflow = escalation_workflow()
    with Store(location) as store:
        store.trigger(
            tenant_id="bench",
            notification_key="n",
            recipient="warm",
            workflow=workflow,
            idempotency_key="warm",
        )
        started = time.perf_counter()
        for i in range(count):
            store.trigger(
                tenant_id="bench",
                notification_key="n",
                recipient=f"r{i}",
                workflow=workflow,
                idempotency_key=f"k{i}",
            )
        return count / (time.perf_counter() - started)


def resume_ms(location: str, count: int) -> float:
    """Median ms from route_signal to the run completed by a worker that was asleep."""
    finished = threading.Event()

    def on_pass(handled: Handled, pause: float | None) -> None:
        if handled.runs:
            finished.set()

    def unexpected(delivery: Delivery) -> None:
        raise RuntimeError("no email is due in this benchmark")

    latencies = []
    with Store(location) as store, Store(location) as workers_store:
        worker = Worker(workers_store, {"email": unexpected}, max_sleep=60)
        thread = threading.Thread(target=lambda: worker.run(on_pass=on_pass), daemon=True)
        thread.start()
        try:
            for i in range(count):
                recipient = f"reader-{i}"
                store.trigger(
                    tenant_id="bench",
                    notification_key="n",
                    recipient=recipient,
                    workflow=escalation_workflow(),
                    idempotency_key=f"read-{i}",
                )
                (in_app,) = store.claim_deliveries(channel="in_app")
                store.record_outcome(in_app.id, "succeeded")  # waits 2 h for the read
                time.sleep(0.2)  # the worker has looked and is asleep again
                finished.clear()
                sent = time.perf_counter()
                resumed = store.route_signal(Signal("bench", "notification_read", recipient))
                if not finished.wait(60):
                    raise RuntimeError("the worker never finished the run")
                latencies.append(time.perf_counter() - sent)
                (run_id,) = resumed
                if store.explain("bench", run_id).state != "completed":
                    raise RuntimeError("the run did not complete")
        finally:
            worker.stop()
            thread.join(30)
    return statistics.median(latencies) * 1000


def peer(python: str, urls: list[str], count: int, signals: int) -> dict[str, Any]:
    """DBOS on PostgreSQL in its own interpreter: one run per URL."""
    done = subprocess.run(
        [
            python,
            str(HERE / "peer_dbos.py"),
            "--postgres",
            ",".join(urls),
            "--starts",
            str(count),
            "--signals",
            str(signals),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"the DBOS peer failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a few rows")
    parser.add_argument("--peer-python", default=os.environ.get("CHIMEWAY_BENCH_PEER_PYTHON"))
    args = parser.parse_args()
    runs, count, signals = (1, 20, 2) if args.smoke else (args.runs, 500, 10)
    server = _server()

    ours_starts, ours_resume = [], []
    for _ in range(runs):
        for measure, out, size in ((starts, ours_starts, count), (resume_ms, ours_resume, signals)):
            location = pg_server.fresh_database(server, kind="database")
            try:
                out.append(measure(location, size))
            finally:
                pg_server.drop_fresh_database(location)
    theirs: dict[str, Any] | None = None
    if args.peer_python:
        urls = [pg_server.fresh_database(server, kind="database") for _ in range(runs)]
        try:
            theirs = peer(args.peer_python, urls, count, signals)
        finally:
            for url in urls:
                pg_server.drop_fresh_database(url)

    version = theirs["version"] if theirs else "(not measured)"
    print(f"PostgreSQL, {count} starts and {signals} signals per run, medians of {runs} run(s)\n")
    print(f"| operation | chimeway_lite | DBOS {version} | chimeway_lite ahead by |")
    print("| --- | ---: | ---: | ---: |")
    rate, resume = statistics.median(ours_starts), statistics.median(ours_resume)
    if theirs is None:
        print(f"| starts/s | {rate:,.0f} | - | - |")
        print(f"| signal → finished, ms | {resume:,.1f} | - | - |")
        print("\nDBOS: not measured (give --peer-python an interpreter with dbos installed).")
        return
    their_rate = statistics.median(theirs["starts_per_s_postgres"])
    their_resume = statistics.median(theirs["resume_ms_postgres"])
    print(f"| starts/s | {rate:,.0f} | {their_rate:,.0f} | {rate / their_rate:.1f}x |")
    print(
        f"| signal → finished, ms | {resume:,.1f} | {their_resume:,.1f} | "
        f"{their_resume / resume:.2f}x |"
    )


if __name__ == "__main__":
    main()
