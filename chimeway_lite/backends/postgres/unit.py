"""One unit of work on a PostgreSQL store: every query of the storage contract, on one
connection inside one transaction (:class:`~chimeway_lite.backends.base.Unit`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from ...core.errors import ChimewayError
from .definitions import DefinitionQueries
from .gates import GateQueries
from .outbox import OutboxQueries
from .runs import RunQueries
from .upkeep import UpkeepQueries


class PostgresUnit(DefinitionQueries, RunQueries, OutboxQueries, GateQueries, UpkeepQueries):
    """The queries of one transaction; each concern's SQL lives in its own module, and
    every statement goes through the one :class:`~.executor.Executor` they share."""

    @contextmanager
    def savepoint(self) -> Iterator[PostgresUnit]:
        """A nested unit: its writes are undone alone if its block raises (and a failed
        statement inside it leaves the outer unit usable)."""
        self.execute("SAVEPOINT chimeway_unit")
        try:
            yield self
        except BaseException:
            with suppress(ChimewayError):
                self.execute("ROLLBACK TO SAVEPOINT chimeway_unit")
                self.execute("RELEASE SAVEPOINT chimeway_unit")
            raise
        self.execute("RELEASE SAVEPOINT chimeway_unit")
