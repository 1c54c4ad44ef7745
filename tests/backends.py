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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pg_server

from chimeway_lite import Store
from chimeway_lite.core.text import canonical_json
from chimeway_lite.core.timestamps import to_text

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


class Row(tuple):  # type: ignore[type-arg]
    """A row read by index or by column name, as a ``sqlite3.Row`` is."""

    names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self.names)


def _as_stored(value: Any) -> Any:
    """A value in the form the SQLite store keeps it: instants as fixed-width UTC text,
    JSON as canonical text."""
    if isinstance(value, datetime):
        return to_text(value)
    if isinstance(value, (dict, list)):
        return canonical_json(value)
    return value


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


_WITH_SEQ = {
    "deliveries",
    "workflow_transitions",
    "delivery_events",
    "signal_marks",
    "step_activations",
    "digest_members",
    "erasures",
}


class _PostgresSql:
    """``execute(sql, params)`` on the store's database, autocommitted, with sqlite3's
    placeholders (``?`` and ``:name``) and values in the SQLite store's forms."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("SET TIME ZONE 'UTC'")

    def execute(self, statement: str, params: Any = ()) -> _Cursor:
        text = re.sub(r"\bWHERE 1\b", "WHERE true", statement.replace("%", "%%"))
        # rowid, the order rows were written in: seq where the table has one, else the id
        # (the store's ids are UUIDv7, in the order they were made).
        table = re.search(r"\bFROM\s+(\w+)", text)
        order = "seq" if table and table.group(1) in _WITH_SEQ else "id"
        text = re.sub(r"\bORDER BY rowid\b", f"ORDER BY {order}", text)
        if isinstance(params, dict):
            text = re.sub(r"(?<![:\w]):([a-z_][a-z0-9_]*)", r"%(\1)s", text)
        else:
            text = text.replace("?", "%s")
            params = list(params)
        cursor = self.conn.execute(text, params)
        rows: list[Any] = []
        if cursor.description is not None:
            names = tuple(c.name for c in cursor.description)
            for found in cursor.fetchall():
                row = Row(_as_stored(v) for v in found)
                row.names = names
                rows.append(row)
        return _Cursor(rows, cursor.rowcount)

    @property
    def in_transaction(self) -> bool:
        """Whether a connection of a store was left inside a transaction (the tests run one
        at a time: any store's connection idle in a transaction is the test's)."""
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'chimeway_lite'"
            " AND state LIKE 'idle in transaction%%'"
        ).fetchone()
        return bool(row and row[0])

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
    """Every row of every table of a PostgreSQL store's schema (by its first column): two
    dumps compare equal when nothing was written. (The trace sequence is left out: a
    number a rolled-back unit took is not handed out again, and that writes no row.)"""
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
    return dump


@contextmanager
def scratch_store(backend: str, **options: Any) -> Iterator[Store]:
    """A store for one hypothesis example: in memory on SQLite, in a new schema (dropped
    afterwards) on PostgreSQL."""
    if backend == SQLITE:
        with Store(":memory:", **options) as store:
            yield store
        return
    location = new_location(POSTGRES, Path("."))
    try:
        with Store(location, **options) as store:
            yield store
    finally:
        close_sql(location)
        drop_location(location)
