"""Entry points for the real processes of the reliability tests, and the harness that runs them.

Every worker is a top-level function here, so that a ``spawn`` child (a fresh interpreter)
can import it by name; each opens its own Store on the shared file. :func:`run_processes`
starts them together (a barrier releases them at the same moment) and returns what each
sent back, re-raising a child's traceback in the parent.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import signal
import sqlite3
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from factories import escalation_workflow, trigger

from chimeway_lite import Digest, Signal, Step, Store, StoreBusy, Throttle, Workflow

SPAWN = multiprocessing.get_context("spawn")

#: The escalation workflow, one declaration object for every worker of a process.
JOURNEY = escalation_workflow()


def soak() -> bool:
    """True when ``RELIABILITY_SOAK=1`` asks for the long versions."""
    return os.environ.get("RELIABILITY_SOAK") == "1"


# -- the harness ----------------------------------------------------------------------------


def _entry(
    target: Callable[..., Any], index: int, args: tuple[Any, ...], barrier: Any, out: Any
) -> None:
    try:
        barrier.wait(timeout=120)
        out.put((index, "ok", target(index, *args)))
    except BaseException:
        out.put((index, "error", traceback.format_exc()))


def run_processes(
    target: Callable[..., Any], args: Sequence[tuple[Any, ...]], *, timeout: float = 150.0
) -> list[Any]:
    """Run ``target(index, *args[index])`` in one spawned process per entry, all released
    at once; return their results in index order. A child's exception fails the caller."""
    barrier = SPAWN.Barrier(len(args))
    out = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_entry, args=(target, i, tuple(a), barrier, out), daemon=True)
        for i, a in enumerate(args)
    ]
    for process in processes:
        process.start()
    results: dict[int, Any] = {}
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while len(results) + len(errors) < len(processes):
            try:
                index, status, value = out.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"processes did not finish within {timeout} s") from None
            if status == "ok":
                results[index] = value
            else:
                errors.append(f"process {index}:\n{value}")
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
    if errors:
        raise AssertionError("\n".join(errors))
    return [results[i] for i in range(len(processes))]


#: The step options of CONTRACT §14 whose promises hold across processes (by name).
GATED = {
    "digest": Workflow("digest", 1, [Step("email", 1, "email", digest=Digest(3600))]),
    "digest_of_5": Workflow(
        "digest", 2, [Step("email", 1, "email", digest=Digest(3600, max_items=5))]
    ),
    "throttle": Workflow("reset", 1, [Step("email", 1, "email", throttle=Throttle(1, 3600))]),
}

# -- workers --------------------------------------------------------------------------------


def trigger_many(index: int, path: str, count: int, shared: list[str]) -> dict[str, Any]:
    """Trigger ``count`` journeys of our own, and every shared key once, interleaved."""
    created: list[str] = []
    outcome: dict[str, tuple[str, bool]] = {}
    every = max(1, count // max(1, len(shared)))
    pending = list(shared)
    random.Random(index).shuffle(pending)
    with Store(path) as store:
        for i in range(count):
            result = trigger(
                store,
                tenant=f"tenant-{index % 2}",
                recipient=f"user-{index}-{i}",
                workflow=JOURNEY,
                key=f"own-{index}-{i}",
            )
            assert not result.duplicate
            created.append(result.run.id)
            if i % every == 0 and pending:
                key = pending.pop()
                shared_result = trigger(
                    store, tenant="shared", recipient="everyone", workflow=JOURNEY, key=key
                )
                outcome[key] = (shared_result.run.id, shared_result.duplicate)
        for key in pending:
            late = trigger(store, tenant="shared", recipient="everyone", workflow=JOURNEY, key=key)
            outcome[key] = (late.run.id, late.duplicate)
    return {"created": created, "shared": outcome}


def claim_until_empty(index: int, path: str, largest: int, first_claimed: Any) -> list[str]:
    """Claim batches of random size until the outbox is empty; return the claimed ids.

    ``first_claimed`` is a barrier every claimer passes after its first claim, so that all
    of them take part whatever the scheduler does (a fast one cannot drain the outbox alone).
    """
    rng = random.Random(index)
    claimed: list[str] = []
    with Store(path) as store:
        claimed.extend(d.id for d in store.claim_deliveries(rng.randint(1, largest)))
        first_claimed.wait(timeout=120)
        while True:
            batch = store.claim_deliveries(rng.randint(1, largest))
            if not batch:
                return claimed
            claimed.extend(d.id for d in batch)


def progress_each(index: int, path: str, run_ids: list[str]) -> list[tuple[str, str]]:
    """Progress every run (in an order of our own); return (run id, kind) for each call."""
    order = list(run_ids)
    random.Random(index).shuffle(order)
    with Store(path) as store:
        return [(run_id, store.progress_run(run_id).kind.value) for run_id in order]


def sweep(index: int, path: str, now: str, limit: int | None) -> list[tuple[str, str, str]]:
    """Run the due sweep at ``now`` until it finds nothing more; return what changed."""
    at = datetime.fromisoformat(now)
    changed: list[tuple[str, str, str]] = []
    with Store(path) as store:
        while True:
            results = store.progress_due_runs(now=at, limit=limit)
            changed.extend((p.run.id, p.kind.value, p.reason) for p in results)
            if limit is None or not results:
                return changed


def trigger_gated(
    index: int, path: str, which: str, count: int, rounds: Any
) -> list[tuple[str, str, int]]:
    """Trigger ``count`` journeys of ``GATED[which]`` for one recipient, each released by
    the barrier ``rounds`` at the same moment as every other process's (so every round is
    a race); return (run id, status reason, deliveries planned) of each. A failure breaks
    the barrier, so that the others stop at once instead of waiting for us."""
    made = []
    # the race is the point, not the wait: a generous lock timeout on a loaded machine
    with Store(path, busy_timeout=60) as store:
        try:
            for i in range(count):
                rounds.wait(timeout=120)
                result = trigger(
                    store, recipient="ada", workflow=GATED[which], key=f"{which}-{index}-{i}"
                )
                made.append((result.run.id, result.run.status_reason, len(result.deliveries)))
        except BaseException:
            rounds.abort()
            raise
    return made


def open_new_and_trigger(index: int, path: str) -> str:
    """Open (and so perhaps create) the store at the same moment as the others; trigger."""
    with Store(path) as store:
        return trigger(
            store, tenant="t", recipient=f"user-{index}", workflow=JOURNEY, key=f"first-{index}"
        ).run.id


def write_continuously(index: int, path: str, seconds: float) -> dict[str, Any]:
    """Trigger back to back for ``seconds``; count writes and StoreBusy, keep the worst wait."""
    busy = writes = 0
    worst = 0.0
    with Store(path) as store:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                trigger(
                    store,
                    tenant="fair",
                    recipient=f"user-{index}",
                    workflow=JOURNEY,
                    key=f"fair-{index}-{writes}-{busy}",
                )
                writes += 1
            except StoreBusy:
                busy += 1
            worst = max(worst, time.monotonic() - started)
    return {"writes": writes, "busy": busy, "worst": worst}


def write_impatiently(index: int, path: str, count: int, busy_timeout: float) -> dict[str, Any]:
    """Trigger ``count`` journeys under keys of our own with a tiny busy timeout, trying each
    again after every StoreBusy (so waits are given up at the gate all the time); return the
    keys acknowledged and the StoreBusy count."""
    busy = 0
    acknowledged: list[str] = []
    with Store(path, busy_timeout=busy_timeout) as store:
        for i in range(count):
            key = f"impatient-{index}-{i}"
            while True:
                try:
                    result = trigger(store, recipient=f"user-{index}", workflow=JOURNEY, key=key)
                except StoreBusy:
                    busy += 1
                    continue
                assert not result.duplicate  # a refused write wrote nothing
                acknowledged.append(key)
                break
    return {"keys": acknowledged, "busy": busy}


# -- helpers that hold locks from another process --------------------------------------------


def hold_gate(path: str, ready: Any, release: Any) -> None:
    """Hold the store's writer gate (the ``-lock`` file), as another Store would."""
    import fcntl

    fd = os.open(path + "-lock", os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    ready.set()
    release.wait(60)
    os.close(fd)


def hold_sqlite(path: str, begin: str, ready: Any, release: Any) -> None:
    """A foreign writer (plain sqlite3, no gate) holding ``BEGIN IMMEDIATE``/``EXCLUSIVE``
    with an uncommitted write."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(begin)
    conn.execute("UPDATE workflow_definitions SET updated_at = updated_at")
    ready.set()
    release.wait(60)
    conn.execute("ROLLBACK")
    conn.close()


def hold_statements(path: str, statements: list[str], ready: Any, release: Any) -> None:
    """A foreign program running ``statements`` (say, ``BEGIN EXCLUSIVE`` and a write) and
    keeping its transaction open until released."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    ready.set()
    release.wait(60)
    conn.execute("ROLLBACK")
    conn.close()


def hold_store_transaction(path: str, ready: Any) -> None:
    """Another Store in the middle of its own unit of work, until it is killed.

    (It sleeps rather than waiting on an Event: setting a multiprocessing Event that a
    killed process was waiting on blocks forever.)
    """
    with Store(path) as store, store.transaction() as tx:
        tx.now()
        ready.set()
        time.sleep(120)


# -- the crash victim --------------------------------------------------------------------------

BATCH = 12


def crash_writer(path: str, life: int, flags: Any) -> None:
    """Write forever in transactions of ``BATCH`` triggers plus claims and outcomes; the
    parent SIGKILLs us. ``flags[0]`` is 1 while a transaction is open, ``flags[1]`` counts
    the transactions committed."""
    rng = random.Random(life)
    with Store(path) as store:
        batch = 0
        while True:
            batch += 1
            with store.transaction() as tx:
                flags[0] = 1
                for j in range(BATCH):
                    trigger(
                        tx,
                        tenant="crash",
                        recipient=f"user-{j % 3}",
                        workflow=JOURNEY,
                        key=f"life-{life}-batch-{batch}-{j}",
                    )
                claimed = tx.claim_deliveries(rng.randint(1, BATCH))
                for delivery in claimed:
                    status = rng.choice(["succeeded", "failed", "cancelled"])
                    tx.record_outcome(
                        delivery.id, status, "bounced" if status == "cancelled" else None
                    )
            flags[0] = 0
            flags[1] += 1
            if batch % 5 == 0:
                store.route_signal(Signal("crash", "notification_read", f"user-{batch % 3}"))


def start_crash_writer(path: str, life: int) -> tuple[Any, Any]:
    """Start :func:`crash_writer` in a spawned process; return (process, its flags)."""
    flags = SPAWN.Array("i", 2, lock=False)
    process = SPAWN.Process(target=crash_writer, args=(path, life, flags), daemon=True)
    process.start()
    return process, flags


def kill(process: Any) -> None:
    """SIGKILL a process and reap it."""
    os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=30)


# -- signals racing outcomes (CONTRACT §13.1) ------------------------------------------------


def record_in_app(index: int, path: str, pairs: list[tuple[str, str]], seed: int) -> int:
    """Record every in-app delivery of ``pairs`` (recipient, delivery id) succeeded, in a
    shuffled order: each run then begins its 2 h wait — unless its read came first."""
    order = list(pairs)
    random.Random(seed).shuffle(order)
    with Store(path, busy_timeout=60) as store:
        for _, delivery_id in order:
            store.record_outcome(delivery_id, "succeeded", tenant_id="t")
    return len(order)


def route_reads(index: int, path: str, pairs: list[tuple[str, str]], seed: int) -> int:
    """Route ``notification_read`` for every recipient of ``pairs``, in a shuffled order:
    some before their run begins to wait (an early signal), some after (a resume)."""
    order = list(pairs)
    random.Random(seed).shuffle(order)
    with Store(path, busy_timeout=60) as store:
        for recipient, _ in order:
            store.route_signal(Signal("t", "notification_read", actor_id=recipient))
            time.sleep(random.random() / 2000)
    return len(order)


def race_part(index: int, path: str, pairs: list[tuple[str, str]], role: str) -> int:
    """One side of the race: ``"outcomes"`` (:func:`record_in_app`) or ``"reads"``
    (:func:`route_reads`)."""
    side = record_in_app if role == "outcomes" else route_reads
    return side(index, path, pairs, seed=index + 7)
