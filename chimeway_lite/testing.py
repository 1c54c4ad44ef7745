"""A fake of the notification engine for a host application's unit tests: pytest fixtures.

Installed with chimeway-lite as a pytest plugin (entry point ``pytest11``), so a host's
tests can ask for these fixtures by name, with no import and no conftest::

    def test_read_within_two_hours_sends_no_email(chimeway_store, chimeway_clock,
                                                  chimeway_outbox):
        app = MyApp(chimeway_store)
        app.welcome("ada")
        chimeway_outbox.deliver()                   # the in-app message goes out
        chimeway_clock.advance(minutes=45)
        app.mark_read("ada")                        # routes the signal
        chimeway_clock.advance(hours=2)
        chimeway_store.progress_due_runs()
        assert chimeway_outbox.deliver(channel="email") == []

Fixtures (all function-scoped):

* ``chimeway_clock`` — a :class:`~chimeway_lite.clock.FakeClock` at :data:`START`;
* ``chimeway_store`` — a :class:`~chimeway_lite.store.Store` in memory on that clock; with
  ``pytest --chimeway-db PATH`` it is that file instead (shared by every test, not emptied:
  inspect it afterwards with ``chimeway-lite --db PATH runs``);
* ``chimeway_file_store`` — a store on a fresh file under ``tmp_path`` on that clock, for code
  that opens its own Store on the same path (``chimeway_file_store.path``);
* ``chimeway_outbox`` — a :class:`FakeOutbox` on ``chimeway_store``: claims pending
  deliveries, "sends" them and records their outcome, and remembers what it sent.

The fixture names start with ``chimeway_`` so that they never shadow a host's own fixtures.
This module needs pytest; the rest of chimeway_lite does not import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from .core.clock import FakeClock
from .core.records import Delivery, DeliveryStatus
from .store import Store

#: Where ``chimeway_clock`` starts: Monday 2026-01-05 09:30 UTC.
START = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


class FakeOutbox:
    """A worker that sends nothing: it claims pending deliveries and records an outcome.

    ``sent`` keeps every delivery it claimed, in order, as claimed (status dispatched).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sent: list[Delivery] = []

    def deliver(
        self,
        status: DeliveryStatus | str = DeliveryStatus.SUCCEEDED,
        *,
        channel: str | None = None,
        suppression_reason: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Claim the pending deliveries (of ``channel``, when given), record ``status`` for
        each (which progresses their runs) and return them."""
        claimed = self.store.claim_deliveries(limit, channel=channel)
        for delivery in claimed:
            self.store.record_outcome(delivery.id, status, suppression_reason)
        self.sent.extend(claimed)
        return claimed

    def sent_on(self, channel: str) -> list[Delivery]:
        """The deliveries sent so far on ``channel``."""
        return [d for d in self.sent if d.channel == channel]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--chimeway-db PATH``: run ``chimeway_store`` on that file instead of memory."""
    group = parser.getgroup("chimeway-lite")
    group.addoption(
        "--chimeway-db",
        metavar="PATH",
        default=None,
        help="chimeway_store uses this SQLite file (kept afterwards) instead of memory.",
    )


@pytest.fixture
def chimeway_clock() -> FakeClock:
    """A fake clock at 2026-01-05 09:30 UTC; move it with ``advance(hours=2)``."""
    return FakeClock(START)


@pytest.fixture
def chimeway_store(request: pytest.FixtureRequest, chimeway_clock: FakeClock) -> Iterator[Store]:
    """A store driven by ``chimeway_clock``: in memory, or the ``--chimeway-db`` file."""
    path = request.config.getoption("--chimeway-db", default=None) or ":memory:"
    with Store(path, clock=chimeway_clock) as store:
        yield store


@pytest.fixture
def chimeway_file_store(tmp_path: Path, chimeway_clock: FakeClock) -> Iterator[Store]:
    """A store on a new file under ``tmp_path``, driven by ``chimeway_clock``."""
    with Store(tmp_path / "chimeway.db", clock=chimeway_clock) as store:
        yield store


@pytest.fixture
def chimeway_outbox(chimeway_store: Store) -> FakeOutbox:
    """A :class:`FakeOutbox` on ``chimeway_store``."""
    return FakeOutbox(chimeway_store)
