"""``chimeway-lite work``: a worker on the senders a host names — one pass or a loop, text or
JSON Lines, clear errors for a bad ``--senders``, a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import work_senders
from backends import sql
from click.testing import CliRunner, Result
from factories import trigger

from chimeway_lite import Step, Store, Workflow
from chimeway_lite.tools.cli import app as cli

EMAIL = Workflow("email_only", 1, [Step("email", 1, "email")])


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli.cli, list(args), prog_name="chimeway-lite")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture(autouse=True)
def _fresh_senders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    work_senders.SENT.clear()
    work_senders.RELEASE.clear()
    monkeypatch.setattr(sys, "path", list(sys.path))  # `work` may put the cwd on it
    yield
    work_senders.RELEASE.set()


@pytest.fixture
def db(location: str) -> str:
    """In-app deliveries for acme/ada and acme/bob, an email for globex/cy (system clock), on
    the test's backend."""
    path = location
    with Store(path) as store:
        trigger(store, tenant="acme", recipient="ada", key="k-ada")
        trigger(store, tenant="acme", recipient="bob", key="k-bob")
        trigger(store, tenant="globex", recipient="cy", workflow=EMAIL, key="k-cy")
    return path


def statuses(db: str) -> dict[str, str]:
    with Store(db) as store:
        rows = (
            sql(store)
            .execute("SELECT recipient || '/' || channel, status FROM deliveries ORDER BY rowid")
            .fetchall()
        )
    return {key: status for key, status in rows}


# -- one pass --------------------------------------------------------------------------------------


def test_once_sends_every_channel_and_prints_the_pass(db: str) -> None:
    result = run("--db", db, "work", "--once", "--senders", "work_senders:SENDERS")

    assert result.exit_code == 0, result.output
    # One claim at a time, the channels taking turns (in the order of the mapping).
    assert work_senders.SENT == [("in_app", "ada"), ("email", "cy"), ("in_app", "bob")]
    assert statuses(db) == {
        "ada/in_app": "succeeded",
        "bob/in_app": "succeeded",
        "cy/email": ("succeeded"),
    }
    (line,) = result.stdout.splitlines()
    assert line.endswith("  sent 3 deliveries, progressed 0 runs")
    assert result.stderr == ""


def test_once_in_json(db: str) -> None:
    result = run("--db", db, "work", "--once", "--json", "--senders", "work_senders:BOUNCING")

    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    row = json.loads(line)
    # ada's and bob's in-app messages bounce: their emails go out in the same pass
    assert (row["deliveries"], row["runs"], row["pause"]) == (5, 0, None)
    assert set(row) == {"at", "deliveries", "runs", "pause"}
    assert statuses(db)["ada/email"] == "succeeded"


@pytest.mark.parametrize(
    ("channels", "sent"),
    [
        (["email"], [("email", "cy")]),
        (["in_app"], [("in_app", "ada"), ("in_app", "bob")]),
        (["email", "in_app", "email"], [("email", "cy"), ("in_app", "ada"), ("in_app", "bob")]),
    ],
)
def test_channel_restricts_the_claims(
    db: str, channels: list[str], sent: list[tuple[str, str]]
) -> None:
    options = [arg for channel in channels for arg in ("--channel", channel)]
    result = run("--db", db, "work", "--once", "--senders", "work_senders:SENDERS", *options)
    assert result.exit_code == 0, result.output
    assert sent == work_senders.SENT
    assert sum(status == "pending" for status in statuses(db).values()) == 3 - len(sent)


@pytest.mark.parametrize("reference", ["work_senders:make_senders", "work_senders:Holder.senders"])
def test_senders_from_a_factory_or_a_dotted_attribute(db: str, reference: str) -> None:
    result = run("--db", db, "work", "--once", "--senders", reference, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert len(work_senders.SENT) == 2
    assert "sent 2 deliveries" in result.stdout


def test_a_sender_that_raises_is_a_warning_on_stderr_without_its_text(db: str) -> None:
    result = run("--db", db, "work", "--once", "--senders", "work_senders:EXPLODING")

    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert len(warnings) == 3
    assert all(w.startswith("warning: delivery ") for w in warnings)
    assert all("the sender raised RuntimeError; recording failed" in w for w in warnings)
    assert "example.org" not in result.output + result.stderr
    assert set(statuses(db).values()) == {"failed"}


def test_a_sender_module_in_the_current_directory(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd_senders_for_work.py").write_text(
        "SENDERS = {'email': lambda delivery: ('suppressed', 'opted_out')}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cwd_senders_for_work", raising=False)
    result = run("--db", db, "work", "--once", "--senders", "cwd_senders_for_work:SENDERS")
    assert result.exit_code == 0, result.output
    assert statuses(db)["cy/email"] == "suppressed"


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--senders", "work_senders"],
            "--senders must be MODULE:ATTRIBUTE (say, myapp.notify:SENDERS), got 'work_senders'",
        ),
        (
            ["--senders", ":SENDERS"],
            "--senders must be MODULE:ATTRIBUTE (say, myapp.notify:SENDERS), got ':SENDERS'",
        ),
        (
            ["--senders", "no_such_module_here:SENDERS"],
            "cannot import 'no_such_module_here' (--senders 'no_such_module_here:SENDERS'): "
            "no such module",
        ),
        (
            ["--senders", "work_senders:MISSING"],
            "module 'work_senders' has no attribute 'MISSING'",
        ),
        (
            ["--senders", "work_senders:NOT_A_MAPPING"],
            "'work_senders:NOT_A_MAPPING' is not a mapping of channel to sender (got list)",
        ),
        (
            ["--senders", "work_senders:NOT_CALLABLE"],
            "'work_senders:NOT_CALLABLE': the sender of channel 'email' is not callable (got str)",
        ),
        (["--senders", "work_senders:EMPTY"], "'work_senders:EMPTY' maps no channel to a sender"),
        (
            ["--senders", "work_senders:BLANK_CHANNEL"],
            "'work_senders:BLANK_CHANNEL': a channel must be a non-blank string: ' '",
        ),
        (
            ["--senders", "work_senders:broken_factory"],
            "calling 'work_senders:broken_factory' failed: RuntimeError: no SMTP configured",
        ),
        (
            ["--senders", "work_senders:SENDERS", "--channel", "email", "--channel", "sms"],
            "unknown channel 'sms': 'work_senders:SENDERS' has senders for 'in_app', 'email'",
        ),
    ],
)
def test_a_bad_senders_is_one_line_and_exit_1(db: str, args: list[str], message: str) -> None:
    before = statuses(db)
    result = run("--db", db, "work", "--once", *args)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: {message}\n"
    assert statuses(db) == before
    as_json = run("--db", db, "--json", "work", "--once", *args)
    assert json.loads(as_json.stderr) == {"error": "InvalidSenders", "message": message}


def test_a_module_that_fails_to_import(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "failing_senders_for_work.py").write_text(
        "import no_such_dependency_here\nSENDERS = {}\n"
    )
    (tmp_path / "raising_senders_for_work.py").write_text("raise RuntimeError('bad config')\n")
    monkeypatch.chdir(tmp_path)
    missing = run("--db", db, "work", "--once", "--senders", "failing_senders_for_work:SENDERS")
    assert missing.exit_code == 1
    assert missing.stderr == (
        "error: importing 'failing_senders_for_work' failed: ModuleNotFoundError: "
        "No module named 'no_such_dependency_here'\n"
    )
    raising = run("--db", db, "work", "--once", "--senders", "raising_senders_for_work:SENDERS")
    assert raising.stderr == (
        "error: importing 'raising_senders_for_work' failed: RuntimeError: bad config\n"
    )


def test_a_missing_store_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    result = run("--db", str(missing), "work", "--once", "--senders", "work_senders:SENDERS")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: no store at '{missing}'")
    assert not missing.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lease-seconds", "0"], "Invalid value for '--lease-seconds'"),
        (["--batch-size", "0"], "Invalid value for '--batch-size'"),
        (["--max-sleep", "0"], "Invalid value for '--max-sleep'"),
        ([], "Missing option '--senders'"),
    ],
)
def test_usage_errors_exit_2(db: str, args: list[str], message: str) -> None:
    senders = [] if not args else ["--senders", "work_senders:SENDERS"]
    result = run("--db", db, "work", *senders, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_help_lists_work() -> None:
    assert "  work " in run("--help").stdout
    text = run("work", "--help").stdout
    for option in ("--senders", "--channel", "--lease-seconds", "--batch-size", "--max-sleep"):
        assert option in text
    assert "--once" in text and "--json" in text and "--db" in text


# -- the loop --------------------------------------------------------------------------------------


@contextmanager
def _signals_once_sending(delays: list[float], signum: int = signal.SIGTERM) -> Iterator[None]:
    """Send ``signum`` to ourselves ``delays`` seconds after a sender first ran — so inside
    ``Worker.run``, whose handlers are installed by then (an early SIGTERM would kill the
    test process itself)."""
    done = threading.Event()

    def later() -> None:
        deadline = time.monotonic() + 10
        while not work_senders.SENT and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.005)
        for delay in delays:
            if done.wait(delay):
                return
            os.kill(os.getpid(), signum)

    thread = threading.Thread(target=later)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(5)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_the_loop_stops_cleanly_on_a_signal(db: str, signum: int) -> None:
    previous = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    started = time.monotonic()
    with _signals_once_sending([0.5], signum):
        result = run("--db", db, "work", "--senders", "work_senders:SENDERS", "--max-sleep", "0.02")

    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 2
    assert result.stderr == "stopped\n"
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"working on {db}: channels in_app, email (work_senders:SENDERS)")
    # ada's and bob's runs now wait 2 h: sleep until then, at most --max-sleep
    assert lines[1].endswith("sent 3 deliveries, progressed 0 runs; sleeping 0.02 s")
    assert lines[2].endswith("sent 0 deliveries, progressed 0 runs; sleeping 0.02 s")
    assert len(lines) >= 4
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == previous


def test_the_loop_in_json_lines(db: str) -> None:
    with _signals_once_sending([0.5]):
        result = run(
            "--db", db, "--json", "work", "--senders", "work_senders:SENDERS", "--max-sleep", "0.02"
        )
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) >= 2
    assert (rows[0]["deliveries"], rows[0]["pause"]) == (3, 0.02)
    assert all(row["deliveries"] == 0 for row in rows[1:])
    assert all(row["pause"] in (0.02, None) for row in rows[1:])


def test_a_second_signal_abandons_a_hanging_sender_with_exit_130(db: str) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with _signals_once_sending([0.3, 0.6]):
        result = run("--db", db, "work", "--senders", "work_senders:HANGING", "--channel", "email")
    assert result.exit_code == 130
    assert result.stderr == "interrupted: the delivery in hand is left to its lease\n"
    assert statuses(db)["cy/email"] == "dispatched"
    assert signal.getsignal(signal.SIGTERM) is previous


# -- the installed console script, for real --------------------------------------------------------


def _script() -> Path:
    script = Path(sys.executable).with_name("chimeway-lite")
    assert script.is_file(), "install the package (pip install -e .) to get the console script"
    return script


@pytest.mark.slow
def test_the_console_script_works_once(db: str, tmp_path: Path) -> None:
    (tmp_path / "my_senders.py").write_text(
        "def send(delivery):\n"
        "    return ('cancelled', 'bounced') if delivery.channel == 'in_app' else None\n"
        "\n"
        "def senders():\n"
        "    return {'in_app': send, 'email': send}\n"
    )
    done = subprocess.run(
        [str(_script()), "--db", db, "work", "--once", "--json", "--senders", "my_senders:senders"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout)["deliveries"] == 5
    assert statuses(db) == {
        "ada/in_app": "cancelled",
        "bob/in_app": "cancelled",
        "cy/email": "succeeded",
        "ada/email": "succeeded",
        "bob/email": "succeeded",
    }


@pytest.mark.slow
def test_the_console_script_loops_until_sigterm(db: str, tmp_path: Path) -> None:
    (tmp_path / "my_senders.py").write_text("SENDERS = {'email': lambda delivery: None}\n")
    process = subprocess.Popen(
        [
            str(_script()),
            "--db",
            db,
            "work",
            "--senders",
            "my_senders:SENDERS",
            "--max-sleep",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("working on ")
        assert "sent 1 delivery" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert err == "stopped\n"
    assert statuses(db)["cy/email"] == "succeeded"
    assert statuses(db)["ada/in_app"] == "pending"  # not its channel
