"""Opening a store file: pragmas, the schema and its upgrades, and turning sqlite3 errors
into ours.

Everything that happens once per connection lives here; the backend
(:class:`~chimeway_lite.backends.sqlite.backend.SqliteBackend`) is the only caller and the
only owner of the connection it returns.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
import urllib.parse
from importlib import resources
from pathlib import Path

from ...core.errors import ChimewayError, ConstraintFailed, SchemaMismatch, StorageError, StoreBusy
from ...core.text import shown
from .migrations import MIGRATIONS

SCHEMA_VERSION = 5
APPLICATION_ID = 0x63776C31  # 'cwl1'
MEMORY = ":memory:"
WAL_SIZE_LIMIT = 64 * 1024 * 1024

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


READ_WRITE, READ_ONLY, IMMUTABLE = "rw", "ro", "immutable"


def open_mode(path: str) -> tuple[str, str | None]:
    """How the store at ``path`` can be opened, and why not for writing: :data:`READ_WRITE`
    (and None); :data:`READ_ONLY` when an
    existing store cannot be written by this process (a read-only file or mount) but its WAL
    pair is there to read through; :data:`IMMUTABLE` when it cannot be written and has no
    WAL pair either (a store closed cleanly, then mounted read-only: nothing can change
    it). Refuses, with the reason, a path that can be neither written nor read."""
    if path == MEMORY:
        return READ_WRITE, None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StorageError(path, f"the directory {shown(directory, 80)} does not exist")
    if os.path.isdir(path):
        raise StorageError(path, "the path is a directory, not a database file")
    if not os.path.exists(path):
        if not _access(directory, os.W_OK | os.X_OK):
            raise StorageError(path, f"the directory {shown(directory, 80)} is not writable")
        return READ_WRITE, None
    if not _access(path, os.R_OK):
        raise StorageError(path, "the file is unreadable for this process")
    missing = [path + c for c in COMPANIONS if not os.path.exists(path + c)]
    unwritable = [
        c
        for c in (path + c for c in COMPANIONS)
        if c not in missing
        and not _access(c, os.R_OK if c.endswith("-lock") else os.R_OK | os.W_OK)
    ]
    if _read_only_mount(directory):
        why: str | None = "the file system is mounted read-only"
    elif not _access(path, os.W_OK):
        why = "the file is read-only for this process"
    elif missing and not _access(directory, os.W_OK | os.X_OK):
        why = (
            f"the directory {shown(directory, 80)} is not writable, and the store needs to "
            f"create {', '.join(os.path.basename(m) for m in missing)} beside the database"
        )
    elif unwritable:
        why = f"{', '.join(os.path.basename(c) for c in unwritable)} cannot be written"
    else:
        return READ_WRITE, None
    wal = path + "-wal"
    if not os.path.exists(wal) or os.path.getsize(wal) == 0:
        return IMMUTABLE, why
    if os.path.exists(path + "-shm") and _access(path + "-shm", os.R_OK):
        return READ_ONLY, why
    raise StorageError(
        path,
        "the store cannot be written here, and its WAL cannot be read without its -shm "
        "file, which is missing and cannot be created",
    )


def _read_only_mount(directory: str) -> bool:
    statvfs = getattr(os, "statvfs", None)
    if statvfs is None:  # pragma: no cover - Windows
        return False
    try:
        return bool(statvfs(directory).f_flag & getattr(os, "ST_RDONLY", 1))
    except OSError:
        return False


def connect(path: str, busy_timeout: float) -> tuple[sqlite3.Connection, str | None]:
    """Open ``path``, set the pragmas, create or check the schema; return the connection
    and, when it can only be read, why (:func:`open_mode`).

    Several processes may do this on a brand-new file at once: creation runs under
    ``BEGIN IMMEDIATE`` and looks again once it holds the lock. A store this process cannot
    write is opened for reading only (its schema must be current then: nothing upgrades it).
    """
    mode, why = open_mode(path)
    if mode == READ_WRITE:
        target, uri = path, False
    else:
        quoted = urllib.parse.quote(os.path.abspath(path))
        target = f"file:{quoted}?mode=ro" + ("&immutable=1" if mode == IMMUTABLE else "")
        uri = True
    try:
        conn = sqlite3.connect(
            target,
            timeout=busy_timeout,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # the Store serialises threads with its own lock
            cached_statements=256,
            uri=uri,
        )
    except sqlite3.Error as exc:
        raise translate(exc, path, busy_timeout) from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted rows are overwritten with zeros, in the file and in the WAL's pages, so
        # an erasure (forget) leaves nothing readable (CONTRACT §16).
        conn.execute("PRAGMA secure_delete = ON")
        if mode == READ_WRITE:
            _ensure_schema(conn, path, busy_timeout)
            if path != MEMORY:
                _set_wal(conn, path, busy_timeout)
            conn.execute("PRAGMA synchronous = NORMAL")
            # After a checkpoint the WAL is cut back to this size (64 MiB): one large unit
            # (a prune of a big store, a long batch) must not leave a huge file behind.
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT:d}")
        elif not _check_stamp(path, *_stamp(conn)):
            raise SchemaMismatch(
                path,
                "the store is read-only for this process and its schema needs creating or "
                "upgrading; open it once where it can be written",
            )
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, path, busy_timeout) from exc
    except BaseException:
        conn.close()
        raise
    return conn, why


# One statement, so one snapshot: read one by one, the three could straddle another
# process's creation of the schema (application_id 0, yet user_version set and tables there).
_STAMP = (
    "SELECT (SELECT application_id FROM pragma_application_id),"
    " (SELECT user_version FROM pragma_user_version),"
    " (SELECT count(*) FROM sqlite_master)"
)


def _stamp(conn: sqlite3.Connection) -> tuple[int, int, int]:
    application_id, user_version, objects = conn.execute(_STAMP).fetchone()
    return int(application_id), int(user_version), int(objects)


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


def truncate_wal(conn: sqlite3.Connection, path: str, busy_timeout: float) -> None:
    """Copy every page of the WAL into the database and truncate the WAL to zero bytes, so
    the copies of erased rows it held are gone (after ``forget`` commits).

    SQLite waits (up to the busy timeout) for readers still on an older snapshot; if one
    holds on beyond it, the WAL cannot be emptied now: a warning says so, and the next
    erasure (or the last connection's close) empties it.
    """
    if path == MEMORY:
        return
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.Error as exc:
        raise translate(exc, path, busy_timeout) from exc
    if busy:
        logging.getLogger("chimeway_lite").warning(
            "forget: the erasure is committed, but a reader kept the WAL of %s from being "
            "emptied within %g s; it still holds copies of the erased rows",
            path,
            busy_timeout,
        )


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
