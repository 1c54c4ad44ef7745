"""The one place where SQL meets the psycopg connection: every statement goes through here.

The query modules write their SQL with named parameters as ``:name`` (the form the SQLite
backend uses); :func:`sql` turns it into psycopg's ``%(name)s`` once, when the module is
imported. Every psycopg error becomes a :class:`~chimeway_lite.core.errors.ChimewayError`
(:func:`~chimeway_lite.backends.postgres.connection.translate`); the serialization failures
and deadlocks a whole unit may be run again for are raised as :class:`Retry`, which the
backend catches.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ...core.errors import ChimewayError, StoreBusy, UnitClosed
from ...core.text import canonical_json
from ...core.timestamps import to_text
from .connection import LOCK_NOT_AVAILABLE, RETRYABLE, translate

_log = logging.getLogger("chimeway_lite.sql")
_TRACE = bool(os.environ.get("CHIMEWAY_TRACE_SQL"))

Params = Mapping[str, Any] | Sequence[Any]
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def sql(text: str) -> str:
    """``:name`` parameters as psycopg's ``%(name)s`` (``::type`` casts are left alone; a
    literal ``%`` is doubled)."""
    return _NAMED.sub(r"%(\1)s", text.replace("%", "%%"))


class Retry(StoreBusy):
    """The server ended this unit so that another could go on (a serialization failure or
    a deadlock, or a digest batch another unit is closing): the backend runs a unit of its
    own again; inside a caller's transaction it is the caller's :class:`StoreBusy`."""


def listing(row: Mapping[str, Any]) -> dict[str, Any]:
    """A listing row in the forms the SQLite backend's listings have: instants as the
    store's fixed-width UTC text, JSON as canonical JSON text."""
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = to_text(value)
        elif isinstance(value, (dict, list)):
            value = canonical_json(value)
        out[key] = value
    return out


class Executor:
    """Runs statements on one connection inside one transaction, translating its errors."""

    def __init__(
        self, conn: psycopg.Connection[Any], location: str, busy_timeout: float, write: bool
    ) -> None:
        self.conn = conn
        self.path = location
        self.busy_timeout = busy_timeout
        self.write = write
        self.closed = False
        self.vacuum_requested = False
        # set by an effect that creates or reschedules work: the commit then notifies the
        # listeners (listener.COMMIT_AND_NOTIFY)
        self.wakes = False
        self.cursors = 0
        # the trace numbers this unit reserved and has not used yet (RunQueries.next_seqs)
        self.seq_next = self.seq_end = 0

    def erase_after_commit(self) -> None:
        """Ask for the erased tables to be vacuumed once this unit commits (see
        docs/SECURITY.md for what that does and does not guarantee)."""
        self.vacuum_requested = True

    def work_changed(self) -> None:
        """Wake the store's listeners when this unit commits (a run or a delivery was
        written: new work, or a new due time)."""
        self.wakes = True

    def close(self) -> None:
        """End this unit: every later statement raises :class:`UnitClosed`."""
        self.closed = True

    def _error(self, exc: psycopg.Error) -> ChimewayError:
        error = translate(exc, self.path, self.busy_timeout)
        state = getattr(exc, "sqlstate", None) or ""
        if state in RETRYABLE:
            return Retry(self.path, self.busy_timeout)
        return error

    def execute(self, statement: str, params: Params | None = None) -> psycopg.Cursor[Any]:
        """Run one statement (its SQL already in psycopg's form)."""
        if self.closed:
            raise UnitClosed()
        if _TRACE:
            _log.debug("%s", " ".join(statement.split()))
        try:
            return self.conn.execute(statement, params)
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def nowait(self, statement: str, params: Params | None = None) -> list[Any]:
        """Run a ``… NOWAIT`` query: a row another unit holds ends this unit as
        :class:`Retry` (that unit is deciding for it; this one runs again after it)."""
        if self.closed:
            raise UnitClosed()
        try:
            return self.conn.execute(statement, params).fetchall()
        except psycopg.Error as exc:
            if getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise Retry(self.path, self.busy_timeout) from exc
            raise self._error(exc) from exc

    def executemany(self, statement: str, rows: Iterable[Params]) -> int:
        """Run one statement for each of ``rows``; the rows it changed in all."""
        if self.closed:
            raise UnitClosed()
        if _TRACE:
            _log.debug("%s (many)", " ".join(statement.split()))
        try:
            with self.conn.cursor() as cursor:
                cursor.executemany(statement, rows)
                return cursor.rowcount
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def insert(self, statement: str, rows: Sequence[Params]) -> None:
        """Run an INSERT for each row."""
        if len(rows) == 1:
            self.execute(statement, rows[0])
        elif rows:
            self.executemany(statement, rows)

    def one(self, statement: str, params: Params | None = None) -> Any:
        """The first row of a query, or None."""
        cursor = self.execute(statement, params)
        try:
            return cursor.fetchone()
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def all(self, statement: str, params: Params | None = None) -> list[Any]:
        """Every row of a query."""
        cursor = self.execute(statement, params)
        try:
            return cursor.fetchall()
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def dicts(self, statement: str, params: Params | None = None) -> list[dict[str, Any]]:
        """Every row of a query as a listing dict (:func:`listing`)."""
        if self.closed:
            raise UnitClosed()
        try:
            with self.conn.cursor(row_factory=dict_row) as cursor:
                cursor.execute(statement, params)
                return [listing(r) for r in cursor.fetchall()]
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def stream(self, statement: str, params: Params | None = None) -> Iterator[Any]:
        """The rows of a query, read through a server-side cursor a page at a time (for
        verify's scans of the whole store)."""
        if self.closed:
            raise UnitClosed()
        self.cursors += 1
        try:
            with self.conn.cursor(name=f"chimeway_scan_{self.cursors}") as cursor:
                cursor.itersize = 500
                cursor.execute(statement, params)
                yield from cursor
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def rowcount(self, statement: str, params: Params | None = None) -> int:
        """Run one statement; the rows it changed."""
        return self.execute(statement, params).rowcount
