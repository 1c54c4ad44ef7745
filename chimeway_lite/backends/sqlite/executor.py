"""The one place where SQL meets the sqlite3 connection: every statement goes through here.

:class:`Executor` runs statements on the connection of one unit of work and turns every
sqlite3 error into a :class:`~chimeway_lite.core.errors.ChimewayError` (via
:func:`~chimeway_lite.backends.sqlite.connection.translate`), so no sqlite3 exception leaves
the backend. A constraint the schema enforces becomes
:class:`~chimeway_lite.core.errors.ConstraintFailed`, which the
query that expects it turns into its own answer (a duplicate, or the host's bad value).
When ``CHIMEWAY_TRACE_SQL`` is set, every statement is logged at DEBUG level under the
``chimeway_lite.sql`` logger.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...core.errors import ConstraintFailed, UnitClosed
from .connection import translate
from .inserts import Insert

_log = logging.getLogger("chimeway_lite.sql")
_TRACE = bool(os.environ.get("CHIMEWAY_TRACE_SQL"))

Params = Mapping[str, Any] | Sequence[Any]


class Executor:
    """Runs statements on one connection, translating its errors."""

    def __init__(self, conn: sqlite3.Connection, path: str, busy_timeout: float) -> None:
        self.conn = conn
        self.path = path
        self.busy_timeout = busy_timeout
        self.closed = False
        self.checkpoint_requested = False
        # What this unit knows because it holds the write lock and wrote it itself: the
        # next trace number, and the (definition, notification key) pairs it has set. A
        # savepoint that rolls back forgets both (:meth:`forget_writes`).
        self.seq_next: int | None = None
        self.keys_set: set[tuple[str, str]] = set()

    def forget_writes(self) -> None:
        """Forget what this unit remembered of its own writes (a savepoint rolled them
        back), so the next call reads the store again."""
        self.seq_next = None
        self.keys_set.clear()

    def erase_after_commit(self) -> None:
        """Ask for the WAL to be checkpointed and truncated once this unit commits (after
        an erasure: the WAL keeps copies of the pages it changed until then)."""
        self.checkpoint_requested = True

    def close(self) -> None:
        """End this unit: every later statement raises :class:`UnitClosed` (a ``tx`` kept
        after its ``with`` block must not write outside any transaction)."""
        self.closed = True

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one statement."""
        if self.closed:
            raise UnitClosed()
        if _TRACE:
            _log.debug("%s", " ".join(sql.split()))
        try:
            return self.conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ConstraintFailed(self.path, str(exc)) from exc
        except sqlite3.Error as exc:
            raise translate(exc, self.path, self.busy_timeout) from exc

    def executemany(self, sql: str, rows: Iterable[Params]) -> sqlite3.Cursor:
        """Run one statement for each of ``rows``."""
        if self.closed:
            raise UnitClosed()
        if _TRACE:
            _log.debug("%s (many)", " ".join(sql.split()))
        try:
            return self.conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise ConstraintFailed(self.path, str(exc)) from exc
        except sqlite3.Error as exc:
            raise translate(exc, self.path, self.busy_timeout) from exc

    def insert(self, sql: str, rows: Sequence[Params]) -> None:
        """Run an INSERT for each row (``execute`` for one: executemany costs more)."""
        if len(rows) == 1:
            self.execute(sql, rows[0])
        elif rows:
            self.executemany(sql, rows)

    def insert_records(self, insert: Insert, records: Sequence[Any]) -> None:
        """Insert records in order, several rows to a statement (:class:`~.inserts.Insert`)."""
        if len(records) == 1:
            self.execute(insert.one, insert.values(records[0]))
            return
        for sql, params in insert.statements(records):
            self.execute(sql, params)

    def one(self, sql: str, params: Params = ()) -> Any:
        """The first row of a query, or None."""
        cursor = self.execute(sql, params)
        try:
            return cursor.fetchone()
        except sqlite3.Error as exc:
            raise translate(exc, self.path, self.busy_timeout) from exc

    def all(self, sql: str, params: Params = ()) -> list[Any]:
        """Every row of a query."""
        cursor = self.execute(sql, params)
        try:
            return cursor.fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, self.path, self.busy_timeout) from exc
