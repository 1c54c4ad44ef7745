"""Erasure is real (CONTRACT §16): after ``forget`` no byte of the erased person's data stays
readable in the database file, its WAL or its SHM — while another process keeps the store
open, and for a ``forget`` inside a caller's transaction once that transaction commits."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import sql
from factories import START, trigger

from chimeway_lite import FakeClock, Signal, Store

RECIPIENT = "ada-erase-7f3a9c"
DATA = "secret-data-91c2e4"
PAYLOAD = "payload-marker-55d1b0"
KEEP = "bob-stays-0a1b2c"

# Another process that opens the store, reads from it, and keeps it open (idle) until told
# to go: its connection holds the WAL and SHM open, as a long-running worker's would.
_HOLDER = """
import sys
from chimeway_lite import Store
store = Store(sys.argv[1])
store.next_due_at()
print("open", flush=True)
sys.stdin.readline()
store.next_due_at()
store.close()
"""


@pytest.fixture
def holder(db_path: str) -> Iterator[subprocess.Popen[str]]:
    Store(db_path).close()
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, db_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "open"
    yield process
    assert process.stdin is not None
    process.stdin.write("go\n")
    process.stdin.flush()
    assert process.wait(timeout=60) == 0


def _fill(store: Store, recipient: str, count: int = 40) -> None:
    for i in range(count):
        result = trigger(
            store,
            recipient=recipient,
            data={"note": f"{DATA}-{recipient}-{i}"},
            key=f"{recipient}{i}",
        )
        store.record_outcome(result.deliveries[0].id, "succeeded", tenant_id="acme")
        store.track_signal(
            Signal(
                "acme",
                "notification_read",
                actor_id=recipient,
                payload={"delivery_id": result.deliveries[0].id, "note": f"{PAYLOAD}-{recipient}"},
            )
        )


def _files(db_path: str) -> dict[str, bytes]:
    return {
        suffix: Path(db_path + suffix).read_bytes()
        for suffix in ("", "-wal", "-shm")
        if os.path.exists(db_path + suffix)
    }


def _found(db_path: str, marker: str) -> list[str]:
    needle = marker.encode()
    return [suffix or "(db)" for suffix, data in _files(db_path).items() if needle in data]


def test_forget_leaves_nothing_readable_while_another_process_keeps_the_store_open(
    db_path: str, holder: subprocess.Popen[str]
) -> None:
    store = Store(db_path, clock=FakeClock(START))
    _fill(store, RECIPIENT)
    _fill(store, KEEP, count=5)
    assert _found(db_path, RECIPIENT), "the markers must be on disk before the erasure"
    assert store.forget("acme", RECIPIENT) > 0
    for marker in (RECIPIENT, DATA + "-" + RECIPIENT, PAYLOAD + "-" + RECIPIENT):
        assert _found(db_path, marker) == [], marker
    assert _found(db_path, KEEP), "the others' rows stay"
    assert store.verify() == []
    store.close()


def test_forget_inside_a_transaction_erases_once_it_commits(
    db_path: str, holder: subprocess.Popen[str]
) -> None:
    store = Store(db_path, clock=FakeClock(START))
    _fill(store, RECIPIENT, count=20)
    with store.transaction() as tx:
        tx.forget("acme", RECIPIENT)
        trigger(tx, recipient=KEEP, key="after-forget")
    assert _found(db_path, RECIPIENT) == []
    assert _found(db_path, DATA + "-" + RECIPIENT) == []
    assert _found(db_path, PAYLOAD + "-" + RECIPIENT) == []
    store.close()


def test_a_forget_that_rolls_back_erases_nothing(db_path: str) -> None:
    store = Store(db_path, clock=FakeClock(START))
    _fill(store, RECIPIENT, count=3)
    before = store.list_erasures("acme")

    class Undo(Exception):
        pass

    with pytest.raises(Undo), store.transaction() as tx:
        tx.forget("acme", RECIPIENT)
        raise Undo
    assert store.list_erasures("acme") == before
    assert store.get_run(_a_run_of(store, RECIPIENT)).tenant_id == "acme"
    store.close()


def test_the_main_file_keeps_nothing_after_close(db_path: str) -> None:
    store = Store(db_path, clock=FakeClock(START))
    _fill(store, RECIPIENT)
    _fill(store, KEEP, count=5)
    # Into the main file first: freed pages there keep their bytes unless secure_delete.
    sql(store).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert _found(db_path, RECIPIENT) == ["(db)"]
    store.forget("acme", RECIPIENT)
    store.close()
    assert _found(db_path, RECIPIENT) == []
    assert _found(db_path, f"{DATA}-{RECIPIENT}") == []


def _a_run_of(store: Store, recipient: str) -> str:
    row = (
        sql(store)
        .execute(
            "SELECT r.id FROM workflow_runs r JOIN notifications n ON n.id = r.notification_id "
            "WHERE n.recipient = ? LIMIT 1",
            (recipient,),
        )
        .fetchone()
    )
    return str(row[0])


def test_secure_delete_is_on_even_where_sqlite_is_built_without_it(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many builds of SQLite (not Debian's) default to secure_delete off: pretend to be one.
    real = sqlite3.connect

    def plain_build(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(sqlite3, "connect", plain_build)
    store = Store(db_path, clock=FakeClock(START))
    assert sql(store).execute("PRAGMA secure_delete").fetchone()[0] == 1
    _fill(store, RECIPIENT)
    _fill(store, KEEP, count=5)
    sql(store).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.forget("acme", RECIPIENT)
    store.close()
    assert _found(db_path, RECIPIENT) == []
