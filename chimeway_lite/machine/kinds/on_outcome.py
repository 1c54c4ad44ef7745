"""``on_outcome``: when the step's delivery ends with an outcome, go to another step at once.

Declared ``OnOutcome(outcome, to_step)``, stored as ``{"kind": "on_outcome", "outcome":
"bounced", "to_step": "email"}``. A *match* rule: the first on_outcome or stop rule whose
outcome equals the delivery's wins, wherever it stands in the list (CONTRACT §4 item 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar

import attrs

from ...core.records import Outcome, RunState
from ...core.text import shown
from ..decision import Decision, TransitionPlan, advance, evidence, noop
from ..vocabulary import PROGRESSED_ON_DELIVERY_OUTCOME, UNKNOWN_TO_STEP
from .base import RuleKind, Situation, Where, register
from .wait_until import check_to_step

NAME = "on_outcome"
OUTCOMES = frozenset(o.value for o in Outcome)


def outcome_value(value: Any) -> Any:
    """An enum member as its value, a string trimmed; anything else unchanged."""
    if isinstance(value, Enum):
        return value.value
    return value.strip() if isinstance(value, str) else value


def to_step_name(value: Any) -> Any:
    """A to_step trimmed (when it is a string)."""
    return value.strip() if isinstance(value, str) else value


def check_outcome(outcome: Any, where: Where) -> None:
    """One of the outcomes of :class:`~chimeway_lite.Outcome`."""
    if not isinstance(outcome, str) or outcome not in OUTCOMES:
        raise where.error(
            "outcome", f"must be one of {', '.join(sorted(OUTCOMES))}; got {shown(outcome)}"
        )


@attrs.frozen
class OnOutcome:
    """When the step's delivery ends with ``outcome``, go to ``to_step`` at once."""

    kind: ClassVar[str] = NAME

    outcome: str = attrs.field(converter=outcome_value)
    to_step: str = attrs.field(converter=to_step_name)


class OnOutcomeKind(RuleKind[OnOutcome]):
    """The ``on_outcome`` rule kind."""

    name = NAME
    rule_type = OnOutcome
    required_keys = frozenset({"outcome", "to_step"})
    role = "match"

    def from_dict(self, data: Mapping[str, Any]) -> OnOutcome:
        """An OnOutcome from ``{"kind": "on_outcome", "outcome": ..., "to_step": ...}``."""
        return OnOutcome(data["outcome"], data["to_step"])

    def to_dict(self, rule: OnOutcome) -> dict[str, Any]:
        """The stored form."""
        return {"kind": NAME, "outcome": rule.outcome, "to_step": rule.to_step}

    def validate(self, rule: OnOutcome, where: Where, step_keys: frozenset[str]) -> None:
        """A known outcome and a to_step naming a step of the workflow."""
        check_outcome(rule.outcome, where)
        check_to_step(rule.to_step, where, step_keys)

    def describe(self, rule: OnOutcome) -> str:
        """``bounced -> step 'email'``."""
        return f"{rule.outcome} -> step {rule.to_step!r}"

    def matches(self, rule: OnOutcome, outcome: Outcome) -> bool:
        """True when the rule's outcome is the delivery's."""
        return rule.outcome == outcome

    def decide(self, rule: OnOutcome, situation: Situation) -> Decision:
        """Advance to ``to_step`` and plan its delivery (CONTRACT §4 item 2)."""
        run, current, anchor, outcome = (
            situation.run,
            situation.current,
            situation.anchor,
            situation.outcome,
        )
        assert anchor is not None and outcome is not None
        target = situation.journey.steps_by_key.get(rule.to_step)
        if target is None:
            return noop(run, UNKNOWN_TO_STEP)
        context = {
            "rule_kind": NAME,
            "workflow_outcome": outcome.value,
            "anchor_delivery_id": anchor.id,
            "from_step": current.step_key,
            "to_step": target.step_key,
            **evidence(anchor),
        }
        row = TransitionPlan(
            RunState.ACTIVE,
            RunState.ACTIVE,
            PROGRESSED_ON_DELIVERY_OUTCOME,
            current.id,
            anchor.id,
            dict(context),
        )
        return advance(run, row, target, now=situation.now, status_context=context)


KIND = register(OnOutcomeKind())
