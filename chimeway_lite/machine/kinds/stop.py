"""``stop``: when the step's delivery ends with an outcome, stop the run.

Declared ``Stop(outcome)``, stored as ``{"kind": "stop", "outcome": "bounced"}``. A *match*
rule like on_outcome (CONTRACT §4 item 7): the run ends ``stopped`` with terminal reason
``workflow_stopped``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ...core.records import Outcome, RunState
from ..decision import Decision
from ..vocabulary import WORKFLOW_STOPPED, Move, Variant
from .base import RuleKind, Situation, Where, register
from .on_outcome import check_outcome, outcome_value

NAME = "stop"


@attrs.frozen
class Stop:
    """When the step's delivery ends with ``outcome``, stop the run."""

    kind: ClassVar[str] = NAME

    outcome: str = attrs.field(converter=outcome_value)


class StopKind(RuleKind[Stop]):
    """The ``stop`` rule kind."""

    name = NAME
    rule_type = Stop
    required_keys = frozenset({"outcome"})
    role = "match"
    moves = (
        Move(
            WORKFLOW_STOPPED,
            RunState.ACTIVE,
            RunState.STOPPED,
            (
                Variant(
                    NAME,
                    why=(
                        "Stopped on step {step!r}: delivery {anchor_delivery_id} ended "
                        "{workflow_outcome!r} (status {delivery_status!r}) and a stop rule "
                        "matched."
                    ),
                    label="stopped",
                    detail="outcome {workflow_outcome}",
                    terminal_reason=WORKFLOW_STOPPED,
                    path=(
                        "it stopped because the {step!r} delivery ended {workflow_outcome!r} "
                        "and a stop rule matched"
                    ),
                ),
            ),
            anchored=True,
        ),
    )

    def from_dict(self, data: Mapping[str, Any]) -> Stop:
        """A Stop from ``{"kind": "stop", "outcome": ...}``."""
        return Stop(data["outcome"])

    def to_dict(self, rule: Stop) -> dict[str, Any]:
        """The stored form."""
        return {"kind": NAME, "outcome": rule.outcome}

    def validate(self, rule: Stop, where: Where, step_keys: frozenset[str]) -> None:
        """A known outcome."""
        check_outcome(rule.outcome, where)

    def describe(self, rule: Stop) -> str:
        """``bounced -> stop``."""
        return f"{rule.outcome} -> stop"

    def matches(self, rule: Stop, outcome: Outcome) -> bool:
        """True when the rule's outcome is the delivery's."""
        return rule.outcome == outcome

    def decide(self, rule: Stop, situation: Situation) -> Decision:
        """Stop the run (CONTRACT §4 item 7)."""
        return situation.end_on_outcome(NAME, state=RunState.STOPPED, reason=WORKFLOW_STOPPED)


KIND = register(StopKind())
