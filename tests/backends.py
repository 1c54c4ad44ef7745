"""The backends the tests run on: SQLite always, PostgreSQL when a server can be had.

``pg_server`` finds or starts the server once per test process. The fixtures of
``conftest`` take a ``backend`` parameter ("sqlite" or "postgres") made by
``pytest_generate_tests`` there: a test marked ``sqlite_only`` (a SQLite mechanism: the
writer gate, WAL files, PRAGMAs, file tampering) gets only "sqlite".

``new_location(backend, tmp_path)`` makes a fresh place for a store: a new file, or a new
schema on the server. ``sql(store)`` is a connection for a test's own SQL on either backend
(``?`` placeholders, as sqlite3 takes them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pg_server

from chimeway_lite import Store

SQLITE, POSTGRES = "sqlite", "postgres"

_dsn: str | None = None
_why: str | None = None
_looked = False


def postgres_dsn() -> str | None:
    """The DSN of the tests' PostgreSQL server (started on the first call), or None."""
    global _dsn, _why, _looked
    if not _looked:
        _looked = True
        try:
            import psycopg  # noqa: F401
        except ImportError:
            _why = "psycopg is not installed (pip install -e '.[test]')"
            return None
        _dsn = pg_server.postgres_dsn()
        _why = pg_server.last_error()
    return _dsn


def why_not() -> str | None:
    """Why there is no PostgreSQL server, in one line."""
    return _why


def required() -> bool:
    """Whether the PostgreSQL tests must run (under CI, or when a DSN is given)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or bool(
        os.environ.get(pg_server.ENV_DSN)
    )


def available() -> tuple[str, ...]:
    """The backends this run tests on."""
    return (SQLITE, POSTGRES) if postgres_dsn() is not None else (SQLITE,)


def new_location(backend: str, folder: Path, name: str = "chimeway.db") -> str:
    """A fresh place for a store: a file in ``folder``, or a new schema on the server."""
    if backend == SQLITE:
        return str(folder / name)
    dsn = postgres_dsn()
    assert dsn is not None, "no PostgreSQL server"
    return pg_server.fresh_database(dsn)


def drop_location(location: str) -> None:
    """Drop the schema a PostgreSQL location made (a file goes with its tmp_path)."""
    if location.startswith("postgresql://"):
        pg_server.drop_fresh_database(location)


def is_postgres(store: Store) -> bool:
    """Whether ``store`` runs on PostgreSQL."""
    return store.path.startswith("postgresql://")


class _Cursor:
    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)


class _PostgresSql:
    """``execute(sql, params)`` on the store's database, autocommitted, ``?`` placeholders."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("SET TIME ZONE 'UTC'")

    def execute(self, statement: str, params: Sequence[Any] = ()) -> _Cursor:
        text = re.sub(r"\bWHERE 1\b", "WHERE true", statement.replace("%", "%%"))
        text = text.replace("?", "%s")
        cursor = self.conn.execute(text, list(params))
        rows = cursor.fetchall() if cursor.description is not None else []
        return _Cursor(rows, cursor.rowcount)

    def close(self) -> None:
        self.conn.close()


_open: dict[str, _PostgresSql] = {}


def sql(store: Store) -> Any:
    """A connection for a test's own statements on ``store``'s database: the SQLite
    connection itself, or a psycopg connection taking the same ``?`` placeholders."""
    if not is_postgres(store):
        return store.connection
    found = _open.get(store.path)
    if found is None:
        found = _open[store.path] = _PostgresSql(store.path)
    return found


def close_sql(location: str) -> None:
    """Close the test connection ``sql`` opened on ``location``, if any."""
    found = _open.pop(location, None)
    if found is not None:
        found.close()


def table_dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a PostgreSQL store's schema (by its first column) and
    the trace sequence's state: two dumps compare equal when nothing was written."""
    conn = sql(store)
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
    ]
    dump: dict[str, list[tuple[Any, ...]]] = {
        # Table names come from the catalog, never from input.
        name: [tuple(row) for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY 1')]
        for name in tables
    }
    dump["workflow_transitions_seq"] = [
        tuple(conn.execute("SELECT last_value, is_called FROM workflow_transitions_seq").fetchone())
    ]
    return dump
