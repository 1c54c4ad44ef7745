"""The two concurrency promises of the step options (CONTRACT §14), with real processes: any
number of processes triggering the same recipient at once never open two digest batches for
one group — nor overfill one of ``max_items`` — and never both pass a throttle of
``limit=1``, on both backends. (SQLite serialises the deciding units with its write lock;
PostgreSQL locks the group: see ``backends/base.py``. Without that lock the digest race of
``max_items`` overfills a batch there.)"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import proc_worker
import pytest
from backends import sql as raw_sql
from proc_worker import run_processes, soak

from chimeway_lite import Store

pytestmark = pytest.mark.slow  # real processes, every test

PROCESSES, EACH = (8, 60) if soak() else (4, 25)


def _count(store: Store, sql: str) -> int:
    return int(raw_sql(store).execute(sql).fetchone()[0])


def _race(location: str, which: str) -> list[list[tuple[str, str, int]]]:
    """Every process triggers ``EACH`` journeys of ``GATED[which]`` for the same recipient,
    all processes at the same moment for each one."""
    rounds = proc_worker.SPAWN.Barrier(PROCESSES)
    return run_processes(proc_worker.trigger_gated, [(location, which, EACH, rounds)] * PROCESSES)


def test_processes_triggering_one_recipient_at_once_share_one_digest_batch(location: str) -> None:
    results = _race(location, "digest")
    made = [run for result in results for run in result]
    total = PROCESSES * EACH
    assert Counter(reason for _, reason, _ in made) == {"waiting_for_digest": total}
    assert all(planned == 0 for _, _, planned in made)
    with Store(location) as store:
        assert _count(store, "SELECT count(*) FROM digest_batches") == 1
        assert _count(store, "SELECT count(*) FROM digest_members") == total
        # every round was a race of all the processes: its runs joined one after another
        joined = [
            key.split("-")[1:]
            for (key,) in raw_sql(store).execute(
                "SELECT n.idempotency_key FROM digest_members AS m "
                "JOIN workflow_runs AS r ON r.id = m.workflow_run_id "
                "JOIN notifications AS n ON n.id = r.notification_id ORDER BY m.seq"
            )
        ]
        for round_ in range(EACH):
            racers = joined[round_ * PROCESSES : (round_ + 1) * PROCESSES]
            assert sorted(process for process, i in racers) == sorted(map(str, range(PROCESSES)))
            assert {i for _, i in racers} == {str(round_)}
        assert _count(store, "SELECT count(DISTINCT suspended_until) FROM workflow_runs") == 1
        later = datetime.now(UTC) + timedelta(hours=2)
        swept = store.progress_due_runs(now=later)
        assert Counter(p.reason for p in swept) == {
            "digest_closed": 1,
            "workflow_completed": total - 1,
        }
        (delivery,) = [d for p in swept for d in p.deliveries]
        assert delivery.digest_size == total
        assert len(store.digest_members(delivery.id)) == total
        assert store.verify() == []


def test_processes_filling_digest_batches_at_once_fill_each_exactly(location: str) -> None:
    results = _race(location, "digest_of_5")
    total = PROCESSES * EACH
    assert sum(len(r) for r in results) == total
    with Store(location) as store:
        sizes = [
            r[0]
            for r in raw_sql(store).execute(
                "SELECT digest_size FROM deliveries ORDER BY inserted_at"
            )
        ]
        assert sizes == [5] * (total // 5)  # every batch closed at its fifth run, none beyond
        assert _count(store, "SELECT count(*) FROM digest_batches WHERE closed_at IS NULL") == (
            1 if total % 5 else 0
        )
        assert _count(store, "SELECT count(*) FROM workflow_runs WHERE state = 'waiting'") == (
            total % 5
        )
        merged = "SELECT count(*) FROM workflow_runs WHERE terminal_reason = 'merged_into_digest'"
        assert _count(store, merged) == total - total // 5 - total % 5
        assert store.verify() == []


def test_processes_triggering_one_recipient_at_once_pass_a_throttle_of_one_once(
    location: str,
) -> None:
    results = _race(location, "throttle")
    made = [run for result in results for run in result]
    assert Counter((reason, planned) for _, reason, planned in made) == {
        ("workflow_started", 1): 1,
        ("workflow_throttled", 0): PROCESSES * EACH - 1,
    }
    with Store(location) as store:
        assert _count(store, "SELECT count(*) FROM deliveries") == 1
        assert _count(store, "SELECT count(*) FROM step_activations") == 1
        assert store.verify() == []
