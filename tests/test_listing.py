"""listing: runs, traces and tables as rows through sqlite-utils, on the read path only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from backends import sql
from factories import trigger

from chimeway_lite import (
    FakeClock,
    InvalidArgument,
    Retry,
    RunNotFound,
    RunState,
    Signal,
    Step,
    Store,
    Workflow,
)
from chimeway_lite.tools.listing import (
    DELIVERY_COLUMNS,
    RUN_COLUMNS,
    TRACE_COLUMNS,
    database,
    delivery_rows,
    plain,
    run_rows,
    table_rows,
    to_csv,
    to_json,
    trace_rows,
)

TABLES = {
    "workflow_definitions",
    "workflow_steps",
    "notifications",
    "deliveries",
    "workflow_runs",
    "workflow_transitions",
    "signals",
}


@pytest.fixture
def populated(store: Store, clock: FakeClock) -> dict[str, str]:
    """acme/ada waiting, acme/bob active (later), globex/cy completed by a signal."""
    runs = {"ada": trigger(store, recipient="ada").run.id}
    store.record_outcome(store.list_deliveries("acme", runs["ada"])[0].id, "succeeded")
    clock.advance(minutes=5)
    runs["cy"] = trigger(store, tenant="globex", recipient="cy").run.id
    store.record_outcome(store.list_deliveries("globex", runs["cy"])[0].id, "succeeded")
    store.route_signal(Signal("globex", "notification_read"))
    store.progress_due_runs()
    clock.advance(minutes=5)
    runs["bob"] = trigger(store, recipient="bob").run.id
    return runs


def test_run_rows_are_most_recent_first_with_step_keys(
    store: Store, populated: dict[str, str]
) -> None:
    rows = run_rows(store)

    assert [r["id"] for r in rows] == [populated["bob"], populated["cy"], populated["ada"]]
    assert all(tuple(r) == RUN_COLUMNS for r in rows)
    ada = rows[2]
    assert (ada["tenant_id"], ada["state"], ada["current_step"], ada["channel"]) == (
        "acme",
        "waiting",
        "inapp",
        "in_app",
    )
    assert ada["pending_signals"] == ["notification_read"]
    assert ada["suspended_until"] == "2026-01-05T11:30:00.000000+00:00"
    assert (ada["workflow_key"], ada["workflow_version"]) == ("escalation", 1)
    assert rows[1]["terminal_reason"] == "cancelled_by_signal"


def test_run_rows_filter_and_limit(store: Store, populated: dict[str, str]) -> None:
    assert {r["id"] for r in run_rows(store, tenant_id="acme")} == {
        populated["ada"],
        populated["bob"],
    }
    assert [r["id"] for r in run_rows(store, state=RunState.WAITING)] == [populated["ada"]]
    assert [r["id"] for r in run_rows(store, tenant_id="acme", state="completed")] == []
    assert len(run_rows(store, limit=1)) == 1
    assert run_rows(store, limit=0) == []
    assert len(run_rows(store, limit=None)) == 3


def test_run_rows_carry_the_recipient_and_filter_by_it_workflow_and_run(
    store: Store, populated: dict[str, str]
) -> None:
    other = trigger(store, recipient="ada", workflow=Workflow("other", 1, [Step("a", 1, "sms")]))

    ada = run_rows(store, recipient="ada")
    assert [r["id"] for r in ada] == [other.run.id, populated["ada"]]
    assert {(r["recipient"], r["notification_key"]) for r in ada} == {("ada", "welcome")}
    assert [r["id"] for r in run_rows(store, recipient="ada", workflow_key="other")] == [
        other.run.id
    ]
    assert [r["id"] for r in run_rows(store, workflow_key="escalation", tenant_id="globex")] == [
        populated["cy"]
    ]
    assert [r["id"] for r in run_rows(store, run_id=populated["bob"])] == [populated["bob"]]
    assert run_rows(store, run_id=populated["bob"], tenant_id="globex") == []
    assert run_rows(store, recipient="nobody") == []


def test_run_rows_page_with_offset(store: Store, populated: dict[str, str]) -> None:
    everything = [r["id"] for r in run_rows(store, limit=None)]

    pages = [[r["id"] for r in run_rows(store, limit=2, offset=o)] for o in (0, 2, 4)]

    assert pages == [everything[:2], everything[2:], []]


def test_run_rows_show_and_filter_the_recipient(store: Store, populated: dict[str, str]) -> None:
    assert [r["recipient"] for r in run_rows(store)] == ["bob", "cy", "ada"]
    assert [r["id"] for r in run_rows(store, recipient="cy")] == [populated["cy"]]
    assert run_rows(store, tenant_id="acme", recipient="cy") == []
    assert [r["id"] for r in run_rows(store, recipient="ada", state="waiting")] == [
        populated["ada"]
    ]


@pytest.mark.parametrize(
    "arguments",
    [
        {"state": "sleeping"},
        {"limit": -1},
        {"tenant_id": " "},
        {"limit": "5"},
        {"offset": -1},
        {"offset": None},
        {"recipient": ""},
        {"workflow_key": 3},
        {"run_id": "\x00"},
    ],
)
def test_run_rows_refuse_bad_arguments(store: Store, arguments: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        run_rows(store, **arguments)  # type: ignore[arg-type]


def _retrying() -> Workflow:
    return Workflow("retrying", 1, [Step("send", 1, "email", retry=Retry(3, 60))])


def test_delivery_rows_are_the_open_outbox_oldest_first_without_data(
    store: Store, clock: FakeClock
) -> None:
    first = trigger(store, recipient="ada", data={"secret": "s3cr3t-data"})
    clock.advance(minutes=1)
    second = trigger(store, tenant="globex", recipient="cy", workflow=_retrying())
    clock.advance(minutes=1)
    done = trigger(store, recipient="bob")
    store.record_outcome(done.deliveries[0].id, "succeeded")
    (claimed,) = store.claim_deliveries(channel="email", lease_seconds=600)

    rows = delivery_rows(store)

    assert [r["id"] for r in rows] == [first.deliveries[0].id, claimed.id]
    assert all(tuple(r) == DELIVERY_COLUMNS for r in rows)
    assert "s3cr3t-data" not in repr(rows)
    pending, dispatched = rows
    assert (pending["status"], pending["recipient"], pending["step_key"]) == (
        "pending",
        "ada",
        "inapp",
    )
    assert pending["claimable_at"] == pending["inserted_at"]
    assert (dispatched["status"], dispatched["attempt"], dispatched["max_attempts"]) == (
        "dispatched",
        1,
        3,
    )
    assert dispatched["claimable_at"] == dispatched["lease_expires_at"]
    assert dispatched["claimable_at"] == "2026-01-05T09:42:00.000000+00:00"
    assert [r["id"] for r in delivery_rows(store, tenant_id="globex")] == [claimed.id]
    assert [r["id"] for r in delivery_rows(store, channel="in_app")] == [first.deliveries[0].id]
    assert [r["id"] for r in delivery_rows(store, status="succeeded")] == [done.deliveries[0].id]
    assert delivery_rows(store, status="succeeded")[0]["claimable_at"] is None
    assert [r["id"] for r in delivery_rows(store, limit=1, offset=1)] == [claimed.id]
    assert second.run.id == claimed.workflow_run_id


def test_delivery_rows_before_are_the_retries_and_leases_that_come_back(
    store: Store, clock: FakeClock
) -> None:
    trigger(store, recipient="ada")  # pending, claimable at once: not coming back
    retried = trigger(store, recipient="bob", workflow=_retrying()).deliveries[0]
    store.claim_deliveries(channel="email")
    store.record_outcome(retried.id, "failed")  # attempt 1 failed: retry in 60 s
    held = trigger(store, recipient="cy", workflow=_retrying()).deliveries[0]
    store.claim_deliveries(channel="email", lease_seconds=1800)  # lease until 10:00

    soon = delivery_rows(store, before=clock.now() + timedelta(minutes=10))
    later = delivery_rows(store, before=clock.now() + timedelta(hours=1))

    assert [r["id"] for r in soon] == [retried.id]
    assert soon[0]["available_at"] == "2026-01-05T09:31:00.000000+00:00"
    assert [r["id"] for r in later] == [retried.id, held.id]
    assert [r["id"] for r in delivery_rows(store, before=clock.now())] == []


@pytest.mark.parametrize(
    "arguments",
    [
        {"status": "lost"},
        {"limit": -1},
        {"offset": -2},
        {"channel": " "},
        {"before": datetime(2026, 1, 5)},
        {"tenant_id": 7},
    ],
)
def test_delivery_rows_refuse_bad_arguments(store: Store, arguments: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        delivery_rows(store, **arguments)  # type: ignore[arg-type]


def test_trace_rows_follow_list_traces_with_step_keys(
    store: Store, populated: dict[str, str]
) -> None:
    rows = trace_rows(store, "globex", populated["cy"])
    traces = store.list_traces("globex", populated["cy"])

    assert [r["seq"] for r in rows] == [t.seq for t in traces]
    assert [r["number"] for r in rows] == [1, 2, 3, 4, 5]  # within the run, whatever seq is
    assert [r["reason"] for r in rows] == [
        "workflow_started",
        "step_activated",
        "waiting_for_step_progression",
        "signal_received",
        "workflow_completed",
    ]
    assert all(tuple(r) == TRACE_COLUMNS for r in rows)
    assert [r["step_key"] for r in rows] == [None, "inapp", "inapp", None, "inapp"]
    assert rows[3]["context"] == {"event_name": "notification_read"}
    assert [r["seq"] for r in trace_rows(store, "globex", populated["cy"], limit=2)] == [
        t.seq for t in traces[:2]
    ]


def test_trace_rows_are_tenant_scoped(store: Store, populated: dict[str, str]) -> None:
    with pytest.raises(RunNotFound) as other:
        trace_rows(store, "acme", populated["cy"])
    with pytest.raises(RunNotFound) as missing:
        trace_rows(store, "acme", "no-such-run")
    assert str(other.value) == str(RunNotFound(populated["cy"]))
    assert "no-such-run" in str(missing.value)


def test_table_rows_show_every_table_with_counts_and_columns(
    store: Store, populated: dict[str, str]
) -> None:
    tables = {row["table"]: row for row in table_rows(store)}

    assert set(tables) >= TABLES
    assert tables["workflow_runs"]["count"] == 3
    assert tables["workflow_transitions"]["count"] == sum(
        len(store.list_traces(t, r))
        for t, r in (
            ("acme", populated["ada"]),
            ("acme", populated["bob"]),
            ("globex", populated["cy"]),
        )
    )
    assert "pending_signals" in tables["workflow_runs"]["columns"]
    assert not any(name.startswith("sqlite_") for name in tables)


@pytest.mark.sqlite_only
def test_listing_writes_nothing_and_leaves_the_connection_as_it_was(
    store: Store, populated: dict[str, str]
) -> None:
    conn = sql(store)
    changes = conn.total_changes
    triggers = conn.execute("PRAGMA recursive_triggers").fetchone()[0]

    run_rows(store)
    delivery_rows(store)
    trace_rows(store, "acme", populated["ada"])
    table_rows(store)
    database(store).table_names()

    assert conn.total_changes == changes
    assert conn.execute("PRAGMA recursive_triggers").fetchone()[0] == triggers
    assert not conn.in_transaction
    # The store goes on working after the reads.
    assert store.explain("acme", populated["ada"]).state is RunState.WAITING


def test_to_csv_has_a_header_json_cells_and_empty_nones() -> None:
    rows = [
        {
            "id": "r1",
            "context": {"b": 1, "a": "x"},
            "note": None,
            "when": datetime(2026, 1, 5, tzinfo=UTC),
        },
        {"id": "r,2", "context": {}, "note": 'quote"d', "when": None},
    ]
    text = to_csv(rows, ("id", "context", "note", "when"))

    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed == [
        ["id", "context", "note", "when"],
        ["r1", '{"a": "x", "b": 1}', "", "2026-01-05T00:00:00.000000+00:00"],
        ["r,2", "{}", 'quote"d', ""],
    ]


def test_plain_turns_records_into_json_values(store: Store) -> None:
    run_id = trigger(store, recipient="ada").run.id
    explanation = store.explain("acme", run_id)

    value = plain(explanation)

    assert value["state"] == "active"
    assert value["started_at"] == "2026-01-05T09:30:00.000000+00:00"
    assert value["pending_signals"] == []
    assert value["last_transition"]["reason"] == "step_activated"
    assert value["anchor_delivery_status"] == "pending"
    assert '"next_decision": "noop"' in to_json(explanation)
    assert plain((1, "a", None)) == [1, "a", None]
