"""The rules a host's own writes must keep (CONTRACT §8, §16), checked before the engine
writes them — and, by ``verify()``, on every stored row."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..core.errors import InvalidTransition
from ..core.records import RunState
from ..core.text import json_size
from .table import CONTEXT_KEYS

#: Context keys whose values are instants (as the store writes them: ISO-8601 text).
TIME_KEYS = frozenset({"due_at", "anchor_timestamp", "reactivated_at", "signalled_at"})
#: Context keys whose values are reason codes (CONTRACT §16).
CODE_KEYS = frozenset({"suppression_reason"})
#: The longest text a context value may be: an id's length. Free text has no place there.
MAX_CONTEXT_TEXT = 255
#: The most a whole context may hold, as canonical JSON.
MAX_CONTEXT_BYTES = 64 * 1024

_TYPED_KEYS = TIME_KEYS | CODE_KEYS
# The most a context can take as canonical JSON when every other rule holds: catalogue keys
# only, each value a short scalar (text of MAX_CONTEXT_TEXT characters at six bytes each,
# as a \u escape, is the longest; a 64-bit int or a float's repr is shorter), plus quotes,
# colons, commas and braces. While it is below MAX_CONTEXT_BYTES a context that breaks no
# other rule cannot break the size rule either, and is not encoded to find out (verify()
# checks every context of the store: the encoding was 4 % of its time).
_LARGEST_CLEAN_CONTEXT = 2 + sum(
    len(key) + 2 + 2 + 2 + 6 * MAX_CONTEXT_TEXT for key in CONTEXT_KEYS
)
_REASON_CODE = re.compile(r"[a-z][a-z0-9_.\-]{0,63}")


def check_state_change(run_id: str, current: RunState, new: RunState) -> None:
    """Refuse to move a terminal run to another state."""
    if current.is_terminal and new is not current:
        raise InvalidTransition(
            f"{current.value} is terminal: nothing leaves it",
            run_id=run_id,
            from_state=current.value,
            to_state=new.value,
        )


def context_problems(context: Any) -> list[str]:
    """What is wrong with a trace or status context, one phrase each (empty when it keeps
    the rules): a JSON object of catalogue keys (CONTRACT §10) whose values are short
    scalars — None, a bool, a 64-bit int, a finite float, text of at most 255 characters —
    instants where the key means one, reason codes for ``suppression_reason``, at most
    64 KiB in all. Never quotes a value."""
    if not isinstance(context, Mapping):
        return [f"is a {type(context).__name__}, not a JSON object"]
    problems = []
    if not CONTEXT_KEYS.issuperset(context):
        unknown = sorted(str(k)[:40] for k in context if k not in CONTEXT_KEYS)
        problems.append(f"context keys outside the catalogue: {', '.join(unknown)}")
    for key, value in context.items():
        # The common cases first, cheaply: None, or short ASCII text of a plain key, or
        # of a time key when it is an instant with an offset.
        if value is None:
            continue
        if (
            type(value) is str
            and len(value) <= MAX_CONTEXT_TEXT
            and value.isascii()
            and "\x00" not in value
            and (key not in _TYPED_KEYS or (key in TIME_KEYS and _instant_problem(value) is None))
        ):
            continue
        if key in CONTEXT_KEYS:
            problem = _value_problem(key, value)
            if problem is not None:
                problems.append(f"context {key} {problem}")
    if (
        not problems
        and _LARGEST_CLEAN_CONTEXT > MAX_CONTEXT_BYTES
        and json_size(dict(context)) > MAX_CONTEXT_BYTES
    ):
        problems.append(f"the context holds more than {MAX_CONTEXT_BYTES} bytes as JSON")
    return problems


def _instant_problem(text: str) -> str | None:
    """What keeps ``text`` from being an instant with an offset, or None."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return "is not an instant (ISO-8601 text with an offset)"
    return "is an instant without an offset" if parsed.utcoffset() is None else None


def _value_problem(key: str, value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -(2**63) <= value < 2**63 else "is an int that does not fit in 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else "is a number that is not finite"
    if not isinstance(value, str):
        return f"is a {type(value).__name__}: context values are short scalars"
    if len(value) > MAX_CONTEXT_TEXT:
        return f"is longer than {MAX_CONTEXT_TEXT} characters"
    if "\x00" in value:
        return "contains NUL"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    if key in TIME_KEYS:
        problem = _instant_problem(value)
        if problem is not None:
            return problem
    if key in CODE_KEYS and _REASON_CODE.fullmatch(value) is None:
        return "is not a reason code"
    return None


def check_context(run_id: str | None, context: Mapping[str, Any]) -> None:
    """Refuse a context that breaks :func:`context_problems` (the first problem found)."""
    problems = context_problems(context)
    if problems:
        raise InvalidTransition(problems[0], run_id=run_id)
