"""Waking workers on PostgreSQL: ``LISTEN``/``NOTIFY``.

A write unit that creates or reschedules work (a run inserted or changed, a delivery
inserted or changed) ends with ``SELECT pg_notify('chimeway_work', current_schema());
COMMIT`` in one round trip, so the notification goes out exactly when the work becomes
visible, and never for a unit that rolled back. A :class:`NotifyListener` holds one
connection of its own that has run ``LISTEN chimeway_work``, and waits on its socket (and on
a socket pair that :meth:`~NotifyListener.interrupt` writes to) with ``select``. A
notification whose payload names another schema (another store in the same database) is
not a wake.

When the listening connection is lost (a server restart, an administrator's
``pg_terminate_backend``), the listener logs a WARNING, sleeps out the rest of the wait —
the caller's pause, bounded by its ``max_sleep``, as on SQLite — and connects again at the
next wait. Nothing is lost by a missed notification: a wake only makes the caller look
sooner; the due times are in the database.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import psycopg

from ...core.errors import ChimewayError

#: The channel every chimeway_lite store notifies on; the payload is the store's schema.
CHANNEL = "chimeway_work"
#: The end of a write unit that created or rescheduled work (one round trip).
COMMIT_AND_NOTIFY = f"SELECT pg_notify('{CHANNEL}', current_schema()); COMMIT"

logger = logging.getLogger("chimeway_lite.postgres")

Connection = psycopg.Connection[Any]


class NotifyListener:
    """Sleeps until a unit of this store's schema commits new work, :meth:`interrupt`, or
    the time runs out (see the module docstring)."""

    def __init__(self, connect: Callable[[], Connection], location: str) -> None:
        self._connect = connect
        self._location = location
        self._conn: Connection | None = None
        self._schema: str | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._closed = False
        self._listen()

    def _listen(self) -> bool:
        """Open the listening connection; False (logged) when the server cannot be reached."""
        try:
            conn = self._connect()
        except ChimewayError as exc:
            logger.warning(
                "%s: cannot listen for new work (%s); sleeping instead", self._location, exc
            )
            return False
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            row = conn.execute("SELECT current_schema()").fetchone()
        except psycopg.Error:
            conn.close()
            logger.warning("%s: LISTEN failed; sleeping instead", self._location)
            return False
        self._conn, self._schema = conn, (row[0] if row else None)
        return True

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def wait(self, seconds: float) -> bool:
        """Block for at most ``seconds``; True when a commit of new work in this store's
        schema or :meth:`interrupt` ended the wait early."""
        if self._closed:
            raise ChimewayError("the listener is closed")
        deadline = time.monotonic() + max(0.0, seconds)
        if self._conn is None:
            self._listen()
        while True:
            left = deadline - time.monotonic()
            sources: list[Any] = [self._wake_r]
            if self._conn is not None:
                sources.append(self._conn.pgconn.socket)
            ready, _, _ = select.select(sources, [], [], max(0.0, left))
            if self._wake_r in ready:
                with suppress(BlockingIOError):
                    while self._wake_r.recv(512):
                        pass
                return True
            if not ready:
                return False
            if self._heard():
                return True

    def _heard(self) -> bool:
        """Read what arrived on the listening connection: True when it holds a notification
        for this store's schema. A lost connection is dropped (the wait goes on as a sleep)."""
        conn = self._conn
        assert conn is not None
        pgconn = conn.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error:
            logger.warning(
                "%s: the connection listening for new work was lost; sleeping instead until the "
                "next wait connects again",
                self._location,
            )
            self._drop()
            return False
        heard = False
        while (note := pgconn.notifies()) is not None:
            if note.relname.decode() == CHANNEL and note.extra.decode() == self._schema:
                heard = True
        return heard

    def interrupt(self) -> None:
        """End the current (or the next) :meth:`wait` at once (any thread, signal handlers
        included)."""
        with suppress(OSError):
            self._wake_w.send(b"!")

    def close(self) -> None:
        """Close the listening connection; closing twice is fine."""
        self._closed = True
        self._drop()
        self._wake_r.close()
        self._wake_w.close()
