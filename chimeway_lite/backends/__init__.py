"""Backends: the databases a store runs on, behind the storage contract of
:mod:`~chimeway_lite.backends.base`. SQLite is the default; the location picks the backend:
a ``postgresql://`` (or ``postgres://``) URL is PostgreSQL, anything else a SQLite path."""

from __future__ import annotations

from ..core.errors import StorageError
from .base import Backend, Unit
from .locations import POSTGRES_SCHEMES, is_postgres, redacted
from .sqlite import SqliteBackend

__all__ = ["POSTGRES_SCHEMES", "Backend", "Unit", "is_postgres", "open_backend"]


def open_backend(location: str, busy_timeout: float) -> Backend:
    """The backend for ``location``: a ``postgresql://`` URL is PostgreSQL (psycopg 3 must
    be installed: ``pip install 'chimeway-lite[postgres]'``); a path or ``":memory:"`` is
    SQLite."""
    if is_postgres(location):
        return _postgres(location, busy_timeout)
    return SqliteBackend(location, busy_timeout)


def _postgres(location: str, busy_timeout: float) -> Backend:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise StorageError(
            redacted(location),
            "PostgreSQL stores need psycopg 3, which is not installed: "
            "pip install 'chimeway-lite[postgres]'",
        ) from None
    from .postgres import PostgresBackend

    return PostgresBackend(location, busy_timeout)
