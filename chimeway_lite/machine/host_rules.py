"""The rules a host's own writes must keep (CONTRACT §8), checked before the engine writes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import InvalidTransition
from ..core.records import RunState
from .table import CONTEXT_KEYS


def check_state_change(run_id: str, current: RunState, new: RunState) -> None:
    """Refuse to move a terminal run to another state."""
    if current.is_terminal and new is not current:
        raise InvalidTransition(
            f"{current.value} is terminal: nothing leaves it",
            run_id=run_id,
            from_state=current.value,
            to_state=new.value,
        )


def check_context(run_id: str | None, context: Mapping[str, Any]) -> None:
    """Refuse a context key outside the catalogue of CONTRACT §10."""
    unknown = sorted(str(k) for k in context if k not in CONTEXT_KEYS)
    if unknown:
        raise InvalidTransition(
            f"context keys outside the catalogue: {', '.join(unknown)}", run_id=run_id
        )
