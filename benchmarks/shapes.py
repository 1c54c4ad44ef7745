"""What both sides of every benchmark share: the journey, the instants, the pragmas, row counts.

The journey is the one of the README: an in-app message first; an email at once if it bounces;
an email two hours later unless ``notification_read`` arrives first. chimeway_lite registers it
as a :class:`~chimeway_lite.Workflow`; the raw sqlite3 side writes the same definition rows by
hand (:mod:`raw_side`).
"""

from __future__ import annotations

import re
import sqlite3
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from chimeway_lite import OnOutcome, Outcome, Retry, Step, WaitUntil, Workflow
from chimeway_lite.backends.sqlite.backend import WAL_AUTOCHECKPOINT
from chimeway_lite.backends.sqlite.connection import WAL_SIZE_LIMIT
from chimeway_lite.core.timestamps import to_text

NOTIFICATION_KEY = "welcome"
EVENT = "notification_read"
DELAY_SECONDS = 7200

WORKFLOW = Workflow(
    "escalation",
    1,
    [
        Step(
            "inapp",
            1,
            "in_app",
            progress=[
                OnOutcome(Outcome.BOUNCED, "email"),
                WaitUntil(DELAY_SECONDS, "email", [EVENT]),
            ],
        ),
        Step("email", 2, "email"),
    ],
)

# The retrying journey: one email step whose failed deliveries are retried (3 attempts in
# all, the first retry 1 s after the failure). Its run completes when a delivery succeeds.
RETRY_WORKFLOW = Workflow("retrying", 1, [Step("send", 1, "email", retry=Retry(3, 1))])
RETRY_BACKOFF_SECONDS = 1

# The benchmark's "now": due sweeps run at T0; batches that must be due are made before it.
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

TABLES = (
    "workflow_definitions",
    "workflow_steps",
    "notifications",
    "workflow_runs",
    "workflow_transitions",
    "deliveries",
    "delivery_events",
    "signals",
    "signal_marks",
)


class MovableClock:
    """A clock the benchmark sets freely (backwards too, unlike FakeClock)."""

    def __init__(self, now: datetime) -> None:
        self.instant = now

    def now(self) -> datetime:
        """The instant the clock was set to."""
        return self.instant


def text(instant: datetime) -> str:
    """The store's fixed-width text of an instant."""
    return to_text(instant)


def after(instant: datetime, seconds: float) -> datetime:
    """``instant`` plus ``seconds``."""
    return instant + timedelta(seconds=seconds)


def connect_raw(path: str, timeout: float = 5.0) -> sqlite3.Connection:
    """A plain connection with the store's pragmas: WAL, synchronous NORMAL, foreign keys,
    the store's checkpoint interval and WAL size limit; ``timeout`` is its busy timeout (the
    Store's default is 5 s too)."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT:d}")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT:d}")
    return conn


def count_rows(path: str) -> dict[str, int]:
    """Rows per table of a store file."""
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-([0-9a-f])[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


def table_dump(path: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of :data:`TABLES`, in insertion order, with each id (also
    inside JSON text) replaced by ``<v7:n>``: its UUID version and the order in which the
    dump first met it. Two files written by the same operations in the same order dump
    equal, whatever ids they drew, as long as both draw ids of one version."""
    tokens: dict[str, str] = {}

    def token(match: re.Match[str]) -> str:
        found = tokens.get(match.group(0))
        if found is None:
            found = tokens[match.group(0)] = f"<v{match.group(1)}:{len(tokens)}>"
        return found

    conn = sqlite3.connect(path)
    try:
        return {
            table: [
                tuple(_ID.sub(token, v) if isinstance(v, str) else v for v in row)
                for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
            ]
            for table in TABLES
        }
    finally:
        conn.close()


def first_difference(
    left: dict[str, list[tuple[Any, ...]]], right: dict[str, list[tuple[Any, ...]]]
) -> str | None:
    """Where two :func:`table_dump` s first differ, in a sentence; None when they are equal."""
    for table in TABLES:
        a, b = left[table], right[table]
        for n, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return f"{table} row {n + 1}: {x!r} != {y!r}"
        if len(a) != len(b):
            return f"{table}: {len(a)} rows != {len(b)} rows"
    return None


def checkpoint(path: str) -> None:
    """Fold the WAL into the main file so a copy of the file is the whole store."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def median_and_rounds(values: list[float]) -> str:
    """A table cell: the median, then each round's figure."""
    return f"{statistics.median(values):,.0f} ({', '.join(f'{v:,.0f}' for v in values)})"
