"""Signals (SPEC §5): which waiting runs an event resumes, and resuming them all or none."""

from __future__ import annotations

import attrs

from . import convert, machine
from .arguments import (
    check_signal,
    payload_delivery_id,
)
from .records import (
    Resumed,
    Signal,
    WorkflowRun,
)
from .spine import INSERT_TRANSITION, RUN_COLUMNS_OF_R, Spine, new_id

# Runs a signal resumes (SPEC §5): the tenant always, the recipient when an actor is given.
_AWAITING_SIGNAL = f"""
SELECT {RUN_COLUMNS_OF_R} FROM workflow_runs AS r
 WHERE r.tenant_id = :tenant_id AND r.state = 'waiting'
   AND EXISTS (SELECT 1 FROM json_each(r.pending_signals) WHERE value = :event_name)
 ORDER BY r.id
"""
# With an actor, start from the recipient's notifications (notifications_by_recipient) and
# reach each one's run by its unique notification_id: the cost follows the recipient's runs,
# not the tenant's waiting runs (issue 5: one query that looked at every waiting run of the
# tenant took 4 ms with 2,000 of them). CROSS JOIN keeps SQLite from reordering the loop.
# A run and its notification always share the tenant (trigger and create_initial_run check).
_AWAITING_ACTOR_SIGNAL = f"""
SELECT {RUN_COLUMNS_OF_R} FROM notifications AS n CROSS JOIN workflow_runs AS r
 WHERE n.tenant_id = :tenant_id AND n.recipient = :actor_id
   AND r.notification_id = n.id AND r.tenant_id = :tenant_id AND r.state = 'waiting'
   AND EXISTS (SELECT 1 FROM json_each(r.pending_signals) WHERE value = :event_name)
 ORDER BY r.id
"""


class Signals(Spine):
    """route_signal, track_signal, preview_signal."""

    def _awaiting(self, signal: Signal) -> list[WorkflowRun]:
        rows = self._conn.execute(
            _AWAITING_SIGNAL if signal.actor_id is None else _AWAITING_ACTOR_SIGNAL,
            {
                "tenant_id": signal.tenant_id,
                "event_name": signal.event_name,
                "actor_id": signal.actor_id,
            },
        ).fetchall()
        return [convert.from_values(WorkflowRun, r) for r in rows]

    def preview_signal(self, signal: Signal) -> list[str]:
        """Ids of the runs :meth:`route_signal` would resume; writes nothing."""
        return [run.id for run in self._awaiting(check_signal(signal))]

    def route_signal(self, signal: Signal) -> dict[str, Resumed]:
        """Resume every run of the signal's tenant waiting for it (SPEC §5); all or nothing."""
        signal = check_signal(signal)
        now = self.now()
        delivery_id = payload_delivery_id(signal)
        if delivery_id is not None:
            same_tenant = self._conn.execute(
                "SELECT 1 FROM deliveries WHERE id = ? AND tenant_id = ?",
                (delivery_id, signal.tenant_id),
            ).fetchone()
            if same_tenant is None:
                delivery_id = None  # never link evidence across tenants
        waiting, decisions = [], []
        for run in self._awaiting(signal):
            decision = machine.resume(run, signal.event_name, delivery_id, now=now)
            if not decision.is_noop:
                waiting.append(run)
                decisions.append(decision)
        if not decisions:
            return {}
        transitions = self._trace_rows([(d.run.id, d.transitions[0]) for d in decisions], now)
        resumed = {
            d.run.id: Resumed(d.run, transition)
            for d, transition in zip(decisions, transitions, strict=True)
        }
        self._update_runs([(before, d.run) for before, d in zip(waiting, decisions, strict=True)])
        self._insert(INSERT_TRANSITION, [convert.to_row(t) for t in transitions])
        return resumed

    def track_signal(self, signal: Signal) -> tuple[Signal, dict[str, Resumed]]:
        """Record the signal row (an immutable fact) and route it, in one transaction."""
        signal = check_signal(signal)
        stored = attrs.evolve(signal, id=new_id(), inserted_at=self.now())
        self._conn.execute(
            "INSERT INTO signals (id, tenant_id, event_name, actor_id, payload, inserted_at) "
            "VALUES (:id, :tenant_id, :event_name, :actor_id, :payload, :inserted_at)",
            convert.to_row(stored),
        )
        return stored, self.route_signal(signal)
