"""A writer killed with SIGKILL in the middle of its transactions, again and again (issue 4).

The victim (:func:`proc_worker.crash_writer`) writes transactions of twelve triggers plus
claims and outcomes, back to back, and raises a shared flag while one is open; we wait for
the flag and kill it there. After every kill a fresh Store must find the file intact
(``PRAGMA integrity_check``; on PostgreSQL the server is never killed, and the killed
client's transaction must be gone from it), every trace consistent with its run
(``verify()``), each transaction present whole or not at all, and the store still taking
writes. The first test runs on both backends.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import proc_worker
import pytest
from backends import is_postgres, sql
from factories import trigger
from proc_worker import BATCH, JOURNEY, kill, soak, start_crash_writer

from chimeway_lite import Store

pytestmark = pytest.mark.slow  # real processes, every test

KILLS = 40 if soak() else 12


def _wait_inside(flags: Any, commits: int) -> bool:
    """Wait until the victim has committed ``commits`` transactions and is inside the next."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if flags[1] >= commits and flags[0] == 1:
            return True
        time.sleep(0.0002)
    return False


def _no_open_transaction(store: Store) -> bool:
    """Wait until no store connection is left inside a transaction on the server (the
    server ends a killed client's transaction once it sees the connection close)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not sql(store).in_transaction:
            return True
        time.sleep(0.01)
    return False


def _batches(store: Store) -> Counter[str]:
    rows = (
        sql(store)
        .execute("SELECT idempotency_key FROM notifications WHERE tenant_id = 'crash'")
        .fetchall()
    )
    return Counter(key.rsplit("-", 1)[0] for (key,) in rows)


def test_sigkill_mid_write_leaves_a_consistent_working_store(location: str) -> None:
    rng = random.Random(4)
    with Store(location) as store:
        store.upsert_definition("welcome", JOURNEY)
    survived = caught_inside = 0
    for life in range(KILLS):
        process, flags = start_crash_writer(location, life)
        try:
            caught_inside += _wait_inside(flags, rng.randint(0, 3))
            time.sleep(rng.uniform(0, 0.003))  # somewhere inside the transaction
        finally:
            kill(process)
        assert process.exitcode == -9

        with Store(location, busy_timeout=10) as store:
            if is_postgres(store):
                assert _no_open_transaction(store), "the killed client's transaction stayed"
            else:  # the server is never killed: only SQLite's file is
                integrity = [tuple(r) for r in sql(store).execute("PRAGMA integrity_check")]
                assert integrity == [("ok",)]
            assert store.verify() == []
            # Every transaction of the victim is there whole or not at all.
            assert set(_batches(store).values()) <= {BATCH}
            # ...and the store keeps working: a new journey goes all the way through.
            started = trigger(
                store, tenant="after", recipient="survivor", workflow=JOURNEY, key=f"after-{life}"
            )
            progress = store.record_outcome(started.deliveries[0].id, "cancelled", "bounced")
            assert progress is not None and progress.kind == "advanced"
            assert store.verify() == []
        survived += 1
    assert survived == KILLS
    # The flag was up at every kill: the kills landed inside transactions.
    assert caught_inside == KILLS
    with Store(location) as store:
        assert sum(_batches(store).values()) > 0, "the victims committed work between kills"


@pytest.mark.sqlite_only
def test_a_writer_killed_while_holding_the_gate_does_not_block_the_next(db_path: str) -> None:
    # The gate is an flock on an open file description: the kernel drops it with the process.
    ready = proc_worker.SPAWN.Event()
    holder = proc_worker.SPAWN.Process(
        target=proc_worker.hold_store_transaction, args=(db_path, ready), daemon=True
    )
    Store(db_path).close()
    holder.start()
    try:
        assert ready.wait(60)
        with Store(db_path, busy_timeout=0) as store:
            assert store.backend._gate is not None
            assert store.backend._gate.acquire(0) is False  # held by the other process
            kill(holder)
            assert store.backend._gate.acquire(0) is True  # released by its death
            store.backend._gate.release()
            store.upsert_definition("welcome", JOURNEY)
            assert store.verify() == []
    finally:
        if holder.is_alive():
            kill(holder)
