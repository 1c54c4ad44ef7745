"""The child processes of ``test_worker_processes``: real :class:`~chimeway_lite.Worker` s on
one store file, each logging every send to a file of its own.

:func:`work` is a top-level function, so that a ``spawn`` child (a fresh interpreter) can
import it by name. Each send appends two JSON lines to the process's log — ``start`` (before
sending: delivery id, attempt, pid, time, lease expiry) and ``end`` (after) — each written
through to the file before the worker goes on, so that a process killed mid-send leaves its
``start`` behind. A ``victim`` hangs in its first send, holding the delivery, until the
parent SIGKILLs it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
from typing import Any

from chimeway_lite import Delivery, Retry, Step, Store, WaitUntil, Worker, Workflow

SPAWN = multiprocessing.get_context("spawn")

#: Two steps: a push, then (1 s after the push's outcome, whatever it was) an email, which is
#: retried 3 times 1 s apart, then 2 s.
JOURNEY = Workflow(
    "worker_journey",
    1,
    [
        Step("push", 1, "push", progress=[WaitUntil(1, "email")]),
        Step("email", 2, "email", retry=Retry(3, 1)),
    ],
)
CHANNELS = ("push", "email")


def fails(delivery: Delivery) -> bool:
    """Whether a healthy sender fails this send: a quarter of the emails, on attempt 1 only
    (so no delivery can reach its last attempt through failures and a kill together)."""
    return (
        delivery.channel == "email" and delivery.attempt == 1 and int(delivery.id[-1], 16) % 4 == 0
    )


def work(path: str, log_path: str, role: str, lease_seconds: int, max_sleep: float) -> None:
    """Run a Worker on ``path`` until SIGTERM (``role`` "healthy") or SIGKILL ("victim")."""
    pid = os.getpid()
    rng = random.Random(pid)
    with open(log_path, "a", encoding="utf-8") as log:

        def write(**fields: Any) -> None:
            log.write(json.dumps(fields) + "\n")
            log.flush()  # in the kernel's hands: it survives a SIGKILL

        def send(delivery: Delivery) -> str | None:
            assert delivery.lease_expires_at is not None
            write(
                e="start",
                id=delivery.id,
                attempt=delivery.attempt,
                pid=pid,
                t=time.time(),
                lease=delivery.lease_expires_at.timestamp(),
            )
            if role == "victim":
                time.sleep(120)  # hangs, holding the delivery, until the parent kills it
            time.sleep(rng.uniform(0.001, 0.004))
            status = "failed" if fails(delivery) else None
            write(e="end", id=delivery.id, attempt=delivery.attempt, pid=pid, t=time.time())
            return status

        with Store(path, busy_timeout=30) as store:
            worker = Worker(
                store,
                dict.fromkeys(CHANNELS, send),
                lease_seconds=lease_seconds,
                max_sleep=max_sleep,
            )
            write(e="ready", pid=pid)
            handled = worker.run()
            write(e="stopped", pid=pid, deliveries=handled.deliveries, runs=handled.runs)


def start(path: str, log_path: str, role: str, lease_seconds: int, max_sleep: float) -> Any:
    """Start :func:`work` in a spawned process and return it."""
    process = SPAWN.Process(
        target=work, args=(path, log_path, role, lease_seconds, max_sleep), daemon=True
    )
    process.start()
    return process
