"""The machine's vocabulary as data: reasons, noop reasons, context keys, and the moves.

Everything that gives a trace row its meaning lives in one table, :data:`MOVES` of
:mod:`chimeway_lite.machine.table` (assembled from the core moves below and the moves each
rule kind of :mod:`chimeway_lite.machine.kinds` declares). A :class:`Move` says, for one
reason, which states the row goes between, whether a ``step_activated`` row follows it (the
decision opens a step), whether its ``delivery_id`` is the run's anchor delivery, and whether
its step is the step the run is on. Its :class:`Variant` s say, for each rule kind a row of
that reason may carry (``context["rule_kind"]``), the terminal reason it gives a finished run
and how people read it: the sentence of ``explain``'s ``why``, the label and detail of the
timeline, and the clause that row adds to the summary of a run's path (``path``: why the run
went to the next step, or why it ended).

Sentences are templates over the row's context (``{to_step!r}``, ``{due_at:time}``) and a
few names the reader adds (``step``: the run's current step key, ``at``: the time of the
row, ``resumed_by``: the event that resumed the run, ``channel``: the channel of the row's
step; in ``path`` clauses also ``waited``: the length of the run's last wait, ``awaited``: the
signals that would have ended it, ``into``: how long into it a signal came, ``wait_target``:
the step it led to); ``:time`` is ISO-8601 and ``:stamp`` the short form of the timeline; see
:func:`render`.

The names are observable behaviour (CONTRACT §4, §10): keep them exactly.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from ..core.records import RunState
from ..core.timestamps import from_text

# -- reasons of the spine: observable behaviour, keep exactly --------------------------------------
WORKFLOW_STARTED = "workflow_started"
STEP_ACTIVATED = "step_activated"
PROGRESSED_ON_DELIVERY_OUTCOME = "progressed_on_delivery_outcome"
WAITING_FOR_STEP_PROGRESSION = "waiting_for_step_progression"
REACTIVATED_FROM_WAIT = "reactivated_from_wait"
SIGNAL_RECEIVED = "signal_received"
WORKFLOW_COMPLETED = "workflow_completed"
WORKFLOW_STOPPED = "workflow_stopped"
PROGRESSED_ON_SIGNAL = "progressed_on_signal"
WORKFLOW_CANCELLED = "workflow_cancelled"

# -- terminal reasons ------------------------------------------------------------------------------
CANCELLED_BY_SIGNAL = "cancelled_by_signal"
CANCELLED = "cancelled"

# -- rule kinds written into contexts that belong to no declared rule ------------------------------
IMPLICIT_COMPLETION = "implicit_completion"
WAIT_CANCELLED = "wait_cancelled"
CANCEL = "cancel"

# -- noop reasons: a progression that writes nothing says why --------------------------------------
WAIT_NOT_DUE = "wait_not_due"
RUN_NOT_ACTIVE = "run_not_active"
NO_ACTIVE_STEP_DELIVERY = "no_active_step_delivery"
NO_PROGRESS_RULES = "no_progress_rules"
PRIOR_DELIVERY_NOT_CONVERGED = "prior_delivery_not_converged"
NO_MATCHING_PROGRESS_RULE = "no_matching_progress_rule"
UNKNOWN_TO_STEP = "unknown_to_step"
SIGNAL_NOT_AWAITED = "signal_not_awaited"
RETRY_SCHEDULED = "retry_scheduled"

#: Every noop reason, with what it means (the README's table).
NOOP_MEANINGS: Mapping[str, str] = {
    WAIT_NOT_DUE: "waiting, and suspended_until is still ahead (or not set)",
    RUN_NOT_ACTIVE: "the run is completed or stopped",
    NO_ACTIVE_STEP_DELIVERY: "no delivery is planned for the current step",
    NO_PROGRESS_RULES: "the step has no rules and its delivery has no outcome yet",
    PRIOR_DELIVERY_NOT_CONVERGED: (
        "the step's delivery has no branchable outcome yet and the step has a wait rule"
    ),
    NO_MATCHING_PROGRESS_RULE: (
        "the step's delivery has no branchable outcome yet and the step has no wait rule"
    ),
    UNKNOWN_TO_STEP: "a rule (or the wait) names a step the definition does not have",
    SIGNAL_NOT_AWAITED: "the run is not waiting for this signal",
    RETRY_SCHEDULED: "the delivery failed and will be sent again: the run does not progress",
}
NOOP_REASONS = frozenset(NOOP_MEANINGS)

#: The only keys a trace context may hold (CONTRACT §10): evidence, never payload.
CORE_CONTEXT_KEYS = frozenset(
    {
        "source",
        "step_key",
        "rule_kind",
        "workflow_outcome",
        "anchor",
        "anchor_delivery_id",
        "anchor_delivery_status",
        "anchor_timestamp",
        "due_at",
        "to_step",
        "from_step",
        "reactivated_at",
        "delivery_status",
        "suppression_reason",
        "event_name",
        "signalled_at",
    }
)


@attrs.frozen
class Variant:
    """How rows of one reason and one rule kind read, and the terminal reason they give.

    A row takes the first variant of its move whose ``rule_kind`` is its context's and whose
    ``requires`` key (when set) its context holds; else its move's first variant.

    ``path`` is the clause the row adds to the summary of a finished run's path, in the past
    tense ("'email' ran because …", "it completed when …"); empty for rows that neither
    change the step nor end the run (they add nothing to it).
    """

    rule_kind: str | None
    why: str
    label: str
    detail: str
    terminal_reason: str | None = None
    requires: str | None = None
    path: str = ""


def _states(value: Any) -> tuple[RunState | None, ...]:
    return tuple(value) if isinstance(value, (tuple, list, frozenset, set)) else (value,)


@attrs.frozen
class Move:
    """What one reason means: the states a row of it goes between (``from_states``: the one
    state, or the states, it may leave), and its evidence.

    ``opens_step``: the engine writes a ``step_activated`` row right after it (same decision);
    ``anchored``: its ``delivery_id`` is the run's own anchor delivery; ``on_current_step``:
    its step is the step the run is on when it is written.
    """

    reason: str
    from_states: tuple[RunState | None, ...] = attrs.field(converter=_states)
    to_state: RunState
    variants: tuple[Variant, ...]
    opens_step: bool = False
    anchored: bool = False
    on_current_step: bool = True

    def variant(self, context: Mapping[str, Any]) -> Variant:
        """The variant a row with this context reads as (see :class:`Variant`)."""
        kind = context.get("rule_kind")
        for variant in self.variants:
            if variant.rule_kind == kind and (
                variant.requires is None or variant.requires in context
            ):
                return variant
        return self.variants[0]


_ACTIVE, _WAITING = RunState.ACTIVE, RunState.WAITING
_COMPLETED, _STOPPED = RunState.COMPLETED, RunState.STOPPED

#: The moves of the spine itself (CONTRACT §4 items 1, 2, 5, 6, 8, §13.1, §13.3); rule kinds
#: add theirs. The
#: wait_until variant of ``progressed_on_delivery_outcome`` is the status a run keeps after
#: its wait ended (item 4): the trace row of that move is ``reactivated_from_wait``.
CORE_MOVES: tuple[Move, ...] = (
    Move(
        WORKFLOW_STARTED,
        None,
        _ACTIVE,
        (
            Variant(
                None,
                why="Started by a trigger; step {step!r} is the first step.",
                label="started",
                detail="by {source}",
            ),
        ),
        opens_step=True,
        on_current_step=False,
    ),
    Move(
        STEP_ACTIVATED,
        _ACTIVE,
        _ACTIVE,
        (
            Variant(
                None,
                why="Step {step_key!r} was activated.",
                label="step {step_key}{channel}",
                detail="activated",
            ),
        ),
        on_current_step=False,
    ),
    Move(
        PROGRESSED_ON_DELIVERY_OUTCOME,
        _ACTIVE,
        _ACTIVE,
        (
            Variant(
                "on_outcome",
                why=(
                    "Moved from step {from_step!r} to {to_step!r}: delivery "
                    "{anchor_delivery_id} ended {workflow_outcome!r} (status "
                    "{delivery_status!r}) and an on_outcome rule matched."
                ),
                label="outcome {workflow_outcome}",
                detail="-> {to_step}",
                path=(
                    "{to_step!r} ran because the {from_step!r} delivery ended {workflow_outcome!r}"
                ),
            ),
            Variant(
                "wait_until",
                why=(
                    "Moved from step {from_step!r} to {to_step!r}: the wait after delivery "
                    "{anchor_delivery_id} elapsed with no cancelling signal."
                ),
                label="outcome {workflow_outcome}",
                detail="-> {to_step}",
                path=(
                    "{to_step!r} ran because the {waited} wait after {from_step!r} passed "
                    "without {awaited}"
                ),
            ),
        ),
        opens_step=True,
        anchored=True,
    ),
    Move(
        SIGNAL_RECEIVED,
        _WAITING,
        _ACTIVE,
        (
            Variant(
                None,
                why=(
                    "Signal {resumed_by!r} ended the wait on step {step!r} at {at:time}; "
                    "the run is settling and will not wait again."
                ),
                label="signal {event_name}",
                detail="wait cancelled",
            ),
        ),
        on_current_step=False,
    ),
    Move(
        WORKFLOW_COMPLETED,
        _ACTIVE,
        _COMPLETED,
        (
            Variant(
                IMPLICIT_COMPLETION,
                why=(
                    "Completed on step {step!r}: delivery {anchor_delivery_id} ended "
                    "{workflow_outcome!r} (status {delivery_status!r}) and no rule leads further."
                ),
                label="completed",
                detail="outcome {workflow_outcome}",
                terminal_reason=WORKFLOW_COMPLETED,
                path="it completed when the {step!r} delivery ended {workflow_outcome!r}",
            ),
            Variant(
                WAIT_CANCELLED,
                why=(
                    "Completed: signal {event_name!r} at {signalled_at:time} came before the "
                    "wait on step {step!r} began, so the run completed without waiting."
                ),
                label="completed",
                detail="{event_name} came first",
                terminal_reason=CANCELLED_BY_SIGNAL,
                requires="signalled_at",
                path=(
                    "it completed because {event_name!r} came before the wait on {step!r} "
                    "began, so {wait_target!r} never ran"
                ),
            ),
            Variant(
                WAIT_CANCELLED,
                why=(
                    "Completed: signal {event_name!r} cancelled the wait on step {step!r}, so "
                    "the next step never ran."
                ),
                label="completed",
                detail="cancelled by {event_name}",
                terminal_reason=CANCELLED_BY_SIGNAL,
                path=(
                    "it completed because {event_name!r} came {into} into the {waited} wait "
                    "on {step!r}, so {wait_target!r} never ran"
                ),
            ),
        ),
        anchored=True,
    ),
    Move(
        WORKFLOW_CANCELLED,
        (_ACTIVE, _WAITING),
        _STOPPED,
        (
            Variant(
                CANCEL,
                why="Cancelled by the host on step {step!r}: nothing more is sent.",
                label="cancelled",
                detail="by the host",
                terminal_reason=CANCELLED,
                path="it was cancelled by the host on {step!r}",
            ),
        ),
    ),
)


@functools.cache
def _compiled(
    template: str,
) -> tuple[str, tuple[tuple[str, str, Callable[[Any], str] | None], ...]]:
    """``template`` as a plain format string and the fields it reads — (placeholder, name,
    the converter its ``:time`` / ``:stamp`` spec asks for) — compiled once per template."""
    converters = {"time": time_text, "stamp": stamp_text}
    plain, fields = [], {}
    for literal, name, spec, conversion in string.Formatter().parse(template):
        plain.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        converter = converters.get(spec or "")
        placeholder = name if converter is None else f"{name}__{spec}"
        fields[placeholder] = (placeholder, name, converter)
        tail = "" if converter is not None or not spec else f":{spec}"
        plain.append("{" + placeholder + (f"!{conversion}" if conversion else "") + tail + "}")
    return "".join(plain), tuple(fields.values())


def time_text(at: Any) -> str:
    """A datetime or a context timestamp as ISO-8601 (no ``.000000`` on the second)."""
    if isinstance(at, str):
        try:
            at = from_text(at)
        except ValueError:
            return str(at)
    return at.isoformat() if isinstance(at, datetime) else str(at)


def stamp_text(at: Any) -> str:
    """A datetime or a context timestamp as ``2026-01-05 11:30:00`` (UTC), for labels."""
    if isinstance(at, str):
        try:
            at = from_text(at)
        except ValueError:
            return str(at)
    return at.strftime("%Y-%m-%d %H:%M:%S") if isinstance(at, datetime) else "?"


def render(template: str, context: Mapping[str, Any], **extra: Any) -> str:
    """``template`` filled from ``context`` and ``extra`` (see the module docstring); a
    name that neither holds reads as None, as ``context.get`` would."""
    plain, fields = _compiled(template)
    values = {}
    for placeholder, name, converter in fields:
        value = extra[name] if name in extra else context.get(name)
        values[placeholder] = value if converter is None else converter(value)
    return plain.format_map(values)
