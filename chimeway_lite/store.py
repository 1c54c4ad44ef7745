"""The Store: the public face of chimeway_lite, one unit of work per method.

Transactions
------------
Every public method is one unit of work: writes run inside one write transaction of the
backend (SQLite: ``BEGIN IMMEDIATE`` … ``COMMIT``, after the fair writer gate), reads inside
one read transaction, so each call sees and leaves a consistent store. ``with
store.transaction() as tx:`` opens a unit of your own: everything called on ``tx`` — or on
the store, from the same thread, while the block is open — commits together when the block
ends, and rolls back together if it raises. A store method called inside your block runs in
a savepoint: if it fails, its own writes are undone and yours are kept until you decide.
``with store.snapshot() as view:`` is the same for reads only. No database exception leaves
the store: each becomes a :class:`~chimeway_lite.core.errors.ChimewayError`.

Hooks
-----
``Store(..., on_event=callable)`` is called with a payload-free
:class:`~chimeway_lite.hooks.StoreEvent` for every transition and delivery attempt, once
the unit of work that wrote it has committed (never for work that rolled back; for a
call inside your transaction, when your transaction commits). The same events go to the
``chimeway_lite.events`` logger at DEBUG and to the current OpenTelemetry span, and every
operation is a span when ``opentelemetry-api`` is installed and configured
(:mod:`chimeway_lite.hooks`).

One Store may be shared by the threads of a process. Processes each open their own Store on
the same file; do not carry a Store across ``fork``.

The methods are made from the engine's operations (:mod:`chimeway_lite.engine.operations`),
where each signature and docstring is written once.
"""

from __future__ import annotations

import functools
import os
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from . import verify_processes
from .backends import open_backend
from .backends.base import Backend, Unit
from .core.arguments import require_limit, require_location
from .core.clock import Clock, SystemClock
from .core.errors import (
    ChimewayError,
    ConstraintFailed,
    InvalidArgument,
    SchemaMismatch,
    StorageError,
    StoreBusy,
)
from .core.records import Progress, ProgressKind
from .core.text import shown
from .core.timestamps import require_utc
from .engine.definitions import DefinitionIndex
from .engine.operations import Engine, Reader, verify_arguments
from .engine.work import report_skipped
from .hooks import tracing
from .hooks.dispatch import EventHook, Hooks
from .hooks.observation import ObservedUnit

P = ParamSpec("P")

#: The longest a call may wait for the write lock: a day (longer waits are a mistake, and
#: the standard library's waits overflow on an infinite one).
MAX_BUSY_TIMEOUT = 86400

# prune deletes this many runs per unit of work.
_PRUNE_CHUNK = 1000

# The due sweep reads its runs in pages of this many.
_SWEEP_PAGE = 100
# Errors that stop a sweep: the store itself is unusable, not one run.
_SYSTEMIC = (StoreBusy, SchemaMismatch, StorageError)
# What one damaged run may raise besides a ChimewayError, left for the sweep to isolate.
_DAMAGE = (ValueError, TypeError, KeyError, AttributeError, LookupError, OverflowError)
R = TypeVar("R")


class _Operation(Generic[P, R]):
    """A Store method made from an engine operation: each call is one unit of work (a write
    unit for :class:`~chimeway_lite.engine.operations.Engine` methods, a read unit for
    :class:`~chimeway_lite.engine.operations.Reader` ones)."""

    def __init__(self, method: Callable[Concatenate[Any, P], R], *, write: bool) -> None:
        self.method = method
        self.write = write
        self.name = method.__name__
        functools.update_wrapper(self, method)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name  # the Store's name for it (upsert_definition = ensure_definition)

    def __call__(self, store: Store, *args: P.args, **kwargs: P.kwargs) -> R:
        if tracing.tracer() is not None:
            with tracing.span(self.name, system=store._system, write=self.write) as span:
                result = self._run(store, args, kwargs)
                if span is not None:
                    span.result(result)
                return result
        return self._run(store, args, kwargs)

    def _run(self, store: Store, args: Any, kwargs: Any) -> R:
        if getattr(store._local, "engine", None) is None:
            return store._call(self.method, self.write, args, kwargs)
        with store._engine(write=self.write) as engine:  # inside the caller's unit
            return self.method(engine, *args, **kwargs)

    @overload
    def __get__(self, store: None, owner: type[Any]) -> _Operation[P, R]: ...
    @overload
    def __get__(self, store: Store, owner: type[Any]) -> Callable[P, R]: ...
    def __get__(self, store: Store | None, owner: type[Any]) -> Any:
        # A bound method: its docstring and signature are the operation's (first
        # parameter dropped), and binding costs no more than for a plain method.
        return self if store is None else types.MethodType(self, store)


def _write(method: Callable[Concatenate[Engine, P], R]) -> _Operation[P, R]:
    return _Operation(method, write=True)


def _read(method: Callable[Concatenate[Reader, P], R]) -> _Operation[P, R]:
    return _Operation(method, write=False)


#: Store.verify with workers=1: one unit of work, as every other read.
_VERIFY = _read(Reader.verify)


def _workers(workers: object) -> int:
    if not isinstance(workers, int) or isinstance(workers, bool):
        raise InvalidArgument("workers", f"must be an int, got {type(workers).__name__}")
    if not 1 <= workers <= verify_processes.MOST_WORKERS:
        raise InvalidArgument(
            "workers", f"must be from 1 to {verify_processes.MOST_WORKERS}, got {workers}"
        )
    return workers


def check_arguments(
    path: object, clock: object, busy_timeout: object, on_event: object
) -> tuple[str, float]:
    """The Store's constructor arguments checked (InvalidArgument otherwise): the path as
    text and the busy timeout as a float. Shared with
    :class:`~chimeway_lite.async_store.AsyncStore`, which takes the same arguments."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgument("path", f"must be a path or ':memory:', got a {type(path).__name__}")
    if (
        not isinstance(busy_timeout, (int, float))
        or isinstance(busy_timeout, bool)
        or not 0 <= busy_timeout <= MAX_BUSY_TIMEOUT
    ):
        raise InvalidArgument(
            "busy_timeout",
            f"must be a number of seconds from 0 to {MAX_BUSY_TIMEOUT}, got {shown(busy_timeout)}",
        )
    if clock is not None and not callable(getattr(clock, "now", None)):
        raise InvalidArgument("clock", "must have a now() method")
    if on_event is not None and not callable(on_event):
        raise InvalidArgument("on_event", "must be a callable taking one StoreEvent")
    return require_location(os.fspath(path)), float(busy_timeout)


class Store:
    """A chimeway_lite store on one SQLite file (or ``":memory:"``).

    ``clock`` is any object with ``now()`` (default: the system clock in UTC); every time
    the engine reads comes from it, once per unit of work. ``busy_timeout`` is how many
    seconds a write waits for the lock before :class:`~chimeway_lite.errors.StoreBusy`.
    ``on_event`` is called with a :class:`~chimeway_lite.hooks.StoreEvent` for every
    transition and delivery attempt once its unit of work committed; an exception it raises
    is logged and goes no further (see the module docstring).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
        on_event: EventHook | None = None,
    ) -> None:
        self.path, self.busy_timeout = check_arguments(path, clock, busy_timeout, on_event)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._hooks = Hooks(on_event)
        self._backend: Backend = open_backend(self.path, self.busy_timeout)
        self._index = DefinitionIndex()
        self._local = threading.local()
        self._system = "postgresql" if self.path.startswith("postgres") else "sqlite"

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store; later calls raise ChimewayError. Closing twice is fine."""
        self._backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    @property
    def backend(self) -> Backend:
        """The backend the store runs on (:mod:`chimeway_lite.backends`)."""
        return self._backend

    @property
    def connection(self) -> Any:
        """The SQLite connection, for read-only tools such as ``sqlite_utils.Database``."""
        connection = getattr(self._backend, "connection", None)
        if connection is None:
            raise ChimewayError(f"the {type(self._backend).__name__} has no SQLite connection")
        return connection

    # -- units of work -------------------------------------------------------------------------

    def _call(
        self,
        method: Callable[..., R],
        write: bool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        """One store method, outside any unit of the caller's: its own unit of work (the
        path every plain call takes, so it is kept free of context-manager layers)."""
        listening = write and self._hooks.listening()
        # What one attempt learnt and observed: a backend may run ``work`` again from the
        # start (PostgreSQL, after a serialization failure or a deadlock), and only the
        # attempt that committed counts.
        attempt: list[DefinitionIndex] = []
        observed: list[ObservedUnit] = []

        def work(unit: Unit) -> R:
            index = self._index.child()
            attempt[:] = [index]
            if listening:
                observed[:] = [ObservedUnit(unit, index)]
                unit = cast(Unit, observed[0])
            self._local.engine = engine = (Engine if write else Reader)(unit, self.clock, index)
            try:
                return method(engine, *args, **kwargs)
            finally:
                self._local.engine = None

        result = self._backend.run(work, write=write)
        self._index.merge(attempt[0])
        if observed:
            self._hooks.emit(observed[0].events)  # after COMMIT: what they report is durable
        return result

    @contextmanager
    def _engine(self, *, write: bool) -> Iterator[Any]:
        """The engine of a new unit of work: an :class:`Engine` for writes, a
        :class:`Reader` for reads (see the module docstring for units inside units)."""
        outer: Reader | None = getattr(self._local, "engine", None)
        if outer is not None:
            # Inside the caller's unit, on this thread: reads join it; writes run in a
            # savepoint, so a failing call undoes only its own writes, and what it learnt
            # about definitions is kept only if it succeeds.
            if not write:
                yield outer
                return
            if not isinstance(outer, Engine):
                raise ChimewayError("cannot write inside store.snapshot(): it is read-only")
            with outer.unit.savepoint() as unit:
                inner = Engine(unit, self.clock, outer.index.child())
                self._local.engine = inner
                try:
                    yield inner
                finally:
                    self._local.engine = outer
            outer.index.merge(inner.index)
            return
        observed: ObservedUnit | None = None
        with self._backend.unit(write=write) as unit:
            index = self._index.child()
            if write and self._hooks.listening():
                observed = ObservedUnit(unit, index)
                unit = cast(Unit, observed)
            engine = (Engine if write else Reader)(unit, self.clock, index)
            self._local.engine = engine
            try:
                yield engine
            finally:
                self._local.engine = None
        self._index.merge(engine.index)
        if observed is not None:
            self._hooks.emit(observed.events)  # after COMMIT: what they report is durable

    @contextmanager
    def transaction(self) -> Iterator[Engine]:
        """Open a unit of work of your own (a write transaction); see the module docstring."""
        with (
            tracing.span("transaction", system=self._system, write=True),
            self._engine(write=True) as tx,
        ):
            yield tx

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        """Open a read unit of your own: every read on the view sees one consistent store."""
        with (
            tracing.span("snapshot", system=self._system, write=False),
            self._engine(write=False) as view,
        ):
            yield view

    # -- definitions (CONTRACT §3) -----------------------------------------------------------------

    upsert_definition = _write(Engine.ensure_definition)
    fetch_definition = _read(Reader.fetch_definition)
    persisted_workflow = _read(Reader.persisted_workflow)
    fetch_step_by_key = _read(Reader.fetch_step_by_key)

    # -- trigger and outbox (CONTRACT §7) ----------------------------------------------------------

    trigger = _write(Engine.trigger)
    trigger_many = _write(Engine.trigger_many)
    claim_deliveries = _write(Engine.claim_deliveries)
    record_outcome = _write(Engine.record_outcome)
    record_outcomes = _write(Engine.record_outcomes)
    extend_lease = _write(Engine.extend_lease)
    explain_delivery = _read(Reader.explain_delivery)
    digest_members = _read(Reader.digest_members)
    next_claimable_at = _read(Reader.next_claimable_at)
    list_deliveries = _read(Reader.list_deliveries)

    # -- progression (CONTRACT §4) -----------------------------------------------------------------

    progress_run = _write(Engine.progress_run)
    next_due_at = _read(Reader.next_due_at)

    @tracing.traced("progress_due_runs")
    def progress_due_runs(
        self, *, now: datetime | None = None, limit: int | None = None
    ) -> list[Progress]:
        """Progress every run that is due at ``now`` (default: the clock), each in its own
        unit of work, until ``limit`` runs have moved.

        Due are waiting runs whose ``suspended_until`` has passed and runs a signal resumed;
        they go in order of due time, then id. Returns what changed: a run another process
        progressed first, or one that cannot move, is a noop and is left out (and does not
        count towards ``limit``). Each decision is stamped with a clock reading taken in
        its own unit (or ``now`` when given), never before the run's last row. A run whose
        rows are damaged, or that another process deleted meanwhile, is skipped and reported
        on the ``chimeway_lite`` logger: one bad run never stops the sweep (CONTRACT §16).
        """
        at = require_utc(self.clock.now() if now is None else now, "now")
        count = require_limit(limit)
        results: list[Progress] = []
        after: tuple[str, str] | None = None
        while count is None or len(results) < count:
            with self.snapshot() as view:
                page = view.due_page(at, _SWEEP_PAGE, after)
            for run_id, cursor in page:
                after = cursor
                try:
                    progress = self.progress_run(run_id, now=now)
                except ConstraintFailed as exc:  # a damaged row refused by the schema
                    report_skipped("progress_due_runs", run_id, exc)
                    continue
                except _SYSTEMIC:
                    raise
                except (ChimewayError, *_DAMAGE) as exc:
                    report_skipped("progress_due_runs", run_id, exc)
                    continue
                # a digest batch closes whole when its first run comes up: its other runs
                # follow that run's result (and are noops when their turn comes)
                moved = (progress, *progress.also)
                results += [p for p in moved if p.kind is not ProgressKind.NOOP]
                if count is not None and len(results) >= count:
                    break
            if len(page) < _SWEEP_PAGE:
                break
        return results

    # -- signals (CONTRACT §5) ---------------------------------------------------------------------

    route_signal = _write(Engine.route_signal)
    track_signal = _write(Engine.track_signal)
    cancel = _write(Engine.cancel)
    preview_signal = _read(Reader.preview_signal)

    # -- inspection (CONTRACT §6) ------------------------------------------------------------------

    explain = _read(Reader.explain)
    list_traces = _read(Reader.list_traces)
    get_run = _read(Reader.get_run)
    get_current_step = _read(Reader.get_current_step)
    active_step_linkage = _read(Reader.active_step_linkage)

    # -- integrity and lifecycle ---------------------------------------------------------------

    _verify_store = _read(Reader._verify_store)
    _verify_shares = _read(Reader._verify_shares)
    _verify_share = _read(Reader._verify_share)

    def verify(
        self,
        *,
        tenant_id: str | None = None,
        since: datetime | None = None,
        quick: bool = False,
        workers: int = 1,
    ) -> list[str]:
        """Problems found in the store (each run's trace against its row, evidence, tenancy,
        the database's own checks); empty when healthy. Writes nothing.

        ``tenant_id`` and ``since`` narrow the per-run checks (traces, deliveries and their
        history) to that tenant's runs and to runs changed since then; ``quick`` skips the
        database's page-by-page ``integrity_check``, the longest part on a large store.
        ``workers`` above 1 checks the runs and deliveries in that many worker processes,
        each reading its share of the store in a snapshot of its own, while this one runs
        the store-wide checks (:mod:`chimeway_lite.verify_processes`); the problems are
        the same, in the same order. Not inside a transaction, nor on ``:memory:``."""
        count = _workers(workers)
        if count == 1 or getattr(self._local, "engine", None) is not None:
            if count > 1:
                raise InvalidArgument(
                    "workers", "a transaction is one snapshot: verify in it with workers=1"
                )
            return _VERIFY(self, tenant_id=tenant_id, since=since, quick=quick)
        if self.path == ":memory:":
            raise InvalidArgument("workers", "other processes cannot open a :memory: store")
        tenant, moment, quick = verify_arguments(tenant_id, since, quick)
        with tracing.span("verify", system=self._system, write=False):
            return verify_processes.verify(
                self, tenant_id=tenant, since=moment, quick=quick, workers=count
            )

    _prune_chunk = _write(Engine._prune_chunk)

    def prune(self, before: datetime, *, tenant_id: str | None = None) -> int:
        """Delete finished (completed/stopped) runs whose last transition is older than
        ``before``, with their trace, deliveries and notification; return the rows deleted.

        Outside a transaction of the caller's it works in chunks of 1,000 runs, each its own
        unit of work (the oldest first), so the WAL stays small and other writers get their
        turns; a prune interrupted midway leaves whole runs, pruned or kept. Inside one, it
        is part of it.
        """
        if getattr(self._local, "engine", None) is not None:
            with self._engine(write=True) as engine:
                return int(engine.prune(before, tenant_id=tenant_id))
        deleted = 0
        while True:
            rows, runs = self._prune_chunk(before, _PRUNE_CHUNK, tenant_id=tenant_id)
            deleted += rows
            if runs < _PRUNE_CHUNK:
                return deleted

    forget = _write(Engine.forget)
    list_erasures = _read(Reader.list_erasures)
