"""Signals (CONTRACT §5, §13): which waiting runs an event resumes, resuming them all or
none, the mark every routed signal leaves for waits that begin later, and the host's cancel.
"""

from __future__ import annotations

import attrs

from ..core.arguments import check_signal, optional_key, payload_delivery_id, require_id
from ..core.errors import InvalidArgument
from ..core.ids import new_id
from ..core.records import Resumed, Signal, SignalMark, WorkflowRun
from ..machine import decide, deliveries
from ..machine.decision import Decision
from ..machine.kinds import digest
from .work import Work, not_before


def preview_signal(work: Work, signal: Signal) -> list[str]:
    """Ids of the runs :func:`route_signal` would resume; writes nothing."""
    signal = check_signal(signal)
    runs = work.unit.runs_awaiting(
        signal.tenant_id, signal.event_name, signal.actor_id, signal.correlation_key
    )
    return [run.id for run in work.readable(runs, "preview_signal")]


def route_signal(work: Work, signal: Signal) -> dict[str, Resumed]:
    """Resume every run of the signal's tenant waiting for it (of its actor, of its
    correlation key); all or nothing. The signal leaves its mark either way."""
    signal = check_signal(signal)
    now = work.now
    work.unit.insert_mark(
        SignalMark(
            tenant_id=signal.tenant_id,
            event_name=signal.event_name,
            actor_id=signal.actor_id,
            correlation_key=signal.correlation_key,
            routed_at=now,
        )
    )
    delivery_id = payload_delivery_id(signal)
    if delivery_id is not None and work.unit.delivery_tenant(delivery_id) != signal.tenant_id:
        delivery_id = None  # never link evidence across tenants
    changes: list[tuple[WorkflowRun, Decision]] = []
    awaiting = work.readable(
        work.unit.runs_awaiting(
            signal.tenant_id, signal.event_name, signal.actor_id, signal.correlation_key
        ),
        "route_signal",
    )
    # One instant for the whole fan-out, never before any resumed run's last row.
    for run in awaiting:
        now = not_before(run, now)
    for run in awaiting:
        decision = decide.resume(run, signal.event_name, delivery_id, now=now)
        if not decision.is_noop:
            changes.append((run, decision))
    if not changes:
        return {}
    rows = work.apply_many(changes, now)
    return {d.run.id: Resumed(d.run, t[0]) for (_, d), t in zip(changes, rows, strict=True)}


def track_signal(work: Work, signal: Signal) -> tuple[Signal, dict[str, Resumed]]:
    """Record the signal row (an immutable fact) and route it, in one unit of work."""
    signal = check_signal(signal)
    stored = attrs.evolve(signal, id=new_id(), inserted_at=work.now)
    work.unit.insert_signal(stored)
    return stored, route_signal(work, signal)


def cancel(
    work: Work,
    tenant_id: str,
    run_id: str | None,
    correlation_key: str | None,
    recipient: str | None,
) -> list[WorkflowRun]:
    """Stop every unfinished run of the tenant that all the given selectors match, and
    cancel their pending deliveries (CONTRACT §13.3); the runs it stopped."""
    tenant = require_id(tenant_id, "tenant_id")
    run = None if run_id is None else require_id(run_id, "run_id")
    key = optional_key(correlation_key, "correlation_key")
    who = None if recipient is None else require_id(recipient, "recipient")
    if run is None and key is None and who is None:
        raise InvalidArgument(
            "cancel", "give at least one of run_id, correlation_key and recipient"
        )
    stopped = []
    for found in work.readable(work.unit.runs_to_cancel(tenant, run, key, who), "cancel"):
        now = not_before(found, work.now)
        anchor = work.unit.anchor(found.id, found.current_step_id)
        journey = work.definitions.journey(found.workflow_definition_id)
        decision = decide.cancel(found, journey, None if anchor is None else anchor.id, now=now)
        if decision.is_noop:
            continue
        after, _ = work.apply(found, decision, now)
        if found.wait_kind == digest.NAME:
            work.unit.leave_batch(found.id, now)  # CONTRACT §14.2: it leaves its batch
        for pending in work.unit.pending_deliveries(found.id):
            cancelled = deliveries.cancel(pending, now)
            work.unit.update_delivery(pending, cancelled.delivery)
            work.unit.append_delivery_events([cancelled.event])
        stopped.append(after)
    return stopped
