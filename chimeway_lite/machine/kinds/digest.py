"""``digest``: collect the runs that reach a step within a window, send one delivery for all.

Declared ``Step(..., digest=Digest(window_seconds, key=None, max_items=None))``, stored as
``config["digest"] = {"window_seconds": 600, "key": "thread_id", "max_items": 20}``. The
first run to reach the step for a tenant, recipient, workflow key and step key (and value of
the trigger-data field ``key``) opens a batch closing ``window_seconds`` later; every run
that reaches the step while it is open joins it. Each run of the batch waits
(``waiting_for_digest``). When the batch closes — at its time, in the due sweep, or at once
when a join brings it to ``max_items`` — its oldest run still waiting activates the step
(``digest_closed``) with **one** delivery whose ``digest_size`` is the batch's size, and
every other run completes, ``merged_into_digest`` (CONTRACT §14.2).

The engine finds the open batch (:class:`~.base.Arrival`) and the runs of a closing one
(:class:`~.base.Closing`); the machine decides who joins, who sends and who merges.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from ...core.names import is_int
from ...core.records import ProgressKind, RunState, WorkflowRun, WorkflowStep
from ...core.text import duration_text
from ...core.timestamps import to_text
from ..decision import (
    BatchPlan,
    Decision,
    DeliveryPlan,
    TransitionPlan,
    activated,
    cleared,
    finish,
    held_waiting,
)
from ..vocabulary import (
    DIGEST_CLOSED,
    MERGED_INTO_DIGEST,
    WAITING_FOR_DIGEST,
    WORKFLOW_COMPLETED,
    Move,
    Variant,
)
from .base import Arrival, Closing, Gate, Reading, Situation, Where
from .send_window import local_text
from .throttle import check_key, check_window

NAME = KEY = "digest"
MIN_ITEMS, MAX_ITEMS = 2, 1000
#: Every gate: the activation that closes a batch is not asked again.
PASSED = frozenset({"throttle", "window", NAME})
_LATEST = datetime.max.replace(tzinfo=UTC)


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


@attrs.frozen
class Digest:
    """Send the runs that reach the step within ``window_seconds`` of the first as one
    delivery (per value of the trigger-data field ``key``, when given), at most
    ``max_items`` runs to a delivery."""

    window_seconds: int
    key: str | None = attrs.field(default=None, converter=_trim)
    max_items: int | None = None


def _items(count: int | None) -> str:
    if count is None:
        return "its items"
    return f"{count} item" if count == 1 else f"{count} items"


def close(closing: Closing, asked: WorkflowRun, step: WorkflowStep, now: datetime) -> Decision:
    """Close a batch: its oldest run still waiting activates its step with one delivery for
    the batch, every other run completes (merged_into_digest). The decision is ``asked``'s
    (on ``step``), the others' are in its ``also``. A run that belongs to no batch closes a
    batch of its own."""
    members = closing.members
    if not any(run.id == asked.id for run, _ in members):
        members = ((asked, step),)
    decisions: list[tuple[WorkflowRun, Decision]] = []
    for index, (run, current) in enumerate(members):
        context = {"rule_kind": NAME, "step_key": current.step_key}
        if index == 0:
            opened = cleared(
                run,
                state=RunState.ACTIVE,
                status_reason=DIGEST_CLOSED,
                status_context=context,
                last_transition_at=now,
            )
            row = TransitionPlan(
                RunState.WAITING, RunState.ACTIVE, DIGEST_CLOSED, current.id, None, dict(context)
            )
            decision = Decision(
                ProgressKind.ADVANCED,
                DIGEST_CLOSED,
                opened,
                (row, activated(current, "progression")),
                (DeliveryPlan(current.id, current.channel, digest_size=len(members)),),
                passed=PASSED,
            )
        else:
            decision = finish(
                run,
                current,
                None,
                context,
                now,
                state=RunState.COMPLETED,
                reason=WORKFLOW_COMPLETED,
                terminal_reason=MERGED_INTO_DIGEST,
            )
        decisions.append((run, decision))
    main = next(d for run, d in decisions if run.id == asked.id)
    plan = None
    if closing.batch_id is not None:
        plan = BatchPlan("close", step.id, now, closing.batch_id)
    return attrs.evolve(
        main, batch=plan, also=tuple((r, d) for r, d in decisions if r.id != asked.id)
    )


class DigestGate(Gate[Digest]):
    """The ``digest`` step option."""

    key = KEY
    name = NAME
    option_type = Digest
    required_keys = frozenset({"window_seconds"})
    optional_keys = frozenset({"key", "max_items"})
    moves = (
        Move(
            WAITING_FOR_DIGEST,
            RunState.ACTIVE,
            RunState.WAITING,
            (
                Variant(
                    NAME,
                    why=(
                        "Collecting: {items}, closes at {closes}; then one {channel} on step "
                        "{step_key!r} carries them all."
                    ),
                    label="collecting",
                    detail="closes {due_at:stamp}",
                    path="{step_key!r} was held for its digest",
                    next=(
                        "At {due} the due sweep closes the batch{sooner}: its oldest run still "
                        "waiting sends one {channel} for all of them, the others complete "
                        "(merged_into_digest)."
                    ),
                ),
            ),
            on_current_step=False,
            enters_step=True,
        ),
        Move(
            DIGEST_CLOSED,
            RunState.WAITING,
            RunState.ACTIVE,
            (
                Variant(
                    NAME,
                    why=(
                        "The digest of step {step_key!r} closed with {items}: one {channel} "
                        "carries them all."
                    ),
                    label="digest closed",
                    detail="{step_key}",
                    path="{step_key!r} ran once its digest closed, for every run of the batch",
                ),
            ),
            opens_step=True,
        ),
    )
    variants = (
        (
            WORKFLOW_COMPLETED,
            Variant(
                NAME,
                why=(
                    "Completed: merged into the digest of step {step_key!r}; another run of "
                    "its batch sends one {channel} for all of them."
                ),
                label="merged",
                detail="into the digest",
                terminal_reason=MERGED_INTO_DIGEST,
                path=(
                    "it completed when it was merged into the digest of {step_key!r}, which "
                    "another run of its batch sent"
                ),
                from_states=(RunState.WAITING,),
            ),
        ),
    )

    def from_dict(self, data: Mapping[str, Any]) -> Digest:
        """A Digest from ``config["digest"]``."""
        return Digest(data["window_seconds"], data.get("key"), data.get("max_items"))

    def to_dict(self, option: Digest) -> dict[str, Any]:
        """The stored form: ``key`` and ``max_items`` only when set."""
        data: dict[str, Any] = {"window_seconds": option.window_seconds}
        if option.key is not None:
            data["key"] = option.key
        if option.max_items is not None:
            data["max_items"] = option.max_items
        return data

    def validate(self, option: Digest, where: Where) -> None:
        """window_seconds 1 s..31 days; key a name or absent; max_items 2..1,000 or absent."""
        check_window(option.window_seconds, where)
        check_key(option.key, where)
        items = option.max_items
        if items is not None and (not is_int(items) or not MIN_ITEMS <= items <= MAX_ITEMS):
            raise where.error(
                "max_items",
                f"must be an int from {MIN_ITEMS} to {MAX_ITEMS} or absent, got {items!r}",
            )

    def describe(self, option: Digest) -> str:
        """``digest of 10 min (per thread_id, at most 20 items)``."""
        extra = [f"per {option.key}"] if option.key is not None else []
        if option.max_items is not None:
            extra.append(f"at most {option.max_items} items")
        text = f"digest of {duration_text(option.window_seconds)}"
        return text + (f" ({', '.join(extra)})" if extra else "")

    def admit(
        self,
        option: Digest,
        decision: Decision,
        step: WorkflowStep,
        arrival: Arrival,
        now: datetime,
    ) -> Decision:
        """Join the group's open batch, or open one: the run waits for it to close. A batch
        takes joiners only before its closing time and while a run of it still waits."""
        batch = arrival.batch
        if (
            batch is not None
            and batch.closed_at is None
            and batch.size > 0
            and batch.closes_at > now
        ):
            closes = batch.closes_at
            fills = option.max_items is not None and batch.size + 1 >= option.max_items
            plan = BatchPlan("join", step.id, closes, batch.id, fills)
        else:
            try:
                closes = now + timedelta(seconds=option.window_seconds)
            except OverflowError:
                closes = _LATEST
            plan = BatchPlan("open", step.id, closes)
        context = {"rule_kind": NAME, "step_key": step.step_key, "due_at": to_text(closes)}
        return held_waiting(
            decision, step, WAITING_FOR_DIGEST, context, now, closes, kind=NAME, batch=plan
        )

    def wake(self, situation: Situation) -> Decision:
        """The batch's time has come: close it (see :func:`close`)."""
        closing = situation.closing or Closing(None)
        return close(closing, situation.run, situation.current, situation.now)

    def names(self, option: Digest, reading: Reading) -> dict[str, Any]:
        """``items`` (``3 items``), ``closes`` (local), ``channel`` and ``sooner`` (the
        max_items clause)."""
        sooner = ""
        if option.max_items is not None:
            sooner = f" (sooner, the moment it holds {option.max_items} items)"
        return {
            "items": _items(reading.items),
            "closes": local_text(reading.due, reading.zone, reading.zone_name, reading.now),
            "channel": reading.step.channel,
            "sooner": sooner,
        }


OPTION = DigestGate()
