"""Waiting for work: what a worker or ``tick --watch`` sleeps on between passes.

A backend's :meth:`~chimeway_lite.backends.base.Backend.listener` answers a
:class:`WorkListener`. SQLite has no way to hear another process commit, so its listener,
:class:`Sleeper`, only sleeps (the caller's pause is computed from the next due time, and
bounded by its ``max_sleep``); PostgreSQL's wakes as soon as another connection commits new
work (``LISTEN``/``NOTIFY``, :mod:`chimeway_lite.backends.postgres.listener`).
"""

from __future__ import annotations

import threading
from typing import Protocol


class WorkListener(Protocol):
    """Something to sleep on until there may be new work."""

    def wait(self, seconds: float) -> bool:
        """Block for at most ``seconds``; True when woken earlier (new work was committed,
        or :meth:`interrupt`), False when the time ran out. A wake may be spurious: the
        caller looks for work and waits again."""
        ...

    def interrupt(self) -> None:
        """End the current (or the next) :meth:`wait` at once; safe from any thread and
        from a signal handler."""
        ...

    def close(self) -> None:
        """Release what the listener holds; closing twice is fine."""
        ...


class Sleeper:
    """A listener that hears nothing: :meth:`wait` sleeps, :meth:`interrupt` ends it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def wait(self, seconds: float) -> bool:
        """Sleep for ``seconds`` or until :meth:`interrupt`; True when interrupted."""
        woken = self._event.wait(max(0.0, seconds))
        self._event.clear()
        return woken

    def interrupt(self) -> None:
        """End the current (or the next) :meth:`wait` at once."""
        self._event.set()

    def close(self) -> None:
        """Nothing to release."""
