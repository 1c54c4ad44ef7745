"""The hang guard (tests/hang_guard.py): a test running past the limit ends the session with
every thread's stack and exit status 1; a test within it is not disturbed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import hang_guard
import pytest

TESTS = Path(__file__).resolve().parent

SLEEPER = """
import threading, time

def test_quick():
    pass

def test_waits_forever():
    threading.Event().wait(60)  # a deadlock, as far as anyone can tell
"""


def _session(tmp_path: Path, limit: str, *select: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sleeper.py").write_text(SLEEPER)
    env = {**os.environ, hang_guard.ENV_LIMIT: limit, "PYTHONPATH": str(TESTS)}
    command = [sys.executable, "-m", "pytest", "-p", "hang_guard", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, "-q", "--rootdir", str(tmp_path), str(tmp_path / "test_sleeper.py"), *select],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_a_test_past_the_limit_ends_the_session_with_its_stack(tmp_path: Path) -> None:
    done = _session(tmp_path, "1")
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "Timeout (0:00:01)!" in out
    assert "in test_waits_forever" in out  # the stack names where the test waits
    assert "passed" not in out  # the session ended there: no summary was printed


@pytest.mark.slow
def test_tests_within_the_limit_and_a_guard_turned_off_run_to_the_end(tmp_path: Path) -> None:
    within = _session(tmp_path, "30", "-k", "quick")
    assert within.returncode == 0 and "1 passed" in within.stdout
    assert "Timeout" not in within.stdout + within.stderr
    off = _session(tmp_path, "0", "-k", "quick")
    assert off.returncode == 0 and "1 passed" in off.stdout


def test_the_limit_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hang_guard.ENV_LIMIT, raising=False)
    assert hang_guard.limit() == 600.0
    monkeypatch.setenv(hang_guard.ENV_LIMIT, "2.5")
    assert hang_guard.limit() == 2.5
