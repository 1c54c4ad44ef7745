"""``on_signal``: when a signal ends the step's wait, go to another step (CONTRACT §13.4).

Declared ``OnSignal(event_name, to_step)``, stored as ``{"kind": "on_signal", "event_name":
"clicked", "to_step": "thanks"}``. It rides on the step's ``wait_until`` rule (a step without
one is refused): its event joins the wait's pending signals, and when that signal ends the
wait the run goes to ``to_step`` instead of completing — "wait up to a day for the user to
act; if they act, go to S; if not, go to the wait's own target". The signal may also come
before the wait began (an early signal, CONTRACT §13.1): then the run goes on at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import attrs

from ...core.names import check_name
from ...core.records import RunState
from ...core.timestamps import to_text
from ..decision import Decision, TransitionPlan, advance, noop
from ..vocabulary import PROGRESSED_ON_SIGNAL, UNKNOWN_TO_STEP, Move, Variant
from .base import RuleKind, Situation, Where, register
from .wait_until import WaitUntil, check_to_step

NAME = "on_signal"


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


@attrs.frozen
class OnSignal:
    """When signal ``event_name`` ends the step's wait, go to ``to_step``."""

    kind: ClassVar[str] = NAME

    event_name: str = attrs.field(converter=_trim)
    to_step: str = attrs.field(converter=_trim)


class OnSignalKind(RuleKind[OnSignal]):
    """The ``on_signal`` rule kind."""

    name = NAME
    rule_type = OnSignal
    required_keys = frozenset({"event_name", "to_step"})
    role = "none"
    moves = (
        Move(
            PROGRESSED_ON_SIGNAL,
            RunState.ACTIVE,
            RunState.ACTIVE,
            (
                Variant(
                    NAME,
                    why=(
                        "Moved from step {from_step!r} to {to_step!r}: signal "
                        "{event_name!r} came before the wait on step {from_step!r} began "
                        "(at {signalled_at:time}), and an on_signal rule leads there."
                    ),
                    label="signal {event_name}",
                    detail="-> {to_step}",
                    requires="signalled_at",
                    path=(
                        "{to_step!r} ran because {event_name!r} came before the wait on "
                        "{from_step!r} began"
                    ),
                ),
                Variant(
                    NAME,
                    why=(
                        "Moved from step {from_step!r} to {to_step!r}: signal "
                        "{event_name!r} ended the wait, and an on_signal rule leads there."
                    ),
                    label="signal {event_name}",
                    detail="-> {to_step}",
                    path=(
                        "{to_step!r} ran because {event_name!r} came {into} into the {waited} "
                        "wait on {from_step!r}"
                    ),
                ),
            ),
            opens_step=True,
            anchored=True,
        ),
    )

    def from_dict(self, data: Mapping[str, Any]) -> OnSignal:
        """An OnSignal from ``{"kind": "on_signal", "event_name": ..., "to_step": ...}``."""
        return OnSignal(data["event_name"], data["to_step"])

    def to_dict(self, rule: OnSignal) -> dict[str, Any]:
        """The stored form."""
        return {"kind": NAME, "event_name": rule.event_name, "to_step": rule.to_step}

    def validate(self, rule: OnSignal, where: Where, step_keys: frozenset[str]) -> None:
        """An event name like a cancel signal's, and a to_step of the workflow."""
        check_name(rule.event_name, f"{where.path}.event_name", step=where.step, rule=where.index)
        check_to_step(rule.to_step, where, step_keys)

    def check_siblings(self, rule: OnSignal, rules: tuple[Any, ...], where: Where) -> None:
        """Only on a step that waits (it has a wait_until rule), one rule per event."""
        if not any(isinstance(r, WaitUntil) for r in rules):
            raise where.error(None, "needs a wait_until rule on the same step: it ends that wait")
        same = [r for r in rules if isinstance(r, OnSignal) and r.event_name == rule.event_name]
        if same[0] is not rule:
            raise where.error("event_name", f"a second on_signal rule for {rule.event_name!r}")

    def signal_events(self, rule: OnSignal) -> tuple[str, ...]:
        """Its event joins the step's wait."""
        return (rule.event_name,)

    def describe(self, rule: OnSignal) -> str:
        """``signal 'clicked' -> step 'thanks'``."""
        return f"signal {rule.event_name!r} -> step {rule.to_step!r}"

    def handles(self, rule: OnSignal, event_name: str) -> bool:
        """True when this rule leads the run on after signal ``event_name``."""
        return rule.event_name == event_name

    def on_signal(
        self,
        rule: OnSignal,
        situation: Situation,
        event_name: str,
        signalled_at: datetime | None,
    ) -> Decision:
        """Advance to ``to_step`` because of the signal: after it resumed the run (the
        settle), or, with ``signalled_at``, at wait entry for a signal that came earlier."""
        run, current = situation.run, situation.current
        target = situation.journey.steps_by_key.get(rule.to_step)
        if target is None:
            return noop(run, UNKNOWN_TO_STEP)
        anchor_id = (
            situation.anchor.id
            if situation.anchor is not None
            else run.status_context.get("anchor_delivery_id")
        )
        context: dict[str, Any] = {
            "rule_kind": NAME,
            "event_name": event_name,
            "anchor_delivery_id": anchor_id,
            "from_step": current.step_key,
            "to_step": target.step_key,
        }
        if signalled_at is not None:
            context["signalled_at"] = to_text(signalled_at)
        row = TransitionPlan(
            RunState.ACTIVE,
            RunState.ACTIVE,
            PROGRESSED_ON_SIGNAL,
            current.id,
            anchor_id,
            dict(context),
        )
        return advance(run, row, target, now=situation.now, status_context=context)


KIND = register(OnSignalKind())
