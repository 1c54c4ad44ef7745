"""``throttle``: at most ``limit`` activations of a step per recipient in a sliding window.

Declared ``Step(..., throttle=Throttle(limit, window_seconds, key=None))``, stored as
``config["throttle"] = {"limit": 1, "window_seconds": 600, "key": "account_id"}``. When a
run would activate the step and ``limit`` runs of the same tenant, recipient, workflow key
(any version) and step key — and the same value of the trigger-data field ``key``, when
given — already activated it in the last ``window_seconds``, the run stops instead:
``workflow_throttled``, terminal reason ``throttled``, nothing sent (CONTRACT §14.1). An
activation exactly ``window_seconds`` old no longer counts; a throttled run never counts.

The engine counts the activations (:class:`~.base.Arrival`); the machine only compares.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ...core.names import check_name, is_int
from ...core.records import ProgressKind, RunState, WorkflowStep
from ...core.text import duration_text
from ..decision import Decision, TransitionPlan, cleared, held_back
from ..vocabulary import THROTTLED, WORKFLOW_THROTTLED, Move, Variant
from .base import Arrival, Gate, Reading, Where

NAME = KEY = "throttle"
MAX_LIMIT = 10_000
MAX_WINDOW_SECONDS = 2_678_400  # 31 days (CONTRACT §14.1)


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


@attrs.frozen
class Throttle:
    """At most ``limit`` activations of the step in any ``window_seconds`` for one
    recipient (and one value of the trigger-data field ``key``, when given)."""

    limit: int
    window_seconds: int
    key: str | None = attrs.field(default=None, converter=_trim)


def check_window(value: Any, where: Where, field: str = "window_seconds") -> None:
    """A whole number of seconds from 1 to 31 days (throttle and digest windows)."""
    if not is_int(value) or not 1 <= value <= MAX_WINDOW_SECONDS:
        raise where.error(
            field, f"must be an int from 1 to {MAX_WINDOW_SECONDS} (31 days), got {value!r}"
        )


def check_key(value: Any, where: Where) -> None:
    """None, or the name of a trigger-data field."""
    if value is not None:
        check_name(value, f"{where.path}.key", step=where.step)


class ThrottleGate(Gate[Throttle]):
    """The ``throttle`` step option."""

    key = KEY
    name = NAME
    option_type = Throttle
    required_keys = frozenset({"limit", "window_seconds"})
    optional_keys = frozenset({"key"})
    moves = (
        Move(
            WORKFLOW_THROTTLED,
            RunState.ACTIVE,
            RunState.STOPPED,
            (
                Variant(
                    NAME,
                    why=(
                        "Throttled: {limit} {channel} to this recipient in the last {window} "
                        "already, so step {step_key!r} was not activated and the run stopped "
                        "without sending."
                    ),
                    label="throttled",
                    detail="{step_key} not sent",
                    terminal_reason=THROTTLED,
                    path=(
                        "it stopped at {step_key!r}: its throttle had let enough through to "
                        "this recipient already, so nothing was sent"
                    ),
                ),
            ),
            on_current_step=False,
            enters_step=True,
        ),
    )

    def from_dict(self, data: Mapping[str, Any]) -> Throttle:
        """A Throttle from ``config["throttle"]``."""
        return Throttle(data["limit"], data["window_seconds"], data.get("key"))

    def to_dict(self, option: Throttle) -> dict[str, Any]:
        """The stored form: ``key`` only when set."""
        data: dict[str, Any] = {"limit": option.limit, "window_seconds": option.window_seconds}
        if option.key is not None:
            data["key"] = option.key
        return data

    def validate(self, option: Throttle, where: Where) -> None:
        """limit 1..10,000; window_seconds 1 s..31 days; key a name or absent."""
        if not is_int(option.limit) or not 1 <= option.limit <= MAX_LIMIT:
            raise where.error(
                "limit", f"must be an int from 1 to {MAX_LIMIT}, got {option.limit!r}"
            )
        check_window(option.window_seconds, where)
        check_key(option.key, where)

    def describe(self, option: Throttle) -> str:
        """``at most 1 per recipient in 10 min (per account_id)``."""
        text = f"at most {option.limit} per recipient in {duration_text(option.window_seconds)}"
        return text + (f" (per {option.key})" if option.key is not None else "")

    def admit(
        self,
        option: Throttle,
        decision: Decision,
        step: WorkflowStep,
        arrival: Arrival,
        now: datetime,
    ) -> Decision | None:
        """Stop the run when the group's activations in the window reached the limit."""
        if arrival.activations < option.limit:
            return None
        context = {"rule_kind": NAME, "step_key": step.step_key}
        stopped = cleared(
            decision.run,
            state=RunState.STOPPED,
            status_reason=WORKFLOW_THROTTLED,
            status_context=context,
            last_transition_at=now,
            terminal_reason=THROTTLED,
        )
        row = TransitionPlan(
            RunState.ACTIVE, RunState.STOPPED, WORKFLOW_THROTTLED, step.id, None, dict(context)
        )
        return held_back(decision, row, stopped, ProgressKind.STOPPED)

    def names(self, option: Throttle, reading: Reading) -> dict[str, Any]:
        """``limit``, ``channel`` and ``window`` (``10 min``)."""
        return {
            "limit": option.limit,
            "channel": reading.step.channel,
            "window": duration_text(option.window_seconds),
        }


OPTION = ThrottleGate()
