"""Several real processes on one store: nothing lost, nothing doubled (issues 4 and 13).

Each test starts spawned processes (fresh interpreters, each with its own Store) released
together by a barrier, then checks the store from the parent; every test but the new file's
runs on SQLite and on PostgreSQL, where 8 processes race (the row locks let them run at
once, where SQLite's single writer takes them in turn). ``RELIABILITY_SOAK=1`` runs more
processes and more operations.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import proc_worker
import pytest
from backends import sql as raw_sql
from factories import START, trigger
from proc_worker import JOURNEY, run_processes, soak

from chimeway_lite import FakeClock, Signal, Store

pytestmark = pytest.mark.slow  # real processes, every test

WRITERS, TRIGGERS = (8, 2000) if soak() else (4, 500)
CLAIMERS, DELIVERIES = (6, 3000) if soak() else (3, 600)
PROGRESSORS, RUNS = (8, 400) if soak() else (4, 120)
#: How many processes race on PostgreSQL.
PG_RACERS = 8


def _racers(backend: str, count: int) -> int:
    """``count`` processes on SQLite, :data:`PG_RACERS` (at least) on PostgreSQL."""
    return max(count, PG_RACERS) if backend == "postgres" else count


def _count(store: Store, sql: str, *params: object) -> int:
    return int(raw_sql(store).execute(sql, params).fetchone()[0])


def _seed(store: Store, count: int, prefix: str = "seed") -> list[str]:
    """``count`` triggered runs; returns their ids."""
    return [
        trigger(
            store, tenant="t", recipient=f"user-{i % 7}", workflow=JOURNEY, key=f"{prefix}-{i}"
        ).run.id
        for i in range(count)
    ]


def test_writers_trigger_every_run_exactly_once(location: str, backend: str) -> None:
    writers = _racers(backend, WRITERS)
    shared = [f"shared-{i}" for i in range(50)]
    results = run_processes(proc_worker.trigger_many, [(location, TRIGGERS, shared)] * writers)
    with Store(location) as store:
        expected = writers * TRIGGERS + len(shared)
        assert _count(store, "SELECT count(*) FROM workflow_runs") == expected
        assert _count(store, "SELECT count(*) FROM notifications") == expected
        assert _count(store, "SELECT count(DISTINCT idempotency_key) FROM notifications") == (
            expected
        )
        # Each trigger wrote exactly its two trace rows and its one delivery.
        assert _count(store, "SELECT count(*) FROM workflow_transitions") == 2 * expected
        assert _count(store, "SELECT count(*) FROM deliveries") == expected
        own = [run for result in results for run in result["created"]]
        assert len(own) == len(set(own)) == writers * TRIGGERS
        for key in shared:
            answers = [result["shared"][key] for result in results]
            assert len({run_id for run_id, _ in answers}) == 1, key
            assert sorted(duplicate for _, duplicate in answers) == [False] + [True] * (writers - 1)
        assert _count(store, "SELECT count(*) FROM workflow_definitions") == 1
        assert store.verify() == []


def test_claimers_never_share_a_delivery_and_leave_none_behind(location: str, backend: str) -> None:
    claimers = _racers(backend, CLAIMERS)
    with Store(location) as store:
        _seed(store, DELIVERIES)
    first_claimed = proc_worker.SPAWN.Barrier(claimers)
    claimed = run_processes(
        proc_worker.claim_until_empty, [(location, 25, first_claimed)] * claimers
    )
    every = [delivery_id for batch in claimed for delivery_id in batch]
    assert len(every) == len(set(every)) == DELIVERIES
    assert all(claimed), "every claimer got some work (each claims once before the rest)"
    with Store(location) as store:
        assert _count(store, "SELECT count(*) FROM deliveries WHERE status = 'pending'") == 0
        assert _count(store, "SELECT count(*) FROM deliveries WHERE status = 'dispatched'") == (
            DELIVERIES
        )
        assert store.verify() == []


def test_processes_progressing_the_same_converged_runs_advance_each_once(
    location: str, backend: str
) -> None:
    progressors = _racers(backend, PROGRESSORS)
    with Store(location) as store:
        run_ids = _seed(store, RUNS)
        # Converged but not yet progressed: the host marked the in-app deliveries bounced in
        # the outbox itself (a plain UPDATE, as an operator's tool could), so every process
        # below finds each run ready to advance at the same moment.
        raw_sql(store).execute(
            "UPDATE deliveries SET status = 'cancelled', suppression_reason = 'bounced'"
        )
    results = run_processes(proc_worker.progress_each, [(location, run_ids)] * progressors)
    kinds = Counter((run_id, kind) for calls in results for run_id, kind in calls)
    for run_id in run_ids:
        assert kinds[(run_id, "advanced")] == 1
        assert kinds[(run_id, "noop")] == progressors - 1
    with Store(location) as store:
        for run_id in run_ids:
            reasons = Counter(t.reason for t in store.list_traces("t", run_id))
            assert reasons["progressed_on_delivery_outcome"] == 1
            assert reasons["step_activated"] == 2
            channels = Counter(d.channel for d in store.list_deliveries("t", run_id))
            assert channels == {"in_app": 1, "email": 1}
        assert store.verify() == []


def test_processes_sweeping_the_same_due_runs_move_each_once(location: str, backend: str) -> None:
    sweepers = _racers(backend, PROGRESSORS)
    clock = FakeClock(START)
    with Store(location, clock=clock) as store:
        run_ids = _seed(store, RUNS)
        for delivery in store.claim_deliveries(RUNS):
            store.record_outcome(delivery.id, "succeeded")
        # A third of the runs are woken by their recipient reading the message: the sweep
        # must settle those (completed, cancelled_by_signal) and reactivate the rest.
        read = {f"user-{i}" for i in range(0, 7, 3)}
        for recipient in read:
            store.route_signal(Signal("t", "notification_read", recipient))
        settled = {
            run_id for run_id in run_ids if store.get_run(run_id).status_reason == "signal_received"
        }
        assert 0 < len(settled) < RUNS
    now = (START + timedelta(hours=3)).isoformat()
    limits = [None, 7, None, 3] * (sweepers // 4)
    results = run_processes(proc_worker.sweep, [(location, now, limit) for limit in limits])
    moved = Counter(run_id for changed in results for run_id, _, _ in changed)
    assert sorted(moved) == sorted(run_ids)
    assert set(moved.values()) == {1}
    with Store(location) as store:
        for run_id in run_ids:
            run = store.get_run(run_id)
            reasons = Counter(t.reason for t in store.list_traces("t", run_id))
            channels = Counter(d.channel for d in store.list_deliveries("t", run_id))
            if run_id in settled:
                assert run.state == "completed" and run.terminal_reason == "cancelled_by_signal"
                assert reasons["workflow_completed"] == 1
                assert reasons["reactivated_from_wait"] == 0
                assert channels == {"in_app": 1}
            else:
                assert run.state == "active" and run.status_reason == (
                    "progressed_on_delivery_outcome"
                )
                assert reasons["reactivated_from_wait"] == 1
                assert channels == {"in_app": 1, "email": 1}
        assert store.verify() == []


@pytest.mark.sqlite_only
def test_processes_create_a_brand_new_file_at_the_same_moment(tmp_path: Path) -> None:
    path = str(tmp_path / "new.db")
    count = 8 if soak() else 6
    run_ids = run_processes(proc_worker.open_new_and_trigger, [(path,)] * count)
    assert len(set(run_ids)) == count
    with Store(path) as store:
        assert _count(store, "SELECT count(*) FROM workflow_runs") == count
        assert _count(store, "SELECT count(*) FROM workflow_definitions") == 1
        assert raw_sql(store).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.verify() == []


RACES = 600 if soak() else 150


def test_a_read_routed_while_the_outcome_is_recorded_is_never_lost(location: str) -> None:
    # CONTRACT §13.1: one process records the in-app outcomes (each run begins its 2 h wait),
    # another routes each recipient's read at the same time; whichever lands first, no run
    # whose read was routed may ever send the email.
    with Store(location) as store:
        started = [
            trigger(store, tenant="t", recipient=f"r{i}", workflow=JOURNEY, key=f"race-{i}")
            for i in range(RACES)
        ]
    pairs = [(s.notification.recipient, s.deliveries[0].id) for s in started]
    results = run_processes(
        proc_worker.race_part, [(location, pairs, "outcomes"), (location, pairs, "reads")]
    )
    assert results == [RACES, RACES]
    later = START.replace(year=2030)
    with Store(location, clock=FakeClock(later)) as store:
        store.progress_due_runs()
        emails = _count(store, "SELECT count(*) FROM deliveries WHERE channel = 'email'")
        rows = raw_sql(store).execute("SELECT state FROM workflow_runs")
        states = Counter(str(r[0]) for r in rows)
        ways = Counter(
            "early" if "signalled_at" in str(r[1]) else str(r[0])
            for r in raw_sql(store).execute(
                "SELECT reason, context FROM workflow_transitions "
                "WHERE to_state = 'completed' OR reason = 'signal_received'"
            )
        )
        assert emails == 0
        assert states == {"completed": RACES}
        # Each run met its read one way or the other: before its wait, or during it.
        assert ways["early"] + ways["signal_received"] == RACES, ways
        assert store.verify() == []
