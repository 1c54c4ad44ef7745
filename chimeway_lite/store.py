"""The Store: the only owner of the SQLite connection, and one method per unit of work.

Transactions
------------
Every public method is one unit of work: writes run inside ``BEGIN IMMEDIATE`` … ``COMMIT``
(after the fair writer gate of :mod:`chimeway_lite.locking`), reads inside one deferred read
transaction, so each call sees and leaves a consistent store. ``with store.transaction() as
tx:`` opens a unit of your own: everything called on ``tx`` — or on the store, from the same
thread, while the block is open — commits together when the block ends, and rolls back
together if it raises. A store method called inside your block runs in a savepoint: if it
fails, its own writes are undone and yours are kept until you decide. No sqlite3 exception
leaves the store: each becomes a :class:`~chimeway_lite.errors.ChimewayError`.

One Store may be shared by the threads of a process (its lock serialises them). Processes
each open their own Store on the same file; do not carry a Store across ``fork``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, TypeVar

from . import audit, connection, lifecycle
from .arguments import require_limit
from .clock import Clock, SystemClock
from .declarations import Workflow
from .definitions import DefinitionIndex
from .errors import ChimewayError, InvalidArgument, StoreBusy
from .locking import WriteGate
from .records import (
    Delivery,
    DeliveryStatus,
    Erasure,
    Progress,
    ProgressKind,
    Resumed,
    RunExplanation,
    Signal,
    StepLinkage,
    TriggerResult,
    WorkflowDefinition,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from .timestamps import require_utc
from .transaction import Transaction

T = TypeVar("T")


class Store:
    """A chimeway_lite store on one SQLite file (or ``":memory:"``).

    ``clock`` is any object with ``now()`` (default: the system clock in UTC); every time
    the engine reads comes from it. ``busy_timeout`` is how many seconds a write waits for
    the lock before :class:`~chimeway_lite.errors.StoreBusy`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgument("path", f"must be a path or ':memory:', got {path!r}")
        if (
            not isinstance(busy_timeout, (int, float))
            or isinstance(busy_timeout, bool)
            or not busy_timeout >= 0
        ):
            raise InvalidArgument("busy_timeout", f"must be a number >= 0, got {busy_timeout!r}")
        if clock is not None and not callable(getattr(clock, "now", None)):
            raise InvalidArgument("clock", "must have a now() method")
        self.path = os.fspath(path)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.busy_timeout = float(busy_timeout)
        self._conn: sqlite3.Connection | None = connection.connect(self.path, self.busy_timeout)
        self._gate = None if self.path == connection.MEMORY else WriteGate(self.path + "-lock")
        self._lock = threading.RLock()
        self._index = DefinitionIndex()
        self._tx: Transaction | None = None
        self._pid = os.getpid()

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; later calls raise ChimewayError. Closing twice is fine."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection, for read-only tools such as ``sqlite_utils.Database``."""
        if self._conn is None:
            raise ChimewayError("the store is closed")
        if os.getpid() != self._pid:
            raise ChimewayError("this Store was opened in another process: open a new one here")
        return self._conn

    # -- units of work -------------------------------------------------------------------------

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        started = time.monotonic()
        if self._gate is not None and not self._gate.acquire(self.busy_timeout):
            raise StoreBusy(self.path, self.busy_timeout)
        waited = time.monotonic() - started
        try:
            if waited > 0.001:
                # The time spent at the gate comes off SQLite's own wait (for writers that
                # do not use the gate), so the whole call stays within busy_timeout.
                remaining = max(0, int((self.busy_timeout - waited) * 1000))
                conn.execute(f"PRAGMA busy_timeout = {remaining:d}")
            try:
                conn.execute("BEGIN IMMEDIATE")
            finally:
                if waited > 0.001:
                    conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000):d}")
        except BaseException:
            if self._gate is not None:
                self._gate.release()
            raise

    @contextmanager
    def _unit(self, *, write: bool) -> Iterator[Transaction]:
        with self._lock:
            conn = self.connection
            outer = self._tx
            try:
                if outer is not None:
                    yield from self._nested(conn, outer, write=write)
                    return
                if write:
                    self._begin_immediate(conn)
                else:
                    conn.execute("BEGIN")
                try:
                    index = self._index.child()
                    self._tx = Transaction(conn, self.clock, index)
                    try:
                        yield self._tx
                    except BaseException:
                        _rollback(conn, "ROLLBACK")
                        raise
                    try:
                        conn.execute("COMMIT")
                    except BaseException:
                        _rollback(conn, "ROLLBACK")
                        raise
                    self._index.merge(index)
                finally:
                    self._tx = None
                    if write and self._gate is not None:
                        self._gate.release()
            except sqlite3.Error as exc:
                raise connection.translate(exc, self.path, self.busy_timeout) from exc

    def _nested(
        self, conn: sqlite3.Connection, outer: Transaction, *, write: bool
    ) -> Iterator[Transaction]:
        # A unit inside the caller's transaction: a savepoint, so a failing call undoes only
        # its own writes; what it learnt about definitions is kept only if it succeeds.
        if not write:
            yield outer
            return
        conn.execute("SAVEPOINT chimeway_unit")
        index = outer.definitions.index.child()
        inner = Transaction(conn, self.clock, index)
        self._tx = inner
        try:
            yield inner
        except BaseException:
            _rollback(conn, "ROLLBACK TO chimeway_unit")
            _rollback(conn, "RELEASE chimeway_unit")
            raise
        finally:
            self._tx = outer
        conn.execute("RELEASE chimeway_unit")
        outer.definitions.index.merge(index)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Open a unit of work of your own (``BEGIN IMMEDIATE``); see the module docstring."""
        with self._unit(write=True) as tx:
            yield tx

    def _write(self, work: Callable[[Transaction], T]) -> T:
        with self._unit(write=True) as tx:
            return work(tx)

    def _read(self, work: Callable[[Transaction], T]) -> T:
        with self._unit(write=False) as tx:
            return work(tx)

    # -- definitions (SPEC §3) -----------------------------------------------------------------

    def upsert_definition(
        self, notification_key: str, workflow: Workflow | Mapping[str, Any]
    ) -> WorkflowDefinition:
        """Register a workflow (typed or dict) or return its identical registration.

        Same key + version with other steps raises DefinitionConflict and changes nothing;
        an identical re-registration updates ``notification_key`` to the caller's.
        """
        return self._write(lambda tx: tx.ensure_definition(notification_key, workflow))

    def fetch_definition(
        self, workflow_key: str, workflow_version: int
    ) -> WorkflowDefinition | None:
        """The definition registered under key + version, with its steps, or None."""
        return self._read(lambda tx: tx.fetch_definition(workflow_key, workflow_version))

    def persisted_workflow(self, workflow_definition_id: str) -> Workflow | None:
        """The declaration rebuilt from the stored rows (equal to the registered one)."""
        return self._read(lambda tx: tx.persisted_workflow(workflow_definition_id))

    def fetch_step_by_key(self, workflow_definition_id: str, step_key: str) -> WorkflowStep | None:
        """One step of a definition by its key, or None."""
        return self._read(lambda tx: tx.fetch_step_by_key(workflow_definition_id, step_key))

    # -- trigger and outbox (SPEC §7) ----------------------------------------------------------

    def trigger(
        self,
        *,
        tenant_id: str,
        notification_key: str,
        recipient: str,
        workflow: Workflow | Mapping[str, Any] | WorkflowDefinition,
        idempotency_key: str,
    ) -> TriggerResult:
        """Start a journey for a recipient: notification, run, first delivery (pending).

        The same (tenant_id, idempotency_key) again returns the first result with
        ``duplicate=True`` and writes nothing.
        """
        return self._write(
            lambda tx: tx.trigger(
                tenant_id=tenant_id,
                notification_key=notification_key,
                recipient=recipient,
                workflow=workflow,
                idempotency_key=idempotency_key,
            )
        )

    def claim_deliveries(self, limit: int = 100, *, channel: str | None = None) -> list[Delivery]:
        """Claim up to ``limit`` pending deliveries (oldest first), moving them to dispatched."""
        return self._write(lambda tx: tx.claim_deliveries(limit, channel=channel))

    def record_outcome(
        self,
        delivery_id: str,
        status: DeliveryStatus | str,
        suppression_reason: str | None = None,
    ) -> Progress | None:
        """Record a delivery's outcome and progress its run in the same transaction."""
        return self._write(lambda tx: tx.record_outcome(delivery_id, status, suppression_reason))

    def list_deliveries(self, tenant_id: str, run_id: str) -> list[Delivery]:
        """Every delivery planned for a run, oldest first; tenant-scoped like explain."""
        return self._read(lambda tx: tx.list_deliveries(tenant_id, run_id))

    # -- progression (SPEC §4) -----------------------------------------------------------------

    def progress_run(self, run_id: str, *, now: datetime | None = None) -> Progress:
        """Take the next step of one run at ``now`` (default: the clock), or a noop."""
        return self._write(lambda tx: tx.progress_run(run_id, now=now))

    def progress_due_runs(
        self, *, now: datetime | None = None, limit: int | None = None
    ) -> list[Progress]:
        """Progress every run that is due at ``now``, each in its own transaction.

        Due are waiting runs whose ``suspended_until`` has passed and runs left in
        ``signal_received``; they go in order of due time, then id. Returns what changed:
        a run another process progressed first is a noop and is left out.
        """
        at = require_utc(self.clock.now() if now is None else now, "now")
        count = require_limit(limit)
        ids = self._read(lambda tx: tx.due_run_ids(at, count))
        results = []
        for run_id in ids:
            progress = self.progress_run(run_id, now=at)
            if progress.kind is not ProgressKind.NOOP:
                results.append(progress)
        return results

    def next_due_at(self) -> datetime | None:
        """The earliest time at which :meth:`progress_due_runs` has work, or None."""
        return self._read(lambda tx: tx.next_due_at())

    # -- signals (SPEC §5) ---------------------------------------------------------------------

    def route_signal(self, signal: Signal) -> dict[str, Resumed]:
        """Resume the tenant's runs waiting for this signal; run id -> Resumed."""
        return self._write(lambda tx: tx.route_signal(signal))

    def track_signal(self, signal: Signal) -> tuple[Signal, dict[str, Resumed]]:
        """Record the signal (an immutable fact) and route it, in one transaction."""
        return self._write(lambda tx: tx.track_signal(signal))

    def preview_signal(self, signal: Signal) -> list[str]:
        """The ids of the runs :meth:`route_signal` would resume; writes nothing."""
        return self._read(lambda tx: tx.preview_signal(signal))

    # -- inspection (SPEC §6) ------------------------------------------------------------------

    def explain(self, tenant_id: str, run_id: str) -> RunExplanation:
        """Why a run of ``tenant_id`` is where it is; RunNotFound for others' and missing runs."""
        return self._read(lambda tx: tx.explain(tenant_id, run_id))

    def list_traces(
        self, tenant_id: str, run_id: str, *, limit: int | None = None
    ) -> list[WorkflowTransition]:
        """The run's trace ordered by seq, cut to ``limit`` rows; tenant-scoped."""
        return self._read(lambda tx: tx.list_traces(tenant_id, run_id, limit=limit))

    def get_run(self, run_id: str) -> WorkflowRun:
        """The run with this id (any tenant: the seed's low-level read), or RunNotFound."""
        return self._read(lambda tx: tx.get_run(run_id))

    def get_current_step(self, run: WorkflowRun) -> WorkflowStep:
        """The step a run is on, or StepNotFound."""
        return self._read(lambda tx: tx.get_current_step(run))

    def active_step_linkage(self, notification_id: str) -> StepLinkage | None:
        """The run and step a notification's deliveries currently belong to, or None."""
        return self._read(lambda tx: tx.active_step_linkage(notification_id))

    # -- integrity and lifecycle (issue 4) -----------------------------------------------------

    def verify(self) -> list[str]:
        """Problems found in the store (each run's trace against its row, foreign keys,
        ``integrity_check``); empty when healthy. Writes nothing."""
        return self._read(audit.verify)

    def prune(self, before: datetime, *, tenant_id: str | None = None) -> int:
        """Delete finished (completed/stopped) runs whose last transition is older than
        ``before``, with their trace, deliveries and notification; return the rows deleted."""
        return self._write(lambda tx: lifecycle.prune(tx, before, tenant_id=tenant_id))

    def forget(self, tenant_id: str, recipient: str | None = None) -> int:
        """Erase everything of a tenant, or of one recipient of it, leaving one payload-free
        tombstone row; return the rows erased."""
        return self._write(lambda tx: lifecycle.forget(tx, tenant_id, recipient))

    def list_erasures(self, tenant_id: str | None = None) -> list[Erasure]:
        """The tombstones :meth:`forget` left, oldest first: of one tenant, or of all."""
        return self._read(lambda tx: lifecycle.erasures(tx, tenant_id))


def _rollback(conn: sqlite3.Connection, statement: str) -> None:
    # A failed COMMIT may already have ended the transaction; never mask the first error.
    with suppress(sqlite3.Error):
        conn.execute(statement)
