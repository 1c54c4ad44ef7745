"""Opening a store file: pragmas, the schema and its upgrades, and turning sqlite3 errors
into ours.

Everything that happens once per connection lives here; the backend
(:class:`~chimeway_lite.backends.sqlite.backend.SqliteBackend`) is the only caller and the
only owner of the connection it returns.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from importlib import resources
from pathlib import Path

from ...core.errors import ChimewayError, ConstraintFailed, SchemaMismatch, StorageError, StoreBusy
from .migrations import MIGRATIONS

SCHEMA_VERSION = 3
APPLICATION_ID = 0x63776C31  # 'cwl1'
MEMORY = ":memory:"

# Primary result codes (https://sqlite.org/rescode.html).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


def schema_sql() -> str:
    """The DDL: ``schema.sql`` inside the installed package, else at the project's top."""
    packaged = resources.files("chimeway_lite").joinpath("schema.sql")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    top = Path(__file__).resolve().parents[3]  # the project: backends/sqlite/ -> top
    return (top / "schema.sql").read_text(encoding="utf-8")


# A view of schema.sql and its name (a plain identifier, so it can be named in a DROP).
_VIEW = re.compile(r"CREATE VIEW ([a-z_]+) AS\b")


def schema_statements(text: str | None = None) -> list[str]:
    """``schema.sql`` (or ``text``) split into complete statements (triggers keep their inner
    ``;``)."""
    statements, pending = [], ""
    for line in (schema_sql() if text is None else text).splitlines(keepends=True):
        if not pending and (not line.strip() or line.lstrip().startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise RuntimeError("schema.sql ends inside a statement")
    return statements


def translate(exc: sqlite3.Error, path: str, timeout: float) -> ChimewayError:
    """Our error for an sqlite3 error: busy, read-only, not a database, disk trouble."""
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        return ConstraintFailed(path, text)
    if code in (_BUSY, _LOCKED) or "database is locked" in text:
        return StoreBusy(path, timeout)
    if code == _READONLY or "readonly" in text:
        return StorageError(path, "the database is read-only (file, directory or mount)")
    if code == _NOTADB or "not a database" in text:
        return SchemaMismatch(path, "the file is not an SQLite database")
    if code == _CORRUPT:
        return StorageError(path, f"the database is corrupt: {text}")
    if code == _FULL:
        return StorageError(path, "the disk is full")
    if code == _CANTOPEN:
        return StorageError(path, f"cannot open the database file: {text}")
    if code == _IOERR:
        return StorageError(path, f"disk I/O error: {text}")
    return StorageError(path, text)


# Files the store keeps beside the database: SQLite's WAL pair and the writer gate's lock.
COMPANIONS = ("-wal", "-shm", "-lock")


def _access(path: str, mode: int) -> bool:
    # The effective ids decide what open() may do (a setuid host, or a test that drops
    # privileges); os.access checks the real ids unless told otherwise.
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)  # pragma: no cover - platforms without faccessat


def _check_path(path: str) -> None:
    """Refuse, with the reason, a path the store could not use for writing."""
    if path == MEMORY:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StorageError(path, f"the directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise StorageError(path, "the path is a directory, not a database file")
    if not os.path.exists(path):
        if not _access(directory, os.W_OK | os.X_OK):
            raise StorageError(path, f"the directory {directory!r} is not writable")
        return
    if not _access(path, os.R_OK | os.W_OK):
        raise StorageError(path, "the file is read-only (or unreadable) for this process")
    missing = [path + c for c in COMPANIONS if not os.path.exists(path + c)]
    if missing and not _access(directory, os.W_OK | os.X_OK):
        raise StorageError(
            path,
            f"the directory {directory!r} is not writable, and the store needs to create "
            f"{', '.join(os.path.basename(m) for m in missing)} beside the database",
        )
    for companion in (path + c for c in COMPANIONS if path + c not in missing):
        if not _access(companion, os.R_OK if companion.endswith("-lock") else os.R_OK | os.W_OK):
            raise StorageError(path, f"{companion!r} is read-only (or unreadable) for this process")


def connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path``, set the pragmas, create or check the schema; return the connection.

    Several processes may do this on a brand-new file at once: creation runs under
    ``BEGIN IMMEDIATE`` and looks again once it holds the lock.
    """
    _check_path(path)
    try:
        conn = sqlite3.connect(
            path,
            timeout=busy_timeout,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # the Store serialises threads with its own lock
            cached_statements=256,
        )
    except sqlite3.Error as exc:
        raise translate(exc, path, busy_timeout) from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        _ensure_schema(conn, path, busy_timeout)
        if path != MEMORY:
            _set_wal(conn, path, busy_timeout)
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path, busy_timeout) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _stamp(conn: sqlite3.Connection) -> tuple[int, int, int]:
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    return application_id, user_version, objects


def _check_stamp(path: str, application_id: int, user_version: int, objects: int) -> bool:
    """True when the schema is ours and current; False when the file is empty or made by an
    older version this one upgrades (:data:`~.migrations.MIGRATIONS`)."""
    if application_id == APPLICATION_ID:
        if user_version == SCHEMA_VERSION:
            return True
        if user_version > SCHEMA_VERSION:
            raise SchemaMismatch(
                path,
                f"it was written by a newer chimeway_lite (schema version {user_version}; "
                f"this version knows {SCHEMA_VERSION}); upgrade chimeway_lite",
            )
        if user_version in MIGRATIONS:
            return False
        raise SchemaMismatch(path, f"unknown chimeway_lite schema version {user_version}")
    if application_id == 0 and user_version == 0 and objects == 0:
        return False
    raise SchemaMismatch(
        path,
        f"not a chimeway_lite store (application_id {application_id:#x}, user_version "
        f"{user_version}, {objects} schema objects)",
    )


def _ensure_schema(conn: sqlite3.Connection, path: str, busy_timeout: float) -> None:
    if _check_stamp(path, *_stamp(conn)):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Look again now that we hold the lock: another process may have created or
        # upgraded the file meanwhile.
        application_id, user_version, objects = _stamp(conn)
        if not _check_stamp(path, application_id, user_version, objects):
            if application_id == 0:
                for statement in schema_statements():
                    conn.execute(statement)
                # PRAGMA takes no parameters; both values are integer constants of this module.
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
            else:
                _upgrade(conn, user_version)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _upgrade(conn: sqlite3.Connection, version: int) -> None:
    """Bring a file of an older schema version up to this one, inside the caller's
    transaction: every step or none. The views hold no data: they are dropped and made
    again from ``schema.sql``, so an upgraded file has this version's views."""
    while version < SCHEMA_VERSION:
        for statement in schema_statements(MIGRATIONS[version]):
            conn.execute(statement)
        version += 1
    for statement in schema_statements():
        view = _VIEW.match(statement)
        if view is not None:
            # Only our own views: a host's views in the file are left alone.
            conn.execute(f"DROP VIEW IF EXISTS {view.group(1)}")
            conn.execute(statement)


def _set_wal(conn: sqlite3.Connection, path: str, busy_timeout: float) -> None:
    # Switching to WAL takes a lock that the busy handler does not always wait for when
    # several processes open a new file together: retry until the busy timeout.
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)
            continue
        if str(mode).lower() != "wal":
            raise StorageError(path, f"cannot switch the journal to WAL (got {mode!r})")
        return
