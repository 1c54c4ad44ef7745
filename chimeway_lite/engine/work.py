"""One unit of work as the engine sees it: the backend's open unit, the clock read once, the
definitions, and the one writer of decisions (:meth:`Work.apply`).

Every operation of :mod:`chimeway_lite.engine` runs on a :class:`Work`: it validates its
arguments, gathers the facts a decision needs through ``work.unit`` (the storage contract of
:mod:`chimeway_lite.backends.base`), asks the pure machine, and hands the decision to
:meth:`Work.apply`, which writes the run, its trace rows and its deliveries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ..backends.base import TraceRow, Unit, trace_records
from ..core.clock import Clock
from ..core.errors import ChimewayError, ConstraintFailed, DamagedRow
from ..core.ids import new_id
from ..core.records import (
    Delivery,
    DeliveryStatus,
    DigestBatch,
    Notification,
    Progress,
    StepActivation,
    WorkflowRun,
    WorkflowTransition,
)
from ..core.timestamps import require_utc
from ..machine import decide
from ..machine.decision import BatchPlan, Decision, TransitionPlan
from ..machine.kinds import digest as digest_kind
from ..machine.kinds import throttle as throttle_kind
from ..machine.kinds.retry import Retry
from ..machine.vocabulary import STEP_ACTIVATED
from . import gates
from .definitions import DefinitionIndex, Definitions

T = TypeVar("T")
V = TypeVar("V")

log = logging.getLogger("chimeway_lite")


def report_skipped(operation: str, row_id: str | None, error: BaseException) -> None:
    """Say, on the ``chimeway_lite`` logger, that ``operation`` left a row out and went on:
    the error's own text (which names the row and never a payload), never a traceback."""
    problem = str(error) if isinstance(error, ChimewayError) else type(error).__name__
    log.warning("%s skipped %s: %s", operation, row_id or "a row", problem)


def _read_once(cache: dict[str, V], read: Callable[[str], V | None], notification_id: str) -> V:
    """What ``read`` gives for a notification, read once per unit (``cache``); its run's
    foreign key guarantees the notification exists, so a missing one is a damaged store."""
    found = cache.get(notification_id)
    if found is None:
        found = read(notification_id)
        if found is None:
            raise ConstraintFailed("the store", f"notification {notification_id} is missing")
        cache[notification_id] = found
    return found


class Work:
    """The context every engine operation runs in (see the module docstring)."""

    __slots__ = ("_addresses", "_notifications", "_now", "clock", "definitions", "unit")

    def __init__(self, unit: Unit, clock: Clock, index: DefinitionIndex) -> None:
        self.unit = unit
        self.clock = clock
        self.definitions = Definitions(unit, index)
        self._now: datetime | None = None
        self._notifications: dict[str, Notification] = {}
        self._addresses: dict[str, tuple[str, str | None]] = {}

    def notification(self, notification_id: str) -> Notification:
        """A run's notification (read once per unit of work; a notification never changes
        once triggered). Its foreign key guarantees it exists."""
        return _read_once(self._notifications, self.unit.notification, notification_id)

    def address(self, notification_id: str) -> tuple[str, str | None]:
        """A run's recipient and correlation key: from its notification when this unit has
        it already, else read without the notification's data (which may be tens of KB a
        signal check has no use for), once per unit."""
        found = self._notifications.get(notification_id)
        if found is not None:
            return found.recipient, found.correlation_key
        return _read_once(self._addresses, self.unit.notification_address, notification_id)

    def remember(self, notification: Notification) -> None:
        """Keep a notification this unit inserted, so that it is not read back."""
        self._notifications[notification.id] = notification

    def readable(self, found: Sequence[T | DamagedRow], operation: str) -> list[T]:
        """The records of ``found`` that could be read; each damaged row is reported (a
        warning on the ``chimeway_lite`` logger) and left out, so one bad run never stops
        the others (CONTRACT §16)."""
        records: list[T] = []
        for item in found:
            if isinstance(item, DamagedRow):
                report_skipped(operation, item.row_id, item)
            else:
                records.append(item)
        return records

    @property
    def now(self) -> datetime:
        """The clock's reading for this unit of work: taken once, at first use, inside the
        unit (after its lock), so every row it writes carries the same instant."""
        if self._now is None:
            self._now = require_utc(self.clock.now(), "clock.now()")
        return self._now

    def at(self, now: datetime | None) -> datetime:
        """``now`` when the caller gave one (checked), else the unit's clock reading."""
        return self.now if now is None else require_utc(now, "now")

    # -- the one writer of decisions -------------------------------------------------------------

    def apply(
        self,
        before: WorkflowRun | None,
        decision: Decision,
        now: datetime,
        *,
        notification: Notification | None = None,
    ) -> tuple[WorkflowRun, list[Delivery]]:
        """Carry out a decision: the run row (inserted when ``before`` is None), its trace
        rows in order, its planned deliveries (returned with the run). A delivery carries
        whom to send what: the recipient, keys and data of the run's notification
        (``notification`` when the caller holds it, else read once) and its step's key and
        config."""
        run = decision.run
        if before is None:
            self.unit.insert_run(run)
        else:
            self.unit.update_runs([(before, run)])
        self.unit.append_trace(run.id, self._trace(decision.transitions), now)
        if not decision.deliveries:
            return run, []
        self._count_activations(run, decision, now)
        deliveries = self._planned(run, decision, now, notification)
        self.unit.insert_deliveries(deliveries)
        return run, deliveries

    def _trace(self, plans: Sequence[TransitionPlan]) -> list[TraceRow]:
        """The trace rows of a decision's plans, numbered in order, each with a new id."""
        if not plans:
            return []
        return [
            (
                new_id(),
                seq,
                plan.workflow_step_id,
                plan.delivery_id,
                plan.from_state,
                plan.to_state,
                plan.reason,
                plan.context,
            )
            for seq, plan in zip(self.unit.next_seqs(len(plans)), plans, strict=True)
        ]

    def _planned(
        self,
        run: WorkflowRun,
        decision: Decision,
        now: datetime,
        notification: Notification | None,
    ) -> list[Delivery]:
        """The deliveries ``decision`` plans for ``run``, each with whom to send what: the
        recipient, keys and data of the run's notification (``notification`` when the
        caller holds it, else read once) and its step's key and config."""
        if not decision.deliveries:
            return []
        if notification is None:
            notification = self.notification(run.notification_id)
        journey = self.definitions.journey(run.workflow_definition_id)
        steps = journey.steps_by_id
        return [
            Delivery(
                id=new_id(),
                tenant_id=run.tenant_id,
                notification_id=run.notification_id,
                channel=plan.channel,
                status=DeliveryStatus.PENDING,
                suppression_reason=None,
                workflow_run_id=run.id,
                workflow_step_id=plan.workflow_step_id,
                inserted_at=now,
                updated_at=now,
                recipient=notification.recipient,
                notification_key=notification.notification_key,
                step_key=steps[plan.workflow_step_id].step_key,
                max_attempts=_max_attempts(journey.options.get(plan.workflow_step_id, {})),
                digest_size=plan.digest_size,
                data=notification.data,
                config=steps[plan.workflow_step_id].config,
            )
            for plan in decision.deliveries
        ]

    def _count_activations(self, run: WorkflowRun, decision: Decision, now: datetime) -> None:
        """Record each ``step_activated`` row of a throttled step: what throttles count
        (CONTRACT §14.1: a run counts when it writes the step's step_activated row)."""
        journey = self.definitions.journey(run.workflow_definition_id)
        if not journey.throttled:
            return
        for row in decision.transitions:
            if row.reason != STEP_ACTIVATED or row.workflow_step_id not in journey.throttled:
                continue
            policy = journey.options[row.workflow_step_id].get(throttle_kind.KEY)
            if not isinstance(policy, throttle_kind.Throttle):
                continue
            step = journey.step(row.workflow_step_id)
            group, notification = gates.group_of(self, throttle_kind.NAME, run, step, policy.key)
            self.unit.insert_activation(
                StepActivation(
                    tenant_id=run.tenant_id,
                    recipient=notification.recipient,
                    group_key=group,
                    workflow_run_id=run.id,
                    activated_at=now,
                )
            )

    def carry_out(
        self,
        before: WorkflowRun | None,
        decision: Decision,
        now: datetime,
        *,
        notification: Notification | None = None,
    ) -> list[Progress]:
        """Carry out a decision with everything it moves: the decisions on other runs it
        holds (``also``: the rest of a digest batch it closes) and its digest batch — opened,
        joined (and closed at once when the join fills it), or closed with its one delivery.
        Returns what each run it changed became, the decision's own run first."""
        run, deliveries = self.apply(before, decision, now, notification=notification)
        results = {run.id: Progress(decision.kind, run, decision.reason, tuple(deliveries))}
        planned = list(deliveries)
        for other_before, other in decision.also:
            changed, theirs = self.apply(other_before, other, now)
            results[changed.id] = Progress(other.kind, changed, other.reason, tuple(theirs))
            planned += theirs
        plan = decision.batch
        if plan is not None:
            for progress in self._batch(run, plan, planned, now):
                results[progress.run.id] = progress
        return list(results.values())

    def _batch(
        self, run: WorkflowRun, plan: BatchPlan, planned: list[Delivery], now: datetime
    ) -> list[Progress]:
        """Carry out what a decision does to a digest batch (CONTRACT §14.2)."""
        if plan.action == "close":
            assert plan.batch_id is not None
            self.unit.close_batch(plan.batch_id, planned[0].id if planned else None, now)
            return []
        batch_id = plan.batch_id
        if batch_id is None:  # open one
            journey = self.definitions.journey(run.workflow_definition_id)
            step = journey.step(plan.workflow_step_id)
            option = journey.options[step.id].get(digest_kind.KEY)
            key = option.key if isinstance(option, digest_kind.Digest) else None
            group, notification = gates.group_of(self, digest_kind.NAME, run, step, key)
            batch_id = new_id()
            self.unit.insert_batch(
                DigestBatch(
                    id=batch_id,
                    tenant_id=run.tenant_id,
                    recipient=notification.recipient,
                    group_key=group,
                    workflow_step_id=step.id,
                    opened_at=now,
                    closes_at=plan.closes_at,
                )
            )
        self.unit.join_batch(batch_id, run, now)
        return self.close_batch(batch_id, now) if plan.fills else []

    def close_batch(self, batch_id: str, now: datetime) -> list[Progress]:
        """Close a digest batch now (a join filled it): its oldest run still waiting sends,
        the others merge; what each run became."""
        closing = gates.closing_of_batch(self, batch_id)
        if not closing.members:
            return []
        now = max([now, *(member.last_transition_at for member, _ in closing.members)])
        return self.carry_out(closing.members[0][0], decide.close_batch(closing, now=now), now)

    def apply_many(
        self, changes: Sequence[tuple[WorkflowRun, Decision]], now: datetime
    ) -> list[list[WorkflowTransition]]:
        """Carry out decisions on several runs at once (a signal's fan-out): one update for
        runs given the same new values, one insert for all the trace rows. The decisions plan
        no deliveries."""
        plans = [(d.run.id, plan) for _, d in changes for plan in d.transitions]
        transitions = self.trace_rows(plans, now)
        self.unit.update_runs([(before, d.run) for before, d in changes])
        self.unit.append_transitions(transitions)
        rows = iter(transitions)
        return [[next(rows) for _ in d.transitions] for _, d in changes]

    def trace_rows(
        self, plans: Sequence[tuple[str, TransitionPlan]], now: datetime
    ) -> list[WorkflowTransition]:
        """The trace records of (run id, plan) pairs, numbered in order, stamped ``now``
        (for callers that hand the rows on: :meth:`_trace`'s rows, as records)."""
        rows = self._trace([plan for _, plan in plans])
        return [
            record
            for (run_id, _), row in zip(plans, rows, strict=True)
            for record in trace_records(run_id, [row], now)
        ]


def _max_attempts(options: Mapping[str, Any]) -> int | None:
    """The retry limit of a step's options, or None when it has no retry policy."""
    policy = options.get("retry")
    return policy.max_attempts if isinstance(policy, Retry) else None


def not_before(run: WorkflowRun, now: datetime) -> datetime:
    """The instant a decision on ``run`` is stamped with: ``now``, or the run's
    ``last_transition_at`` when that is later (another process's clock ran ahead, or the
    caller swept at a time of its own), so a run's trace never goes back in time
    (CONTRACT §16)."""
    last = run.last_transition_at
    return now if last <= now else last
