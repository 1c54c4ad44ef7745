"""The move table: every reason the machine writes, with its meaning (one source of truth).

Assembled from the spine's own moves (:data:`~chimeway_lite.machine.vocabulary.CORE_MOVES`),
the moves of every registered rule kind and those of every gate (the step options that hold
an activation back), with the variants gates add to moves of the spine.
:func:`chimeway_lite.engine.audit.verify`, :mod:`chimeway_lite.engine.explanation`, the
timeline and the CLI read it; a reason that is not in :data:`MOVES` is a host's own reason
(CONTRACT §8).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .kinds import GATES, RULE_KIND_NAMES, RULE_KINDS
from .vocabulary import (
    CANCEL,
    CORE_CONTEXT_KEYS,
    CORE_MOVES,
    IMPLICIT_COMPLETION,
    NOOP_REASONS,
    WAIT_CANCELLED,
    Move,
)


def _assemble() -> dict[str, Move]:
    moves: dict[str, Move] = {}
    declared = (
        *CORE_MOVES,
        *(m for kind in RULE_KINDS for m in kind.moves),
        *(m for gate in GATES for m in gate.moves),
    )
    for move in declared:
        if move.reason in moves or move.reason in NOOP_REASONS:
            raise RuntimeError(f"reason {move.reason!r} is declared twice")
        moves[move.reason] = move
    for gate in GATES:
        for reason, variant in gate.variants:
            move = moves[reason]
            moves[reason] = attrs.evolve(move, variants=(*move.variants, variant))
    return moves


#: reason -> :class:`~chimeway_lite.machine.vocabulary.Move`, for every reason the engine
#: writes into a trace row.
MOVES: Mapping[str, Move] = _assemble()

#: Every key a trace context may hold (CONTRACT §10).
CONTEXT_KEYS: frozenset[str] = CORE_CONTEXT_KEYS.union(*(k.context_keys for k in RULE_KINDS))

#: Every ``rule_kind`` a context may name: the registered kinds and the spine's own.
CONTEXT_RULE_KINDS: frozenset[str] = frozenset(
    {*RULE_KIND_NAMES, *(g.name for g in GATES), IMPLICIT_COMPLETION, WAIT_CANCELLED, CANCEL}
)

#: Every terminal reason the engine gives a finished run.
TERMINAL_REASONS: frozenset[str] = frozenset(
    v.terminal_reason for m in MOVES.values() for v in m.variants if v.terminal_reason
)


def is_engine_reason(reason: str) -> bool:
    """True for a reason the engine writes (anything else is a host's own)."""
    return reason in MOVES


def terminal_reason(reason: str, context: Mapping[str, Any]) -> str | None:
    """The terminal reason a finishing row of ``reason`` with ``context`` gives, or None."""
    move = MOVES.get(reason)
    return None if move is None else move.variant(context).terminal_reason
