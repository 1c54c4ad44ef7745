"""Seeing what a unit of work wrote, without the engine knowing: a :class:`ObservedUnit`
wraps the backend's unit and turns every trace row and attempt-history row it appends into
a :class:`~chimeway_lite.hooks.events.StoreEvent`.

Why at the unit: every transition and every delivery attempt reaches the database through
two methods of the storage contract (``append_transitions``, ``append_delivery_events``),
whichever operation — a Store method, a ``tx`` helper, a Worker's claim — wrote it, so
watching those two sees everything and nothing else has to call a hook. The events are kept
in the wrapper until the store knows the unit committed; a savepoint's events join its
parent's only when the savepoint is released, so rolled-back work reports nothing.

The wrapper is made only when someone listens (a hook, debug logging, a recording span):
otherwise the store hands the engine the backend's unit itself and pays nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ..backends.base import TraceRow, Unit, trace_records
from ..core.errors import DamagedRow
from ..core.records import (
    Delivery,
    DeliveryEvent,
    DeliveryEventKind,
    DeliveryStatus,
    WorkflowRun,
    WorkflowTransition,
)
from ..engine.definitions import DefinitionIndex
from .events import EventKind, StoreEvent

_KINDS = {
    DeliveryEventKind.CLAIMED: EventKind.DELIVERY_CLAIMED,
    DeliveryEventKind.LEASE_EXTENDED: EventKind.DELIVERY_LEASE_EXTENDED,
    DeliveryEventKind.RECORDED: EventKind.DELIVERY_OUTCOME,
}


def _state(value: object) -> str | None:
    return None if value is None else str(value)


class ObservedUnit:
    """A backend unit that records, as :class:`StoreEvent`\\ s, what is appended through it.

    Every other attribute is the wrapped unit's. Runs and deliveries it hands out are
    remembered (tenant, definition, status before a change), so an event needs no read of
    its own in the common case; ``events`` lists what was written, in order.
    """

    def __init__(self, unit: Unit, index: DefinitionIndex) -> None:
        self._unit = unit
        self._index = index
        self._runs: dict[str, tuple[str, str]] = {}  # run id -> (tenant, definition id)
        self._deliveries: dict[str, tuple[str | None, Delivery]] = {}  # id -> (before, after)
        self.events: list[StoreEvent] = []

    def __getattr__(self, name: str) -> Any:
        # Reached only for what this class does not define: the wrapped unit's own
        # methods. Cached on the instance, so a unit pays the lookup once per name.
        value = getattr(self._unit, name)
        setattr(self, name, value)
        return value

    @property
    def unit(self) -> Unit:
        """The backend's unit this one wraps."""
        return self._unit

    # -- nested units ------------------------------------------------------------------------

    @contextmanager
    def savepoint(self) -> Iterator[ObservedUnit]:
        """The wrapped unit's savepoint, observed on its own: its events join this unit's
        only if its block ends without an error (its writes are undone otherwise)."""
        with self._unit.savepoint() as inner:
            child = ObservedUnit(inner, self._index)
            child._runs = self._runs
            child._deliveries = dict(self._deliveries)
            yield child
        self.events.extend(child.events)
        self._deliveries.update(child._deliveries)

    # -- what the unit hands out, remembered ---------------------------------------------------

    def _remember_run(self, run: WorkflowRun | None) -> None:
        if run is not None:
            self._runs[run.id] = (run.tenant_id, run.workflow_definition_id)

    def _remember_delivery(self, delivery: Delivery | None, before: str | None = None) -> None:
        if delivery is not None:
            self._deliveries[delivery.id] = (before, delivery)

    def run(self, *args: Any, **kwargs: Any) -> WorkflowRun | None:
        """The wrapped unit's :meth:`~chimeway_lite.backends.base.Unit.run`, remembered."""
        found: WorkflowRun | None = self._unit.run(*args, **kwargs)
        self._remember_run(found)
        return found

    def run_of_notification(self, *args: Any, **kwargs: Any) -> WorkflowRun | None:
        """The wrapped unit's ``run_of_notification``, remembered."""
        found: WorkflowRun | None = self._unit.run_of_notification(*args, **kwargs)
        self._remember_run(found)
        return found

    def runs_awaiting(self, *args: Any, **kwargs: Any) -> list[WorkflowRun | DamagedRow]:
        """The wrapped unit's ``runs_awaiting``, remembered."""
        found = self._unit.runs_awaiting(*args, **kwargs)
        for run in found:
            if isinstance(run, WorkflowRun):
                self._remember_run(run)
        return found

    def runs_to_cancel(self, *args: Any, **kwargs: Any) -> list[WorkflowRun | DamagedRow]:
        """The wrapped unit's ``runs_to_cancel``, remembered."""
        found = self._unit.runs_to_cancel(*args, **kwargs)
        for run in found:
            if isinstance(run, WorkflowRun):
                self._remember_run(run)
        return found

    def insert_run(self, run: WorkflowRun) -> None:
        """Insert a run (remembered)."""
        self._remember_run(run)
        self._unit.insert_run(run)

    def update_runs(self, changes: Sequence[tuple[WorkflowRun, WorkflowRun]]) -> None:
        """Update runs (remembered)."""
        for _, after in changes:
            self._remember_run(after)
        self._unit.update_runs(changes)

    def write_run(self, run: WorkflowRun) -> None:
        """Write a host's run (remembered)."""
        self._remember_run(run)
        self._unit.write_run(run)

    def delivery(self, *args: Any, **kwargs: Any) -> Delivery | None:
        """The wrapped unit's ``delivery``, remembered."""
        found: Delivery | None = self._unit.delivery(*args, **kwargs)
        self._remember_delivery(found)
        return found

    def update_delivery(self, before: Delivery, after: Delivery) -> None:
        """Update a delivery (its status before and after remembered)."""
        self._unit.update_delivery(before, after)
        self._remember_delivery(after, before.status.value)

    def claim(self, *args: Any, **kwargs: Any) -> list[Delivery | DamagedRow]:
        """The wrapped unit's ``claim``, remembered."""
        claimed = self._unit.claim(*args, **kwargs)
        for delivery in claimed:
            if isinstance(delivery, Delivery):
                self._remember_delivery(delivery)
        return claimed

    # -- what the unit writes, observed --------------------------------------------------------

    def append_transitions(self, transitions: Sequence[WorkflowTransition]) -> None:
        """Append trace rows, and record one event for each."""
        self._unit.append_transitions(transitions)
        for row in transitions:
            tenant_id, definition_id = self._run_facts(row.workflow_run_id)
            self.events.append(
                StoreEvent(
                    kind=EventKind.TRANSITION,
                    tenant_id=tenant_id,
                    run_id=row.workflow_run_id,
                    reason=row.reason,
                    from_state=_state(row.from_state),
                    to_state=_state(row.to_state),
                    step_key=self._step_key(definition_id, row.workflow_step_id),
                    delivery_id=row.delivery_id,
                    attempt=None,
                    at=row.inserted_at,
                    seq=row.seq,
                )
            )

    def append_trace(self, run_id: str, trace: Sequence[TraceRow], now: datetime) -> None:
        """Append trace rows given as tuples, observed as :meth:`append_transitions`
        observes them."""
        self.append_transitions(trace_records(run_id, trace, now))

    def append_delivery_events(self, events: Sequence[DeliveryEvent]) -> None:
        """Append attempt-history rows, and record one event for each."""
        self._unit.append_delivery_events(events)
        for row in events:
            before, delivery = self._delivery_facts(row.delivery_id)
            kind = _KINDS[row.kind]
            if kind is EventKind.DELIVERY_CLAIMED:
                reason, from_state = "claimed", None
            elif kind is EventKind.DELIVERY_LEASE_EXTENDED:
                reason, from_state = "lease_extended", DeliveryStatus.DISPATCHED.value
            else:
                reason, from_state = row.status or "recorded", before
            self.events.append(
                StoreEvent(
                    kind=kind,
                    tenant_id=row.tenant_id,
                    run_id=None if delivery is None else delivery.workflow_run_id,
                    reason=reason,
                    from_state=from_state,
                    to_state=None if delivery is None else delivery.status.value,
                    step_key=(delivery.step_key or None) if delivery is not None else None,
                    delivery_id=row.delivery_id,
                    attempt=row.attempt,
                    at=row.at,
                    suppression_reason=None if delivery is None else delivery.suppression_reason,
                )
            )

    # -- facts an event needs, read only when not remembered --------------------------------

    def _run_facts(self, run_id: str) -> tuple[str, str | None]:
        known = self._runs.get(run_id)
        if known is None:
            self._remember_run(self._unit.run(run_id))
            known = self._runs.get(run_id)
        if known is None:  # a row for a run that is gone: report what the row says
            return "", None
        return known

    def _step_key(self, definition_id: str | None, step_id: str | None) -> str | None:
        if definition_id is None or step_id is None:
            return None
        journey = self._index.journey(definition_id)
        if journey is not None and step_id in journey.steps_by_id:
            return journey.steps_by_id[step_id].step_key
        step = self._unit.step(definition_id, step_id)
        return None if step is None else step.step_key

    def _delivery_facts(self, delivery_id: str) -> tuple[str | None, Delivery | None]:
        known = self._deliveries.get(delivery_id)
        if known is None:
            return None, self._unit.delivery(delivery_id)
        return known
