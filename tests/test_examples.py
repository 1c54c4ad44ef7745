"""Every example runs top to bottom, prints what it does, and leaves no file behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from backends import sql

from chimeway_lite import Store

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Lines each example must print (as substrings of one line each).
EXPECTED = {
    "01_escalation.py": [
        "in-app delivered -> waiting, due 2026-01-05 11:30:00+00:00",
        "2 h later, due sweep: advanced (progressed_on_delivery_outcome)",
        "planned a delivery on channel 'email'",
        "email delivered -> completed (workflow_completed)",
        "#3 active -> waiting: waiting_for_step_progression",
        "#6 active -> completed: workflow_completed",
    ],
    "02_multi_tenant_signals.py": [
        "preview of acme/ada's signal: 1 run, ada's of acme: True",
        "acme/ada signal resumed 1 run; globex's ada is untouched: True",
        "globex signal without actor resumed 2 runs",
        "2 h later: acme/bob moves to 'email'",
        "acme/ada: completed (cancelled_by_signal)",
        "acme/bob: completed (workflow_completed)",
        "globex asking for acme's run: RunNotFound",
    ],
    "03_worker_loop.py": [
        "09:30  in_app to cy: bounced",
        "09:30  email to cy (attempt 1): sent",
        "09:50  ada read it: 1 run resumed",
        "09:50  the pass swept 1 due run",
        "09:50  sleeping until 11:30 (the next due run)",
        "11:30  email to bob (attempt 1): the mail server is down",
        "11:30  sleeping until 11:35 (a retry)",
        "11:35  email to bob (attempt 2): sent",
        "ada: completed (cancelled_by_signal)",
        "bob: completed (workflow_completed)",
        "done: 6 deliveries sent, 2 runs swept; nothing pending, nothing waiting",
    ],
    "04_host_unit_test.py": [
        "test_read_within_two_hours_sends_no_email PASSED",
        "test_unread_after_two_hours_sends_the_email PASSED",
        "test_bounce_sends_the_email_at_once PASSED",
        "3 passed",
    ],
    "05_digest_and_quiet_hours.py": [
        "3 comments for ada: Waiting for the send window: 08:00 Europe/Paris on Tue 2026-01-06",
        "3 comments for bob: Collecting: 3 items, closes at 17:00 America/New_York",
        "22:00  due sweep: bob's digest closed; 2 runs merged into it",
        "22:00  sent 1 email to bob: a digest of 3 comments [4, 5, 6]",
        "07:00  due sweep: ada's send window opened for 3 runs",
        "07:10  sent 1 email to ada: a digest of 3 comments [1, 2, 3]",
        "Completed: merged into the digest of step 'email'",
        "07:12  password reset 2 for cy: throttled",
        "Throttled: 1 email to this recipient in the last 10 min already",
        "done: nothing waiting (0); store healthy: True",
    ],
    "06_asyncio.py": [
        "09:30  3 signups handled concurrently: 3 journeys started",
        "09:30  sent in_app to cy: cancelled (bounced) -> run advanced",
        "09:50  ada read it: 1 run resumed",
        "09:50  bob unsubscribed: his run is stopped",
        "ada: completed (cancelled_by_signal)",
        "bob: stopped (cancelled)",
        "cy: completed (workflow_completed)",
        "the hook heard 15 transitions, 4 claims and 4 outcomes",
        "done: verify() finds 0 problems",
    ],
}
RUNS = {
    "01_escalation.py": 1,
    "02_multi_tenant_signals.py": 4,
    "03_worker_loop.py": 3,
    "04_host_unit_test.py": 3,
    "05_digest_and_quiet_hours.py": 8,
    "06_asyncio.py": 3,
}


def run_example(name: str, cwd: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def _runs_in(path: Path) -> int:
    """Runs stored at ``path``: one store file, or (04's --chimeway-db) a folder of them."""
    files = sorted(path.glob("*.db")) if path.is_dir() else [path]
    total = 0
    for file in files:
        with Store(file) as store:
            total += sql(store).execute("SELECT count(*) FROM workflow_runs").fetchone()[0]
    return total


def test_there_are_the_examples() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_example_runs_on_the_given_db_and_prints_what_it_does(name: str, tmp_path: Path) -> None:
    before = sorted(p.name for p in EXAMPLES.iterdir())
    db = tmp_path / "example.db"

    out = run_example(name, tmp_path, str(db))

    lines = out.splitlines()
    for expected in EXPECTED[name]:
        assert any(expected in line for line in lines), f"{expected!r} not in:\n{out}"
    assert _runs_in(db) == RUNS[name]
    assert sorted(p.name for p in EXAMPLES.iterdir()) == before  # nothing left beside it


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_without_a_db_path_an_example_uses_a_temporary_file(name: str, tmp_path: Path) -> None:
    out = run_example(name, tmp_path)

    assert EXPECTED[name][-1] in out
    assert list(tmp_path.iterdir()) == []  # the temporary store is gone, nothing else made


@pytest.mark.slow
def test_the_escalation_example_runs_twice_on_one_file(tmp_path: Path) -> None:
    db = str(tmp_path / "twice.db")
    run_example("01_escalation.py", tmp_path, db)
    out = run_example("01_escalation.py", tmp_path, db)

    assert "email delivered -> completed (workflow_completed)" in out
