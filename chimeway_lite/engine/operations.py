"""The engine's operations on one unit of work: the public surface of ``tx`` and, through
:mod:`chimeway_lite.store`, of every :class:`~chimeway_lite.store.Store` method.

:class:`Reader` holds the operations that only read; :class:`Engine` adds the ones that
write. Each method is the one place its signature and docstring are written: the store's
methods are made from them (one unit of work each), so the two never drift apart. The work
itself lives in the module of its concern (:mod:`.outbox`, :mod:`.progression`,
:mod:`.signals`, :mod:`.inspection`, :mod:`.seed`, :mod:`.lifecycle`, :mod:`.audit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..backends.base import Unit
from ..core.arguments import (
    optional_id,
    require_enum,
    require_id,
    require_limit,
    require_offset,
)
from ..core.clock import Clock
from ..core.errors import InvalidArgument
from ..core.records import (
    Delivery,
    DeliveryExplanation,
    DeliveryStatus,
    Erasure,
    Notification,
    Progress,
    Resumed,
    RunExplanation,
    RunState,
    Signal,
    StepLinkage,
    TriggerResult,
    WorkflowDefinition,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from ..core.timestamps import require_utc
from ..declarations import Workflow
from . import audit, batches, deliveries, inspection, lifecycle, outbox, progression, seed, signals
from .definitions import DefinitionIndex
from .work import Work


def verify_arguments(
    tenant_id: object, since: object, quick: object
) -> tuple[str | None, datetime | None, bool]:
    """:meth:`Reader.verify`'s arguments, checked (InvalidArgument otherwise)."""
    if not isinstance(quick, bool):
        raise InvalidArgument("quick", f"must be True or False, got {type(quick).__name__}")
    moment = None if since is None else require_utc(since, "since")
    return optional_id(tenant_id, "tenant_id"), moment, quick


class Reader:
    """The reading operations of one unit of work (a read snapshot, or any unit)."""

    def __init__(self, unit: Unit, clock: Clock, index: DefinitionIndex) -> None:
        self._work = Work(unit, clock, index)

    @property
    def index(self) -> DefinitionIndex:
        """What this unit learnt about definitions (merged into the store's on commit)."""
        return self._work.definitions.index

    @property
    def unit(self) -> Unit:
        """The backend's unit of work this engine runs on."""
        return self._work.unit

    def now(self) -> datetime:
        """The store clock's reading for this unit of work, in UTC."""
        return self._work.now

    # -- definitions (CONTRACT §3) -----------------------------------------------------------------

    def fetch_definition(
        self, workflow_key: str, workflow_version: int
    ) -> WorkflowDefinition | None:
        """The definition registered under key + version, with its steps, or None."""
        return self._work.definitions.fetch(workflow_key, workflow_version)

    def persisted_workflow(self, workflow_definition_id: str) -> Workflow | None:
        """The declaration rebuilt from the stored rows (equal to the registered one)."""
        return self._work.definitions.persisted_workflow(
            require_id(workflow_definition_id, "workflow_definition_id")
        )

    def fetch_step_by_key(self, workflow_definition_id: str, step_key: str) -> WorkflowStep | None:
        """One step of a definition by its key, or None."""
        return self._work.unit.step_by_key(
            require_id(workflow_definition_id, "workflow_definition_id"),
            require_id(step_key, "step_key"),
        )

    # -- inspection (CONTRACT §6) ------------------------------------------------------------------

    def explain(self, tenant_id: str, run_id: str) -> RunExplanation:
        """Why a run of ``tenant_id`` is where it is and what would move it next;
        RunNotFound for another tenant's run and for a missing one alike."""
        return inspection.explain(self._work, tenant_id, run_id)

    def list_traces(
        self, tenant_id: str, run_id: str, *, limit: int | None = None
    ) -> list[WorkflowTransition]:
        """The run's trace ordered by seq, cut to ``limit`` rows; tenant-scoped."""
        return inspection.list_traces(self._work, tenant_id, run_id, limit)

    def explain_delivery(self, tenant_id: str, delivery_id: str) -> DeliveryExplanation:
        """Where a delivery of ``tenant_id`` stands: its record (without data), its attempts
        and two sentences (``why``, ``next_move``); DeliveryNotFound for another tenant's
        delivery and for a missing one alike."""
        return deliveries.explain_delivery(self._work, tenant_id, delivery_id)

    def digest_members(self, delivery_id: str) -> list[Notification]:
        """The notifications a delivery speaks for, oldest first, with their data: the runs
        of its digest batch (``Delivery.digest_size`` of them when it was planned), or, for
        a delivery of a step without a digest, its own notification alone."""
        return deliveries.digest_members(self._work, delivery_id)

    def next_claimable_at(self, *, channel: str | None = None) -> datetime | None:
        """The earliest time :meth:`Engine.claim_deliveries` (of ``channel``, when given)
        finds a delivery to take — a pending one (at its retry time), or a dispatched one
        whose lease runs out — or None."""
        return self._work.unit.next_claimable_at(optional_id(channel, "channel"))

    def list_deliveries(self, tenant_id: str, run_id: str) -> list[Delivery]:
        """Every delivery planned for a run, oldest first; tenant-scoped like explain."""
        run = seed.visible_run(self._work, tenant_id, run_id)
        return outbox.list_deliveries(self._work, run.id)

    def get_run(self, run_id: str) -> WorkflowRun:
        """The run with this id (any tenant: the seed's low-level read), or RunNotFound."""
        return seed.get_run(self._work, run_id)

    def get_current_step(self, run: WorkflowRun) -> WorkflowStep:
        """The step a run is on, or StepNotFound."""
        return seed.get_current_step(self._work, run)

    def active_step_linkage(self, notification_id: str) -> StepLinkage | None:
        """The run and step a notification's deliveries currently belong to, or None once
        the run has finished."""
        return seed.active_step_linkage(self._work, notification_id)

    def preview_signal(self, signal: Signal) -> list[str]:
        """The ids of the runs :meth:`Engine.route_signal` would resume; writes nothing."""
        return signals.preview_signal(self._work, signal)

    # -- due work (CONTRACT §4) --------------------------------------------------------------------

    def next_due_at(self) -> datetime | None:
        """The earliest time at which the due sweep has work, or None."""
        return self._work.unit.next_due_at()

    def due_run_ids(self, now: datetime, limit: int | None = None) -> list[str]:
        """Ids of the runs the due sweep has work for at ``now``, in due order."""
        return [run_id for run_id, _ in self.due_page(now, limit)]

    def due_page(
        self, now: datetime, limit: int | None = None, after: tuple[str, str] | None = None
    ) -> list[tuple[str, tuple[str, str]]]:
        """One page of the due runs at ``now``: (run id, cursor) pairs in due order, starting
        after the cursor ``after`` of an earlier page (None: from the first)."""
        return self._work.unit.due_runs(self._work.at(now), require_limit(limit), after)

    # -- integrity and listings ------------------------------------------------------------------

    def verify(
        self,
        *,
        tenant_id: str | None = None,
        since: datetime | None = None,
        quick: bool = False,
    ) -> list[str]:
        """Problems found in the store (each run's trace against its row, evidence, tenancy,
        the database's own checks); empty when healthy. Writes nothing.

        ``tenant_id`` and ``since`` narrow the per-run checks (traces, deliveries and their
        history) to that tenant's runs and to runs changed since then; ``quick`` skips the
        database's page-by-page ``integrity_check``, the longest part on a large store."""
        tenant, moment, quick = verify_arguments(tenant_id, since, quick)
        return audit.verify(self._work, tenant_id=tenant, since=moment, quick=quick)

    def _verify_store(self, quick: bool) -> list[str]:
        """The store-wide half of :meth:`verify` (``Store.verify(workers=)``'s own part)."""
        return audit.store_checks(self._work, quick=quick)

    def _verify_shares(self, parts: int) -> list[audit.Share]:
        """The store cut into at most ``parts`` shares for ``Store.verify(workers=)``."""
        return audit.shares(self._work, parts)

    def _verify_share(
        self, tenant_id: str | None, since: datetime | None, share: audit.Share
    ) -> tuple[list[str], list[str]]:
        """The per-run half of :meth:`verify` on one share: (traces, deliveries)."""
        return audit.share_checks(self._work, tenant_id=tenant_id, since=since, share=share)

    def list_erasures(self, tenant_id: str | None = None) -> list[Erasure]:
        """The tombstones :meth:`Engine.forget` left, oldest first: of one tenant, or of all."""
        return lifecycle.erasures(self._work, tenant_id)

    def run_rows(
        self,
        *,
        tenant_id: str | None = None,
        state: RunState | str | None = None,
        limit: int | None = 100,
        recipient: str | None = None,
        workflow_key: str | None = None,
        run_id: str | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Runs as listing rows, most recently changed first (see
        :func:`chimeway_lite.tools.listing.run_rows`)."""
        wanted = None if state is None else require_enum(RunState, state, "state").value
        return self._work.unit.run_rows(
            optional_id(tenant_id, "tenant_id"),
            wanted,
            require_limit(limit),
            recipient=optional_id(recipient, "recipient"),
            workflow_key=optional_id(workflow_key, "workflow_key"),
            run_id=optional_id(run_id, "run_id"),
            offset=require_offset(offset),
        )

    def delivery_rows(
        self,
        *,
        tenant_id: str | None = None,
        status: DeliveryStatus | str | None = None,
        channel: str | None = None,
        before: datetime | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Deliveries as listing rows (see :func:`chimeway_lite.tools.listing.delivery_rows`)."""
        wanted = None if status is None else require_enum(DeliveryStatus, status, "status").value
        return self._work.unit.delivery_rows(
            optional_id(tenant_id, "tenant_id"),
            wanted,
            optional_id(channel, "channel"),
            None if before is None else require_utc(before, "before"),
            require_limit(limit),
            require_offset(offset),
        )

    def trace_rows(
        self, tenant_id: str, run_id: str, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """A run's trace as listing rows; tenant-scoped (see
        :func:`chimeway_lite.tools.listing.trace_rows`)."""
        count = require_limit(limit)
        run = seed.visible_run(self._work, tenant_id, run_id)
        return self._work.unit.trace_rows(run.id, count)

    def table_rows(self) -> list[dict[str, Any]]:
        """Every table of the store with its row count and columns."""
        return self._work.unit.table_rows()


class Engine(Reader):
    """Every operation of one write unit of work: what ``with store.transaction() as tx``
    yields. Everything called on it commits together when the block ends."""

    # -- definitions (CONTRACT §3) -----------------------------------------------------------------

    def ensure_definition(
        self, notification_key: str, workflow: Workflow | Mapping[str, Any]
    ) -> WorkflowDefinition:
        """Register a workflow (typed or dict) or return its identical registration.

        Same key + version with other steps raises DefinitionConflict and changes nothing;
        an identical re-registration updates ``notification_key`` to the caller's.
        """
        return self._work.definitions.ensure(notification_key, workflow, self._work.now)

    # -- trigger and outbox (CONTRACT §7) ----------------------------------------------------------

    def trigger(
        self,
        *,
        tenant_id: str,
        notification_key: str,
        recipient: str,
        workflow: Workflow | Mapping[str, Any] | WorkflowDefinition,
        idempotency_key: str,
        data: Mapping[str, Any] | None = None,
        correlation_key: str | None = None,
        timezone: str | None = None,
    ) -> TriggerResult:
        """Start a journey for a recipient: notification, run, first delivery (pending).

        ``data`` is the host's own data for the workers (a dict of plain JSON, at most
        64 KiB), handed over on every delivery and never written into a trace.
        ``correlation_key`` is the host's own handle (an order id; not unique) that signals
        and :meth:`cancel` may address. ``timezone`` is the recipient's IANA time zone
        (``"Europe/Paris"``; None: UTC), in which send windows are read. A throttle, send
        window or digest on the first step may hold the run back: then no delivery is
        planned yet (see ``TriggerResult.run``). The same (tenant_id, idempotency_key)
        again returns the first result with ``duplicate=True`` and writes nothing.
        """
        return outbox.trigger(
            self._work,
            tenant_id=tenant_id,
            notification_key=notification_key,
            recipient=recipient,
            workflow=workflow,
            idempotency_key=idempotency_key,
            data=data,
            correlation_key=correlation_key,
            timezone=timezone,
        )

    def trigger_many(self, requests: Iterable[Mapping[str, Any]]) -> list[TriggerResult]:
        """Trigger several journeys in one unit of work: each request is a dict of
        :meth:`trigger`'s keyword arguments; the results are those of calling it once per
        request, in order (a key repeated in the batch is a duplicate of its first use).
        All or nothing: the first request that fails raises its error with its index as
        ``item`` (and in the message), and nothing of the batch is written. At most 10,000
        requests."""
        return batches.trigger_many(self._work, requests)

    def claim_deliveries(
        self, limit: int = 100, *, channel: str | None = None, lease_seconds: int = 300
    ) -> list[Delivery]:
        """Claim up to ``limit`` deliveries (oldest first): pending ones whose retry time
        has come and dispatched ones whose lease ran out. Each becomes dispatched, its
        ``attempt`` counted, leased for ``lease_seconds``; two workers never hold the same
        one. Each comes with whom to send what (recipient, keys, data, config)."""
        return deliveries.claim_deliveries(self._work, limit, channel, lease_seconds)

    def record_outcome(
        self,
        delivery_id: str,
        status: DeliveryStatus | str,
        suppression_reason: str | None = None,
        *,
        tenant_id: str | None = None,
    ) -> Progress | None:
        """Record a delivery's outcome (succeeded, failed, suppressed or cancelled) and
        progress its run in the same unit of work.

        A failure on a step with a retry policy and attempts left puts the delivery back to
        pending (``Progress`` noop ``retry_scheduled``); the last one exhausts it
        (cancelled, ``retries_exhausted``). A final delivery keeps its outcome: the same
        report again returns None, another raises InvalidTransition. None also for a
        delivery linked to no run. With ``tenant_id``, another tenant's delivery is
        DeliveryNotFound.
        """
        return deliveries.record_outcome(
            self._work, delivery_id, status, suppression_reason, tenant_id
        )

    def record_outcomes(
        self, reports: Iterable[tuple[Any, ...] | Mapping[str, Any]]
    ) -> list[Progress | None]:
        """Record several outcomes in one unit of work, each as :meth:`record_outcome`
        would, in order. A report is ``(delivery_id, status)``, ``(delivery_id, status,
        suppression_reason)`` or a dict of those names and ``tenant_id``. All or nothing,
        like :meth:`trigger_many`; at most 10,000 reports."""
        return batches.record_outcomes(self._work, reports)

    def extend_lease(self, delivery_id: str, seconds: int) -> Delivery:
        """Push the lease of a dispatched delivery to now + ``seconds`` (also after it ran
        out, until another claim takes it); InvalidTransition otherwise."""
        return deliveries.extend_lease(self._work, delivery_id, seconds)

    # -- progression (CONTRACT §4) -----------------------------------------------------------------

    def progress_run(self, run_id: str, *, now: datetime | None = None) -> Progress:
        """Take the next step of one run at ``now`` (default: the clock), or a noop that
        writes nothing."""
        return progression.progress_run(self._work, run_id, self._work.at(now))

    # -- signals (CONTRACT §5) ---------------------------------------------------------------------

    def route_signal(self, signal: Signal) -> dict[str, Resumed]:
        """Resume the tenant's runs waiting for this signal (of its actor and correlation
        key, when given); run id -> Resumed. All or nothing; the payload is never written
        into a trace. The signal leaves a payload-free mark, so a run that enters a wait
        for it later in its step does not wait (CONTRACT §13.1)."""
        return signals.route_signal(self._work, signal)

    def track_signal(self, signal: Signal) -> tuple[Signal, dict[str, Resumed]]:
        """Record the signal (an immutable fact) and route it, in one unit of work."""
        return signals.track_signal(self._work, signal)

    def cancel(
        self,
        tenant_id: str,
        *,
        run_id: str | None = None,
        correlation_key: str | None = None,
        recipient: str | None = None,
    ) -> list[WorkflowRun]:
        """Stop the tenant's unfinished runs that every given selector matches (at least
        one: a run, a correlation key, a recipient) and cancel their pending deliveries;
        return the runs it stopped. Dispatched deliveries finish, but move the run no
        more. Cancelling again is a no-op (``[]``)."""
        return signals.cancel(self._work, tenant_id, run_id, correlation_key, recipient)

    # -- the seed's low-level API (CONTRACT §8) ----------------------------------------------------

    def lock_run(self, run_id: str) -> WorkflowRun:
        """The run, locked for the rest of this unit of work, or RunNotFound."""
        return seed.get_run(self._work, run_id, lock=True)

    def update_run(self, run: WorkflowRun | str, **fields: Any) -> WorkflowRun:
        """Write ``fields`` to the run's row as given and return the updated run.

        The escape hatch of CONTRACT §8: no state-machine rule applies, except that a terminal
        run keeps its state and that ``status_context`` keys stay within the catalogue.
        """
        return seed.update_run(self._work, run, fields)

    def append_transition(
        self,
        run_id: str,
        to_state: RunState | str,
        reason: str,
        *,
        workflow_step_id: str | None = None,
        delivery_id: str | None = None,
        from_state: RunState | str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> WorkflowTransition:
        """Append one trace row for a run and return it (CONTRACT §8).

        Any non-blank reason and any from_state are accepted; InvalidTransition is raised
        only when a completed/stopped run would get another state, or for a context key
        outside the catalogue.
        """
        return seed.append_transition(
            self._work,
            run_id,
            to_state,
            reason,
            workflow_step_id=workflow_step_id,
            delivery_id=delivery_id,
            from_state=from_state,
            context=context,
        )

    def create_initial_run(
        self,
        notification_id: str,
        definition: WorkflowDefinition,
        timestamp: datetime,
        tenant_id: str,
    ) -> WorkflowRun:
        """Start the run of a notification on the definition's first step (CONTRACT §4 item 1).

        Writes the run and its two trace rows; planning the first delivery is the
        trigger's job. One run per notification; a definition without steps raises
        InvalidWorkflow.
        """
        return seed.create_initial_run(
            self._work, notification_id, definition, timestamp, tenant_id
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def prune(self, before: datetime, *, tenant_id: str | None = None) -> int:
        """Delete finished (completed/stopped) runs whose last transition is older than
        ``before``, with their trace, deliveries and notification; return the rows deleted.
        (Called on the store outside a transaction, it deletes in chunks, each its own unit
        of work, so the WAL stays small.)"""
        return lifecycle.prune(self._work, before, tenant_id)[0]

    def _prune_chunk(
        self, before: datetime, limit: int, *, tenant_id: str | None = None
    ) -> tuple[int, int]:
        """One chunk of :meth:`prune`: the oldest ``limit`` finished runs older than
        ``before``; (rows deleted, runs deleted)."""
        count = require_limit(limit, allow_none=False)
        return lifecycle.prune(self._work, before, tenant_id, count)

    def forget(self, tenant_id: str, recipient: str | None = None) -> int:
        """Erase everything of a tenant, or of one recipient of it, leaving one payload-free
        tombstone row; return the rows erased."""
        return lifecycle.forget(self._work, tenant_id, recipient)
