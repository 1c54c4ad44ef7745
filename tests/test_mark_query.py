"""The two SQLite forms of the early-signal read (CONTRACT §13.1) find the same mark.

``earliest_mark`` reads ``_EARLIEST_MARK_OF_ONE`` for a wait on one event (the event bound
as it is) and ``_EARLIEST_MARK`` for several (the events as a JSON list). Both are checked
against the contract's rule written out in Python, on random marks: of the tenant, of one
of the events, of the recipient or of no actor, of the run's correlation key or of none,
routed at or after the step was entered; the earliest by time, then by seq.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chimeway_lite.backends.sqlite.connection import schema_statements
from chimeway_lite.backends.sqlite.runs import _EARLIEST_MARK, _EARLIEST_MARK_OF_ONE
from chimeway_lite.core.text import canonical_json

TENANTS = ("acme", "globex")
EVENTS = ("read", "clicked", "acted")
ACTORS = (None, "ada", "bob")
KEYS = (None, "o-100", "o-200")
TIMES = tuple(f"2026-01-05T09:3{i}:00.000000+00:00" for i in range(5))

marks = st.lists(
    st.tuples(
        st.sampled_from(TENANTS),
        st.sampled_from(EVENTS),
        st.sampled_from(ACTORS),
        st.sampled_from(KEYS),
        st.sampled_from(TIMES),
    ),
    max_size=30,
)
queries = st.fixed_dictionaries(
    {
        "tenant_id": st.sampled_from(TENANTS),
        "recipient": st.sampled_from(ACTORS[1:]),
        "correlation_key": st.sampled_from(KEYS),
        "since": st.sampled_from(TIMES),
    }
)


def _connection(rows: list[tuple[Any, ...]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for statement in schema_statements():
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO signal_marks (tenant_id, event_name, actor_id, correlation_key, routed_at)"
        " VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    return conn


def _expected(
    rows: list[tuple[Any, ...]], events: tuple[str, ...], query: dict[str, Any]
) -> tuple[Any, ...] | None:
    found = [
        (routed_at, seq, (seq, tenant, event, actor, key, routed_at))
        for seq, (tenant, event, actor, key, routed_at) in enumerate(rows, start=1)
        if tenant == query["tenant_id"]
        and event in events
        and actor in (None, query["recipient"])
        and key in (None, query["correlation_key"])
        and routed_at >= query["since"]
    ]
    return min(found)[2] if found else None


@given(rows=marks, event=st.sampled_from(EVENTS), query=queries)
def test_the_one_event_form_finds_the_contracts_mark(
    rows: list[tuple[Any, ...]], event: str, query: dict[str, Any]
) -> None:
    conn = _connection(rows)
    found = conn.execute(_EARLIEST_MARK_OF_ONE, {**query, "event": event}).fetchone()
    assert found == _expected(rows, (event,), query)
    listed = conn.execute(_EARLIEST_MARK, {**query, "events": canonical_json([event])}).fetchone()
    assert listed == found


@given(
    rows=marks,
    events=st.lists(st.sampled_from(EVENTS), min_size=2, max_size=3, unique=True),
    query=queries,
)
def test_the_listed_form_finds_the_contracts_mark(
    rows: list[tuple[Any, ...]], events: list[str], query: dict[str, Any]
) -> None:
    conn = _connection(rows)
    found = conn.execute(_EARLIEST_MARK, {**query, "events": canonical_json(events)}).fetchone()
    assert found == _expected(rows, tuple(events), query)
