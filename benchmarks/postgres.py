"""chimeway_lite on PostgreSQL against raw psycopg writing the same rows (CONTRACT §15).

    python benchmarks/postgres.py                # 3 runs, the sizes below (~2 min)
    python benchmarks/postgres.py --smoke        # a few rows, every path (~15 s)
    CHIMEWAY_BENCH_POSTGRES=postgresql://… python benchmarks/postgres.py   # your server

Without ``CHIMEWAY_BENCH_POSTGRES`` it starts a throwaway cluster of the distribution's
PostgreSQL (``tests/pg_server.py``: tmpfs, fsync off — so these figures measure the database
work, not a disk's flush). Every measurement is on a fresh schema; each figure is the median
of ``--runs`` runs. Printed as Markdown tables:

* triggers/s: ``Store.trigger`` one call at a time, against one psycopg transaction per
  trigger inserting the same rows (notification, run, two trace rows, the first delivery);
* journeys/s: the escalation journey end to end (trigger, claim, the in-app bounce, claim
  of the email, its success), against the same reads and writes by hand;
* claim → outcome with 1, 4 and 8 worker processes sharing the outbox: each loops claiming
  10 deliveries (``FOR UPDATE SKIP LOCKED``) and recording each one's success, until none is
  left; against raw psycopg doing the same claim and writes; and the SQLite Store for scale.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import psycopg
from factories import escalation_workflow

from chimeway_lite import Step, Store, Workflow

SPAWN = multiprocessing.get_context("spawn")
JOURNEY = escalation_workflow()  # the README's journey (tests/factories.py)
SINGLE = Workflow("single", 1, [Step("in_app", 1, "in_app")])


def server() -> str:
    """The benchmark's server: ``CHIMEWAY_BENCH_POSTGRES``, else a throwaway cluster."""
    given = os.environ.get("CHIMEWAY_BENCH_POSTGRES")
    if given:
        return given
    import pg_server

    dsn = pg_server.postgres_dsn()
    if dsn is None:
        raise SystemExit(f"no PostgreSQL server: {pg_server.last_error()}")
    return dsn


def fresh(dsn: str) -> str:
    """A new schema on the server, with the store's tables (the raw side writes them too)."""
    import pg_server

    location = pg_server.fresh_database(dsn)
    Store(location).close()
    return location


def _id() -> str:
    return str(uuid.uuid4())


# -- the raw side: the same rows, by hand -------------------------------------------------------

_NOTIFICATION = (
    "INSERT INTO notifications (id, tenant_id, recipient, notification_key, idempotency_key, "
    "workflow_definition_id, inserted_at, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
_RUN = (
    "INSERT INTO workflow_runs (id, tenant_id, notification_id, workflow_definition_id, "
    "current_step_id, state, status_reason, status_context, started_at, last_transition_at, "
    "pending_signals, entered_step_at) VALUES (%s, %s, %s, %s, %s, 'active', "
    "'step_activated', '{}', %s, %s, '[]', %s)"
)
_TRANSITION = (
    "INSERT INTO workflow_transitions (seq, id, workflow_run_id, workflow_step_id, "
    "delivery_id, from_state, to_state, reason, context, inserted_at) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, '{}', %s)"
)
_DELIVERY = (
    "INSERT INTO deliveries (id, tenant_id, notification_id, channel, status, "
    "workflow_run_id, workflow_step_id, inserted_at, updated_at, recipient, notification_key, "
    "step_key) VALUES (%s, %s, %s, %s, 'pending', %s, %s, %s, %s, %s, %s, %s)"
)
_CLAIM = (
    "WITH picked AS (SELECT id FROM deliveries WHERE status = 'pending' "
    "AND coalesce(available_at, inserted_at) <= %(now)s "
    "ORDER BY coalesce(available_at, inserted_at), id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
    "UPDATE deliveries AS d SET status = 'dispatched', attempt = d.attempt + 1, "
    "lease_expires_at = %(lease)s, updated_at = %(now)s FROM picked WHERE d.id = picked.id "
    "RETURNING d.id, d.tenant_id, d.workflow_run_id, d.workflow_step_id, d.attempt"
)
_EVENT = (
    "INSERT INTO delivery_events (delivery_id, tenant_id, attempt, kind, at, status) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)


class Raw:
    """The rows of the journey's steps written by hand on one connection."""

    def __init__(self, location: str) -> None:
        self.conn = psycopg.connect(location)
        self.conn.execute("SET TIME ZONE 'UTC'")
        row = self.conn.execute(
            "SELECT d.id, s.id, s.step_key FROM workflow_definitions AS d "
            "JOIN workflow_steps AS s ON s.workflow_definition_id = d.id "
            "WHERE d.workflow_key = %s ORDER BY s.step_order",
            [os.environ.get("CHIMEWAY_BENCH_KEY", "escalation")],
        ).fetchall()
        self.conn.commit()
        self.definition = row[0][0]
        # step key -> (step id, channel): the first step is the one a trigger activates
        self.steps = {key: step_id for _, step_id, key in row}
        self.first = row[0][1], row[0][2]

    def seqs(self, count: int) -> list[int]:
        first = self.conn.execute("SELECT chimeway_lite_next_seqs(%s)", [count]).fetchone()
        assert first is not None
        return list(range(first[0], first[0] + count))

    def trigger(self, key: str, now: datetime) -> str:
        notification, run, delivery = _id(), _id(), _id()
        step, step_key = self.first
        with self.conn.transaction():
            self.conn.execute(
                _NOTIFICATION,
                [notification, "t", "ada", "welcome", key, self.definition, now, "{}"],
            )
            self.conn.execute(_RUN, [run, "t", notification, self.definition, step, now, now, now])
            one, two = self.seqs(2)
            self.conn.execute(
                _TRANSITION, [one, _id(), run, step, None, None, "active", "workflow_started", now]
            )
            self.conn.execute(
                _TRANSITION,
                [two, _id(), run, step, delivery, "active", "active", "step_activated", now],
            )
            self.conn.execute(
                _DELIVERY,
                [delivery, "t", notification, "in_app", run, step, now, now, "ada", "welcome",
                 step_key],
            )  # fmt: skip
        self.conn.commit()
        return delivery

    def claim(self, limit: int, now: datetime) -> list[Any]:
        with self.conn.transaction():
            params = {"now": now, "lease": now + timedelta(minutes=5), "limit": limit}
            claimed = self.conn.execute(_CLAIM, params).fetchall()
            for delivery_id, tenant, _, _, attempt in claimed:
                self.conn.execute(_EVENT, [delivery_id, tenant, attempt, "claimed", now, None])
        self.conn.commit()
        return claimed

    def outcome(self, claimed: Any, status: str, now: datetime, *, next_step: str | None) -> None:
        """Record an outcome and move the run: to ``next_step`` (a new delivery), or done."""
        delivery_id, tenant, run, step, attempt = claimed
        with self.conn.transaction():
            self.conn.execute(
                "SELECT id FROM deliveries WHERE id = %s FOR UPDATE", [delivery_id]
            ).fetchone()
            self.conn.execute(
                "SELECT * FROM workflow_runs WHERE id = %s FOR UPDATE", [run]
            ).fetchone()
            self.conn.execute(
                "UPDATE deliveries SET status = %s, lease_expires_at = NULL, updated_at = %s "
                "WHERE id = %s",
                [status, now, delivery_id],
            )
            self.conn.execute(_EVENT, [delivery_id, tenant, attempt, "recorded", now, status])
            if next_step is None:
                (seq,) = self.seqs(1)
                self.conn.execute(
                    "UPDATE workflow_runs SET state = 'completed', status_reason = "
                    "'workflow_completed', terminal_reason = 'workflow_completed', "
                    "last_transition_at = %s WHERE id = %s",
                    [now, run],
                )
                self.conn.execute(
                    _TRANSITION,
                    [seq, _id(), run, step, delivery_id, "active", "completed",
                     "workflow_completed", now],
                )  # fmt: skip
            else:
                new, target = _id(), self.steps[next_step]
                one, two = self.seqs(2)
                self.conn.execute(
                    "UPDATE workflow_runs SET current_step_id = %s, last_transition_at = %s, "
                    "entered_step_at = %s WHERE id = %s",
                    [target, now, now, run],
                )
                self.conn.execute(
                    _TRANSITION,
                    [one, _id(), run, step, delivery_id, "active", "active",
                     "progressed_on_delivery_outcome", now],
                )  # fmt: skip
                self.conn.execute(
                    _TRANSITION,
                    [two, _id(), run, target, new, "active", "active", "step_activated", now],
                )
                notification = self.conn.execute(
                    "SELECT notification_id FROM workflow_runs WHERE id = %s", [run]
                ).fetchone()
                assert notification is not None
                self.conn.execute(
                    _DELIVERY,
                    [new, tenant, notification[0], next_step, run, target, now, now, "ada",
                     "welcome", next_step],
                )  # fmt: skip
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


# -- one measurement each -----------------------------------------------------------------------


def _timed(work: Callable[[], int]) -> float:
    """Operations per second of ``work`` (which returns how many it did)."""
    start = time.perf_counter()
    done = work()
    return done / (time.perf_counter() - start)


def store_triggers(location: str, count: int) -> float:
    with Store(location) as store:
        store.upsert_definition("welcome", JOURNEY)

        def work() -> int:
            for i in range(count):
                store.trigger(
                    tenant_id="t", notification_key="welcome", recipient="ada",
                    workflow=JOURNEY, idempotency_key=f"k-{i}",
                )  # fmt: skip
            return count

        return _timed(work)


def raw_triggers(location: str, count: int) -> float:
    with Store(location) as store:
        store.upsert_definition("welcome", JOURNEY)
    raw = Raw(location)
    try:
        now = datetime.now(UTC)
        return _timed(lambda: [raw.trigger(f"k-{i}", now) for i in range(count)] and count)
    finally:
        raw.close()


def store_journeys(location: str, count: int) -> float:
    with Store(location) as store:
        store.upsert_definition("welcome", JOURNEY)

        def work() -> int:
            for i in range(count):
                started = store.trigger(
                    tenant_id="t", notification_key="welcome", recipient="ada",
                    workflow=JOURNEY, idempotency_key=f"j-{i}",
                )  # fmt: skip
                (in_app,) = store.claim_deliveries(1, channel="in_app")
                assert in_app.id == started.deliveries[0].id
                store.record_outcome(in_app.id, "cancelled", "bounced")
                (email,) = store.claim_deliveries(1, channel="email")
                store.record_outcome(email.id, "succeeded")
            return count

        return _timed(work)


def raw_journeys(location: str, count: int) -> float:
    with Store(location) as store:
        store.upsert_definition("welcome", JOURNEY)
    raw = Raw(location)
    try:

        def work() -> int:
            for i in range(count):
                now = datetime.now(UTC)
                raw.trigger(f"j-{i}", now)
                (in_app,) = raw.claim(1, now)
                raw.outcome(in_app, "cancelled", now, next_step="email")
                (email,) = raw.claim(1, now)
                raw.outcome(email, "succeeded", now, next_step=None)
            return count

        return _timed(work)
    finally:
        raw.close()


def _store_worker(index: int, location: str, barrier: Any) -> int:
    with Store(location, busy_timeout=60) as store:
        barrier.wait(timeout=120)
        done = 0
        while batch := store.claim_deliveries(10):
            for delivery in batch:
                store.record_outcome(delivery.id, "succeeded")
                done += 1
        return done


def _raw_worker(index: int, location: str, barrier: Any) -> int:
    os.environ["CHIMEWAY_BENCH_KEY"] = "single"
    raw = Raw(location)
    try:
        barrier.wait(timeout=120)
        done = 0
        while batch := raw.claim(10, datetime.now(UTC)):
            for claimed in batch:
                raw.outcome(claimed, "succeeded", datetime.now(UTC), next_step=None)
                done += 1
        return done
    finally:
        raw.close()


def _entry(target: Callable[..., int], index: int, location: str, barrier: Any, out: Any) -> None:
    out.put(target(index, location, barrier))


def workers(location: str, total: int, processes: int, *, raw: bool) -> float:
    """Deliveries settled per second by ``processes`` workers sharing ``total``."""
    with Store(location) as store:
        store.trigger_many(
            [
                {"tenant_id": "t", "notification_key": "welcome", "recipient": f"r{i % 50}",
                 "workflow": SINGLE, "idempotency_key": f"w-{i}"}
                for i in range(total)
            ]
        )  # fmt: skip
    barrier = SPAWN.Barrier(processes + 1)
    out = SPAWN.Queue()
    target = _raw_worker if raw else _store_worker
    started = [
        SPAWN.Process(target=_entry, args=(target, i, location, barrier, out), daemon=True)
        for i in range(processes)
    ]
    for process in started:
        process.start()
    barrier.wait(timeout=120)
    begin = time.perf_counter()
    done = sum(out.get(timeout=600) for _ in started)
    elapsed = time.perf_counter() - begin
    for process in started:
        process.join(timeout=60)
    assert done == total, (done, total)
    return done / elapsed


# -- the tables ---------------------------------------------------------------------------------


def median(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a few rows, every path")
    options = parser.parse_args()
    triggers, journeys, outbox = (40, 10, 60) if options.smoke else (1000, 200, 2000)
    runs = 1 if options.smoke else options.runs
    dsn = server()

    print(f"PostgreSQL: {runs} run(s) each, medians; ratio = chimeway_lite / raw psycopg\n")
    print("| operation | chimeway_lite | raw psycopg | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, store_side, raw_side, count in (
        ("triggers/s", store_triggers, raw_triggers, triggers),
        ("journeys/s", store_journeys, raw_journeys, journeys),
    ):
        ours = median(runs, lambda f=store_side, n=count: f(fresh(dsn), n))
        theirs = median(runs, lambda f=raw_side, n=count: f(fresh(dsn), n))
        print(f"| {name} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")

    print(f"\nclaim → outcome, {outbox:,} deliveries shared by N worker processes (deliveries/s)\n")
    print(
        "| workers | chimeway_lite on PostgreSQL | raw psycopg | ratio | chimeway_lite on SQLite |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for processes in (1, 4, 8):
            ours = median(runs, lambda p=processes: workers(fresh(dsn), outbox, p, raw=False))
            theirs = median(runs, lambda p=processes: workers(fresh(dsn), outbox, p, raw=True))
            sqlite = median(
                runs,
                lambda p=processes: workers(
                    str(Path(folder, f"w-{p}-{uuid.uuid4().hex}.db")), outbox, p, raw=False
                ),
            )
            print(
                f"| {processes} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} "
                f"| {sqlite:,.0f} |"
            )


if __name__ == "__main__":
    main()
