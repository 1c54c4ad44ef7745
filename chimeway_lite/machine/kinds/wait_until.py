"""``wait_until``: wait a while after the step's delivery settled, then go on (CONTRACT §2, §4).

Declared ``WaitUntil(delay_seconds, to_step, cancel_signals=())``, stored as
``{"kind": "wait_until", "anchor": "prior_delivery_terminal_at", "delay_seconds": 7200,
"to_step": "email", "cancel_signals": ["notification_read"]}``.

It is the *fallback* rule: when no on_outcome/stop rule matches a branchable outcome, the
step's first wait_until rule applies, and the run waits until its anchor delivery's
``updated_at`` plus ``delay_seconds`` (CONTRACT §4 item 3). When that time has come the due sweep
wakes it on ``to_step`` (item 4); a signal in ``cancel_signals`` ends the wait first (§5).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import attrs

from ...core.names import MAX_DELAY_SECONDS, check_name, is_int
from ...core.records import ProgressKind, RunState
from ...core.text import duration_text, shown
from ...core.timestamps import to_text
from ..decision import Decision, TransitionPlan, advance, noop
from ..vocabulary import (
    PROGRESSED_ON_DELIVERY_OUTCOME,
    REACTIVATED_FROM_WAIT,
    UNKNOWN_TO_STEP,
    WAITING_FOR_STEP_PROGRESSION,
    Move,
    Variant,
)
from .base import RuleKind, Situation, Where, register, wait_signals

NAME = "wait_until"
DEFAULT_ANCHOR = "prior_delivery_terminal_at"
MAX_CANCEL_SIGNALS = 10

# The context of a wait, carried from entering it to leaving it.
_WAIT_KEYS = (
    "rule_kind",
    "anchor",
    "anchor_delivery_id",
    "anchor_delivery_status",
    "anchor_timestamp",
    "due_at",
    "to_step",
)
_LATEST = datetime.max.replace(tzinfo=UTC)


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def signal_names(value: Any) -> Any:
    """Trim signal names and drop repeats, keeping the first; anything else unchanged."""
    if not isinstance(value, (list, tuple)):
        return value
    seen: dict[Any, None] = {}
    for name in value:
        name = _trim(name)
        try:
            seen.setdefault(name, None)
        except TypeError:  # unhashable: keep it so that validation names it
            return tuple(_trim(n) for n in value)
    return tuple(seen)


@attrs.frozen
class WaitUntil:
    """Wait ``delay_seconds`` after the step's delivery settled, then go to ``to_step``,
    unless one of ``cancel_signals`` arrives first."""

    kind: ClassVar[str] = NAME

    delay_seconds: int
    to_step: str = attrs.field(converter=_trim)
    cancel_signals: tuple[str, ...] = attrs.field(default=(), converter=signal_names)
    anchor: str = attrs.field(default=DEFAULT_ANCHOR, kw_only=True, converter=_trim)


def check_signal_names(signals: Any, field: str, where: Where) -> None:
    """A list of at most 10 distinct, valid event names."""
    if not isinstance(signals, tuple):
        raise where.error(field, f"must be a list of strings, got {type(signals).__name__}")
    for i, name in enumerate(signals):
        check_name(name, f"{where.path}.{field}[{i}]", step=where.step, rule=where.index)
    if len(signals) > MAX_CANCEL_SIGNALS:
        raise where.error(
            field,
            f"has {len(signals)} distinct names; at most {MAX_CANCEL_SIGNALS} are allowed",
        )


def check_to_step(to_step: Any, where: Where, step_keys: frozenset[str]) -> None:
    """A name that is the key of a step of the same workflow."""
    check_name(to_step, f"{where.path}.to_step", step=where.step, rule=where.index)
    if to_step not in step_keys:
        raise where.error("to_step", f"names no step of this workflow: {shown(to_step)}")


class WaitUntilKind(RuleKind[WaitUntil]):
    """The ``wait_until`` rule kind."""

    name = NAME
    rule_type = WaitUntil
    required_keys = frozenset({"delay_seconds", "to_step"})
    optional_keys = frozenset({"anchor", "cancel_signals"})
    role = "fallback"
    awaits_convergence = True
    moves = (
        Move(
            WAITING_FOR_STEP_PROGRESSION,
            RunState.ACTIVE,
            RunState.WAITING,
            (
                Variant(
                    NAME,
                    why=(
                        "Waiting on step {step!r}: delivery {anchor_delivery_id} settled "
                        "{anchor_delivery_status!r} at {anchor_timestamp:time}, so the "
                        "wait_until rule applies: step {to_step!r} at {due_at:time}."
                    ),
                    label="wait",
                    detail="due {due_at:stamp}",
                ),
            ),
            anchored=True,
        ),
        Move(
            REACTIVATED_FROM_WAIT,
            RunState.WAITING,
            RunState.ACTIVE,
            (
                Variant(
                    NAME,
                    why="The wait on step {step!r} elapsed; the run moved to {to_step!r}.",
                    label="wait elapsed",
                    detail="-> {to_step}",
                    path=(
                        "{to_step!r} ran because the {waited} wait after {step!r} passed "
                        "without {awaited}"
                    ),
                ),
            ),
            opens_step=True,
            anchored=True,
        ),
    )

    def from_dict(self, data: Mapping[str, Any]) -> WaitUntil:
        """A WaitUntil from ``{"kind": "wait_until", ...}``."""
        signals = data.get("cancel_signals", ())
        return WaitUntil(
            data["delay_seconds"],
            data["to_step"],
            () if signals is None else signals,
            anchor=data.get("anchor", DEFAULT_ANCHOR),
        )

    def to_dict(self, rule: WaitUntil) -> dict[str, Any]:
        """The stored form: the anchor always, cancel_signals only when there are some."""
        data: dict[str, Any] = {
            "kind": NAME,
            "anchor": rule.anchor,
            "delay_seconds": rule.delay_seconds,
            "to_step": rule.to_step,
        }
        if rule.cancel_signals:  # an empty list is stored as absent (CONTRACT §2)
            data["cancel_signals"] = list(rule.cancel_signals)
        return data

    def validate(self, rule: WaitUntil, where: Where, step_keys: frozenset[str]) -> None:
        """delay_seconds an int > 0, the only anchor, valid cancel signals and to_step."""
        delay = rule.delay_seconds
        if not is_int(delay) or not 0 < delay <= MAX_DELAY_SECONDS:
            raise where.error(
                "delay_seconds",
                f"must be an int from 1 to {MAX_DELAY_SECONDS} (a century), got {shown(delay)}",
            )
        if rule.anchor != DEFAULT_ANCHOR:
            raise where.error(
                "anchor",
                f"must be {DEFAULT_ANCHOR!r} (the only anchor), got {shown(rule.anchor)}",
            )
        check_signal_names(rule.cancel_signals, "cancel_signals", where)
        check_to_step(rule.to_step, where, step_keys)

    def describe(self, rule: WaitUntil) -> str:
        """``wait 2 h -> step 'email' unless signal 'notification_read'``."""
        text = f"wait {duration_text(rule.delay_seconds)} -> step {rule.to_step!r}"
        if rule.cancel_signals:
            text += " unless signal " + " or ".join(repr(s) for s in rule.cancel_signals)
        return text

    def waits(self, rule: WaitUntil, rules: tuple[Any, ...]) -> tuple[str, tuple[str, ...]]:
        """The wait leads to ``to_step``; its cancel signals end it early (and the events
        its siblings add: see :func:`~.base.wait_signals`)."""
        return rule.to_step, rule.cancel_signals

    def decide(self, rule: WaitUntil, situation: Situation) -> Decision:
        """Enter the wait: due at the anchor's settle time plus the delay (CONTRACT §4 item 3)."""
        run, anchor, now = situation.run, situation.anchor, situation.now
        assert anchor is not None
        target = rule.to_step
        signals = wait_signals(rule, situation.rules)
        if target not in situation.journey.steps_by_key:
            return noop(run, UNKNOWN_TO_STEP)
        settled = anchor.updated_at
        try:
            due = settled + timedelta(seconds=rule.delay_seconds)
        except OverflowError:
            due = _LATEST
        context = {
            "rule_kind": NAME,
            "anchor": rule.anchor,
            "anchor_delivery_id": anchor.id,
            "anchor_delivery_status": anchor.status.value,
            "anchor_timestamp": to_text(settled),
            "due_at": to_text(due),
            "to_step": rule.to_step,
        }
        waiting = attrs.evolve(
            run,
            state=RunState.WAITING,
            status_reason=WAITING_FOR_STEP_PROGRESSION,
            status_context=context,
            last_transition_at=now,
            suspended_until=due,
            pending_signals=signals,
            wait_kind=NAME,
            wait_target=target,
        )
        row = TransitionPlan(
            RunState.ACTIVE,
            RunState.WAITING,
            WAITING_FOR_STEP_PROGRESSION,
            situation.current.id,
            anchor.id,
            dict(context),
        )
        return Decision(ProgressKind.WAITING, WAITING_FOR_STEP_PROGRESSION, waiting, (row,))

    def wake(self, situation: Situation) -> Decision:
        """The wait is over: reactivate on its target step (CONTRACT §4 item 4)."""
        run, current, now = situation.run, situation.current, situation.now
        target = situation.journey.steps_by_key.get(run.wait_target or "")
        if target is None:
            return noop(run, UNKNOWN_TO_STEP)
        wait = {k: run.status_context[k] for k in _WAIT_KEYS if k in run.status_context}
        anchor_id = wait.get("anchor_delivery_id")
        row = TransitionPlan(
            RunState.WAITING,
            RunState.ACTIVE,
            REACTIVATED_FROM_WAIT,
            current.id,
            anchor_id,
            {**wait, "to_step": target.step_key, "reactivated_at": to_text(now)},
        )
        return advance(
            run,
            row,
            target,
            now=now,
            status_reason=PROGRESSED_ON_DELIVERY_OUTCOME,
            status_context={
                "rule_kind": NAME,
                "workflow_outcome": "wait_elapsed",
                "anchor_delivery_id": anchor_id,
                "from_step": current.step_key,
                "to_step": target.step_key,
            },
        )


KIND = register(WaitUntilKind())
