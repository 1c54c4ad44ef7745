"""Real worker processes on one store file, one of them SIGKILLed mid-send again and again.

Three healthy workers (:func:`worker_child.work`, lease 2 s) run all along; a victim worker
(lease 1 s) is started, left to claim a delivery, and SIGKILLed while it hangs in its sender,
then started again. Meanwhile the parent triggers waves of a two-step journey (a push; 1 s
later an email, retried when it fails). At the end every delivery must have been recorded;
each delivery a killed victim held was sent again by a healthy worker, but only after the
victim's lease ran out; no two live workers ever held one delivery at once; every run
completed; and ``verify()`` finds nothing. ``RELIABILITY_SOAK=1`` kills more often.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import worker_child
from backends import sql as raw_sql
from factories import trigger
from proc_worker import soak
from worker_child import JOURNEY

from chimeway_lite import Store

pytestmark = pytest.mark.slow  # real processes

HEALTHY = 3
KILLS = 20 if soak() else 6
WAVE = 40  # journeys triggered before each life of the victim (two deliveries each)
HEALTHY_LEASE, VICTIM_LEASE = 2, 1


def _lines(tmp_path: Path, pattern: str) -> list[dict[str, Any]]:
    """Every complete line the workers wrote: one a live worker is still writing is left out."""
    found: list[dict[str, Any]] = []
    for path in sorted(tmp_path.glob(pattern)):
        *complete, _unfinished = path.read_text(encoding="utf-8").split("\n")
        found.extend(json.loads(line) for line in complete if line)
    return found


def _until(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _count(store: Store, sql: str) -> int:
    return int(raw_sql(store).execute(sql).fetchone()[0])


def test_killed_workers_leave_no_delivery_behind_and_none_is_held_twice(tmp_path: Path) -> None:
    path = str(tmp_path / "chimeway.db")
    started_at = time.monotonic()
    with Store(path) as store:
        store.upsert_definition("welcome", JOURNEY)
    healthy = [
        worker_child.start(
            path, str(tmp_path / f"healthy-{i}.jsonl"), "healthy", HEALTHY_LEASE, 0.3
        )
        for i in range(HEALTHY)
    ]
    killed: list[dict[str, Any]] = []
    journeys = 0
    try:
        with Store(path, busy_timeout=30) as store:
            for life in range(KILLS):
                log = tmp_path / f"victim-{life}.jsonl"
                victim = worker_child.start(path, str(log), "victim", VICTIM_LEASE, 0.02)
                _until(lambda log=log: log.exists() and log.read_text(), "the victim to start")
                held = None
                for wave in range(5):  # a wave the healthy ones drained first: another one
                    for i in range(WAVE):
                        trigger(
                            store,
                            tenant=f"t{i % 3}",
                            recipient=f"user-{life}-{wave}-{i}",
                            workflow=JOURNEY,
                            key=f"k-{life}-{wave}-{i}",
                        )
                    journeys += WAVE
                    deadline = time.monotonic() + 2
                    while held is None and time.monotonic() < deadline:
                        starts = [x for x in _lines(tmp_path, log.name) if x["e"] == "start"]
                        held = starts[0] if starts else None
                        time.sleep(0.005)
                    if held is not None:
                        break
                assert held is not None, "the victim never got a delivery"
                os.kill(victim.pid, signal.SIGKILL)  # mid-send, holding the delivery
                victim.join(10)
                assert victim.exitcode == -signal.SIGKILL
                killed.append(held)

                def resent(held: dict[str, Any] = held) -> bool:
                    return any(
                        x["e"] == "end" and x["id"] == held["id"] and x["attempt"] > held["attempt"]
                        for x in _lines(tmp_path, "healthy-*.jsonl")
                    )

                _until(resent, "a healthy worker to send the killed delivery again")

            def settled() -> bool:
                return (
                    _count(store, "SELECT count(*) FROM deliveries WHERE status IN "
                           "('pending', 'dispatched')") == 0
                    and _count(store, "SELECT count(*) FROM workflow_runs WHERE state IN "
                               "('active', 'waiting')") == 0
                )  # fmt: skip

            _until(settled, "every delivery recorded and every run finished", timeout=30)
    finally:
        for process in healthy:
            process.terminate()  # SIGTERM: a clean stop after the delivery in hand
        for process in healthy:
            process.join(15)
            if process.is_alive():
                process.kill()
                process.join()
    assert [p.exitcode for p in healthy] == [0] * HEALTHY

    events = _lines(tmp_path, "*.jsonl")
    stopped = [x for x in events if x["e"] == "stopped"]
    assert len(stopped) == HEALTHY  # the victims never stop: they are killed
    victims = {x["pid"] for x in _lines(tmp_path, "victim-*.jsonl")}
    sends: dict[tuple[str, int], dict[str, Any]] = {}
    for x in events:
        if x["e"] == "start":
            assert (x["id"], x["attempt"]) not in sends, "one attempt, one claim, one sender"
            sends[(x["id"], x["attempt"])] = {**x, "start": x["t"], "end": None}
        elif x["e"] == "end":
            send = sends[(x["id"], x["attempt"])]
            assert send["pid"] == x["pid"]
            send["end"] = x["t"]
    # Every send of a live worker finished (a SIGTERM waits for the delivery in hand), within
    # its lease; every send of a victim was cut by its kill.
    for send in sends.values():
        if send["pid"] in victims:
            assert send["end"] is None
        else:
            assert send["end"] is not None and send["start"] <= send["end"] <= send["lease"]
    assert len([s for s in sends.values() if s["pid"] in victims]) == KILLS

    # No two workers held one delivery at once: each attempt began only once the one before
    # it had ended (recorded) or its lease had run out.
    by_delivery: dict[str, list[dict[str, Any]]] = {}
    for (delivery_id, _), send in sorted(sends.items()):
        by_delivery.setdefault(delivery_id, []).append(send)
    for attempts in by_delivery.values():
        for before, after in itertools.pairwise(attempts):
            held_until = (
                before["lease"] if before["end"] is None else min(before["end"], before["lease"])
            )
            assert after["start"] >= held_until, (before, after)

    with Store(path) as store:
        deliveries = (
            raw_sql(store)
            .execute("SELECT id, tenant_id, status, channel FROM deliveries")
            .fetchall()
        )
        assert len(deliveries) == 2 * journeys
        assert {d["id"] for d in deliveries} == set(by_delivery)  # every one was sent
        assert Counter(d["status"] for d in deliveries) == {"succeeded": 2 * journeys}
        # Each delivery a victim held: that attempt's lease ran out, and the next attempt —
        # sent by a healthy worker after that — was recorded.
        tenants = {d["id"]: d["tenant_id"] for d in deliveries}
        for held in killed:
            attempts = store.explain_delivery(tenants[held["id"]], held["id"]).attempts
            statuses = [(a.attempt, a.status) for a in attempts]
            index = statuses.index((held["attempt"], "lease_expired"))
            assert statuses[index + 1][1] in ("succeeded", "failed"), statuses
            again = sends[(held["id"], held["attempt"] + 1)]
            assert again["pid"] not in victims and again["start"] >= held["lease"]
        runs = (
            raw_sql(store)
            .execute("SELECT state, terminal_reason, count(*) FROM workflow_runs GROUP BY 1, 2")
            .fetchall()
        )
        assert [tuple(r) for r in runs] == [("completed", "workflow_completed", journeys)]
        assert store.verify() == []
        retried = _count(
            store, "SELECT count(*) FROM delivery_events WHERE available_at IS NOT NULL"
        )
    assert retried > 0, "some emails failed and were retried through the workers"
    elapsed = time.monotonic() - started_at
    print(
        f"\n{KILLS} kills, {2 * journeys} deliveries of {journeys} journeys, "
        f"{len(sends)} sends ({len(killed)} sent again after a kill, {retried} retries), "
        f"{elapsed:.1f} s"
    )
