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

Fixtures (all function-scoped, so every test starts from an empty store):

* ``chimeway_clock`` — a :class:`~chimeway_lite.clock.FakeClock` at :data:`START`, or where
  the test says: ``@pytest.mark.chimeway_clock("2026-01-01T08:00:00Z")`` (an ISO-8601 text
  with an offset, or an aware datetime), or ``@pytest.mark.parametrize("chimeway_clock",
  [...], indirect=True)`` (the parameter wins over the marker);
* ``chimeway_store`` — a :class:`~chimeway_lite.store.Store` in memory on that clock; with
  ``pytest --chimeway-db DIR`` a fresh file per test under ``DIR`` instead, named after the
  test, replaced when the test runs again and kept afterwards (inspect it with
  ``chimeway-lite --db DIR/<file> runs``);
* ``chimeway_file_store`` — a store on a fresh file under ``tmp_path`` on that clock, for code
  that opens its own Store on the same path (``chimeway_file_store.path``);
* ``chimeway_outbox`` — a :class:`FakeOutbox` on the store the test uses:
  ``chimeway_file_store`` when the test (or one of its fixtures) asks for it, else
  ``chimeway_store``.

The fixture names start with ``chimeway_`` so that they never shadow a host's own fixtures.
This module needs pytest; the rest of chimeway_lite does not import it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import pytest

from .core.clock import FakeClock
from .core.records import Delivery, DeliveryStatus
from .store import Store

#: Where ``chimeway_clock`` starts unless the test says otherwise: Monday 2026-01-05 09:30 UTC.
START = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

#: What an outcome function returns for one delivery: None (succeeded), a status, or a
#: (status, suppression_reason) pair — the answers a Worker's sender gives.
Answer: TypeAlias = "DeliveryStatus | str | tuple[DeliveryStatus | str, str | None] | None"

# More than any test's outbox holds: a peek takes every claimable delivery at once.
_PEEK_LIMIT = 1_000_000


class _Peeked(Exception):
    """Carries a peek's claims out of the savepoint it rolls back."""

    def __init__(self, deliveries: list[Delivery]) -> None:
        super().__init__("peeked")
        self.deliveries = deliveries


class FakeOutbox:
    """A worker that sends nothing: it takes claimable deliveries and records an outcome.

    ``sent`` keeps every delivery it took, in order, as a claim hands it over (status
    dispatched, with its recipient, keys, data and config).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sent: list[Delivery] = []

    def deliver(
        self,
        status: DeliveryStatus | str | None = None,
        *,
        channel: str | None = None,
        recipient: str | None = None,
        run_id: str | None = None,
        tenant_id: str | None = None,
        suppression_reason: str | None = None,
        outcome: Callable[[Delivery], Answer] | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Take up to ``limit`` claimable deliveries, oldest first — of ``channel``,
        ``recipient``, ``run_id`` and ``tenant_id`` when given — record an outcome for
        each (which progresses their runs) and return them. Others stay as they are.

        The outcome is ``status`` (default succeeded) with ``suppression_reason``, or what
        ``outcome(delivery)`` answers for each one, as a Worker's sender would: None for
        succeeded, a status, or ``(status, suppression_reason)`` — so ada can bounce while
        bob succeeds. If it raises, nothing of this call is recorded.

        Without a recipient, run or tenant filter the deliveries are claimed, as a worker
        claims them. With one, the ones that match are reported without a claim (a claim
        cannot pick by recipient, and claiming the others would lease them away): their
        attempt has no ``claimed_at``, as for an in-app message recorded when shown.
        """
        if outcome is not None and (status is not None or suppression_reason is not None):
            raise ValueError("give either status (and suppression_reason) or outcome, not both")
        decide = outcome if outcome is not None else _fixed(status, suppression_reason)
        filtered = recipient is not None or run_id is not None or tenant_id is not None
        with self.store.transaction() as tx:
            if filtered:
                taken = [
                    d
                    for d in self._peek(channel)
                    if recipient in (None, d.recipient)
                    and run_id in (None, d.workflow_run_id)
                    and tenant_id in (None, d.tenant_id)
                ][:limit]
            else:
                taken = tx.claim_deliveries(limit, channel=channel)
            for delivery in taken:
                reported, reason = _answer(decide(delivery))
                tx.record_outcome(delivery.id, reported, reason)
        self.sent.extend(taken)
        return taken

    def _peek(self, channel: str | None) -> list[Delivery]:
        """Every delivery a claim would take now, as it would hand them over — claimed in
        a savepoint of the caller's transaction that is then rolled back."""
        try:
            with self.store.transaction() as peek:
                raise _Peeked(peek.claim_deliveries(_PEEK_LIMIT, channel=channel))
        except _Peeked as peeked:
            return peeked.deliveries

    def sent_on(self, channel: str) -> list[Delivery]:
        """The deliveries sent so far on ``channel``."""
        return [d for d in self.sent if d.channel == channel]

    def sent_to(self, recipient: str) -> list[Delivery]:
        """The deliveries sent so far to ``recipient``."""
        return [d for d in self.sent if d.recipient == recipient]


def _fixed(
    status: DeliveryStatus | str | None, suppression_reason: str | None
) -> Callable[[Delivery], Answer]:
    answer: Answer = (status or DeliveryStatus.SUCCEEDED, suppression_reason)

    def same_for_all(delivery: Delivery) -> Answer:
        return answer

    return same_for_all


def _answer(answer: Answer) -> tuple[DeliveryStatus | str, str | None]:
    if answer is None:
        return DeliveryStatus.SUCCEEDED, None
    if isinstance(answer, tuple):
        status, reason = answer
        return status, reason
    return answer, None


# -- the plugin --------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--chimeway-db DIR``: run ``chimeway_store`` on a fresh file per test there."""
    group = parser.getgroup("chimeway-lite")
    group.addoption(
        "--chimeway-db",
        metavar="DIR",
        default=None,
        help=(
            "chimeway_store uses a fresh SQLite file per test under DIR (created if "
            "missing) instead of memory: one file named after each test, replaced when the "
            "test runs again, kept afterwards for 'chimeway-lite --db DIR/FILE runs'."
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``chimeway_clock`` marker and check ``--chimeway-db``."""
    config.addinivalue_line(
        "markers",
        "chimeway_clock(start): where the chimeway_clock fixture starts (ISO-8601 text "
        "with an offset, e.g. '2026-01-01T08:00:00Z', or an aware datetime)",
    )
    folder = config.getoption("--chimeway-db", default=None)
    if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
        raise pytest.UsageError(
            f"--chimeway-db takes a directory (a fresh store file is made there per test); "
            f"{folder!r} is a file"
        )


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say where the stores are, when ``--chimeway-db`` is given."""
    folder = config.getoption("--chimeway-db", default=None)
    return None if folder is None else f"chimeway-lite: a fresh store file per test in {folder}"


def _start(value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            pytest.fail(f"chimeway_clock: {value!r} is not an ISO-8601 instant", pytrace=False)
    if not isinstance(value, datetime) or value.utcoffset() is None:
        pytest.fail(
            f"chimeway_clock: the start must be an aware instant (with Z or an offset), "
            f"got {value!r}",
            pytrace=False,
        )
    return value.astimezone(UTC)


@pytest.fixture
def chimeway_clock(request: pytest.FixtureRequest) -> FakeClock:
    """A fake clock at 2026-01-05 09:30 UTC (or the test's ``chimeway_clock`` marker or
    parameter); move it with ``advance(hours=2)``."""
    given: Any = getattr(request, "param", None)
    if given is None:
        marker = request.node.get_closest_marker("chimeway_clock")
        if marker is not None:
            given = marker.args[0] if marker.args else marker.kwargs.get("start")
    return FakeClock(START if given is None else _start(given))


def _test_file(folder: Path, nodeid: str) -> Path:
    """The store file of one test: readable, unique, the same on every run."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:96]
    digest = hashlib.sha1(nodeid.encode("utf-8")).hexdigest()[:8]
    return folder / f"{readable}-{digest}.db"


@pytest.fixture
def chimeway_store(request: pytest.FixtureRequest, chimeway_clock: FakeClock) -> Iterator[Store]:
    """A store driven by ``chimeway_clock``: in memory, or a fresh file of this test under
    ``--chimeway-db DIR``."""
    folder = request.config.getoption("--chimeway-db", default=None)
    if folder is None:
        path = ":memory:"
    else:
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = str(_test_file(Path(folder), request.node.nodeid))
        for leftover in (path, path + "-wal", path + "-shm", path + "-lock"):
            if os.path.exists(leftover):  # the same test's file from an earlier run
                os.remove(leftover)
    with Store(path, clock=chimeway_clock) as store:
        yield store


@pytest.fixture
def chimeway_file_store(tmp_path: Path, chimeway_clock: FakeClock) -> Iterator[Store]:
    """A store on a new file under ``tmp_path``, driven by ``chimeway_clock``."""
    with Store(tmp_path / "chimeway.db", clock=chimeway_clock) as store:
        yield store


@pytest.fixture
def chimeway_outbox(request: pytest.FixtureRequest) -> FakeOutbox:
    """A :class:`FakeOutbox` on the store the test uses: ``chimeway_file_store`` if the
    test asks for it, else ``chimeway_store``."""
    names = request.fixturenames
    if "chimeway_file_store" in names and "chimeway_store" in names:
        pytest.fail(
            "chimeway_outbox: this test uses both chimeway_store and chimeway_file_store; "
            "make the outbox of the one you mean with FakeOutbox(store)",
            pytrace=False,
        )
    name = "chimeway_file_store" if "chimeway_file_store" in names else "chimeway_store"
    store: Store = request.getfixturevalue(name)
    return FakeOutbox(store)
