"""Large stores, fast: runs made once by the engine, then copied in bulk with SQL.

A million triggers would take many minutes, so :func:`build` lets chimeway_lite make one run of
each shape (a finished journey, and a run waiting for its two hours to pass), reads their rows
(notification, run, deliveries and their attempt history, trace) and copies them ``count``
times with ``INSERT … SELECT``: every id replaced by a fresh time-ordered one (UUIDv7, also
inside the JSON contexts that name it, and in the attempt history's ``delivery_id``), the
tenant, recipient (also the one each delivery carries) and idempotency key replaced, and the
due time of waiting runs spread over an hour. Every other column — the deliveries'
notification and step keys, attempts, retry limits, the runs' wait state, the history's
claims and outcomes — is the template's. The copies are row for row what the engine writes,
so the store has realistic page counts, index shapes and trace lengths, and
``Store.verify()`` finds nothing to report in it (the smoke run checks that).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta

import engine_side
from shapes import T0, WORKFLOW, MovableClock, after

from chimeway_lite import DeliveryStatus, Store


def _uuid7(k: int) -> str:
    """UUIDv7 text in SQL, laid out as chimeway_lite.core.ids.new_id lays it out: 48 bits of
    milliseconds (``:id_ms + n``: one millisecond per copy, so the copies' ids sort in copy
    order, as ids made one after another do), version 7, a 12-bit counter (``k``, the id's
    place in its copy), the variant (8..b) and 62 random bits."""
    return (
        "lower(substr(printf('%012x', :id_ms + n), 1, 8) || '-' || "
        "substr(printf('%012x', :id_ms + n), 9, 4) || "
        f"'-7' || printf('%03x', {k}) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || "
        "substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
    )


_TENANT, _RECIPIENT, _KEY = "tpl-tenant-000000", "tpl-recipient-%04d", "tpl-key-%04d"


def _base_ms(copies: int) -> int:
    """The first copy's millisecond: far enough in the past that the copies' ids sort
    before every id the engine makes afterwards."""
    return time.time_ns() // 1_000_000 - copies - 1000


def _template(
    store: Store, clock: MovableClock, number: int, *, shape: str, at: datetime = T0
) -> str:
    """One run made by the engine: ``pending`` (triggered at ``at``, its first delivery not
    yet claimed), ``waiting`` (due 2 h after T0), or ``finished`` (30 days ago)."""
    clock.instant = T0 - timedelta(days=30) if shape == "finished" else at
    run_id = engine_side.trigger(store, _TENANT, _RECIPIENT % number, _KEY % number)
    if shape == "pending":
        return run_id
    engine_side.succeed_all(store, 10)
    if shape == "finished":
        clock.instant = after(clock.instant, 7200 + 60)
        store.progress_due_runs()
        for delivery in store.claim_deliveries(10):
            store.record_outcome(delivery.id, DeliveryStatus.SUCCEEDED)
    return run_id


def _rows(conn: sqlite3.Connection, sql: str, *args: object) -> list[sqlite3.Row]:
    return conn.execute(sql, args).fetchall()


def replicate(
    conn: sqlite3.Connection,
    run_id: str,
    count: int,
    *,
    first: int,
    tenants: int,
    tenant_prefix: str = "tenant-",
    recipient_prefix: str = "user-",
    spread_seconds: int = 0,
    id_ms: int | None = None,
) -> None:
    """Copy the run ``run_id`` and its rows ``count`` times (numbered from ``first``).

    Copy n belongs to tenant ``{tenant_prefix}{n % tenants}`` (just ``tenant_prefix`` when
    ``tenants`` is 1) and recipient
    ``{recipient_prefix}{n}``; a waiting run's due time moves by ``n % spread_seconds`` s.
    Its ids are stamped with millisecond ``id_ms + n`` (default: ``first + count`` ms
    before one second ago).
    """
    conn.row_factory = sqlite3.Row
    run = _rows(conn, "SELECT * FROM workflow_runs WHERE id = ?", run_id)[0]
    notification = _rows(conn, "SELECT * FROM notifications WHERE id = ?", run["notification_id"])
    deliveries = _rows(
        conn, "SELECT * FROM deliveries WHERE workflow_run_id = ? ORDER BY rowid", run_id
    )
    transitions = _rows(
        conn, "SELECT * FROM workflow_transitions WHERE workflow_run_id = ? ORDER BY seq", run_id
    )
    events = _rows(
        conn,
        "SELECT e.* FROM delivery_events AS e JOIN deliveries AS d ON d.id = e.delivery_id "
        "WHERE d.workflow_run_id = ? ORDER BY e.seq",
        run_id,
    )
    ids = [notification[0]["id"], run_id, *(r["id"] for r in deliveries)]
    ids += [r["id"] for r in transitions]
    replace = {old: f"g.i{k}" for k, old in enumerate(ids)}
    replace[notification[0]["tenant_id"]] = "g.tenant"
    replace[notification[0]["recipient"]] = "g.recipient"
    replace[notification[0]["idempotency_key"]] = "g.key"
    due = run["suspended_until"]
    if due is not None and spread_seconds:
        replace[due] = "g.due"
    columns = ", ".join(f"{_uuid7(k)} AS i{k}" for k in range(len(ids)))
    conn.execute("DROP TABLE IF EXISTS temp.g")
    conn.execute(
        f"""
        CREATE TEMP TABLE g AS
        WITH RECURSIVE c(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM c WHERE n < :last)
        SELECT n, {columns},
               CASE WHEN :tenants = 1 THEN :tenant_prefix
                    ELSE :tenant_prefix || (n % :tenants) END AS tenant,
               :recipient_prefix || n AS recipient,
               'key-' || n AS key,
               strftime('%Y-%m-%dT%H:%M:%S', :due_base, '+' || (n % :spread) || ' seconds')
                   || substr(:due, 20) AS due
          FROM c
        """,
        {
            "first": first,
            "last": first + count - 1,
            "tenant_prefix": tenant_prefix,
            "tenants": tenants,
            "recipient_prefix": recipient_prefix,
            "due_base": (due or "2000-01-01T00:00:00")[:19].replace("T", " "),
            "due": due or "2000-01-01T00:00:00.000000+00:00",
            "spread": max(spread_seconds, 1),
            "id_ms": _base_ms(first + count) if id_ms is None else id_ms,
        },
    )
    for table, rows in (
        ("notifications", notification),
        ("workflow_runs", [run]),
        ("deliveries", deliveries),
        ("workflow_transitions", transitions),
        ("delivery_events", events),
    ):
        if rows:
            _copy(conn, table, rows, replace)
    conn.execute("DROP TABLE temp.g")


def _copy(
    conn: sqlite3.Connection, table: str, rows: list[sqlite3.Row], replace: dict[str, str]
) -> None:
    """Insert every copy of ``rows`` (one table's template rows, in order): copy by copy,
    each copy's rows in the template's order, so a copied trace or attempt history is as
    contiguous as the template's (a decision's rows stay adjacent in seq)."""
    names = [name for name in rows[0].keys() if name != "seq"]  # noqa: SIM118 - sqlite3.Row
    # seq is left out: the copies are numbered in insertion order.
    selects, params = [], []
    for r, row in enumerate(rows):
        values = []
        for name in names:
            value = row[name]
            if isinstance(value, str):
                expression = "?"
                params.append(value)
                for old, new in replace.items():
                    if old in value:
                        expression = f"replace({expression}, ?, {new})"
                        params.append(old)
                values.append(f"{expression} AS {name}")
            else:
                values.append(f"? AS {name}")
                params.append(value)
        selects.append(f"SELECT g.n AS n, {r} AS r, {', '.join(values)} FROM g")
    conn.execute(
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(names)} FROM "
        f"({' UNION ALL '.join(selects)}) ORDER BY n, r",
        params,
    )


def build(path: str, runs: int, *, waiting_share: float = 0.1, tenants: int = 100) -> None:
    """A store of ``runs`` runs: finished journeys and runs waiting (not yet due) for T0 + 2 h
    … T0 + 3 h, spread over ``tenants`` tenants."""
    store, clock = engine_side.open_store(path, T0)
    with store:
        store.upsert_definition("welcome", WORKFLOW)
        finished = _template(store, clock, 1, shape="finished")
        waiting = _template(store, clock, 2, shape="waiting")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # One big transaction in WAL mode would write every page twice (WAL, then the
        # checkpoint): the copies go straight into the file, then the file is WAL again.
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -2000000")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("BEGIN IMMEDIATE")
        waiting_count = int(runs * waiting_share)
        base = _base_ms(runs)
        replicate(conn, finished, runs - waiting_count, first=0, tenants=tenants, id_ms=base)
        replicate(
            conn,
            waiting,
            waiting_count,
            first=runs - waiting_count,
            tenants=tenants,
            spread_seconds=3600,
            id_ms=base,
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def build_waiting(path: str, groups: dict[str, int]) -> None:
    """A store whose runs all wait for ``notification_read``: ``groups`` maps a tenant to
    how many of its runs wait, each for its own recipient ``{tenant}-user-{n}``. ``path``
    may hold a store already (one :func:`build` made, whose tenants are others): the
    waiting runs are added to it."""
    store, clock = engine_side.open_store(path, T0)
    with store:
        store.upsert_definition("welcome", WORKFLOW)
        waiting = _template(store, clock, 3, shape="waiting")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN IMMEDIATE")
        first = 0
        base = _base_ms(sum(groups.values()))
        for tenant, count in groups.items():
            replicate(
                conn,
                waiting,
                count,
                first=first,
                tenants=1,
                tenant_prefix=tenant,
                recipient_prefix=f"{tenant}-user-",
                spread_seconds=3600,
                id_ms=base,
            )
            first += count
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def build_pending(
    path: str,
    count: int,
    *,
    tenants: int = 100,
    tenant_prefix: str = "tenant-",
    at: datetime = T0,
) -> None:
    """A store of ``count`` runs just triggered, each with its first delivery pending (the
    in-app step, planned at ``at``), spread over ``tenants`` tenants named ``{tenant_prefix}{n}``:
    work for claimers. ``path`` may hold a store already (one :func:`build` made): the runs
    are added to it, in tenants of their own so their idempotency keys are new."""
    store, clock = engine_side.open_store(path, T0)
    with store:
        store.upsert_definition("welcome", WORKFLOW)
        pending = _template(store, clock, 4, shape="pending", at=at)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN IMMEDIATE")
        copies = count - 1  # and the template makes count
        replicate(conn, pending, copies, first=0, tenants=tenants, tenant_prefix=tenant_prefix)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
