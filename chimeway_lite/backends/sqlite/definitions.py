"""Definitions and their steps: the SQL, beside the code that runs it."""

from __future__ import annotations

from datetime import datetime

from ...core.errors import ConstraintFailed
from ...core.records import WorkflowDefinition, WorkflowStep
from ...core.timestamps import to_text
from . import convert
from .executor import Executor

_DEFINITION_ID = """
SELECT id FROM workflow_definitions WHERE workflow_key = :key AND workflow_version = :version
"""
_DEFINITION = """
SELECT id, workflow_key, workflow_version, notification_key, inserted_at, updated_at
  FROM workflow_definitions WHERE id = :id
"""
_STEPS = f"""
SELECT {convert.columns(WorkflowStep)} FROM workflow_steps
 WHERE workflow_definition_id = :id ORDER BY step_order
"""
_STEP = f"""
SELECT {convert.columns(WorkflowStep)} FROM workflow_steps
 WHERE workflow_definition_id = :definition_id AND id = :step_id
"""
_STEP_BY_KEY = f"""
SELECT {convert.columns(WorkflowStep)} FROM workflow_steps
 WHERE workflow_definition_id = :definition_id AND step_key = :step_key
"""
_INSERT_DEFINITION = """
INSERT INTO workflow_definitions
    (id, workflow_key, workflow_version, notification_key, inserted_at, updated_at)
VALUES (:id, :workflow_key, :workflow_version, :notification_key, :inserted_at, :updated_at)
"""
_INSERT_STEP = """
INSERT INTO workflow_steps
    (id, workflow_definition_id, step_key, step_order, channel, config, inserted_at, updated_at)
VALUES (:id, :workflow_definition_id, :step_key, :step_order, :channel, :config, :inserted_at,
        :updated_at)
"""
_SET_NOTIFICATION_KEY = """
UPDATE workflow_definitions SET notification_key = :key, updated_at = :now
 WHERE id = :id AND notification_key != :key
"""


class DefinitionQueries(Executor):
    """The definition half of :class:`~chimeway_lite.backends.sqlite.unit.SqliteUnit`."""

    def definition_id(self, workflow_key: str, workflow_version: int) -> str | None:
        """The id of the definition registered under key + version, or None."""
        row = self.one(_DEFINITION_ID, {"key": workflow_key, "version": workflow_version})
        return None if row is None else str(row[0])

    def definition(self, definition_id: str) -> WorkflowDefinition | None:
        """The definition's row, with ``steps=()``."""
        row = self.one(_DEFINITION, {"id": definition_id})
        if row is None:
            return None
        return WorkflowDefinition(
            id=row[0],
            workflow_key=row[1],
            workflow_version=row[2],
            notification_key=row[3],
            steps=(),
            inserted_at=convert.time_of(row[4], "workflow_definitions", row[0]),
            updated_at=convert.time_of(row[5], "workflow_definitions", row[0]),
        )

    def steps(self, definition_id: str) -> tuple[WorkflowStep, ...]:
        """The definition's steps, by step_order."""
        rows = self.all(_STEPS, {"id": definition_id})
        return tuple(convert.from_values(WorkflowStep, r) for r in rows)

    def step(self, definition_id: str, step_id: str) -> WorkflowStep | None:
        """One step of a definition by id, or None."""
        row = self.one(_STEP, {"definition_id": definition_id, "step_id": step_id})
        return None if row is None else convert.from_values(WorkflowStep, row)

    def step_by_key(self, definition_id: str, step_key: str) -> WorkflowStep | None:
        """One step of a definition by key, or None."""
        row = self.one(_STEP_BY_KEY, {"definition_id": definition_id, "step_key": step_key})
        return None if row is None else convert.from_values(WorkflowStep, row)

    def insert_definition(self, definition: WorkflowDefinition) -> bool:
        """Insert a definition with its steps; False when key + version is taken."""
        try:
            self.execute(_INSERT_DEFINITION, convert.to_row(definition, exclude=("steps",)))
        except ConstraintFailed:
            # Under BEGIN IMMEDIATE nobody else can have inserted it since we looked; the
            # check stays for backends (and files) shared with writers that bypass the lock.
            return False
        self.insert(_INSERT_STEP, [convert.to_row(s) for s in definition.steps])
        return True

    def set_notification_key(
        self, definition_id: str, notification_key: str, now: datetime
    ) -> None:
        """Set a definition's notification_key (and updated_at) if it differs; once per
        unit for the same pair (we hold the write lock: no one else can change it)."""
        pair = (definition_id, notification_key)
        if pair in self.keys_set:
            return
        self.execute(
            _SET_NOTIFICATION_KEY,
            {"key": notification_key, "now": to_text(now), "id": definition_id},
        )
        self.keys_set.add(pair)
