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

from ...core.errors import ChimewayError, StoreBusy
from . import connection
from .executor import Executor
from .gate import WriteGate
from .unit import SqliteUnit

R = TypeVar("R")


class SqliteBackend:
    """A store on one SQLite file (or ``":memory:"``)."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.location = path
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = connection.connect(path, busy_timeout)
        self._gate = None if path == connection.MEMORY else WriteGate(path + "-lock")
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

    def close(self) -> None:
        """Close the connection; closing twice is fine."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def run(self, work: Callable[[SqliteUnit], R], *, write: bool) -> R:
        """Run ``work`` in one unit of work and return its result: :meth:`unit` for a
        single call, without a generator (the store's methods each take this path; a
        context manager costs more than most of the reads it would wrap)."""
        with self._lock:
            sql = SqliteUnit(self.connection, self.location, self.busy_timeout)
            if write:
                self._begin_immediate(sql.conn, sql)
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
                if write and self._gate is not None:
                    self._gate.release()
            return result

    @contextmanager
    def unit(self, *, write: bool) -> Iterator[SqliteUnit]:
        """A write transaction (after the writer gate) or a read snapshot; committed when
        the block ends, rolled back when it raises (a failed COMMIT included)."""
        with self._lock:
            conn = self.connection
            sql = SqliteUnit(conn, self.location, self.busy_timeout)
            if write:
                self._begin_immediate(conn, sql)
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
                if write and self._gate is not None:
                    self._gate.release()

    def _begin_immediate(self, conn: sqlite3.Connection, sql: Executor) -> None:
        started = time.monotonic()
        if self._gate is not None and not self._gate.acquire(self.busy_timeout):
            raise StoreBusy(self.location, self.busy_timeout)
        waited = time.monotonic() - started
        try:
            if waited > 0.001:
                # The time spent at the gate comes off SQLite's own wait (for writers that
                # do not use the gate), so the whole call stays within busy_timeout.
                remaining = max(0, int((self.busy_timeout - waited) * 1000))
                sql.execute(f"PRAGMA busy_timeout = {remaining:d}")
            try:
                sql.execute("BEGIN IMMEDIATE")
            finally:
                if waited > 0.001:
                    sql.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000):d}")
        except BaseException:
            if self._gate is not None:
                self._gate.release()
            raise


def _rollback(sql: Executor) -> None:
    # A failed COMMIT may already have ended the transaction; never mask the first error.
    with suppress(ChimewayError):
        sql.execute("ROLLBACK")
