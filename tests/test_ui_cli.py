"""``chimeway-lite ui``: a real process serving the inspector, stopped by a signal; and the
command's errors (no store, a port in use, bad options), never a traceback; on both
backends."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import sql
from click.testing import CliRunner, Result
from factories import trigger, waiting

from chimeway_lite import Step, Store, Workflow
from chimeway_lite.tools.cli import app as cli
from chimeway_lite.tools.cli import ui as ui_command
from chimeway_lite.tools.ui import InspectorServer


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli.cli, list(args), prog_name="chimeway-lite")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def db(location: str) -> str:
    """acme/ada and globex/cy waiting, on the test's backend."""
    path = location
    with Store(path) as store:
        waiting(store, tenant="acme", recipient="ada")
        waiting(store, tenant="globex", recipient="cy")
    return path


def _interruptible() -> None:
    # A shell starts a background job with SIGINT ignored, and a child inherits that; Python
    # then installs no KeyboardInterrupt handler. Give the server Ctrl-C as a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Served:
    """A ``chimeway-lite ui`` process: its announcement and its output once stopped."""

    def __init__(self, args: list[str]) -> None:
        script = Path(sys.executable).with_name("chimeway-lite")
        self.process = subprocess.Popen(
            [str(script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=_interruptible,
        )
        self.first_line = self._first_line()

    def _first_line(self) -> str:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=60)
        if not box or not box[0]:
            self.process.kill()
            raise AssertionError(f"no announcement; stderr: {self.process.communicate()[1]}")
        return box[0]

    def stop(self, signum: int) -> tuple[int, str, str]:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out, err


@pytest.fixture
def served(db: str) -> Iterator[Any]:
    started: list[Served] = []

    def start(*args: str) -> Served:
        started.append(Served(["--db", db, "ui", "--port", "0", *args]))
        return started[-1]

    yield start
    for one in started:
        if one.process.poll() is None:
            one.process.kill()
            one.process.communicate()


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read().decode("utf-8")


@pytest.mark.slow
def test_the_command_serves_until_sigterm(served: Any, db: str) -> None:
    process = served("--json")

    announced = json.loads(process.first_line)
    assert announced["db"] == db and announced["read_only"] is True
    assert announced["url"].startswith("http://127.0.0.1:") and announced["url"].endswith("/")
    status, body = _get(announced["url"] + "?format=json")
    assert status == 200
    assert {r["recipient"] for r in json.loads(body)["runs"]} == {"ada", "cy"}
    # a request line with an escape character: the log shows it escaped, not raw
    port = int(announced["url"].rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET /\x1b[31mred HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 404")

    # Another process writes while the inspector is open: a new run of a new workflow shows
    # on the next request (no stale snapshot, no lock held between requests).
    with Store(db) as writer:
        new = trigger(
            writer,
            tenant="initech",
            recipient="ed",
            workflow=Workflow("w", 1, [Step("s", 1, "sms")]),
        )
    status, body = _get(announced["url"] + "?format=json&tenant=initech")
    assert [r["id"] for r in json.loads(body)["runs"]] == [new.run.id]
    status, body = _get(announced["url"].rstrip("/") + f"/runs/initech/{new.run.id}?format=json")
    assert json.loads(body)["explanation"]["workflow_key"] == "w"

    code, out, err = process.stop(signal.SIGTERM)

    assert code == 0, err
    assert out == ""
    assert err.splitlines()[-1] == "stopped"
    assert '"GET /?format=json HTTP/1.1" 200' in err
    assert "\x1b" not in err and "\\x1b[31mred" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_command_stops_on_ctrl_c_and_keeps_to_its_tenant(served: Any, db: str) -> None:
    process = served("--tenant", "globex")

    assert process.first_line.startswith("chimeway-lite ui: http://127.0.0.1:")
    assert "read-only, tenant 'globex' only); Ctrl-C stops it" in process.first_line
    url = process.first_line.split()[2]
    status, body = _get(url + "?format=json")
    assert status == 200
    assert {r["tenant_id"] for r in json.loads(body)["runs"]} == {"globex"}
    with Store(db) as store:
        before = sql(store).execute("SELECT count(*) FROM workflow_transitions").fetchone()

    code, _, err = process.stop(signal.SIGINT)

    assert (code, err.splitlines()[-1]) == (0, "stopped")
    with Store(db) as store:
        after = sql(store).execute("SELECT count(*) FROM workflow_transitions").fetchone()
    assert after == before


def test_no_store_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"

    result = run("--db", str(missing), "ui", "--port", "0")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: no store at ")
    assert not missing.exists()


def test_a_port_in_use_is_an_error(db: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run("--db", db, "ui", "--port", str(port), "--json")

    assert result.exit_code == 1
    error = json.loads(result.stderr)
    assert error["error"] == "CannotListen"
    assert error["message"].startswith(f"cannot listen on 127.0.0.1:{port}: ")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--port", "70000"], 2, "Invalid value for '--port'"),
        (["--port", "web"], 2, "Invalid value for '--port'"),
        (["--tenant", " "], 1, "invalid --tenant"),
    ],
)
def test_bad_options_are_refused(db: str, args: list[str], code: int, message: str) -> None:
    result = run("--db", db, "ui", *args)

    assert result.exit_code == code
    assert message in result.stderr


def test_listening_beyond_loopback_warns(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, int]] = []
    original = ui_command.make_server

    def make(store: Store, host: str, port: int, **options: Any) -> InspectorServer:
        made.append((host, port))  # bound on loopback all the same: this test sends nothing
        server = original(store, "127.0.0.1", 0, **options)

        def interrupted(poll_interval: float = 0.5) -> None:
            raise KeyboardInterrupt

        server.serve_forever = interrupted  # type: ignore[method-assign]
        return server

    monkeypatch.setattr(ui_command, "make_server", make)
    result = run("--db", db, "ui", "--host", "192.0.2.1", "--port", "9000")

    assert result.exit_code == 0, result.output
    assert made == [("192.0.2.1", 9000)]
    assert "warning: listening on 192.0.2.1: anyone who can reach this machine" in result.stderr
    assert result.stderr.splitlines()[-1] == "stopped"
    with Store(db) as store:  # untouched
        assert len(sql(store).execute("SELECT id FROM workflow_runs").fetchall()) == 2
