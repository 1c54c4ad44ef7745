"""A definition as the machine reads it: its steps by id and by key, their rules parsed once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..core.errors import StepNotFound
from ..core.records import WorkflowDefinition, WorkflowStep
from .kinds import options_of, rules_of


@attrs.frozen
class Journey:
    """A definition as the machine reads it: steps by id and key, rules parsed once."""

    definition_id: str
    first_step: WorkflowStep
    steps_by_id: Mapping[str, WorkflowStep]
    steps_by_key: Mapping[str, WorkflowStep]
    rules: Mapping[str, tuple[Any, ...]]
    #: The step options (``retry`` …) of each step, by step id then option key.
    options: Mapping[str, Mapping[str, Any]]

    @classmethod
    def of(cls, definition: WorkflowDefinition) -> Journey:
        """Index a definition's steps; raise StepNotFound when it has none."""
        if not definition.steps:
            raise StepNotFound(f"first step of definition {definition.id}")
        steps = sorted(definition.steps, key=lambda s: s.step_order)
        by_key = {s.step_key: s for s in steps}
        rules = {s.id: rules_of(s.config) for s in steps}
        return cls(
            definition_id=definition.id,
            first_step=steps[0],
            steps_by_id={s.id: s for s in steps},
            steps_by_key=by_key,
            rules=rules,
            options={s.id: options_of(s.config) for s in steps},
        )

    def missing_targets(self) -> list[tuple[str, str]]:
        """(step key, kind) of every rule that leads to a step the definition does not have:
        the machine meets it as ``unknown_to_step``; only a changed row can hold one, since
        declarations are validated."""
        found = []
        for step in self.steps_by_id.values():
            for rule in self.rules[step.id]:
                target = getattr(rule, "to_step", None)
                if target is not None and target not in self.steps_by_key:
                    found.append((step.step_key, type(rule).__name__))
        return found

    def step(self, step_id: str) -> WorkflowStep:
        """The step with this id, or StepNotFound."""
        try:
            return self.steps_by_id[step_id]
        except KeyError:
            raise StepNotFound(step_id) from None
