"""Inspection (SPEC §6): explain and list_traces, always scoped to one tenant."""

from __future__ import annotations

from . import convert
from .arguments import (
    require_limit,
)
from .explanation import explain_run
from .progression import Progression
from .records import (
    RunExplanation,
    WorkflowTransition,
)
from .spine import SELECT_TRANSITION


class Inspection(Progression):
    """explain and list_traces."""

    def explain(self, tenant_id: str, run_id: str) -> RunExplanation:
        """Why the run is where it is and what would move it next; tenant-scoped."""
        run = self._visible_run(tenant_id, run_id)
        last = self._conn.execute(
            SELECT_TRANSITION + " WHERE workflow_run_id = ? ORDER BY seq DESC LIMIT 1",
            (run.id,),
        ).fetchone()
        workflow_key, workflow_version = self.definitions.key_of(run.workflow_definition_id)
        now = self.now()
        anchor = self._anchor(run)
        return explain_run(
            run,
            self._journey(run.workflow_definition_id),
            None if last is None else convert.from_values(WorkflowTransition, last),
            self._decide(run, now, anchor),
            workflow_key=workflow_key,
            workflow_version=workflow_version,
            anchor=anchor,
            now=now,
        )

    def list_traces(
        self, tenant_id: str, run_id: str, *, limit: int | None = None
    ) -> list[WorkflowTransition]:
        """The run's trace in sequence order, at most ``limit`` rows; tenant-scoped."""
        count = require_limit(limit)
        run = self._visible_run(tenant_id, run_id)
        rows = self._conn.execute(
            "SELECT * FROM workflow_transitions WHERE workflow_run_id = ? ORDER BY seq LIMIT ?",
            (run.id, -1 if count is None else count),
        ).fetchall()
        return [convert.from_row(WorkflowTransition, r) for r in rows]
