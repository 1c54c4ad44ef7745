"""Checks of the values inside a declaration: names and plain JSON (CONTRACT §2).

Each raises :class:`InvalidWorkflow` with the path of the value at fault. Used by
:mod:`chimeway_lite.declarations` and by every rule kind of :mod:`chimeway_lite.machine.kinds`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidWorkflow
from .frozen import FrozenList
from .text import NOT_UNICODE, is_unicode

MAX_NAME_LENGTH = 200
MAX_CONFIG_DEPTH = 32
#: The longest delay or backoff a declaration may hold: a century (added to the latest
#: instant a store keeps, :data:`~chimeway_lite.core.timestamps.LATEST`, it stays in range).
MAX_DELAY_SECONDS = 100 * 366 * 86400


def is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_name(value: Any, path: str, *, step: str | None = None, rule: int | None = None) -> str:
    """A non-blank name (already trimmed) of at most 200 characters, no NUL, valid Unicode."""
    if not isinstance(value, str):
        raise InvalidWorkflow(
            path, f"must be a string, got {type(value).__name__}", step=step, rule=rule
        )
    if not value:
        raise InvalidWorkflow(path, "must not be blank", step=step, rule=rule)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidWorkflow(
            path, f"is longer than {MAX_NAME_LENGTH} characters", step=step, rule=rule
        )
    if "\x00" in value:
        # SQLite's JSON functions cut text at NUL: such a cancel signal could never match.
        raise InvalidWorkflow(path, "must not contain NUL characters", step=step, rule=rule)
    if not is_unicode(value):
        raise InvalidWorkflow(path, NOT_UNICODE, step=step, rule=rule)
    return value


def check_json(value: Any, path: str, step: str) -> None:
    """Plain JSON only: dicts with string keys, lists, str, int, float, bool, None; at most
    32 levels deep (the encoders recurse, so depth is refused before they overflow)."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        nested = isinstance(item, (Mapping, list, tuple, FrozenList))
        if nested and depth >= MAX_CONFIG_DEPTH:
            raise InvalidWorkflow(
                where, f"is nested deeper than {MAX_CONFIG_DEPTH} levels", step=step
            )
        if isinstance(item, Mapping):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise InvalidWorkflow(
                        where,
                        f"has a key of type {type(k).__name__} (keys must be strings)",
                        step=step,
                    )
                if not is_unicode(k):
                    raise InvalidWorkflow(where, f"has a key that {NOT_UNICODE}", step=step)
                stack.append((v, f"{where}.{k}", depth + 1))
        elif isinstance(item, (list, tuple, FrozenList)):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidWorkflow(where, "holds a non-finite number", step=step)
        elif isinstance(item, str) and not is_unicode(item):
            raise InvalidWorkflow(where, NOT_UNICODE, step=step)
        elif item is not None and not isinstance(item, (str, int, float, bool)):
            raise InvalidWorkflow(where, f"holds a {type(item).__name__}, not JSON", step=step)
