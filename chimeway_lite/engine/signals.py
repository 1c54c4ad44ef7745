"""Signals (CONTRACT §5): which waiting runs an event resumes, and resuming them all or none."""

from __future__ import annotations

import attrs

from ..core.arguments import check_signal, payload_delivery_id
from ..core.ids import new_id
from ..core.records import Resumed, Signal, WorkflowRun
from ..machine import decide
from ..machine.decision import Decision
from .work import Work


def preview_signal(work: Work, signal: Signal) -> list[str]:
    """Ids of the runs :func:`route_signal` would resume; writes nothing."""
    signal = check_signal(signal)
    return [
        run.id
        for run in work.unit.runs_awaiting(signal.tenant_id, signal.event_name, signal.actor_id)
    ]


def route_signal(work: Work, signal: Signal) -> dict[str, Resumed]:
    """Resume every run of the signal's tenant waiting for it; all or nothing."""
    signal = check_signal(signal)
    now = work.now
    delivery_id = payload_delivery_id(signal)
    if delivery_id is not None and work.unit.delivery_tenant(delivery_id) != signal.tenant_id:
        delivery_id = None  # never link evidence across tenants
    changes: list[tuple[WorkflowRun, Decision]] = []
    for run in work.unit.runs_awaiting(signal.tenant_id, signal.event_name, signal.actor_id):
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
