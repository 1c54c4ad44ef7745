"""Text rules shared by every layer: valid Unicode, and the one canonical JSON form.

Canonical JSON is compact (``","`` and ``":"``), keys sorted, non-ASCII kept as is, finite
numbers only; its size is measured in UTF-8 bytes. It is what the store writes for every JSON
column, and what identifies a definition's steps (CONTRACT §3).
"""

from __future__ import annotations

import json
from typing import Any

NOT_UNICODE = "must be valid Unicode text (no lone surrogates)"

# json.dumps with these options builds a new encoder on every call; build it once.
_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def is_unicode(text: str) -> bool:
    """True when ``text`` encodes as UTF-8 (a lone surrogate does not, and no store can keep
    it)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def canonical_json(value: Any) -> str:
    """Canonical JSON text of plain JSON values (raises TypeError/ValueError otherwise)."""
    if not value and type(value) in (dict, list):
        return "{}" if type(value) is dict else "[]"
    return _encode(value)


def json_size(value: Any) -> int:
    """The size of ``value`` as canonical JSON, in UTF-8 bytes."""
    return len(canonical_json(value).encode("utf-8", "surrogatepass"))


def duration_text(seconds: float) -> str:
    """A duration for people: ``45 s``, ``1 h 29 min``, ``2 d 3 h`` (two units at most)."""
    total = round(abs(seconds))
    if total < 60:
        return f"{total} s"
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    parts: list[tuple[int, str]] = []
    for name, size in units:
        count, total = divmod(total, size)
        if count or parts:
            parts.append((count, name))
    return " ".join(f"{count} {name}" for count, name in parts[:2] if count)


SHOWN_LENGTH = 40


def shown(value: object, limit: int = SHOWN_LENGTH) -> str:
    """A short, safe picture of a caller's value for an error message: a string's first
    ``limit`` characters (quoted, with its length when cut), a small number as it is, and of
    anything else its type alone — never a whole input, and never a container's contents
    (which may be a payload)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        # repr of a very long int raises ValueError (the int/str digit limit): say its size.
        if -(10**limit) < value < 10**limit:
            return repr(value)
        return f"an int of {value.bit_length()} bits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        head = value[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
        text = repr(head)
        return text if len(value) <= limit else f"{text}… ({len(value)} characters)"
    return f"a {type(value).__name__}"
