"""The command line: every command's output in text and JSON, and its errors (a message on
stderr, a non-zero exit code, never a traceback), on both backends."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from backends import sql
from click.testing import CliRunner, Result
from factories import START, trigger

from chimeway_lite import FakeClock, Store
from chimeway_lite.tools.cli import app as cli
from chimeway_lite.tools.cli import sweep
from chimeway_lite.tools.cli.sweep import MIN_SLEEP, pause_after_sweep


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli.cli, list(args), env=env, prog_name="chimeway-lite")
    # An expected failure exits through SystemExit; anything else would be a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def ok(*args: str, env: dict[str, str] | None = None) -> Result:
    result = run(*args, env=env)
    assert result.exit_code == 0, result.output
    return result


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


@pytest.fixture
def db(location: str) -> str:
    """A store with acme/ada waiting (due 11:30), acme/bob active and globex/cy waiting, on
    the test's backend (a file, or a PostgreSQL URL)."""
    path = location
    clock = FakeClock(START)
    with Store(path, clock=clock) as store:
        for tenant, user in (("acme", "ada"), ("acme", "bob"), ("globex", "cy")):
            result = trigger(store, tenant=tenant, recipient=user, key=f"k-{user}")
            if user != "bob":
                store.record_outcome(result.deliveries[0].id, "succeeded")
    return path


def run_id(db: str, tenant: str, recipient: str) -> str:
    with Store(db) as store:
        row = (
            sql(store)
            .execute(
                "SELECT r.id FROM workflow_runs r JOIN notifications n ON n.id = r.notification_id "
                "WHERE n.tenant_id = ? AND n.recipient = ?",
                (tenant, recipient),
            )
            .fetchone()
        )
    return str(row[0])


def state_of(db: str, run: str) -> tuple[str, str]:
    with Store(db) as store:
        found = store.get_run(run)
    return found.state.value, found.status_reason


# -- demo --------------------------------------------------------------------------------------


def test_demo_runs_the_journey_and_explains_it(tmp_path: Path) -> None:
    path = str(tmp_path / "demo.db")

    out = ok("--db", path, "demo").stdout

    assert "Store: " + path + " (a new file); fresh idempotency keys demo-" in out
    assert "ada read hers: signal 'notification_read' (actor ada) resumed 1 run" in out
    assert "bob's run advanced to step 'email'" in out
    assert "  terminal cancelled_by_signal" in out
    assert "  terminal workflow_completed" in out
    assert "signal_received" in out and "reactivated_from_wait" in out  # the traces
    assert f"chimeway-lite --db {path} explain demo " in out


def test_demo_runs_again_on_the_same_file_and_writes_to_the_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = as_json(ok("demo", "--json"))
    second = as_json(ok("--json", "demo"))

    assert (first["db"], first["created"], second["created"]) == ("chimeway.db", True, False)
    keys = {r["idempotency_key"] for r in first["runs"] + second["runs"]}
    assert len(keys) == 4  # fresh keys each time
    assert (tmp_path / "chimeway.db").is_file()
    ends = [(r["recipient"], r["explanation"]["terminal_reason"]) for r in second["runs"]]
    assert ends == [("ada", "cancelled_by_signal"), ("bob", "workflow_completed")]
    assert [row["reason"] for row in second["runs"][0]["trace"]][-2:] == [
        "signal_received",
        "workflow_completed",
    ]
    assert len(as_json(ok("runs", "--json", "--tenant", "demo"))) == 4


# -- explain, traces, runs, tables ---------------------------------------------------------------


def test_explain_in_text_and_json(db: str) -> None:
    ada = run_id(db, "acme", "ada")

    text = ok("--db", db, "explain", "acme", ada).stdout
    assert f"run      {ada}\n" in text
    assert "for      ada (notification welcome)\n" in text
    assert "state    waiting (waiting_for_step_progression)\n" in text
    assert "last     #3 waiting_for_step_progression at 2026-01-05T09:30:00+00:00;" in text
    assert "path     Path: 'inapp' (waiting).\n" in text
    assert "due      2026-01-05T11:30:00+00:00 -> step 'email'\n" in text
    assert "signals  notification_read\n" in text
    assert "why      Waiting on step 'inapp'" in text
    # (the wait is long over by the system clock the CLI reads: "due since … ago")
    assert "next     It is due since 2026-01-05T11:30:00+00:00 (" in text

    for args in (
        ("--json", "--db", db, "explain", "acme", ada),
        ("explain", "acme", ada, "--db", db, "--json"),
    ):
        data = as_json(ok(*args))
        assert (data["id"], data["state"], data["next_step"]) == (ada, "waiting", "email")
        assert (data["recipient"], data["notification_key"]) == ("ada", "welcome")
        assert data["due_at"] == "2026-01-05T11:30:00.000000+00:00"
        assert data["pending_signals"] == ["notification_read"]


def test_the_db_comes_from_the_environment_too(db: str) -> None:
    ada = run_id(db, "acme", "ada")
    assert ok("explain", "acme", ada, env={"CHIMEWAY_DB": db}).stdout.startswith(f"run      {ada}")


def test_traces_in_text_json_and_csv(db: str) -> None:
    ada = run_id(db, "acme", "ada")

    lines = ok("--db", db, "traces", "acme", ada).stdout.splitlines()
    assert len(lines) == 3
    assert [line.split()[0] for line in lines] == ["#1", "#2", "#3"]
    assert "workflow_started" in lines[0] and "source=trigger" in lines[0]
    assert "active -> waiting" in lines[2] and "step=inapp" in lines[2]
    assert "due_at=2026-01-05T11:30:00.000000+00:00" in lines[2]

    rows = as_json(ok("--db", db, "traces", "acme", ada, "--json", "--limit", "2"))
    assert [r["reason"] for r in rows] == ["workflow_started", "step_activated"]
    assert [r["number"] for r in rows] == [1, 2]
    assert rows[1]["context"] == {"source": "trigger", "step_key": "inapp"}

    table = list(csv.DictReader(io.StringIO(ok("--db", db, "traces", "acme", ada, "--csv").stdout)))
    assert [r["reason"] for r in table][-1] == "waiting_for_step_progression"
    assert json.loads(table[-1]["context"])["to_step"] == "email"

    assert ok("--db", db, "traces", "acme", ada, "--limit", "0").stdout == "no trace rows\n"


def test_runs_in_text_json_and_csv_with_filters(db: str) -> None:
    text = ok("--db", db, "runs").stdout.splitlines()
    assert text[0].split()[:5] == ["run", "tenant", "recipient", "state", "step"]
    assert len(text) == 4
    assert any(
        "globex" in line and "waiting" in line and "due 2026-01-05T11:30:00" in line
        for line in text
    )

    rows = as_json(ok("--db", db, "--json", "runs", "--tenant", "acme", "--state", "active"))
    assert [(r["tenant_id"], r["state"]) for r in rows] == [("acme", "active")]
    assert rows[0]["id"] == run_id(db, "acme", "bob")

    assert len(as_json(ok("--db", db, "runs", "--json", "--limit", "1"))) == 1
    table = list(
        csv.DictReader(io.StringIO(ok("--db", db, "runs", "--csv", "--state", "waiting").stdout))
    )
    assert sorted(r["tenant_id"] for r in table) == ["acme", "globex"]
    assert ok("--db", db, "runs", "--tenant", "nobody").stdout == "no runs\n"


def test_runs_show_and_filter_the_recipient(db: str) -> None:
    text = ok("--db", db, "runs", "--recipient", "ada").stdout.splitlines()
    assert len(text) == 2
    assert text[1].split()[:4] == [run_id(db, "acme", "ada"), "acme", "ada", "waiting"]

    rows = as_json(ok("--db", db, "--json", "runs"))
    assert sorted(r["recipient"] for r in rows) == ["ada", "bob", "cy"]
    assert [
        r["recipient"] for r in as_json(ok("--db", db, "runs", "--json", "--recipient", "cy"))
    ] == ["cy"]
    table = list(csv.DictReader(io.StringIO(ok("--db", db, "runs", "--csv").stdout)))
    assert sorted(r["recipient"] for r in table) == ["ada", "bob", "cy"]
    # with a tenant, only that tenant's runs of the recipient
    assert ok("--db", db, "runs", "--tenant", "globex", "--recipient", "ada").stdout == (
        "no runs\n"
    )


def test_traces_number_rows_within_their_run(db: str) -> None:
    ada, bob = run_id(db, "acme", "ada"), run_id(db, "acme", "bob")
    with Store(db, clock=FakeClock(START)) as store:  # bob's rows now come after ada's too
        (delivery,) = store.list_deliveries("acme", bob)
        store.record_outcome(delivery.id, "succeeded")
    rows = as_json(ok("--db", db, "traces", "acme", bob, "--json"))
    assert [r["number"] for r in rows] == [1, 2, 3]
    seqs = [r["seq"] for r in rows]
    assert seqs != [1, 2, 3] and seqs == sorted(seqs)  # the store-wide seq is not the number
    lines = ok("--db", db, "traces", "acme", bob).stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["#1", "#2", "#3"]
    assert ok("--db", db, "traces", "acme", ada).stdout.splitlines()[-1].startswith("#3 ")


def test_tables_in_text_and_json(db: str) -> None:
    text = ok("--db", db, "tables").stdout
    assert "workflow_runs" in text and "3 rows" in text
    tables = {t["table"]: t for t in as_json(ok("--db", db, "tables", "--json"))}
    assert tables["workflow_runs"]["count"] == 3
    assert "status_context" in tables["workflow_runs"]["columns"]


# -- signal, tick ------------------------------------------------------------------------------


def test_signal_dry_run_writes_nothing(db: str) -> None:
    ada = run_id(db, "acme", "ada")

    text = ok("--db", db, "signal", "acme", "notification_read", "--dry-run").stdout
    assert text == (
        f"dry run: signal 'notification_read' would resume 1 run; nothing was written\n  {ada}\n"
    )
    data = as_json(ok("--db", db, "signal", "acme", "notification_read", "--dry-run", "--json"))
    assert (data["dry_run"], data["signal_id"], data["run_ids"]) == (True, None, [ada])
    assert state_of(db, ada) == ("waiting", "waiting_for_step_progression")
    with Store(db) as store:
        assert sql(store).execute("SELECT count(*) FROM signals").fetchone()[0] == 0


def test_signal_resumes_only_the_tenant_and_actor(db: str) -> None:
    ada, cy = run_id(db, "acme", "ada"), run_id(db, "globex", "cy")

    nobody = as_json(
        ok("--db", db, "--json", "signal", "acme", "notification_read", "--actor", "zed")
    )
    assert nobody["run_ids"] == []
    out = ok("--db", db, "signal", "acme", "notification_read", "--actor", "ada").stdout
    assert "resumed 1 run\n" in out and f"  {ada}\n" in out
    assert "complete (cancelled_by_signal) at the next `chimeway-lite tick`" in out

    assert state_of(db, ada) == ("active", "signal_received")
    assert state_of(db, cy) == ("waiting", "waiting_for_step_progression")
    with Store(db) as store:
        assert sql(store).execute("SELECT count(*) FROM signals").fetchone()[0] == 2


def test_tick_progresses_due_runs_in_text_and_json(db: str) -> None:
    ada, cy = run_id(db, "acme", "ada"), run_id(db, "globex", "cy")

    early = ok("--db", db, "tick", "--now", "2026-01-05T11:00:00+00:00").stdout
    assert early == "2026-01-05T11:00:00+00:00  nothing due\n"

    text = ok("--db", db, "tick", "--now", "2026-01-05T11:30:00Z").stdout.splitlines()
    assert text[0] == "2026-01-05T11:30:00+00:00  2 runs progressed"
    at = text.index(
        f"  {ada}  acme/ada  advanced to step 'email' (progressed_on_delivery_outcome); "
        "planned 1 delivery (email)"
    )
    assert text[at + 1].startswith("      Moved from step 'inapp' to 'email': the wait after")
    assert state_of(db, cy) == ("active", "progressed_on_delivery_outcome")

    again = as_json(ok("--db", db, "tick", "--json", "--now", "2026-01-05T12:00:00"))
    assert again == {"at": "2026-01-05T12:00:00.000000+00:00", "progressed": []}


def test_tick_json_lists_what_moved(db: str) -> None:
    ok("--db", db, "signal", "globex", "notification_read")  # resumed at the system clock's now
    data = as_json(ok("--db", db, "--json", "tick", "--now", "2999-01-01T00:00:00+00:00"))
    moved = {row["run_id"]: row for row in data["progressed"]}
    assert set(moved) == {run_id(db, "globex", "cy"), run_id(db, "acme", "ada")}
    cy = moved[run_id(db, "globex", "cy")]
    assert (cy["kind"], cy["state"], cy["step"], cy["reason"]) == (
        "completed",
        "completed",
        "inapp",
        "workflow_completed",
    )
    assert cy["planned_deliveries"] == []
    assert (cy["recipient"], cy["terminal_reason"]) == ("cy", "cancelled_by_signal")
    assert cy["why"].startswith("Completed: signal 'notification_read' cancelled the wait")
    ada = moved[run_id(db, "acme", "ada")]
    assert [d["channel"] for d in ada["planned_deliveries"]] == ["email"]


def test_tick_says_what_moved_and_why(db: str) -> None:
    ok("--db", db, "signal", "globex", "notification_read")
    # (the signal was routed at the system clock's now: sweep after it)
    text = ok("--db", db, "tick", "--now", "2999-01-01T00:00:00+00:00").stdout
    lines = text.splitlines()
    cy = run_id(db, "globex", "cy")
    at = lines.index(f"  {cy}  globex/cy  completed on step 'inapp' (cancelled_by_signal)")
    assert lines[at + 1] == (
        "      Completed: signal 'notification_read' cancelled the wait on step 'inapp', so the "
        "next step never ran."
    )
    assert "completed -> completed" not in text


def test_tick_watch_sleeps_until_the_next_due_time_and_stops_on_ctrl_c(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float, listener: object = None) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    later = datetime.now(UTC) + timedelta(hours=1)
    monkeypatch.setattr(sweep, "_sleep", sleep)
    monkeypatch.setattr(Store, "next_due_at", lambda self: later)

    result = ok("--db", db, "tick", "--watch", "--max-sleep", "7200")

    assert len(sleeps) == 2 and all(3500 < s <= 3600 for s in sleeps)
    assert "2 runs progressed" in result.stdout  # ada and cy were long overdue
    assert "sleeping 1 h" in result.stdout
    assert result.stderr == "stopped\n"


def test_tick_watch_backs_off_when_a_run_stays_due(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(sweep, "_sleep", lambda seconds, listener=None: sleeps.append(seconds))
    monkeypatch.setattr(Store, "next_due_at", lambda self: START)  # always overdue

    lines = ok("--db", db, "--json", "tick", "--watch", "--cycles", "6", "--max-sleep", "10").stdout

    assert sleeps == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert len([json.loads(line) for line in lines.splitlines()]) == 6  # JSON Lines


def test_pause_after_sweep() -> None:
    now = START
    assert pause_after_sweep(now, None, backoff=4, max_sleep=60) == (60, MIN_SLEEP)
    assert pause_after_sweep(now, now + timedelta(seconds=30), backoff=4, max_sleep=60) == (
        30,
        MIN_SLEEP,
    )
    assert pause_after_sweep(now, now + timedelta(hours=1), backoff=4, max_sleep=60) == (
        60,
        MIN_SLEEP,
    )
    assert pause_after_sweep(now, now, backoff=4, max_sleep=60) == (4, 8)
    assert pause_after_sweep(now, now - timedelta(hours=1), backoff=40, max_sleep=60) == (40, 60)


# -- verify, timeline --------------------------------------------------------------------------


def test_verify_on_a_healthy_store(db: str) -> None:
    assert ok("--db", db, "verify").stdout == f"ok: no problems found in {db}\n"
    assert as_json(ok("--db", db, "verify", "--json")) == {"db": db, "ok": True, "problems": []}


def test_verify_finds_a_run_row_that_disagrees_with_its_trace(db: str) -> None:
    ada = run_id(db, "acme", "ada")
    with Store(db) as store:  # a write behind the engine's back: the trace says waiting
        sql(store).execute("UPDATE workflow_runs SET state = 'active' WHERE id = ?", (ada,))

    result = run("--db", db, "verify")

    assert result.exit_code == 3
    assert result.stdout.splitlines()[0].endswith("found:")
    assert any(ada in line for line in result.stdout.splitlines()[1:])


def test_verify_narrows_to_a_tenant_and_to_runs_changed_since_a_time(db: str) -> None:
    cy = run_id(db, "globex", "cy")
    with Store(db) as store:  # globex's run disagrees with its trace; acme's are healthy
        sql(store).execute("UPDATE workflow_runs SET state = 'active' WHERE id = ?", (cy,))

    assert run("--db", db, "verify").exit_code == 3
    assert ok("--db", db, "verify", "--tenant", "acme").stdout.startswith("ok: no problems")
    narrowed = run("--db", db, "--json", "verify", "--tenant", "globex")
    assert narrowed.exit_code == 3
    assert any(cy in problem for problem in as_json(narrowed)["problems"])
    # every run was last changed at START: since a minute later, none is in scope
    later = (START + timedelta(minutes=1)).isoformat()
    assert ok("--db", db, "verify", "--since", later).stdout.startswith("ok: no problems")
    assert run("--db", db, "verify", "--since", START.isoformat()).exit_code == 3
    naive = START.replace(tzinfo=None).isoformat()  # no offset: UTC
    assert run("--db", db, "verify", "--since", naive, "--tenant", "globex").exit_code == 3
    # in worker processes: the same findings
    shared = run("--db", db, "--json", "verify", "--workers", "3")
    assert shared.exit_code == 3
    assert as_json(shared)["problems"] == as_json(run("--db", db, "--json", "verify"))["problems"]


def test_verify_quick_skips_the_integrity_check_and_bad_options_are_usage_errors(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[dict[str, Any]] = []
    real = Store.verify

    def recorded(self: Store, **options: Any) -> list[str]:
        asked.append(options)
        return real(self, **options)

    monkeypatch.setattr(Store, "verify", recorded)
    ok("--db", db, "verify", "--quick")
    ok("--db", db, "verify")
    ok("--db", db, "verify", "--workers", "2")
    assert asked == [
        {"tenant_id": None, "since": None, "quick": True, "workers": 1},
        {"tenant_id": None, "since": None, "quick": False, "workers": 1},
        {"tenant_id": None, "since": None, "quick": False, "workers": 2},
    ]
    no_workers = run("--db", db, "verify", "--workers", "0")
    assert no_workers.exit_code == 2 and "--workers" in no_workers.output
    bad_time = run("--db", db, "verify", "--since", "yesterday")
    assert bad_time.exit_code == 2
    assert "--since" in bad_time.output and "not an ISO-8601 time" in bad_time.output
    blank = run("--db", db, "verify", "--tenant", " ")
    assert blank.exit_code == 2 and "--tenant" in blank.output
    assert len(asked) == 4  # the blank tenant reached the store, which refused it


def test_verify_reports_problems_with_exit_code_3(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        Store,
        "verify",
        lambda self, **_: ["run r1: trace ends waiting, row says active", "orphan delivery d9"],
    )

    result = run("--db", db, "verify")
    assert result.exit_code == 3
    assert result.stdout == (
        "2 problems found:\n"
        "  - run r1: trace ends waiting, row says active\n"
        "  - orphan delivery d9\n"
    )
    data = run("--db", db, "--json", "verify")
    assert data.exit_code == 3
    assert as_json(data)["problems"] == [
        "run r1: trace ends waiting, row says active",
        "orphan delivery d9",
    ]


def test_timeline_writes_svg_or_html(db: str, tmp_path: Path) -> None:
    ada = run_id(db, "acme", "ada")

    out = ok("--db", db, "timeline", "acme", ada, "--out", str(tmp_path / "j.svg")).stdout
    assert out.startswith(f"wrote {tmp_path / 'j.svg'} (svg, ")
    assert out.endswith("3 trace rows, final state waiting\n")
    svg = ET.parse(tmp_path / "j.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"

    data = as_json(
        ok("--db", db, "timeline", "acme", ada, "--out", str(tmp_path / "j.html"), "--json")
    )
    assert (data["format"], data["events"]) == ("html", 3)
    assert (tmp_path / "j.html").read_text().startswith("<!DOCTYPE html>")
    assert data["bytes"] == len((tmp_path / "j.html").read_bytes())

    piped = ok("--db", db, "timeline", "acme", ada, "--out", "-", "--format", "svg").stdout
    assert piped.startswith("<?xml") and ada in piped
    assert "recipient ada · notification welcome" in piped
    page = ok("--db", db, "timeline", "acme", ada, "--out", "-", "--format", "html").stdout
    assert page.startswith("<!DOCTYPE html>")
    ok("--db", db, "timeline", "acme", ada, "--out", str(tmp_path / "j.htm"))
    assert (tmp_path / "j.htm").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("out", "more", "message"),
    [
        ("j.png", [], "cannot write '.png' files"),
        ("j.PDF", ["--format", "svg"], "cannot write '.pdf' files"),
        ("journey", [], "has no suffix: name it .svg or .html, or pass --format"),
        ("j.svg", ["--format", "html"], "says svg, but --format says html"),
    ],
)
def test_timeline_refuses_a_format_it_cannot_write(
    db: str, tmp_path: Path, out: str, more: list[str], message: str
) -> None:
    target = tmp_path / out
    result = run(
        "--db", db, "timeline", "acme", run_id(db, "acme", "ada"), "--out", str(target), *more
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not target.exists()


# -- errors --------------------------------------------------------------------------------------

READ_COMMANDS = [
    ["explain", "acme", "r"],
    ["traces", "acme", "r"],
    ["runs"],
    ["tables"],
    ["verify"],
    ["signal", "acme", "e"],
    ["tick"],
    ["timeline", "acme", "r", "--out", "x.svg"],
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
def test_a_missing_store_is_an_error_and_is_not_created(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "typo.db"

    result = run("--db", str(missing), *command)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: no store at '{missing}': the path does not exist")
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_directory_is_no_store(tmp_path: Path) -> None:
    result = run("--db", str(tmp_path), "runs")
    assert result.exit_code == 1
    assert "the path is a directory" in result.stderr


def test_another_tenants_run_and_a_missing_run_look_the_same(db: str) -> None:
    cy = run_id(db, "globex", "cy")
    for args in (
        ["explain", "acme", cy],
        ["traces", "acme", cy],
        ["timeline", "acme", cy, "--out", "-"],
    ):
        result = run("--db", db, *args)
        assert (result.exit_code, result.stdout) == (1, "")
        assert result.stderr == f"error: workflow run '{cy}' not found\n"
    missing = run("--db", db, "explain", "acme", "nope")
    assert missing.stderr == "error: workflow run 'nope' not found\n"


def test_errors_in_json(db: str) -> None:
    result = run("--db", db, "--json", "explain", "acme", "nope")
    assert result.exit_code == 1
    assert json.loads(result.stderr) == {
        "error": "RunNotFound",
        "message": "workflow run 'nope' not found",
    }


def test_a_missing_store_file_in_json(tmp_path: Path) -> None:
    missing = run("--db", str(tmp_path / "runs.db.missing"), "runs", "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.stderr)["error"] == "StoreNotFound"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["signal", " ", "read"], "error: invalid signal tenant_id: must not be blank"),
        (["signal", "acme", ""], "error: invalid signal event_name: must not be blank"),
        (["explain", " ", "r"], "error: invalid tenant_id: must not be blank"),
        (["runs", "--tenant", " "], "error: invalid tenant_id: must not be blank"),
    ],
)
def test_bad_input_is_a_clear_error(db: str, args: list[str], message: str) -> None:
    result = run("--db", db, *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)


def test_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not a database, just text " * 100)
    result = run("--db", str(junk), "runs")
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot use '{junk}': the file is not an SQLite database\n"


def test_an_unwritable_timeline_path(db: str, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir.svg"
    result = run("--db", db, "timeline", "acme", run_id(db, "acme", "ada"), "--out", str(target))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot write '{target}'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "--state", "sleeping"], "Invalid value for '--state'"),
        (["runs", "--limit", "-1"], "Invalid value for '--limit'"),
        (["traces", "acme", "r", "--json", "--csv"], "choose one of --json and --csv"),
        (["tick", "--now", "yesterday"], "is not an ISO-8601 time"),
        (["tick", "--watch", "--now", "2026-01-05T10:00:00"], "--now cannot be combined"),
        (["explain", "acme"], "Missing argument 'RUN'"),
        (["timeline", "acme", "r"], "Missing option '--out'"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_exit_2(db: str, args: list[str], message: str) -> None:
    result = run("--db", db, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_help_and_version() -> None:
    text = ok("--help").stdout
    for name in ("demo", "explain", "traces", "runs", "signal", "tick", "verify", "timeline"):
        assert f"  {name} " in text
    assert ok("--version").stdout.startswith("chimeway-lite, version ")


# -- the installed console script, for real ------------------------------------------------------


@pytest.mark.slow
def test_the_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("chimeway-lite")
    assert script.is_file(), "install the package (pip install -e .) to get the console script"
    path = str(tmp_path / "real.db")
    env = {**os.environ, "CHIMEWAY_DB": path}

    demo = subprocess.run(
        [str(script), "demo", "--json"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert demo.returncode == 0, demo.stderr
    bob = json.loads(demo.stdout)["runs"][1]["run_id"]

    explain = subprocess.run(
        [str(script), "explain", "demo", bob], capture_output=True, text=True, env=env
    )
    assert explain.returncode == 0 and "state    completed (workflow_completed)" in explain.stdout

    missing = subprocess.run(
        [str(script), "--db", str(tmp_path / "nope.db"), "explain", "demo", bob],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.startswith("error: no store at ")
    assert "Traceback" not in missing.stderr and len(missing.stderr.splitlines()) == 1
    assert not (tmp_path / "nope.db").exists()
