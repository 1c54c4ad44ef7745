"""Registered definitions (CONTRACT §3): registering, finding, and the index of their steps.

A definition's steps never change once registered (different steps need a new version:
:class:`DefinitionConflict`), so each store indexes them once as a
:class:`~chimeway_lite.machine.journey.Journey` and keeps it. Only ``notification_key`` may
change, and it is always read from the row.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ..backends.base import Unit
from ..core.arguments import require_id
from ..core.errors import (
    ChimewayError,
    DamagedRow,
    DefinitionConflict,
    InvalidArgument,
    InvalidWorkflow,
    StepNotFound,
)
from ..core.ids import new_id
from ..core.records import WorkflowDefinition, WorkflowStep
from ..core.text import canonical_json, is_unicode, shown
from ..declarations import MAX_VERSION, Workflow, coerce_workflow, step_config, step_from_dict
from ..machine.journey import Journey


def canonical_steps(workflow: Workflow) -> str:
    """The identity of a workflow's steps: canonical JSON of key, order, channel, config."""
    return canonical_json(
        [
            {
                "step_key": s.key,
                "step_order": s.order,
                "channel": s.channel,
                "config": step_config(s),
            }
            for s in workflow.steps
        ]
    )


def _canonical_rows(steps: tuple[WorkflowStep, ...]) -> str:
    return canonical_json(
        [
            {
                "step_key": s.step_key,
                "step_order": s.step_order,
                "channel": s.channel,
                "config": s.config,
            }
            for s in sorted(steps, key=lambda s: s.step_order)
        ]
    )


# Declarations already validated, by object identity: a host passes the same Workflow
# object to every trigger, and validating plus canonicalising it again cost more than the
# trigger's SQL (25 µs against 2 µs per trigger, measured with benchmarks/profile_hot.py).
# A Workflow is frozen all the way down (a step's config too), so a validated one cannot
# change; the entry keeps the object alive, so its id cannot be reused while it is cached.
_DECLARED_LIMIT = 64
_declared: dict[int, tuple[Workflow, Workflow, str]] = {}
_declared_lock = threading.Lock()


def declare(workflow: Workflow | Mapping[str, Any]) -> tuple[Workflow, str]:
    """The validated declaration (InvalidWorkflow otherwise) and its canonical steps."""
    if not isinstance(workflow, Workflow):
        declared = coerce_workflow(workflow)
        return declared, canonical_steps(declared)
    hit = _declared.get(id(workflow))
    if hit is not None and hit[0] is workflow:
        return hit[1], hit[2]
    declared = coerce_workflow(workflow)
    canonical = canonical_steps(declared)
    with _declared_lock:
        if len(_declared) >= _DECLARED_LIMIT:
            _declared.pop(next(iter(_declared)))
        _declared[id(workflow)] = (workflow, declared, canonical)
    return declared, canonical


class DefinitionIndex:
    """Journeys by definition id, (key, version) -> (id, canonical steps) and id -> (key,
    version).

    A unit of work stages what it learns in a child index; the store merges the child into
    its own index only after COMMIT, so a rolled-back registration leaves no trace here.
    """

    __slots__ = ("identities", "journeys", "keys", "parent")

    def __init__(self, parent: DefinitionIndex | None = None) -> None:
        self.journeys: dict[str, Journey] = {}
        self.identities: dict[tuple[str, int], tuple[str, str]] = {}
        self.keys: dict[str, tuple[str, int]] = {}
        self.parent = parent

    def journey(self, definition_id: str) -> Journey | None:
        """The cached journey of a definition, or None."""
        found = self.journeys.get(definition_id)
        if found is None and self.parent is not None:
            return self.parent.journey(definition_id)
        return found

    def identity(self, key: str, version: int) -> tuple[str, str] | None:
        """(definition id, canonical steps) of a registered key + version, or None."""
        found = self.identities.get((key, version))
        if found is None and self.parent is not None:
            return self.parent.identity(key, version)
        return found

    def key(self, definition_id: str) -> tuple[str, int] | None:
        """(workflow_key, workflow_version) of a definition seen before, or None."""
        found = self.keys.get(definition_id)
        if found is None and self.parent is not None:
            return self.parent.key(definition_id)
        return found

    def child(self) -> DefinitionIndex:
        """An index for one unit of work, reading through to this one."""
        return DefinitionIndex(self)

    def merge(self, child: DefinitionIndex) -> None:
        """Adopt what a committed unit of work learnt."""
        if child.journeys or child.identities or child.keys:
            self.journeys.update(child.journeys)
            self.identities.update(child.identities)
            self.keys.update(child.keys)


class Definitions:
    """Definition reads and writes inside one unit of work, through its index."""

    def __init__(self, unit: Unit, index: DefinitionIndex) -> None:
        self._unit = unit
        self.index = index

    # -- reads ------------------------------------------------------------------------------

    def _remember(self, definition: WorkflowDefinition) -> Journey:
        try:
            journey = Journey.of(definition)
        except StepNotFound:
            raise
        except (ChimewayError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # A stored definition is one the engine validated: this one was changed since.
            if isinstance(exc, InvalidWorkflow):
                problem = f"{exc.path}: {exc.problem}"
            else:
                problem = f"its steps do not read ({type(exc).__name__})"
            raise DamagedRow("workflow_definitions", definition.id, problem) from None
        self.index.journeys[definition.id] = journey
        self.index.identities[(definition.workflow_key, definition.workflow_version)] = (
            definition.id,
            _canonical_rows(definition.steps),
        )
        self.index.keys[definition.id] = (definition.workflow_key, definition.workflow_version)
        return journey

    def key_of(self, definition_id: str) -> tuple[str, int]:
        """(workflow_key, workflow_version) of a definition; they never change, so they are
        read once per store (explain needs them on every call)."""
        found = self.index.key(definition_id)
        if found is None:
            self.journey(definition_id)  # reads and remembers the definition, or raises
            found = self.index.key(definition_id)
            assert found is not None
        return found

    def by_id(self, definition_id: str) -> WorkflowDefinition | None:
        """The definition with its steps, or None."""
        definition = self._unit.definition(definition_id)
        if definition is None:
            return None
        journey = self.index.journey(definition_id)
        steps = (
            tuple(sorted(journey.steps_by_id.values(), key=lambda s: s.step_order))
            if journey is not None
            else self._unit.steps(definition_id)
        )
        definition = attrs.evolve(definition, steps=steps)
        if journey is None and steps:
            self._remember(definition)
        return definition

    def fetch(self, workflow_key: object, workflow_version: object) -> WorkflowDefinition | None:
        """The definition registered under key + version, or None."""
        if not isinstance(workflow_key, str):
            raise InvalidArgument(
                "workflow_key", f"must be a string, got {type(workflow_key).__name__}"
            )
        if "\x00" in workflow_key or not is_unicode(workflow_key):
            raise InvalidArgument("workflow_key", "must be valid Unicode text without NUL")
        if not isinstance(workflow_version, int) or isinstance(workflow_version, bool):
            raise InvalidArgument(
                "workflow_version", f"must be an int, got {shown(workflow_version)}"
            )
        if not 0 < workflow_version <= MAX_VERSION:
            return None  # never registered; the store's INTEGER would overflow on it
        definition_id = self._unit.definition_id(workflow_key, workflow_version)
        return None if definition_id is None else self.by_id(definition_id)

    def journey(self, definition_id: str) -> Journey:
        """The machine's view of a definition (cached after the first read)."""
        journey = self.index.journey(definition_id)
        if journey is not None:
            return journey
        definition = self.by_id(definition_id)
        if definition is None:
            raise LookupError(f"definition {definition_id!r} is missing")
        if not definition.steps:
            raise InvalidWorkflow("steps", "the definition has no steps")
        return self._remember(definition)

    def persisted_workflow(self, definition_id: str) -> Workflow | None:
        """The declaration rebuilt from the stored rows, or None."""
        definition = self.by_id(definition_id)
        if definition is None:
            return None
        return Workflow(
            definition.workflow_key,
            definition.workflow_version,
            [
                step_from_dict(
                    {
                        "step_key": s.step_key,
                        "step_order": s.step_order,
                        "channel": s.channel,
                        "config": s.config,
                    }
                )
                for s in definition.steps
            ],
        )

    # -- writes -----------------------------------------------------------------------------

    def ensure(
        self, notification_key: object, workflow: Workflow | Mapping[str, Any], now: datetime
    ) -> WorkflowDefinition:
        """Register a workflow, or find it registered with identical steps (CONTRACT §3).

        Different steps under the same key and version raise :class:`DefinitionConflict`;
        the notification key is set to the caller's.
        """
        definition_id, inserted = self._ensure(notification_key, workflow, now)
        if inserted is not None:
            return inserted
        definition = self.by_id(definition_id)
        assert definition is not None
        return definition

    def registered_id(self, workflow: object) -> str | None:
        """The id of the definition ``workflow`` declares, when that is known without a
        statement: the very Workflow object validated before (:func:`declare`), its key and
        version in the index with identical steps. None otherwise (:meth:`ensure_id` finds
        out, or raises)."""
        if not isinstance(workflow, Workflow):
            return None
        hit = _declared.get(id(workflow))
        if hit is None or hit[0] is not workflow:
            return None
        known = self.index.identity(hit[1].key, hit[1].version)
        if known is None or known[1] != hit[2]:
            return None
        return known[0]

    def ensure_id(
        self, notification_key: object, workflow: Workflow | Mapping[str, Any], now: datetime
    ) -> str:
        """:meth:`ensure`, returning only the definition's id: the trigger needs no more
        and saves reading the definition row back."""
        return self._ensure(notification_key, workflow, now)[0]

    def _ensure(
        self, notification_key: object, workflow: Workflow | Mapping[str, Any], now: datetime
    ) -> tuple[str, WorkflowDefinition | None]:
        notification_key = require_id(notification_key, "notification_key")
        declared, canonical = declare(workflow)
        known = self.index.identity(declared.key, declared.version)
        if known is None:
            definition_id = self._unit.definition_id(declared.key, declared.version)
            if definition_id is None:
                inserted = self._insert(notification_key, declared, now)
                if inserted is not None:
                    return inserted.id, inserted
                # another unit registered it first (a backend without a global write lock)
                definition_id = self._unit.definition_id(declared.key, declared.version)
                assert definition_id is not None
            existing = self.by_id(definition_id)
            assert existing is not None
            known = (existing.id, _canonical_rows(existing.steps))
            self._remember(existing)
        definition_id, stored = known
        if stored != canonical:
            raise DefinitionConflict(declared.key, declared.version)
        self._unit.set_notification_key(definition_id, notification_key, now)
        return definition_id, None

    def _insert(
        self, notification_key: str, workflow: Workflow, now: datetime
    ) -> WorkflowDefinition | None:
        definition_id = new_id()
        steps = tuple(
            WorkflowStep(
                id=new_id(),
                workflow_definition_id=definition_id,
                step_key=s.key,
                step_order=s.order,
                channel=s.channel,
                config=step_config(s),
                inserted_at=now,
                updated_at=now,
            )
            for s in workflow.steps
        )
        definition = WorkflowDefinition(
            id=definition_id,
            workflow_key=workflow.key,
            workflow_version=workflow.version,
            notification_key=notification_key,
            steps=steps,
            inserted_at=now,
            updated_at=now,
        )
        if not self._unit.insert_definition(definition):
            return None
        self._remember(definition)
        return definition
