"""Opening a PostgreSQL store: the connection's settings, the schema and its version, and
turning psycopg errors into ours.

Everything that happens once per connection lives here; the backend
(:class:`~chimeway_lite.backends.postgres.backend.PostgresBackend`) is the only caller.
"""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import errors as pg_errors

from ...core.errors import ChimewayError, ConstraintFailed, SchemaMismatch, StorageError, StoreBusy

#: The version of ``schema.sql`` beside this module; recorded in ``chimeway_lite_schema``.
SCHEMA_VERSION = 2
#: What takes a schema of version N to N + 1, besides making the views afresh from
#: ``schema.sql`` (which every upgrade does last). Version 2 adds the views for people
#: (``runs_overview``, ``deliveries_overview``, ``trace_overview``) and nothing else.
UPGRADES: dict[int, str] = {1: ""}
#: The application name recorded beside the version: a table of that name holding another
#: name is some other program's.
APPLICATION = "chimeway_lite"
#: Our tables: one of them present without our version table is a foreign schema.
TABLES = (
    "workflow_definitions",
    "workflow_steps",
    "notifications",
    "workflow_runs",
    "deliveries",
    "workflow_transitions",
    "delivery_events",
    "signals",
    "signal_marks",
    "step_activations",
    "digest_batches",
    "digest_members",
    "erasures",
)

# SQLSTATEs a whole unit may be run again for: the server chose it to fail so that another
# could go on (serialization_failure, deadlock_detected).
RETRYABLE = ("40001", "40P01")
# A lock wait ran out (lock_not_available: lock_timeout or NOWAIT).
LOCK_NOT_AVAILABLE = "55P03"


def schema_sql() -> str:
    """The DDL, ``schema.sql`` beside this module (shipped in the wheel)."""
    return resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")


def translate(exc: psycopg.Error, location: str, timeout: float) -> ChimewayError:
    """Our error for a psycopg error: a constraint, a lock wait that ran out, a lost or
    refused connection, anything else as :class:`StorageError` (one line, no values)."""
    state = getattr(exc, "sqlstate", None) or ""
    text = _first_line(exc)
    if isinstance(exc, pg_errors.IntegrityConstraintViolation) or state.startswith("23"):
        return ConstraintFailed(location, text)
    if state == LOCK_NOT_AVAILABLE or state in RETRYABLE:
        return StoreBusy(location, timeout)
    if isinstance(exc, pg_errors.DataError) or state.startswith("22"):
        return ConstraintFailed(location, text)
    if isinstance(exc, psycopg.DataError):
        return ConstraintFailed(location, text)
    if isinstance(exc, psycopg.OperationalError) and not state:
        return StorageError(location, f"cannot reach the PostgreSQL server: {text}")
    if state == "42P01":  # undefined_table: the schema went away under us
        return SchemaMismatch(location, f"a table of the store is missing: {text}")
    return StorageError(location, text)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _statements(text: str) -> list[str]:
    """``schema.sql`` split into statements (a ``$$``-quoted body keeps its ``;``)."""
    statements, pending, quoted = [], "", False
    for line in text.splitlines(keepends=True):
        if not pending and (not line.strip() or line.lstrip().startswith("--")):
            continue
        pending += line
        quoted ^= line.count("$$") % 2 == 1
        if not quoted and line.rstrip().endswith(";"):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise RuntimeError("schema.sql ends inside a statement")
    return statements


_FOUND = """
SELECT c.relname FROM pg_class AS c
 WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
   AND c.relkind IN ('r', 'p', 'v') AND c.relname = ANY(%s)
"""


def _stamp(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[str | None, list[str]]:
    """(the version row's application, or None without the table) and which of our tables
    exist, in the first schema of the search_path."""
    found = [
        str(r[0]) for r in conn.execute(_FOUND, [[*TABLES, "chimeway_lite_schema"]]).fetchall()
    ]
    return ("chimeway_lite_schema" if "chimeway_lite_schema" in found else None), found


def _version(conn: psycopg.Connection[tuple[object, ...]], location: str) -> int | None:
    """The schema's version (current or older), or None when it has none of our tables;
    :class:`SchemaMismatch` for a foreign, newer or unknown one."""
    table, found = _stamp(conn)
    if table is None:
        if found:
            raise SchemaMismatch(
                location,
                f"not a chimeway_lite store: table {sorted(found)[0]} exists without "
                "chimeway_lite_schema",
            )
        return None
    rows = conn.execute("SELECT application, version FROM chimeway_lite_schema").fetchall()
    versions = {str(r[0]): r[1] for r in rows}
    if APPLICATION not in versions:
        raise SchemaMismatch(
            location, "not a chimeway_lite store (chimeway_lite_schema names another)"
        )
    version = versions[APPLICATION]
    if not isinstance(version, int):
        raise SchemaMismatch(location, "chimeway_lite_schema holds no version")
    if version > SCHEMA_VERSION:
        raise SchemaMismatch(
            location,
            f"it was written by a newer chimeway_lite (PostgreSQL schema version {version}; "
            f"this version knows {SCHEMA_VERSION}); upgrade chimeway_lite",
        )
    if version != SCHEMA_VERSION and version not in UPGRADES:
        raise SchemaMismatch(location, f"unknown chimeway_lite schema version {version}")
    return version


def view_statements() -> list[str]:
    """The ``CREATE VIEW`` statements of ``schema.sql``, as ``CREATE OR REPLACE VIEW``."""
    return [
        "CREATE OR REPLACE VIEW" + statement[len("CREATE VIEW") :]
        for statement in _statements(schema_sql())
        if statement.startswith("CREATE VIEW")
    ]


def ensure_schema(conn: psycopg.Connection[tuple[object, ...]], location: str) -> None:
    """Create the schema if the first schema of the search_path has none, upgrade it if it
    is older, else check it is ours and current. Creation and upgrade are one transaction
    under an advisory lock named after the schema, so processes opening a database at once
    make or upgrade it once, and an upgrade that fails leaves the schema as it was."""
    with conn.transaction():
        if _version(conn, location) == SCHEMA_VERSION:
            return
        conn.execute(
            "SELECT pg_advisory_xact_lock("
            "hashtextextended('chimeway_lite:' || current_schema(), 0))"
        )
        version = _version(conn, location)  # another process may have acted while we waited
        if version == SCHEMA_VERSION:
            return
        if version is not None:
            _upgrade(conn, version)
            return
        if conn.execute("SELECT current_schema()").fetchone() in (None, (None,)):
            raise StorageError(location, "the search_path names no schema to create the store in")
        for statement in _statements(schema_sql()):
            conn.execute(statement.encode())
        conn.execute(
            "INSERT INTO chimeway_lite_schema (application, version) VALUES (%s, %s)",
            [APPLICATION, SCHEMA_VERSION],
        )


def _upgrade(conn: psycopg.Connection[tuple[object, ...]], version: int) -> None:
    """Take a schema of ``version`` to the current one, inside the caller's transaction."""
    for step in range(version, SCHEMA_VERSION):
        for statement in _statements(UPGRADES[step]):
            conn.execute(statement.encode())
    for statement in view_statements():
        conn.execute(statement.encode())
    conn.execute(
        "UPDATE chimeway_lite_schema SET version = %s WHERE application = %s",
        [SCHEMA_VERSION, APPLICATION],
    )


def connect(dsn: str, location: str, busy_timeout: float) -> psycopg.Connection[tuple[object, ...]]:
    """A new connection with the store's settings: UTC, lock waits bounded by
    ``busy_timeout``, autocommit off (every unit is an explicit transaction)."""
    millis = max(1, int(busy_timeout * 1000)) if busy_timeout > 0 else 1
    try:
        conn = psycopg.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(2, int(busy_timeout) + 1),
            application_name="chimeway_lite",
        )
    except psycopg.Error as exc:
        raise StorageError(location, f"cannot connect: {_first_line(exc)}") from None
    try:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(f"SET lock_timeout = {millis:d}")
        conn.execute("SET idle_in_transaction_session_timeout = 0")
    except psycopg.Error as exc:
        conn.close()
        raise translate(exc, location, busy_timeout) from None
    return conn
