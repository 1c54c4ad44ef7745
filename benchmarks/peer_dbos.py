"""The peer: the same journey shapes on DBOS Transact with its SQLite system database.

Run by run.py with an interpreter that has ``dbos`` installed (it needs nothing else, not even
chimeway_lite); prints one JSON line. DBOS runs with its defaults, as a user would start it:

* starts/s: a one-step workflow (the step plans the in-app message) called N times, each
  call durable before it returns — the counterpart of a trigger;
* signal resume latency: a journey workflow plans the in-app message and waits in
  ``DBOS.recv("notification_read", timeout_seconds=7200)``; the benchmark sends it the
  message and times until the workflow has finished (``handle.get_result()``). With SQLite,
  DBOS finds new messages by polling (``notification_listener_polling_interval_sec``,
  default 1 s), so this is mostly that interval.

Each is measured twice: with DBOS's own SQLite settings (rollback journal, synchronous
FULL: an fsync per commit) and with chimeway_lite's (WAL, synchronous NORMAL), through a
``system_database_engine`` that sets what DBOS's own engine sets plus those two pragmas.

With ``--postgres URL`` (one URL per run, comma-separated: each run on a database of its
own) it measures DBOS on PostgreSQL instead, its home backend, with its defaults; there
``recv`` is woken by LISTEN/NOTIFY (``benchmarks/dbos_postgres.py`` runs it).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

EVENT = "notification_read"


@DBOS.step()
def plan_delivery(recipient: str, channel: str) -> str:
    """Plan a delivery (the durable step output stands for the outbox row)."""
    return f"{channel}:{recipient}"


@DBOS.workflow()
def one_step(recipient: str) -> str:
    """A trigger's worth of work: start, one step, finish."""
    return plan_delivery(recipient, "in_app")


WAITING = threading.Event()


@DBOS.workflow()
def journey(recipient: str) -> str:
    """In-app now; email in two hours unless the recipient reads it first."""
    plan_delivery(recipient, "in_app")
    WAITING.set()
    read = DBOS.recv(EVENT, timeout_seconds=7200)
    if read is None:
        plan_delivery(recipient, "email")
        return "emailed"
    return "cancelled_by_signal"


def _wait_until_receiving() -> None:
    # The workflow must be parked in recv before the message is sent, or the measurement
    # would include its start: it sets WAITING just before recv, and gets a moment more.
    if not WAITING.wait(30):
        raise TimeoutError("the journey never reached recv")
    WAITING.clear()
    time.sleep(0.05)


def measure(starts: int, signals: int) -> tuple[float, float]:
    """(one-step workflow starts per second, median signal-to-finished latency in ms)."""
    started = time.perf_counter()
    for i in range(starts):
        one_step(f"user-{i}")
    rate = starts / (time.perf_counter() - started)
    latencies = []
    for i in range(signals):
        workflow_id = str(uuid.uuid4())
        with SetWorkflowID(workflow_id):
            handle = DBOS.start_workflow(journey, f"reader-{i}")
        _wait_until_receiving()
        sent = time.perf_counter()
        DBOS.send(workflow_id, "read", EVENT)
        outcome = handle.get_result()
        latencies.append(time.perf_counter() - sent)
        if outcome != "cancelled_by_signal":
            raise RuntimeError(f"the journey ended {outcome!r}")
    return rate, statistics.median(latencies) * 1000


def _same_pragmas_engine(url: str) -> Any:
    """An engine like DBOS's own SQLite engine, with WAL and synchronous NORMAL added."""
    import sqlalchemy as sa
    from sqlalchemy import event

    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"  # as DBOS does
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    return engine


def main() -> int:
    """Run ``--runs`` repetitions, each on a new SQLite file, and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--starts", type=int, default=500)
    parser.add_argument("--signals", type=int, default=10)
    parser.add_argument("--postgres", default=None, help="database URLs, one per run")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.postgres:
        return _on_postgres(args.postgres.split(","), args.starts, args.signals)
    folder = Path(tempfile.mkdtemp(prefix="dbos-peer-", dir=args.dir))
    results: dict[str, Any] = {"version": version("dbos")}
    for rep in range(args.runs):
        for mode in ("default", "wal"):
            url = f"sqlite:///{folder / f'peer-{mode}-{rep}.sqlite'}"
            config: dict[str, Any] = {
                "name": "chimeway-peer",
                "system_database_url": url,
                "log_level": "WARNING",
            }
            if mode == "wal":
                config["system_database_engine"] = _same_pragmas_engine(url)
            DBOS(config=config)  # type: ignore[arg-type]
            DBOS.launch()
            try:
                rate, resume = measure(args.starts, args.signals)
            finally:
                DBOS.destroy()
            results.setdefault(f"starts_per_s_{mode}", []).append(rate)
            results.setdefault(f"resume_ms_{mode}", []).append(resume)
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(results))
    return 0


def _on_postgres(urls: list[str], starts: int, signals: int) -> int:
    """One run per database URL, DBOS's defaults; print JSON."""
    results: dict[str, Any] = {"version": version("dbos")}
    for url in urls:
        config: dict[str, Any] = {
            "name": "chimeway-peer",
            "system_database_url": url,
            "log_level": "WARNING",
        }
        DBOS(config=config)  # type: ignore[arg-type]
        DBOS.launch()
        try:
            rate, resume = measure(starts, signals)
        finally:
            DBOS.destroy()
        results.setdefault("starts_per_s_postgres", []).append(rate)
        results.setdefault("resume_ms_postgres", []).append(resume)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
