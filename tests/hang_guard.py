"""A pytest plugin that turns a hung test into a failure with a stack, not a CI time-out.

A test (its fixtures included) still running after ``CHIMEWAY_TEST_HANG_LIMIT`` seconds (600
unless set; ``0`` turns the guard off, e.g. for the ``soak`` hypothesis profile) makes the
session print every thread's stack to the terminal and exit 1. A deadlocked test then fails
within minutes and shows where it waits, instead of running into CI's time limit with nothing
to show. No test comes near the limit: it judges no speed. The watchdog is ``faulthandler``'s
own thread, which needs no GIL, so it fires even when a test holds it.
"""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator

import pytest

ENV_LIMIT = "CHIMEWAY_TEST_HANG_LIMIT"
_terminal: list[int] = []  # a descriptor of the terminal pytest reports to


def limit() -> float:
    """The seconds one test may run before the session is ended (0: never)."""
    return float(os.environ.get(ENV_LIMIT, "600"))


def pytest_sessionstart(session: pytest.Session) -> None:
    # The terminal's own descriptor: stderr is captured while a test runs, and what was
    # captured is never shown by a process the watchdog ends.
    if limit() > 0:
        _terminal.append(os.dup(session.config.get_terminal_writer()._file.fileno()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if _terminal:
        faulthandler.dump_traceback_later(limit(), exit=True, file=_terminal[0])
    try:
        yield
    finally:
        if _terminal:
            faulthandler.cancel_dump_traceback_later()
