"""Backends: the databases a store runs on, behind the storage contract of
:mod:`~chimeway_lite.backends.base`. SQLite is the default; the location picks the backend."""

from __future__ import annotations

from .base import Backend, Unit
from .sqlite import SqliteBackend

__all__ = ["Backend", "Unit", "open_backend"]


def open_backend(location: str, busy_timeout: float) -> Backend:
    """The backend for ``location``: a path or ``":memory:"`` is SQLite."""
    return SqliteBackend(location, busy_timeout)
