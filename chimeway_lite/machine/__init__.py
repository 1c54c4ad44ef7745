"""THE state machine: the vocabulary and move table as data, and pure decisions.

Nothing here reads a clock, makes an id or touches a store. Start with
:mod:`~chimeway_lite.machine.decide` (the theory of operation), then
:mod:`~chimeway_lite.machine.vocabulary` and :mod:`~chimeway_lite.machine.table`.
"""

# In this order: the rule kinds build on the vocabulary and the decision primitives, and the
# table and the decide functions read the kinds.
from .vocabulary import NOOP_MEANINGS, NOOP_REASONS, Move, Variant  # isort: skip
from .decision import Decision, DeliveryPlan, TransitionPlan  # isort: skip
from .kinds import RULE_KINDS  # isort: skip
from .decide import (
    cancel,
    close_batch,
    due_at,
    enter,
    entering,
    outcome_of,
    progress,
    resume,
    start,
    wait_signals,
)
from .host_rules import check_context, check_state_change
from .journey import Journey
from .table import CONTEXT_KEYS, MOVES, TERMINAL_REASONS

__all__ = [
    "CONTEXT_KEYS",
    "MOVES",
    "NOOP_MEANINGS",
    "NOOP_REASONS",
    "RULE_KINDS",
    "TERMINAL_REASONS",
    "Decision",
    "DeliveryPlan",
    "Journey",
    "Move",
    "TransitionPlan",
    "Variant",
    "cancel",
    "check_context",
    "check_state_change",
    "close_batch",
    "due_at",
    "enter",
    "entering",
    "outcome_of",
    "progress",
    "resume",
    "start",
    "wait_signals",
]
