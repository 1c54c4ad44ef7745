"""WAL checkpoints after the writer gate is released (``backends/sqlite/checkpoints.py``):
the frame count read from the ``-wal`` file agrees with SQLite's, the WAL stays at its
checkpoint size however many writes go by, no checkpoint runs while the gate is held, and a
checkpoint that fails never fails the write before it."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest
from factories import trigger

from chimeway_lite import Store
from chimeway_lite.backends.sqlite.checkpoints import WalWatch
from chimeway_lite.backends.sqlite.gate import WriteGate


def _wal_connection(path: str, autocheckpoint: int = 1000) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA wal_autocheckpoint = {autocheckpoint:d}")
    conn.execute("CREATE TABLE t (x)")
    return conn


def test_the_frame_count_agrees_with_sqlite(tmp_path: Path) -> None:
    path = str(tmp_path / "wal.db")
    conn = _wal_connection(path)
    watch = WalWatch.take_over(conn, path)
    assert watch is not None
    for rows in (1, 7, 40):
        for _ in range(rows):
            conn.execute("INSERT INTO t VALUES (randomblob(3000))")
        # A passive checkpoint reports the frames the WAL holds (and leaves them there
        # until the next write starts it over).
        _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames > rows
        assert watch.holds(frames) and not watch.holds(frames + 1)
        conn.execute("INSERT INTO t VALUES (1)")  # starts the WAL over: one frame
        assert watch.holds(1) and not watch.holds(2)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not watch.holds(1)  # an empty WAL holds nothing
    watch.close()
    watch.close()
    assert not watch.holds(1)
    conn.close()


def test_a_connection_without_a_wal_file_keeps_sqlites_checkpoint(tmp_path: Path) -> None:
    path = str(tmp_path / "rollback.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (x)")  # rollback journal: no -wal file
    assert WalWatch.take_over(conn, path) is None
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    conn.close()


def test_the_watch_keeps_the_connections_threshold(tmp_path: Path) -> None:
    path = str(tmp_path / "wal.db")
    conn = _wal_connection(path, autocheckpoint=0)
    assert WalWatch.take_over(conn, path) is None  # off already: it stays off
    conn.execute("PRAGMA wal_autocheckpoint = 40")
    watch = WalWatch.take_over(conn, path)
    assert watch is not None and watch.frames == 40
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # from an empty WAL: one frame a commit
    for _ in range(39):
        conn.execute("INSERT INTO t VALUES (1)")
    assert not watch.due()
    conn.execute("INSERT INTO t VALUES (1)")
    assert watch.due()
    watch.checkpoint(conn, path)
    conn.execute("INSERT INTO t VALUES (1)")  # the WAL starts over
    assert not watch.due()
    watch.close()
    conn.close()


def test_the_store_checkpoints_itself_and_its_wal_stays_small(db_path: str) -> None:
    with Store(db_path) as store:
        conn = store.connection
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        watch = store.backend._wal
        assert watch is not None and watch.frames == 1000  # SQLite's own threshold
        for i in range(300):  # ~21 frames each: 6,000 frames without a checkpoint
            trigger(store, key=f"k{i}")
            assert not watch.holds(watch.frames + 100)
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        assert os.path.getsize(db_path + "-wal") <= 32 + (watch.frames + 100) * (24 + page_size)
        assert store.verify() == []


def test_no_checkpoint_runs_while_the_gate_is_held(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    original = WalWatch.checkpoint

    def checkpoint(self: WalWatch, conn: sqlite3.Connection, path: str) -> None:
        probe = WriteGate(path + "-lock")  # its own open file description: a rival writer
        seen.append(probe.acquire(0))
        probe.release()
        probe.close()
        original(self, conn, path)

    monkeypatch.setattr(WalWatch, "checkpoint", checkpoint)
    with Store(db_path) as store:
        for i in range(150):
            trigger(store, key=f"k{i}")
    assert seen and all(seen)  # every checkpoint ran with the gate free for other writers


def test_a_failed_checkpoint_is_logged_not_raised(
    db_path: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = sqlite3.connect(":memory:")
    broken.close()  # every statement on it raises sqlite3.ProgrammingError
    original = WalWatch.checkpoint
    monkeypatch.setattr(WalWatch, "due", lambda self: True)
    monkeypatch.setattr(
        WalWatch, "checkpoint", lambda self, conn, path: original(self, broken, path)
    )
    with Store(db_path) as store, caplog.at_level(logging.WARNING, logger="chimeway_lite"):
        result = trigger(store, key="committed")  # its checkpoint fails after the commit
        assert "could not be checkpointed" in caplog.text
        assert store.get_run(result.run.id).state == result.run.state
        assert trigger(store, key="committed").duplicate  # it was written, once
