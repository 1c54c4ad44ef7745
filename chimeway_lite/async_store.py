"""AsyncStore: the whole Store API as ``async def``, safe on an asyncio event loop
(CONTRACT §17).

::

    async with AsyncStore("app.db") as store:
        started = await store.trigger(tenant_id="acme", notification_key="welcome",
                                      recipient="ada", workflow=WELCOME,
                                      idempotency_key="signup-42")
        for delivery in await store.claim_deliveries(10):
            ...

How it never blocks the loop
----------------------------
Each AsyncStore owns one :class:`~chimeway_lite.store.Store` and **one dedicated worker
thread**, and every call — opening the file, each unit of work, a wait for the write lock
that another process holds (up to ``busy_timeout``), closing — runs on that thread while
the loop goes on. Why one thread, not a pool: the Store's SQLite connection is used by one
unit of work at a time anyway (SQLite has one writer, and the Store serialises its threads
on the connection), so more threads would only queue behind that lock; one thread keeps
calls in the order the loop made them, keeps the connection on the thread that opened it,
and lets a transaction's calls find it on their thread (a Store's open unit is per
thread). Several AsyncStores (one per event loop, or more for parallel reads on a file)
work like several Stores.

Calls made while a transaction of the store is open wait (without blocking the loop) until
it ends, so they never slip into it — except those made by the task that opened it (and
tasks it started inside the block), which join it as they would with the Store.
Cancelling a task stops its wait, not the unit of work in hand: a call that has started
runs to its end (it commits or rolls back whole), and a transaction's block always commits
or rolls back before the cancellation goes on.

Transactions
------------
``async with store.transaction() as tx:`` is :meth:`Store.transaction
<chimeway_lite.store.Store.transaction>`: ``tx`` has every operation of the sync ``tx`` as
``async def``; everything done on ``tx`` (or on the store by the same task) commits
together when the block ends, and rolls back if it raises. The block holds the write lock
while it is open, also while it awaits something else: keep it short, and await nothing
slow inside it (a network call belongs before or after). For a longer piece of synchronous
logic, :meth:`AsyncStore.call` runs a function with the Store on the worker thread, where
it may open a sync ``store.transaction()`` of its own. ``async with store.snapshot() as
view:`` is the read-only counterpart.

Hooks (``on_event``) run on the worker thread, after the unit of work committed.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from .core.clock import Clock, SystemClock
from .core.errors import ChimewayError
from .engine.operations import Engine, Reader
from .hooks.dispatch import EventHook
from .store import Store, check_arguments

P = ParamSpec("P")
R = TypeVar("R")
V = TypeVar("V", bound="AsyncReader")

# The open unit the current task belongs to: set by the task that opens a transaction or
# a snapshot (and inherited by the tasks it starts inside the block).
_unit_of_task: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "chimeway_lite_async_unit", default=None
)


def _twin(
    operation: Callable[Concatenate[Store, P], R],
) -> Callable[Concatenate[AsyncStore, P], Coroutine[Any, Any, R]]:
    """The ``async def`` twin of a Store method: the same name, signature and docstring
    (followed through ``__wrapped__`` to the engine operation that wrote them once); the
    call runs on the store's worker thread."""
    name: str = getattr(operation, "name", operation.__name__)

    async def twin(self: AsyncStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = await self._run_on_store(name, args, kwargs)
        return result

    functools.update_wrapper(twin, operation, updated=())
    twin.__name__ = name
    twin.__qualname__ = f"AsyncStore.{name}"
    return twin


def _unit_twin(
    operation: Callable[Concatenate[Any, P], R],
) -> Callable[Concatenate[AsyncReader, P], Coroutine[Any, Any, R]]:
    """The ``async def`` twin of an operation of ``tx`` (:class:`Engine`) or of a snapshot's
    view (:class:`Reader`): same name, signature and docstring; run on the worker thread,
    inside the open unit."""
    name = operation.__name__

    async def twin(self: AsyncReader, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = await self._run_in_unit(name, args, kwargs)
        return result

    functools.update_wrapper(twin, operation, updated=())
    return twin


class AsyncStore:
    """A :class:`~chimeway_lite.store.Store` for asyncio: the same constructor arguments,
    every method as ``async def``, ``await store.close()`` and ``async with``.

    Opening the file happens on the store's worker thread too; an error opening it
    (:class:`~chimeway_lite.errors.SchemaMismatch`, a directory that does not exist …) is
    raised by ``async with`` or by the first call. Bad arguments raise at once.
    See the module docstring for the thread, transactions and cancellation.
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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chimeway-async")
        # The first job of the thread: every later one runs after it (one thread, FIFO).
        self._opened: Future[Store] = self._executor.submit(
            Store, self.path, clock=self.clock, busy_timeout=self.busy_timeout, on_event=on_event
        )
        self._gate = asyncio.Lock()  # held while a transaction or snapshot is open
        self._open_unit: object | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncStore({self.path!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncStore:
        try:
            await self.call(lambda store: None)  # raises what opening the file raised
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the store (after an open transaction ends) and stop its thread; later calls
        raise ChimewayError. Closing twice is fine."""
        if self._closed:
            return
        if self._in_own_unit():
            raise ChimewayError("close() inside the store's own transaction: leave it first")
        await self._admit()
        if self._closed:
            return
        self._closed = True

        def close() -> None:
            if self._opened.exception() is None:
                self._opened.result().close()

        try:
            await self._run_to_end(close)
        finally:
            self._executor.shutdown(wait=False)

    async def call(
        self, function: Callable[Concatenate[Store, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run ``function(store, *args, **kwargs)`` with the sync Store on the worker thread
        and return its result: for synchronous logic that needs several calls in one
        ``store.transaction()`` without holding the loop, or a tool that reads
        ``store.connection``."""

        def job() -> R:
            return function(self._opened.result(), *args, **kwargs)

        return await self._submit(job)

    # -- the worker thread -----------------------------------------------------------------------

    def _in_own_unit(self) -> bool:
        return self._open_unit is not None and _unit_of_task.get() is self._open_unit

    async def _admit(self) -> None:
        """Wait until no transaction or snapshot of another task is open, so that a call
        never runs inside someone else's unit."""
        if self._in_own_unit():
            return
        while self._gate.locked():
            async with self._gate:
                pass

    def _check_open(self) -> None:
        if self._closed:
            raise ChimewayError(f"the AsyncStore on {self.path!r} is closed")

    async def _submit(self, job: Callable[[], R]) -> R:
        self._check_open()
        await self._admit()
        self._check_open()
        # Nothing awaited between the check above and the submit: the call is queued
        # before any transaction that the loop lets open after it. The context goes
        # along, so spans and context variables see the caller's.
        future = self._executor.submit(contextvars.copy_context().run, job)
        return await asyncio.wrap_future(future)

    async def _run_on_store(self, name: str, args: Any, kwargs: Any) -> Any:
        def job() -> Any:
            return getattr(self._opened.result(), name)(*args, **kwargs)

        return await self._submit(job)

    async def _run_to_end(self, job: Callable[[], R]) -> tuple[Future[R], bool]:
        """Run ``job`` on the worker and wait for its end even if the caller is cancelled
        meanwhile (a unit must be closed, whatever happens to the task); return its future
        and whether a cancellation arrived, for the caller to pass on afterwards."""
        future = self._executor.submit(contextvars.copy_context().run, job)
        waiting = asyncio.wrap_future(future)
        cancelled = False
        while True:
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:
                cancelled = True
                if not waiting.done():
                    continue
            except BaseException:
                waiting.exception()  # retrieved: the caller reads it from ``future``
            break
        return future, cancelled

    # -- units of your own -----------------------------------------------------------------------

    def transaction(self) -> AsyncUnit[AsyncTransaction]:
        """Open a unit of work of your own (a write transaction): ``async with
        store.transaction() as tx:``; see the module docstring."""
        return AsyncUnit(self, write=True)

    def snapshot(self) -> AsyncUnit[AsyncReader]:
        """Open a read unit of your own: ``async with store.snapshot() as view:``; every read
        on the view sees one consistent store."""
        return AsyncUnit(self, write=False)

    # -- definitions (CONTRACT §3) -----------------------------------------------------------------

    upsert_definition = _twin(Store.upsert_definition)
    fetch_definition = _twin(Store.fetch_definition)
    persisted_workflow = _twin(Store.persisted_workflow)
    fetch_step_by_key = _twin(Store.fetch_step_by_key)

    # -- trigger and outbox (CONTRACT §7) ----------------------------------------------------------

    trigger = _twin(Store.trigger)
    trigger_many = _twin(Store.trigger_many)
    claim_deliveries = _twin(Store.claim_deliveries)
    record_outcome = _twin(Store.record_outcome)
    record_outcomes = _twin(Store.record_outcomes)
    extend_lease = _twin(Store.extend_lease)
    explain_delivery = _twin(Store.explain_delivery)
    digest_members = _twin(Store.digest_members)
    next_claimable_at = _twin(Store.next_claimable_at)
    list_deliveries = _twin(Store.list_deliveries)

    # -- progression (CONTRACT §4) -----------------------------------------------------------------

    progress_run = _twin(Store.progress_run)
    next_due_at = _twin(Store.next_due_at)
    progress_due_runs = _twin(Store.progress_due_runs)

    # -- signals (CONTRACT §5) ---------------------------------------------------------------------

    route_signal = _twin(Store.route_signal)
    track_signal = _twin(Store.track_signal)
    cancel = _twin(Store.cancel)
    preview_signal = _twin(Store.preview_signal)

    # -- inspection (CONTRACT §6) ------------------------------------------------------------------

    explain = _twin(Store.explain)
    list_traces = _twin(Store.list_traces)
    get_run = _twin(Store.get_run)
    get_current_step = _twin(Store.get_current_step)
    active_step_linkage = _twin(Store.active_step_linkage)

    # -- integrity and lifecycle ---------------------------------------------------------------

    verify = _twin(Store.verify)
    prune = _twin(Store.prune)
    forget = _twin(Store.forget)
    list_erasures = _twin(Store.list_erasures)


class AsyncUnit(Generic[V]):
    """``async with`` around :meth:`Store.transaction <chimeway_lite.store.Store.transaction>`
    or :meth:`~chimeway_lite.store.Store.snapshot`, entered and left on the store's worker
    thread; yields the unit's async view."""

    def __init__(self, store: AsyncStore, *, write: bool) -> None:
        self._store = store
        self._write = write
        self._nested = False
        self._manager: AbstractContextManager[Reader] | None = None
        self._view: AsyncReader | None = None
        self._reset: contextvars.Token[object | None] | None = None

    async def __aenter__(self) -> V:
        store = self._store
        store._check_open()
        self._nested = store._in_own_unit()  # a unit inside the task's own: a savepoint
        if not self._nested:
            await store._gate.acquire()
        try:
            store._check_open()

            def enter() -> Reader:
                sync = store._opened.result()
                self._manager = sync.transaction() if self._write else sync.snapshot()
                return self._manager.__enter__()

            future, cancelled = await store._run_to_end(enter)
            if cancelled:
                if future.exception() is None:
                    await self._leave(asyncio.CancelledError, asyncio.CancelledError(), None)
                raise asyncio.CancelledError
            engine = future.result()
        except BaseException:
            if not self._nested:
                store._gate.release()
            raise
        if not self._nested:
            token = object()
            store._open_unit = token
            self._reset = _unit_of_task.set(token)
        view = (AsyncTransaction if self._write else AsyncReader)(store, engine)
        self._view = view
        return view  # type: ignore[return-value]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        store = self._store
        try:
            future, cancelled = await self._leave(exc_type, exc, traceback)
        finally:
            if self._view is not None:
                self._view._ended = True
            if not self._nested:
                if self._reset is not None:
                    _unit_of_task.reset(self._reset)
                store._open_unit = None
                store._gate.release()
        suppressed = bool(future.result())  # a failed COMMIT raises here
        if cancelled and exc_type is None:
            raise asyncio.CancelledError
        return suppressed

    async def _leave(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> tuple[Future[bool | None], bool]:
        manager = self._manager
        assert manager is not None
        return await self._store._run_to_end(lambda: manager.__exit__(exc_type, exc, traceback))


class AsyncReader:
    """The async view of an open snapshot (and the base of :class:`AsyncTransaction`):
    every reading operation of ``view`` as ``async def``, run inside the unit."""

    def __init__(self, store: AsyncStore, engine: Reader) -> None:
        self._store = store
        self._engine = engine
        self._ended = False

    async def _run_in_unit(self, name: str, args: Any, kwargs: Any) -> Any:
        if self._ended:
            raise ChimewayError("this unit of work has ended: its block is closed")
        engine = self._engine

        def job() -> Any:
            return getattr(engine, name)(*args, **kwargs)

        self._store._check_open()
        future = self._store._executor.submit(contextvars.copy_context().run, job)
        return await asyncio.wrap_future(future)

    now = _unit_twin(Reader.now)
    fetch_definition = _unit_twin(Reader.fetch_definition)
    persisted_workflow = _unit_twin(Reader.persisted_workflow)
    fetch_step_by_key = _unit_twin(Reader.fetch_step_by_key)
    explain = _unit_twin(Reader.explain)
    list_traces = _unit_twin(Reader.list_traces)
    explain_delivery = _unit_twin(Reader.explain_delivery)
    digest_members = _unit_twin(Reader.digest_members)
    next_claimable_at = _unit_twin(Reader.next_claimable_at)
    list_deliveries = _unit_twin(Reader.list_deliveries)
    get_run = _unit_twin(Reader.get_run)
    get_current_step = _unit_twin(Reader.get_current_step)
    active_step_linkage = _unit_twin(Reader.active_step_linkage)
    preview_signal = _unit_twin(Reader.preview_signal)
    next_due_at = _unit_twin(Reader.next_due_at)
    due_run_ids = _unit_twin(Reader.due_run_ids)
    due_page = _unit_twin(Reader.due_page)
    verify = _unit_twin(Reader.verify)
    list_erasures = _unit_twin(Reader.list_erasures)
    run_rows = _unit_twin(Reader.run_rows)
    delivery_rows = _unit_twin(Reader.delivery_rows)
    trace_rows = _unit_twin(Reader.trace_rows)
    table_rows = _unit_twin(Reader.table_rows)


class AsyncTransaction(AsyncReader):
    """The async ``tx`` of ``async with store.transaction() as tx``: every operation of the
    sync ``tx`` (:class:`~chimeway_lite.engine.operations.Engine`) as ``async def``; all
    of it commits together when the block ends."""

    ensure_definition = _unit_twin(Engine.ensure_definition)
    trigger = _unit_twin(Engine.trigger)
    trigger_many = _unit_twin(Engine.trigger_many)
    claim_deliveries = _unit_twin(Engine.claim_deliveries)
    record_outcome = _unit_twin(Engine.record_outcome)
    record_outcomes = _unit_twin(Engine.record_outcomes)
    extend_lease = _unit_twin(Engine.extend_lease)
    progress_run = _unit_twin(Engine.progress_run)
    route_signal = _unit_twin(Engine.route_signal)
    track_signal = _unit_twin(Engine.track_signal)
    cancel = _unit_twin(Engine.cancel)
    lock_run = _unit_twin(Engine.lock_run)
    # Its ``**fields`` keeps mypy from seeing ``self`` as positional-only; the call is the same.
    update_run = _unit_twin(Engine.update_run)  # type: ignore[arg-type]
    append_transition = _unit_twin(Engine.append_transition)
    create_initial_run = _unit_twin(Engine.create_initial_run)
    prune = _unit_twin(Engine.prune)
    forget = _unit_twin(Engine.forget)
