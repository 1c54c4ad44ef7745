"""The SQLite backend: one connection, its pragmas and schema, the writer gate, and units of
work as ``BEGIN IMMEDIATE`` … ``COMMIT`` (writes) or ``BEGIN`` … ``COMMIT`` (reads).

Why one connection: SQLite admits one writer at a time anyway, and every write unit holds
the write lock from its first statement (``BEGIN IMMEDIATE``), so each read inside it sees
and locks the newest rows. Threads of a process share the connection one unit at a time
(a lock serialises them: a thread waits for the unit in hand before its own); processes
each open their own and serialise through the writer gate (:mod:`.gate`) and SQLite's lock,
both bounded by ``busy_timeout``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

from ...core.errors import ChimewayError, StorageError, StoreBusy
from ..wakeups import Sleeper
from . import connection
from .executor import Executor
from .gate import WriteGate
from .unit import SqliteUnit

R = TypeVar("R")

#: WAL pages after which a commit checkpoints (SQLite's default is 1,000). A checkpoint
#: writes every distinct page back and syncs the file; ten times fewer of them, each over a
#: WAL that holds more rewrites of the same hot pages (index leaves, the trace's last page),
#: made triggers 1.12x and journeys 1.23x faster on a store of 100 K runs (medians of 12
#: interleaved pairs on a busy machine; 0.81-1.42x and 0.59-1.69x; benchmarks/README.md).
#: 10,000 pages of 4 KiB stay below the 64 MiB the WAL is cut back to
#: (connection.WAL_SIZE_LIMIT); forget still empties it at once.
WAL_AUTOCHECKPOINT = 10_000


class SqliteBackend:
    """A store on one SQLite file (or ``":memory:"``)."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.location = path
        self.busy_timeout = busy_timeout
        conn, self.read_only_because = connection.connect(path, busy_timeout)
        self._conn: sqlite3.Connection | None = conn
        self.read_only = self.read_only_because is not None
        if not self.read_only and path != connection.MEMORY:
            # PRAGMA takes no parameters; the value is an integer constant of this module.
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT:d}")
        self._gate = (
            None if path == connection.MEMORY or self.read_only else WriteGate(path + "-lock")
        )
        self._lock = threading.RLock()
        self._pid = os.getpid()

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection, for read-only tools such as ``sqlite_utils.Database``."""
        if self._conn is None:
            raise ChimewayError("the store is closed")
        if os.getpid() != self._pid:
            raise ChimewayError("this Store was opened in another process: open a new one here")
        return self._conn

    def listener(self) -> Sleeper:
        """A plain sleep: SQLite cannot tell one process that another committed, so a
        worker wakes at the next due time it computed, or after its ``max_sleep``."""
        return Sleeper()

    def close(self) -> None:
        """Close the connection; closing twice is fine."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._gate is not None:
                self._gate.close()

    def run(self, work: Callable[[SqliteUnit], R], *, write: bool) -> R:
        """Run ``work`` in one unit of work and return its result: :meth:`unit` for a
        single call, without a generator (the store's methods each take this path; a
        context manager costs more than most of the reads it would wrap)."""
        deadline = self._take_connection()
        try:
            sql = SqliteUnit(self.connection, self.location, self.busy_timeout)
            if write:
                self._begin_immediate(sql, deadline)
            else:
                sql.execute("BEGIN")
            try:
                try:
                    result = work(sql)
                except sqlite3.Error as exc:
                    _rollback(sql)
                    raise connection.translate(exc, self.location, self.busy_timeout) from exc
                except BaseException:
                    _rollback(sql)
                    raise
                try:
                    sql.execute("COMMIT")
                except BaseException:
                    _rollback(sql)
                    raise
            finally:
                sql.close()
                if write and self._gate is not None:
                    self._gate.release(linger=True)
            self._after_commit(sql)
            return result
        finally:
            self._lock.release()

    @contextmanager
    def unit(self, *, write: bool) -> Iterator[SqliteUnit]:
        """A write transaction (after the writer gate) or a read snapshot; committed when
        the block ends, rolled back when it raises (a failed COMMIT included). The unit
        refuses every statement once the block has ended (:class:`UnitClosed`)."""
        deadline = self._take_connection()
        try:
            conn = self.connection
            sql = SqliteUnit(conn, self.location, self.busy_timeout)
            if write:
                self._begin_immediate(sql, deadline)
            else:
                sql.execute("BEGIN")
            try:
                try:
                    yield sql
                except sqlite3.Error as exc:
                    # The caller's own statements on store.connection, inside its block.
                    _rollback(sql)
                    raise connection.translate(exc, self.location, self.busy_timeout) from exc
                except BaseException:
                    _rollback(sql)
                    raise
                try:
                    sql.execute("COMMIT")
                except BaseException:
                    _rollback(sql)
                    raise
            finally:
                sql.close()
                if write and self._gate is not None:
                    self._gate.release(linger=True)
            self._after_commit(sql)
        finally:
            self._lock.release()

    def _take_connection(self) -> float:
        """Wait (at most ``busy_timeout``) for the units other threads hold on the
        connection; return the deadline of the whole wait, the lock's included, so threads
        sharing a store wait no longer than processes do (CONTRACT §16)."""
        deadline = time.monotonic() + self.busy_timeout
        if not self._lock.acquire(timeout=self.busy_timeout):
            raise StoreBusy(self.location, self.busy_timeout)
        return deadline

    def _after_commit(self, sql: SqliteUnit) -> None:
        """What a unit asked to be done once its writes are durable: after an erasure, the
        WAL checkpointed and truncated, so no copy of the erased rows stays in it."""
        if sql.checkpoint_requested:
            connection.truncate_wal(self.connection, self.location, self.busy_timeout)

    def _begin_immediate(self, sql: Executor, deadline: float) -> None:
        if self.read_only:
            raise StorageError(
                self.location,
                f"it was opened for reading only: {self.read_only_because}",
            )
        remaining = deadline - time.monotonic()
        if self._gate is not None and not self._gate.acquire(max(0.0, remaining)):
            raise StoreBusy(self.location, self.busy_timeout)
        remaining = deadline - time.monotonic()
        shortened = remaining < self.busy_timeout - 0.001
        try:
            if shortened:
                # The time spent waiting comes off SQLite's own wait (for writers that do
                # not use the gate), so the whole call stays within busy_timeout.
                sql.execute(f"PRAGMA busy_timeout = {max(0, int(remaining * 1000)):d}")
            try:
                sql.execute("BEGIN IMMEDIATE")
            finally:
                if shortened:
                    sql.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000):d}")
        except BaseException:
            if self._gate is not None:
                self._gate.release()
            raise


def _rollback(sql: Executor) -> None:
    # A failed COMMIT may already have ended the transaction; never mask the first error.
    with suppress(ChimewayError):
        sql.execute("ROLLBACK")
