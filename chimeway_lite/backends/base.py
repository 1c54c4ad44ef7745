"""The storage contract: what the engine needs from a database, and nothing more.

The engine (:mod:`chimeway_lite.engine`) never writes SQL. It talks to a :class:`Backend`,
which opens units of work, and to the :class:`Unit` each one yields: a flat list of named
reads ("the anchor delivery of this run and step"), named effects ("append these trace
rows") and a few operations a database does best in one statement (claims, prune, forget).
A backend owns its connections, its SQL, its schema and its error mapping: every database
error leaves it as a :class:`~chimeway_lite.core.errors.ChimewayError`.

Promises every backend keeps (the engine's correctness rests on them):

* a write unit is atomic: it commits whole or not at all, and a failing nested unit
  (:meth:`Unit.savepoint`) undoes only its own writes;
* :meth:`Unit.run` with ``lock=True`` and :meth:`Unit.runs_awaiting` hold the rows they
  return until the unit ends, so two units never decide the same run at once
  (SQLite: the write lock of ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT … FOR UPDATE``);
* :meth:`Unit.claim` hands each delivery to one caller;
* :meth:`Unit.next_seqs` numbers trace rows uniquely across the store, increasing per run;
* :meth:`Unit.due_runs` and :meth:`Unit.next_due_at` are the indexed form of
  :func:`chimeway_lite.machine.decide.due_at`;
* :meth:`Unit.lock_group` serialises every unit that decides for one throttle or digest
  group (CONTRACT §14): two units never both pass a throttle of ``limit=1`` nor open two
  batches for one group. It must *wait* for the lock (SQLite: the write lock of ``BEGIN
  IMMEDIATE`` is held already; PostgreSQL: ``pg_advisory_xact_lock`` on the key) — never
  skip a locked group (``SKIP LOCKED`` would let both pass);
* :meth:`Unit.batch_members` locks the runs of the batch it returns (PostgreSQL: lock the
  batch row ``FOR UPDATE`` first, then its runs ``FOR UPDATE NOWAIT``, a run held by
  another unit meaning that unit is closing the batch).

``docs/ARCHITECTURE.md`` says how to add a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

import attrs

from ..core.errors import DamagedRow
from ..core.records import (
    Delivery,
    DeliveryEvent,
    DigestBatch,
    Erasure,
    Notification,
    RunState,
    Signal,
    SignalMark,
    StepActivation,
    StepLinkage,
    WorkflowDefinition,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from .wakeups import WorkListener

R = TypeVar("R")

#: A share of a table's rows by id, for verify's parts: (after, upto), the ids above
#: ``after`` and up to ``upto``; a bound that is None leaves that end open.
IdRange = tuple[str | None, str | None]
#: Every id.
EVERY_ID: IdRange = (None, None)

#: One trace row without a record (:meth:`Unit.append_trace`): (id, seq, workflow_step_id,
#: delivery_id, from_state, to_state, reason, context); its run and its time are the call's.
TraceRow = tuple[str, int, str | None, str | None, RunState | None, RunState, str, dict[str, Any]]


def trace_records(
    run_id: str, trace: Sequence[TraceRow], now: datetime
) -> list[WorkflowTransition]:
    """The trace records of :data:`TraceRow` tuples of the run ``run_id``, stamped ``now``
    (for a backend whose :meth:`Unit.append_trace` appends them as records)."""
    return [
        WorkflowTransition(
            id=row_id,
            seq=seq,
            workflow_run_id=run_id,
            workflow_step_id=step_id,
            delivery_id=delivery_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            context=context,
            inserted_at=now,
        )
        for row_id, seq, step_id, delivery_id, from_state, to_state, reason, context in trace
    ]


@attrs.frozen
class RunTrace:
    """One run and its trace, for :func:`~chimeway_lite.engine.audit.verify`: each record,
    or the error that kept its row from being read (a row a host damaged)."""

    run_id: str
    run: WorkflowRun | Exception
    transitions: tuple[tuple[int, WorkflowTransition | Exception], ...]


@attrs.frozen
class DeliveryHistory:
    """One delivery and its attempt history, for :func:`~chimeway_lite.engine.audit.verify`
    (each record, or the error that kept its row from being read)."""

    delivery_id: str
    delivery: Delivery | Exception
    events: tuple[tuple[int, DeliveryEvent | Exception], ...]


class Unit(Protocol):
    """One open unit of work (a transaction) of a backend."""

    # -- the unit itself ----------------------------------------------------------------------

    def savepoint(self) -> AbstractContextManager[Unit]:
        """A nested unit: its writes are undone alone if its block raises."""
        ...

    # -- definitions --------------------------------------------------------------------------

    def definition_id(self, workflow_key: str, workflow_version: int) -> str | None:
        """The id of the definition registered under key + version, or None."""
        ...

    def definition(self, definition_id: str) -> WorkflowDefinition | None:
        """The definition's row, with ``steps=()`` (steps are read with :meth:`steps`)."""
        ...

    def steps(self, definition_id: str) -> tuple[WorkflowStep, ...]:
        """The definition's steps, by step_order."""
        ...

    def step(self, definition_id: str, step_id: str) -> WorkflowStep | None:
        """One step of a definition by id, or None."""
        ...

    def step_by_key(self, definition_id: str, step_key: str) -> WorkflowStep | None:
        """One step of a definition by key, or None."""
        ...

    def insert_definition(self, definition: WorkflowDefinition) -> bool:
        """Insert a definition with its steps; False (nothing written) when another unit
        registered the same key + version first."""
        ...

    def set_notification_key(
        self, definition_id: str, notification_key: str, now: datetime
    ) -> None:
        """Set a definition's notification_key (and updated_at) if it differs."""
        ...

    # -- notifications and runs ---------------------------------------------------------------

    def notification_by_key(self, tenant_id: str, idempotency_key: str) -> Notification | None:
        """The notification of (tenant, idempotency key), or None."""
        ...

    def notification_owner(self, notification_id: str) -> tuple[str, bool] | None:
        """(tenant_id, has a run) of a notification, or None when there is none."""
        ...

    def insert_notification(self, notification: Notification, data_text: str) -> bool:
        """Insert a notification; False (nothing written) when its (tenant, idempotency key)
        is taken already. ``data_text`` is the canonical JSON of its data, written as it is
        (trigger made it to measure the data's size: it is not made twice)."""
        ...

    def run(
        self, run_id: str, *, tenant_id: str | None = None, lock: bool = False
    ) -> WorkflowRun | None:
        """The run (of ``tenant_id`` when given), locked for this unit when ``lock``."""
        ...

    def run_of_notification(self, notification_id: str) -> WorkflowRun | None:
        """The run of a notification, or None."""
        ...

    def insert_run(self, run: WorkflowRun) -> None:
        """Insert a new run."""
        ...

    def update_runs(self, changes: Sequence[tuple[WorkflowRun, WorkflowRun]]) -> None:
        """Write each (before, after) pair's changed fields."""
        ...

    def write_run(self, run: WorkflowRun) -> None:
        """Write every updatable field of the run (a host's ``update_run``); a value the
        store's constraints refuse raises :class:`~chimeway_lite.core.errors.InvalidArgument`."""
        ...

    def runs_awaiting(
        self,
        tenant_id: str,
        event_name: str,
        actor_id: str | None,
        correlation_key: str | None = None,
    ) -> list[WorkflowRun | DamagedRow]:
        """The tenant's waiting runs with ``event_name`` pending (of recipient ``actor_id``
        and of notifications with ``correlation_key``, when given), in id order, locked for
        this unit; a row that cannot be read stands as its :class:`DamagedRow`."""
        ...

    def runs_to_cancel(
        self,
        tenant_id: str,
        run_id: str | None,
        correlation_key: str | None,
        recipient: str | None,
    ) -> list[WorkflowRun | DamagedRow]:
        """The tenant's unfinished runs that every given selector matches, in id order,
        locked for this unit; a row that cannot be read stands as its :class:`DamagedRow`."""
        ...

    def insert_mark(self, mark: SignalMark) -> None:
        """Leave the payload-free mark of a routed signal."""
        ...

    def earliest_mark(
        self,
        tenant_id: str,
        events: Sequence[str],
        since: datetime,
        recipient: str,
        correlation_key: str | None,
    ) -> SignalMark | None:
        """The earliest mark (then the first stored) of one of ``events`` of the tenant,
        routed at or after ``since``, of actor ``recipient`` or no actor, and of
        ``correlation_key`` or no key (a keyed mark never matches a key of None)."""
        ...

    def due_runs(
        self, now: datetime, limit: int | None, after: tuple[str, str] | None = None
    ) -> list[tuple[str, tuple[str, str]]]:
        """The runs due at ``now``, by due time then id (see the module docstring), each as
        (run id, cursor): a page of them starts after the cursor ``after`` of the last run
        of the page before (an opaque value of the backend; None for the first page)."""
        ...

    def next_due_at(self) -> datetime | None:
        """The earliest due time of any run, or None."""
        ...

    def active_step_linkage(self, notification_id: str) -> StepLinkage | None:
        """The unfinished run of a notification, its current step and that step's channel."""
        ...

    # -- the trace ----------------------------------------------------------------------------

    def next_seqs(self, count: int) -> list[int]:
        """``count`` fresh trace sequence numbers, increasing."""
        ...

    def append_transitions(self, transitions: Sequence[WorkflowTransition]) -> None:
        """Append trace rows (they are never changed afterwards)."""
        ...

    def append_trace(self, run_id: str, trace: Sequence[TraceRow], now: datetime) -> None:
        """Append trace rows of the run ``run_id``, stamped ``now``, given as
        :data:`TraceRow` tuples: the rows :meth:`append_transitions` writes for their
        records (the engine's own decisions take this way: no record is made for a row
        nothing reads back)."""
        ...

    def transitions(self, run_id: str, limit: int | None) -> list[WorkflowTransition]:
        """The run's trace rows by seq, at most ``limit``."""
        ...

    # -- deliveries ---------------------------------------------------------------------------

    def notification(self, notification_id: str) -> Notification | None:
        """A notification by id, or None."""
        ...

    def notification_address(self, notification_id: str) -> tuple[str, str | None] | None:
        """A notification's recipient and correlation key, without its data, or None."""
        ...

    def insert_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Insert planned deliveries."""
        ...

    def delivery(
        self, delivery_id: str, *, tenant_id: str | None = None, lock: bool = False
    ) -> Delivery | None:
        """A delivery (of ``tenant_id`` when given; locked for this unit when ``lock``),
        without its data and config."""
        ...

    def update_delivery(self, before: Delivery, after: Delivery) -> None:
        """Write the delivery's changed fields."""
        ...

    def append_delivery_events(self, events: Sequence[DeliveryEvent]) -> None:
        """Append rows to the attempt history (never changed afterwards)."""
        ...

    def delivery_events(self, delivery_id: str) -> list[DeliveryEvent]:
        """A delivery's attempt history, in order."""
        ...

    def pending_deliveries(self, run_id: str) -> list[Delivery]:
        """The run's pending deliveries."""
        ...

    def anchor(self, run_id: str, step_id: str) -> Delivery | None:
        """The latest delivery planned for (run, step), or None."""
        ...

    def first_delivery(self, notification_id: str) -> Delivery | None:
        """The first delivery planned for a notification, or None."""
        ...

    def deliveries_of_run(self, run_id: str) -> list[Delivery]:
        """Every delivery planned for a run, oldest first."""
        ...

    def delivery_tenant(self, delivery_id: str) -> str | None:
        """The tenant of a delivery, or None when there is none."""
        ...

    def claim(
        self, limit: int, channel: str | None, now: datetime, lease_expires_at: datetime
    ) -> list[Delivery | DamagedRow]:
        """Take up to ``limit`` of the oldest claimable deliveries (of ``channel``) — pending
        ones whose ``available_at`` (if any) has come, dispatched ones whose lease ran out —
        but not one whose lease ran out on its last allowed attempt (see
        :meth:`spent_leases`) — in one indexed statement: each becomes dispatched,
        ``attempt + 1``, leased until
        ``lease_expires_at``. Return them oldest first (by ``available_at``, else
        ``inserted_at``, then id), with their data and config."""
        ...

    def spent_leases(self, now: datetime) -> list[Delivery | DamagedRow]:
        """Dispatched deliveries whose lease ran out on their last allowed attempt
        (``attempt >= max_attempts``): a claim does not take them, it exhausts them."""
        ...

    def next_claimable_at(self, channel: str | None = None) -> datetime | None:
        """The earliest time a claim (of ``channel``, when given) finds a delivery to take:
        a pending delivery's ``available_at`` (else its ``inserted_at``), or a dispatched
        one's ``lease_expires_at``; None when there is none."""
        ...

    # -- throttles and digests (CONTRACT §14) -------------------------------------------------

    def lock_group(self, group_key: str) -> None:
        """Hold the lock of a throttle or digest group until the unit ends (see the module
        docstring), before its activations or its open batch are read."""
        ...

    def recent_activations(self, group_key: str, since: datetime, limit: int) -> int:
        """How many activations of the group were made later than ``since``, counted up to
        ``limit`` (a throttle needs to know no more)."""
        ...

    def insert_activation(self, activation: StepActivation) -> None:
        """Record that a run activated a throttled step."""
        ...

    def prune_activations(self, before: datetime, tenant_id: str | None) -> int:
        """Delete activations (of ``tenant_id``, when given) made at or before ``before``;
        return the rows deleted."""
        ...

    def open_batch(self, group_key: str, up_to: int) -> DigestBatch | None:
        """The group's newest batch that has not closed, its ``size`` (members) counted up
        to ``up_to``, or None."""
        ...

    def insert_batch(self, batch: DigestBatch) -> None:
        """Open a digest batch."""
        ...

    def join_batch(self, batch_id: str, run: WorkflowRun, now: datetime) -> None:
        """Add a run to a batch, as its newest member."""
        ...

    def batch_of_run(self, run_id: str) -> str | None:
        """The id of the batch (not closed) the run belongs to, or None."""
        ...

    def batch_members(self, batch_id: str) -> list[WorkflowRun]:
        """The batch's runs still waiting, oldest member first, locked for this unit."""
        ...

    def batch_size(self, batch_id: str) -> int:
        """How many runs a batch holds (explain's count)."""
        ...

    def leave_batch(self, run_id: str, now: datetime) -> None:
        """Take a (cancelled) run out of the batch it waits in; a batch every run left
        closes, without a delivery."""
        ...

    def close_batch(self, batch_id: str, delivery_id: str | None, now: datetime) -> None:
        """Close a batch, with the one delivery its close planned."""
        ...

    def digest_members(self, delivery_id: str) -> list[Notification]:
        """The notifications (with their data) of the runs of the batch whose delivery this
        is, oldest member first; empty when no batch has it."""
        ...

    # -- signals, lifecycle -------------------------------------------------------------------

    def insert_signal(self, signal: Signal) -> None:
        """Record a signal (an immutable fact)."""
        ...

    def prune(
        self, before: datetime, tenant_id: str | None, limit: int | None = None
    ) -> tuple[int, int]:
        """Delete the oldest finished runs last changed before ``before`` (of one tenant,
        at most ``limit`` of them) with their rows and the signal marks no unfinished run
        can count any more; return (rows deleted, runs deleted)."""
        ...

    def forget(self, tenant_id: str, recipient: str | None) -> dict[str, int]:
        """Erase a tenant's (or one recipient's) rows; return the rows deleted per table."""
        ...

    def insert_erasure(self, erasure: Erasure) -> None:
        """Record a tombstone of :meth:`forget`."""
        ...

    def erase_after_commit(self) -> None:
        """Once this unit (or the caller's unit it is part of) commits, make the erased rows
        unreadable wherever the database still keeps copies (SQLite: checkpoint and
        truncate the WAL; deleted content is zeroed by ``secure_delete``)."""
        ...

    def erasures(self, tenant_id: str | None) -> list[Erasure]:
        """The tombstones, oldest first."""
        ...

    # -- audit and listings -------------------------------------------------------------------

    def damaged_rows(self) -> Iterator[DamagedRow]:
        """The rows, of the tables ``verify`` does not fold, that cannot be read back as
        their records."""
        ...

    def definition_ids(self) -> list[str]:
        """Every definition's id, in id order (for ``verify``)."""
        ...

    def storage_problems(self, quick: bool = False) -> list[str]:
        """What the database itself finds wrong (integrity — skipped when ``quick`` —,
        foreign keys, the sequence)."""
        ...

    def evidence_findings(
        self, *, anchored: Sequence[str], activated: str, resumed: str, collecting: str
    ) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """Rows that break an evidence or tenancy rule: (check name, values); the checks
        are named in :data:`chimeway_lite.engine.audit.FINDINGS`. ``anchored`` are the
        reasons whose delivery is the run's anchor, ``activated`` the reason that plans a
        delivery, ``resumed`` the reason of a signal's resume, ``collecting`` the
        ``wait_kind`` of a run waiting for its digest batch."""
        ...

    def run_traces(
        self,
        tenant_id: str | None = None,
        since: datetime | None = None,
        ids: IdRange = EVERY_ID,
    ) -> Iterator[RunTrace]:
        """Every run with its trace, by run id, one at a time; only the runs of
        ``tenant_id``, those changed since ``since`` and those with an id in ``ids``,
        when given."""
        ...

    def delivery_histories(
        self,
        tenant_id: str | None = None,
        since: datetime | None = None,
        ids: IdRange = EVERY_ID,
    ) -> Iterator[DeliveryHistory]:
        """Every delivery with its attempt history, by delivery id, one at a time; only
        those of the runs :meth:`run_traces` would read, when scoped, and those with an id
        in ``ids``."""
        ...

    def row_count(self, table: str) -> int:
        """How many rows ``table`` (``"runs"`` or ``"deliveries"``) holds."""
        ...

    def id_at(self, table: str, offset: int) -> str | None:
        """The id of the row of ``table`` at ``offset`` (from 0) in id order, or None past
        the end (verify's shares are cut there)."""
        ...

    def run_rows(
        self,
        tenant_id: str | None,
        state: str | None,
        limit: int | None,
        recipient: str | None = None,
        *,
        workflow_key: str | None = None,
        run_id: str | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Runs for listings, most recently changed first, after ``offset`` rows (columns of
        :data:`chimeway_lite.tools.listing.RUN_COLUMNS`); each filter given must match."""
        ...

    def delivery_rows(
        self,
        tenant_id: str | None,
        status: str | None,
        channel: str | None,
        before: datetime | None,
        limit: int | None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Deliveries for listings (columns of
        :data:`chimeway_lite.tools.listing.DELIVERY_COLUMNS`): of ``status``, or those not
        final yet, oldest first; with ``before``, only the pending ones whose retry time and
        the dispatched ones whose lease end come by then, in that order of time."""
        ...

    def trace_rows(self, run_id: str, limit: int | None) -> list[dict[str, Any]]:
        """A run's trace for listings, step keys instead of step ids."""
        ...

    def table_rows(self) -> list[dict[str, Any]]:
        """Every table with its row count and columns."""
        ...


class Backend(Protocol):
    """A database the store runs on: it opens units of work and owns the connections."""

    #: Where it is (a path, ``":memory:"`` or a URL), for messages.
    location: str

    def run(self, work: Callable[[Unit], R], *, write: bool) -> R:
        """Run ``work`` in one unit of work (as :meth:`unit` does) and return its result."""
        ...

    def unit(self, *, write: bool) -> AbstractContextManager[Unit]:
        """A unit of work: a write transaction (serialised with every other writer of the
        runs it locks) or a read snapshot. Committed when the block ends, rolled back when
        it raises."""
        ...

    def listener(self) -> WorkListener:
        """A new :class:`~chimeway_lite.backends.wakeups.WorkListener` for this store: what
        a worker sleeps on between passes (SQLite: a plain sleep; PostgreSQL: woken by the
        commits of other connections that create or reschedule work). The caller closes it."""
        ...

    def close(self) -> None:
        """Close every connection; later units raise ChimewayError."""
        ...


#: What opens a backend for a location: ``(location, busy_timeout) -> Backend``.
Opener = Callable[[str, float], Backend]

#: Shape of a listing row.
Row = Mapping[str, Any]
