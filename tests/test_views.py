"""The views for people (runs_overview, deliveries_overview, trace_overview) on both backends,
their upgrade into older SQLite files (PostgreSQL's upgrade: test_postgres.py), and
docs/datasette-metadata.json naming only what exists."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from backends import is_postgres
from backends import sql as raw_sql
from factories import trigger, waiting

from chimeway_lite import FakeClock, Retry, Signal, Step, Store, Workflow
from chimeway_lite.backends.sqlite.connection import SCHEMA_VERSION, schema_statements
from chimeway_lite.machine import decide

DATA = Path(__file__).parent / "data"
METADATA = Path(__file__).parent.parent / "docs" / "datasette-metadata.json"
VIEWS = {"runs_overview", "deliveries_overview", "trace_overview"}
# The keys datasette (0.6x) reads for a table or view in metadata.json.
TABLE_KEYS = {
    "title",
    "description",
    "description_html",
    "columns",
    "sort",
    "sort_desc",
    "facets",
    "facet_size",
    "label_column",
    "hidden",
    "size",
    "sortable_columns",
    "units",
    "license",
    "license_url",
    "source",
    "source_url",
    "about",
    "about_url",
}


def _rows(store: Store, sql: str, *params: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in raw_sql(store).execute(sql, params)]


def _columns(conn: Any, name: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({name})")]


def _store_columns(store: Store, name: str) -> list[str]:
    """A table's or view's columns in order, on either backend."""
    if not is_postgres(store):
        return _columns(raw_sql(store), name)
    rows = raw_sql(store).execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        (name,),
    )
    return [r[0] for r in rows]


@pytest.fixture
def journeys(store: Store, clock: FakeClock) -> dict[str, str]:
    """acme: ada waiting, bob settling after a signal, cy cancelled; globex: dee completed
    after the email, erin active on a retried email."""
    dee = waiting(store, tenant="globex", recipient="dee")
    clock.advance(hours=2, minutes=1)
    for progress in store.progress_due_runs():
        store.record_outcome(progress.deliveries[0].id, "succeeded")
    runs = {"dee": dee.run.id, "ada": waiting(store, recipient="ada").run.id}
    runs["bob"] = waiting(store, recipient="bob").run.id
    store.route_signal(Signal("acme", "notification_read", actor_id="bob"))
    runs["cy"] = trigger(store, recipient="cy").run.id
    store.cancel("acme", recipient="cy")
    retrying = Workflow("retrying", 1, [Step("send", 1, "email", retry=Retry(3, 60))])
    erin = trigger(store, tenant="globex", recipient="erin", workflow=retrying)
    store.claim_deliveries(channel="email")
    store.record_outcome(erin.deliveries[0].id, "failed")
    runs["erin"] = erin.run.id
    return runs


@pytest.mark.sqlite_only
def test_a_new_store_has_the_views(store: Store) -> None:
    rows = raw_sql(store).execute("SELECT name FROM sqlite_master WHERE type='view'")
    names = {r[0] for r in rows}
    assert names == VIEWS
    assert set(sqlite_utils.Database(raw_sql(store)).view_names()) == VIEWS


def test_the_views_have_the_same_columns_on_both_backends(store: Store, tmp_path: Path) -> None:
    """On PostgreSQL the views are the SQLite schema's, column for column (on SQLite this
    compares a store with a new file's schema: the views of every new file are the same)."""
    with Store(tmp_path / "reference.db") as reference:
        for view in VIEWS:
            assert _store_columns(store, view) == _columns(reference.connection, view), view


def test_runs_overview_names_the_recipient_workflow_and_step(
    store: Store, journeys: dict[str, str]
) -> None:
    rows = {r["recipient"]: r for r in _rows(store, "SELECT * FROM runs_overview")}

    assert set(rows) == {"ada", "bob", "cy", "dee", "erin"}
    ada = rows["ada"]
    assert (ada["tenant_id"], ada["run_id"], ada["notification_key"]) == (
        "acme",
        journeys["ada"],
        "welcome",
    )
    assert (ada["workflow_name"], ada["workflow_version"], ada["step_key"], ada["state"]) == (
        "escalation",
        1,
        "inapp",
        "waiting",
    )
    assert ada["due_at"] == "2026-01-05T13:31:00.000000+00:00"
    assert json.loads(ada["pending_signals"]) == ["notification_read"]
    assert (rows["cy"]["state"], rows["cy"]["terminal_reason"]) == ("stopped", "cancelled")
    assert (rows["dee"]["step_key"], rows["dee"]["state"]) == ("email", "completed")
    assert rows["dee"]["due_at"] is None


def test_runs_overview_due_at_is_the_machines(store: Store, journeys: dict[str, str]) -> None:
    due = {r["run_id"]: r["due_at"] for r in _rows(store, "SELECT * FROM runs_overview")}

    expected = {}
    for run_id in journeys.values():
        at = decide.due_at(store.get_run(run_id))
        expected[run_id] = None if at is None else at.isoformat(timespec="microseconds")
    assert due == expected
    # one waiting run and one a signal resumed: both kinds of "due" are covered
    assert due[journeys["ada"]] is not None and due[journeys["bob"]] is not None
    assert store.get_run(journeys["bob"]).resumed_by == "notification_read"


def test_deliveries_overview_says_when_a_claim_can_take_each(
    store: Store, clock: FakeClock, journeys: dict[str, str]
) -> None:
    rows = _rows(store, "SELECT * FROM deliveries_overview ORDER BY planned_at, delivery_id")
    by_recipient = {(r["recipient"], r["step_key"]): r for r in rows}

    retried = by_recipient[("erin", "send")]
    assert (retried["status"], retried["attempt"], retried["max_attempts"]) == ("pending", 1, 3)
    assert retried["claimable_at"] == retried["available_at"] is not None
    cancelled = by_recipient[("cy", "inapp")]
    assert (cancelled["status"], cancelled["suppression_reason"]) == (
        "cancelled",
        "workflow_cancelled",
    )
    assert cancelled["claimable_at"] is None
    assert by_recipient[("dee", "email")]["run_id"] == journeys["dee"]
    held = trigger(store, recipient="fay")
    (claimed,) = store.claim_deliveries(channel="in_app", lease_seconds=90)
    (row,) = _rows(
        store, "SELECT * FROM deliveries_overview WHERE delivery_id = ?", held.deliveries[0].id
    )
    assert claimed.lease_expires_at is not None
    assert row["claimable_at"] == claimed.lease_expires_at.isoformat(timespec="microseconds")


def test_trace_overview_numbers_rows_within_each_run(
    store: Store, journeys: dict[str, str]
) -> None:
    rows = _rows(store, "SELECT * FROM trace_overview ORDER BY seq")

    for run_id in journeys.values():
        mine = [r for r in rows if r["run_id"] == run_id]
        assert [r["row_in_run"] for r in mine] == list(range(1, len(mine) + 1))
        traces = store.list_traces(mine[0]["tenant_id"], run_id)
        assert [r["seq"] for r in mine] == [t.seq for t in traces]
    # seq counts across the store; row_in_run starts again at 1 for each run
    ada = [r for r in rows if r["run_id"] == journeys["ada"]]
    assert (ada[0]["row_in_run"], ada[0]["seq"] > 1) == (1, True)
    dee = [r for r in rows if r["run_id"] == journeys["dee"]]
    assert {r["recipient"] for r in dee} == {"dee"}
    assert [r["step_key"] for r in dee][:2] == [None, "inapp"]


def test_no_view_shows_data_payload_or_config(store: Store, clock: FakeClock) -> None:
    marker = "tr1gger-data-value"
    step = Step("inapp", 1, "in_app", config={"template": "c0nfig-value"})
    result = trigger(store, workflow=Workflow("w", 1, [step]), data={"secret": marker})
    store.route_signal(Signal("acme", "any", payload={"secret": "pay1oad-value"}))
    store.record_outcome(result.deliveries[0].id, "succeeded")

    for view in VIEWS:
        columns = _store_columns(store, view)
        assert columns, view
        assert not {"data", "payload", "config"} & set(columns), view
        text = repr(_rows(store, f"SELECT * FROM {view}"))
        for secret in (marker, "c0nfig-value", "pay1oad-value"):
            assert secret not in text, (view, secret)


# -- the upgrade of older files ------------------------------------------------------------------


def _version_two_store(path: Path) -> None:
    """An empty store file as the previous landing made it: schema version 2, no views, plus a
    view of the host's own."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for statement in schema_statements((DATA / "schema_v2.sql").read_text()):
        conn.execute(statement)
    conn.execute("CREATE VIEW host_report AS SELECT count(*) AS runs FROM workflow_runs")
    conn.execute("PRAGMA application_id = 1668770865")
    conn.execute("PRAGMA user_version = 2")
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.sqlite_only
def test_a_version_two_file_gains_the_views_and_keeps_the_hosts(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "v2.db"
    _version_two_store(path)
    raw = sqlite3.connect(path)
    assert {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='view'")} == {
        "host_report"
    }
    raw.close()

    with Store(path, clock=clock) as store, Store(tmp_path / "fresh.db") as fresh:
        conn = raw_sql(store)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        views = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='view'")}
        assert views == VIEWS | {"host_report"}
        for view in VIEWS:
            made = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (view,))
            new = fresh.connection.execute("SELECT sql FROM sqlite_master WHERE name = ?", (view,))
            assert made.fetchone() == new.fetchone()
        run = waiting(store, recipient="ada").run
        (row,) = _rows(store, "SELECT run_id, recipient, state FROM runs_overview")
        assert row == {"run_id": run.id, "recipient": "ada", "state": "waiting"}
        assert conn.execute("SELECT runs FROM host_report").fetchone()[0] == 1
        assert store.verify() == []


@pytest.mark.sqlite_only
def test_an_upgrade_that_fails_leaves_the_file_at_version_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chimeway_lite.backends.sqlite import connection

    path = tmp_path / "v2.db"
    _version_two_store(path)
    broken = connection.schema_sql() + "\nCREATE VIEW broken_view AS SELECT nothing FROM nowhere;\n"
    monkeypatch.setattr(connection, "schema_sql", lambda: broken)
    with pytest.raises(Exception):  # noqa: B017 - whichever error: the point is what is left
        Store(path)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    assert {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='view'")} == {
        "host_report"
    }
    raw.close()


# -- datasette's metadata ------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_the_datasette_metadata_names_only_real_tables_views_and_columns(store: Store) -> None:
    metadata = json.loads(METADATA.read_text(encoding="utf-8"))
    conn = raw_sql(store)
    objects = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%'"
        )
    }

    (database,) = metadata["databases"].values()  # one store; keyed by the file's stem
    assert list(metadata["databases"]) == ["chimeway"]
    tables = database["tables"]
    assert set(tables) >= VIEWS
    for name, table in tables.items():
        assert name in objects, name
        assert set(table) <= TABLE_KEYS, (name, set(table) - TABLE_KEYS)
        columns = set(_columns(conn, name))
        named = list(table.get("facets", [])) + list(table.get("columns", {}))
        named += [table[key] for key in ("label_column", "sort", "sort_desc") if key in table]
        assert set(named) <= columns, (name, set(named) - columns)
        assert not ("sort" in table and "sort_desc" in table), name
    # every view is faceted; the tables that other tables point at have a label
    assert all(tables[view].get("facets") for view in VIEWS)
    for parent in ("workflow_definitions", "workflow_steps", "notifications", "workflow_runs"):
        assert tables[parent].get("label_column"), parent


@pytest.mark.sqlite_only
def test_the_label_columns_are_what_foreign_keys_point_at(store: Store) -> None:
    metadata = json.loads(METADATA.read_text(encoding="utf-8"))
    tables = metadata["databases"]["chimeway"]["tables"]
    db = sqlite_utils.Database(raw_sql(store))
    referenced = {fk.other_table for name in db.table_names() for fk in db[name].foreign_keys}

    labelled = {name for name, table in tables.items() if "label_column" in table}
    assert referenced == {
        "workflow_definitions",
        "workflow_steps",
        "notifications",
        "workflow_runs",
        "deliveries",
        "digest_batches",  # by its runs (digest_members)
    }
    assert referenced <= labelled
