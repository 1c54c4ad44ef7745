"""Progression of runs (SPEC §4): the machine's inputs read, its decision carried out."""

from __future__ import annotations

from datetime import datetime

from . import convert, machine
from .machine import Decision
from .records import (
    Delivery,
    Progress,
    ProgressKind,
    RunState,
    WorkflowRun,
)
from .spine import SELECT_DELIVERY, Spine
from .timestamps import from_text, to_text

# Both halves read a partial index; keep the literals, a parameter would defeat the index.
DUE_RUNS = """
SELECT id, suspended_until AS due FROM workflow_runs
 WHERE state = 'waiting' AND suspended_until <= :now
UNION ALL
SELECT id, last_transition_at AS due FROM workflow_runs
 WHERE state = 'active' AND status_reason = 'signal_received' AND last_transition_at <= :now
ORDER BY due, id
"""
_NEXT_DUE = """
SELECT min(due) FROM (
    SELECT min(suspended_until) AS due FROM workflow_runs WHERE state = 'waiting'
    UNION ALL
    SELECT min(last_transition_at) FROM workflow_runs
     WHERE state = 'active' AND status_reason = 'signal_received')
"""

_UNREAD = object()  # "not read yet", where None means "read, and there is none"


class Progression(Spine):
    """progress_run, the due sweep's reads, next_due_at."""

    def _anchor(self, run: WorkflowRun) -> Delivery | None:
        row = self._conn.execute(
            SELECT_DELIVERY + " WHERE workflow_run_id = ? AND workflow_step_id = ? "
            "ORDER BY rowid DESC LIMIT 1",
            (run.id, run.current_step_id),
        ).fetchone()
        return None if row is None else convert.from_values(Delivery, row)

    def _last_signal_event(self, run_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT json_extract(context, '$.event_name') FROM workflow_transitions "
            "WHERE workflow_run_id = ? AND reason = 'signal_received' "
            "ORDER BY seq DESC LIMIT 1",
            (run_id,),
        ).fetchone()
        return None if row is None else row[0]

    def _decide(
        self, run: WorkflowRun, now: datetime, anchor: Delivery | object | None = _UNREAD
    ) -> Decision:
        """The machine's decision for ``run`` at ``now``; ``anchor`` is the run's anchor when
        the caller has read it already (explain), so that it is not read twice."""
        event = None
        if run.state is RunState.ACTIVE and run.status_reason == machine.SIGNAL_RECEIVED:
            event = self._last_signal_event(run.id)
            anchor = None
        elif run.state is not RunState.ACTIVE:
            anchor = None
        elif anchor is _UNREAD:
            anchor = self._anchor(run)
        assert anchor is None or isinstance(anchor, Delivery)
        return machine.progress(
            run,
            self._journey(run.workflow_definition_id),
            anchor,
            now=now,
            last_signal_event=event,
        )

    def progress_run(self, run_id: str, *, now: datetime | None = None) -> Progress:
        """Take the next step of one run, or a noop that writes nothing (SPEC §4)."""
        at = self._at(now)
        run = self.lock_run(run_id)
        decision = self._decide(run, at)
        if decision.is_noop:
            return Progress(ProgressKind.NOOP, run, decision.reason, ())
        updated, _, deliveries = self._apply(run, decision, at)
        return Progress(decision.kind, updated, decision.reason, tuple(deliveries))

    def due_run_ids(self, now: datetime, limit: int | None = None) -> list[str]:
        """Ids of the runs the due sweep has work for at ``now``, in due order."""
        rows = self._conn.execute(DUE_RUNS, {"now": to_text(now)})
        ids = [r[0] for r in (rows.fetchmany(limit) if limit is not None else rows.fetchall())]
        return ids

    def next_due_at(self) -> datetime | None:
        """The earliest time at which the due sweep has work, or None."""
        row = self._conn.execute(_NEXT_DUE).fetchone()
        return None if row[0] is None else from_text(row[0])
