"""The PostgreSQL backend: a small pool of connections, the schema, and units of work as
``BEGIN`` … ``COMMIT`` transactions.

Units: a write unit is a READ COMMITTED transaction whose decisions lock the rows they
decide on (``SELECT … FOR UPDATE``; claims and the due sweep ``SKIP LOCKED``; throttle and
digest groups an advisory lock), so writers on many connections, processes and hosts run
at once and wait only for the rows they share. A read unit is a REPEATABLE READ READ ONLY
transaction: one snapshot for all of its reads.

Errors: every psycopg error leaves as a :class:`~chimeway_lite.core.errors.ChimewayError`.
A unit the server ended so that another could go on (a serialization failure, a deadlock,
a digest batch another unit is closing) is run again from the start, with a short random
pause, until ``busy_timeout`` has passed (then :class:`StoreBusy`); a lock wait longer than
``busy_timeout`` (``lock_timeout``) is :class:`StoreBusy` at once.

Threads: each unit takes a connection of its own from the pool (at most :data:`POOL_SIZE`
at once, waiting up to ``busy_timeout`` for one), so threads sharing a Store run their
units side by side. A Store must not be carried across ``fork``.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg import pq

from ...core.errors import ChimewayError, StorageError, StoreBusy
from ..locations import redacted
from . import connection
from .executor import Retry
from .listener import COMMIT_AND_NOTIFY, NotifyListener
from .unit import PostgresUnit
from .upkeep import ERASED_TABLES

R = TypeVar("R")

#: The most connections one Store holds open at once.
POOL_SIZE = 8
_BEGIN = {
    True: "BEGIN ISOLATION LEVEL READ COMMITTED",
    False: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
}
Connection = psycopg.Connection[Any]


class PostgresBackend:
    """A store on a PostgreSQL database (the first schema of the DSN's search_path)."""

    read_only = False

    def __init__(self, dsn: str, busy_timeout: float) -> None:
        self.location = redacted(dsn)
        self.busy_timeout = busy_timeout
        self._dsn = dsn
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(POOL_SIZE)
        self._idle: list[Connection] = []
        self._closed = False
        self._begin = dict(_BEGIN)
        conn = self._connect()
        try:
            connection.ensure_schema(conn, self.location)
        except psycopg.Error as exc:
            conn.close()
            raise connection.translate(exc, self.location, busy_timeout) from None
        except BaseException:
            conn.close()
            raise
        self._idle.append(conn)

    def query_only(self) -> None:
        """From now on every unit is a READ ONLY transaction: a write raises StorageError
        (the inspector's store, like SQLite's ``PRAGMA query_only``)."""
        self._begin = {True: "BEGIN READ ONLY", False: _BEGIN[False]}

    def _connect(self) -> Connection:
        return connection.connect(self._dsn, self.location, self.busy_timeout)

    # -- the pool -----------------------------------------------------------------------------

    def _take(self, deadline: float) -> Connection:
        """A connection for one unit: an idle one, else a new one; waits (until
        ``deadline``) while :data:`POOL_SIZE` units are open."""
        if os.getpid() != self._pid:
            raise ChimewayError("this Store was opened in another process: open a new one here")
        if self._closed:
            raise ChimewayError("the store is closed")
        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise StoreBusy(self.location, self.busy_timeout)
        try:
            with self._lock:
                if self._closed:
                    raise ChimewayError("the store is closed")
                while self._idle:
                    conn = self._idle.pop()
                    if not conn.closed and not conn.broken:
                        return conn
                    conn.close()
            return self._connect()
        except BaseException:
            self._slots.release()
            raise

    def _give_back(self, conn: Connection) -> None:
        """Return a connection to the pool (closed instead when it is broken, left inside
        a transaction, or the store was closed meanwhile)."""
        try:
            usable = (
                not conn.closed
                and not conn.broken
                and conn.info.transaction_status == pq.TransactionStatus.IDLE
            )
            with self._lock:
                if usable and not self._closed:
                    self._idle.append(conn)
                    return
            conn.close()
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close every idle connection; the ones in use close when their unit ends.
        Closing twice is fine."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        if os.getpid() == self._pid:
            for conn in idle:
                with suppress(psycopg.Error):
                    conn.close()

    def listener(self) -> NotifyListener:
        """A listener on a connection of its own (outside the pool), woken by the commits
        of other connections that create or reschedule work in this store's schema."""
        if os.getpid() != self._pid:
            raise ChimewayError("this Store was opened in another process: open a new one here")
        return NotifyListener(self._connect, self.location)

    # -- units of work ------------------------------------------------------------------------

    def run(self, work: Callable[[PostgresUnit], R], *, write: bool) -> R:
        """Run ``work`` in one unit of work and return its result; a unit the server ended
        so that another could go on runs again (see the module docstring)."""
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.002
        while True:
            try:
                with self.unit(write=write, deadline=deadline) as unit:
                    return work(unit)
            except Retry:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreBusy(self.location, self.busy_timeout) from None
                time.sleep(min(left, random.uniform(0, pause)))
                pause = min(pause * 2, 0.2)

    @contextmanager
    def unit(self, *, write: bool, deadline: float | None = None) -> Iterator[PostgresUnit]:
        """A write transaction or a read snapshot; committed when the block ends, rolled
        back when it raises (a failed COMMIT included). The unit refuses every statement
        once the block has ended (:class:`UnitClosed`)."""
        if deadline is None:
            deadline = time.monotonic() + self.busy_timeout
        conn = self._take(deadline)
        unit = PostgresUnit(conn, self.location, self.busy_timeout, write)
        try:
            try:
                unit.execute(self._begin[write])
                try:
                    yield unit
                except psycopg.Error as exc:
                    # The caller's own statements, inside its block.
                    _rollback(conn)
                    raise connection.translate(exc, self.location, self.busy_timeout) from exc
                except BaseException:
                    _rollback(conn)
                    raise
                try:
                    unit.execute(COMMIT_AND_NOTIFY if unit.wakes else "COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
            finally:
                unit.close()
            if unit.vacuum_requested:
                self._vacuum(conn)
        finally:
            self._give_back(conn)

    def _vacuum(self, conn: Connection) -> None:
        """After an erasure commits: VACUUM the tables it deleted from, so the space of the
        dead rows is reclaimed (docs/SECURITY.md says what this does not guarantee)."""
        try:
            conn.execute("VACUUM " + ", ".join(ERASED_TABLES))
        except psycopg.Error as exc:
            raise StorageError(
                self.location,
                "the erasure committed, but VACUUM of its tables failed "
                f"({connection.translate(exc, self.location, self.busy_timeout)}); "
                "run VACUUM on them",
            ) from None


def _rollback(conn: Connection) -> None:
    # A failed COMMIT may already have ended the transaction; never mask the first error.
    with suppress(psycopg.Error):
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
