"""Checks of caller arguments, each raising :class:`InvalidArgument` or :class:`InvalidSignal`
with the parameter's name, before anything is read or written."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from .errors import InvalidArgument, InvalidSignal
from .records import Signal
from .text import NOT_UNICODE, canonical_json, is_unicode, shown

E = TypeVar("E", bound=Enum)

MAX_ID_LENGTH = 255
MAX_PAYLOAD_BYTES = 64 * 1024
#: A reason code (CONTRACT §16): a lower-case letter, then up to 63 lower-case letters,
#: digits, ``_``, ``.`` or ``-``. Free text ("user ada@… opted out") never enters a trace.
REASON_CODE = re.compile(r"[a-z][a-z0-9_.\-]{0,63}")
MAX_LIMIT = 2**31 - 1


def require_id(value: object, name: str) -> str:
    """A non-blank string of at most 255 characters (ids are opaque: not trimmed)."""
    if not isinstance(value, str):
        raise InvalidArgument(name, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgument(name, "must not be blank")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(name, f"is longer than {MAX_ID_LENGTH} characters")
    if "\x00" in value:
        raise InvalidArgument(name, "must not contain NUL characters")
    if not is_unicode(value):
        raise InvalidArgument(name, NOT_UNICODE)
    return value


def optional_id(value: object, name: str) -> str | None:
    """None, or what :func:`require_id` accepts."""
    return None if value is None else require_id(value, name)


def require_limit(value: object, name: str = "limit", *, allow_none: bool = True) -> int | None:
    """None (no limit, when allowed) or an int >= 0."""
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(name, f"must be an int >= 0, got {shown(value)}")
    if value < 0:
        raise InvalidArgument(name, f"must be >= 0, got {shown(value)}")
    # Beyond this sqlite3 (and fetchmany) overflow; no store holds that many rows anyway.
    return min(value, MAX_LIMIT)


def require_offset(value: object, name: str = "offset") -> int:
    """An int >= 0: how many rows of a listing to skip."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(name, f"must be an int >= 0, got {value!r}")
    if value < 0:
        raise InvalidArgument(name, f"must be >= 0, got {value}")
    return min(value, MAX_LIMIT)


def require_enum(enum: type[E], value: object, name: str) -> E:
    """A member of ``enum``, given as the member or its string value."""
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    choices = ", ".join(str(m.value) for m in enum)
    raise InvalidArgument(name, f"must be one of {choices}; got {shown(value)}")


def optional_reason(value: object, name: str) -> str | None:
    """None, or a reason code (:data:`REASON_CODE`): never free text, which could carry a
    person's data into the trace."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(name, f"must be None or a reason code, got {shown(value)}")
    if REASON_CODE.fullmatch(value) is None:
        raise InvalidArgument(
            name,
            # Not even a prefix of it: free text here is what may name a person.
            "must be a reason code: a lower-case letter, then up to 63 lower-case letters, "
            f"digits, '_', '.' or '-' (got {len(value)} characters of other text)",
        )
    return value


def is_uuid(value: object) -> bool:
    """True for a 36-character hyphenated UUID string (the form of every id we issue)."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def json_text(value: object, name: str) -> str:
    """Canonical JSON text of a dict of plain JSON values, or InvalidArgument (which names
    what is wrong, never the value)."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(name, f"must be a dict, got {type(value).__name__}")
    problem = _plain_json_problem(value)
    if problem is not None:
        raise InvalidArgument(name, problem)
    try:
        return canonical_json(value)
    except (TypeError, ValueError, OverflowError):  # an int too long to write, say
        raise InvalidArgument(name, "must hold plain JSON values only") from None


MAX_DATA_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32


def _plain_json_problem(value: object) -> str | None:
    """What keeps ``value`` from being plain JSON (types and depth, never the values), or
    None: :func:`_surely_plain_json` when it can tell, else :func:`_json_problem`, which
    names the problem."""
    return None if _surely_plain_json(value) else _json_problem(value)


# Types whose values need no rule of their own (text is checked all at once, below).
_LEAVES = frozenset({str, int, bool, type(None)})
_TEXT = frozenset({str})


def _surely_plain_json(value: object) -> bool:
    """True when ``value`` is plain JSON of the commonest shapes: dicts with text keys,
    lists and tuples, of text, ints, bools, None and finite floats — the exact types, not
    subclasses — at most :data:`MAX_JSON_DEPTH` levels deep, all text valid Unicode. False
    whenever it is not sure (:func:`_json_problem` then decides, and says why).

    It is :func:`_json_problem` at C speed for the usual payload: the types of a
    container's values are gathered with one ``set(map(type, …))``, and every key and text
    value is checked in one encode of their concatenation (a lone surrogate never pairs
    with another across strings: Python's UTF-8 codec refuses each one). A 30 KB payload
    took 1.1 ms to check one value at a time."""
    texts: list[str] = []
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth >= MAX_JSON_DEPTH:
            return False
        if type(item) is dict:
            if not set(map(type, item)) <= _TEXT:
                return False
            texts.extend(item)
            children: Any = item.values()
        elif type(item) is list or type(item) is tuple:
            children = item
        else:
            return False
        kinds = set(map(type, children))
        if str in kinds:
            texts.extend(children if len(kinds) == 1 else [c for c in children if type(c) is str])
        if not kinds <= _LEAVES:
            for child in children:
                kind = type(child)
                if kind is dict or kind is list or kind is tuple:
                    stack.append((child, depth + 1))
                elif kind is float:
                    if not math.isfinite(child):
                        return False
                elif kind not in _LEAVES:
                    return False
    return is_unicode("".join(texts))


def _json_problem(value: object) -> str | None:
    """What keeps ``value`` from being plain JSON (types and depth, never the values), or
    None, one value at a time. Iterative, so no depth of nesting can overflow the stack."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth >= MAX_JSON_DEPTH:
                return f"is nested deeper than {MAX_JSON_DEPTH} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return f"has a key of type {type(key).__name__} (keys must be strings)"
                    if not is_unicode(key):
                        return f"has a key that {NOT_UNICODE}"
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if not is_unicode(item):
                return f"holds text that {NOT_UNICODE}"
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return "holds a number that is not finite"
        elif item is not None and not isinstance(item, (bool, int)):
            return f"holds a {type(item).__name__}, not a JSON value"
    return None


def require_data(value: object, name: str) -> dict[str, object]:
    """A dict of plain JSON values of at most 64 KiB as canonical JSON (UTF-8), or
    InvalidArgument — whose message names what is wrong but never shows the value."""
    return checked_data(value, name)[0]


def checked_data(value: object, name: str) -> tuple[dict[str, object], str]:
    """:func:`require_data`, with the canonical JSON text it measured (the text a store
    writes for the data, so that it is not made twice)."""
    if value is None:
        return {}, "{}"
    if not isinstance(value, dict):
        raise InvalidArgument(name, f"must be a dict, got {type(value).__name__}")
    problem = _plain_json_problem(value)
    if problem is not None:
        raise InvalidArgument(name, problem)
    try:
        text = canonical_json(value)
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except (TypeError, ValueError, OverflowError):  # an int too long to write, say
        raise InvalidArgument(name, "must hold plain JSON values only") from None
    if size > MAX_DATA_BYTES:
        raise InvalidArgument(
            name, f"is {size} bytes as canonical JSON; at most {MAX_DATA_BYTES} are allowed"
        )
    return value, text


def optional_key(value: object, name: str) -> str | None:
    """None, or a host's own key (a correlation key): what :func:`require_id` accepts."""
    return optional_id(value, name)


def check_signal(signal: object) -> Signal:
    """Validate a signal before any write (CONTRACT §5, §16); returns it unchanged.

    Its tenant and actor are stored ids (the actor is erased by ``forget``), so they follow
    :func:`require_id`; its payload is plain JSON of at most 64 KiB, and errors about it
    never show its values.
    """
    if not isinstance(signal, Signal):
        raise InvalidSignal("signal", f"expected a Signal, got {type(signal).__name__}")
    for field in ("tenant_id", "event_name"):
        _signal_id(getattr(signal, field), field)
    if signal.actor_id is not None:
        _signal_id(signal.actor_id, "actor_id")
    payload = signal.payload
    if not isinstance(payload, Mapping):
        raise InvalidSignal("payload", f"must be a dict, got {type(payload).__name__}")
    problem = _plain_json_problem(payload)
    if problem is not None:
        raise InvalidSignal("payload", problem)
    try:
        size = len(canonical_json(payload).encode("utf-8"))
    except (TypeError, ValueError, OverflowError):
        raise InvalidSignal("payload", "must hold plain JSON values only") from None
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidSignal("payload", f"is larger than {MAX_PAYLOAD_BYTES} bytes")
    delivery_id = payload.get("delivery_id")
    if delivery_id is not None and not is_uuid(delivery_id):
        raise InvalidSignal("payload.delivery_id", "must be a delivery id (a UUID string)")
    # CONTRACT §13.2: a bad correlation key is InvalidArgument, on a Signal as on trigger.
    optional_key(signal.correlation_key, "correlation_key")
    return signal


def _signal_id(value: object, field: str) -> None:
    try:
        require_id(value, field)
    except InvalidArgument as exc:
        raise InvalidSignal(field, exc.problem) from None


def payload_delivery_id(signal: Signal) -> str | None:
    """The signal's payload delivery id, normalised to lower case, if it has one."""
    value = signal.payload.get("delivery_id")
    return str(value).lower() if value is not None else None


MAX_SECONDS = 10 * 366 * 86400  # ten years: past any lease or delay a host means


def require_seconds(value: object, name: str) -> int:
    """A whole number of seconds, at least 1 (at most ten years)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(
            name, f"must be a whole number of seconds, got {type(value).__name__}"
        )
    if not 1 <= value <= MAX_SECONDS:
        raise InvalidArgument(name, f"must be from 1 to {MAX_SECONDS} seconds, got {shown(value)}")
    return value


MAX_PATH_LENGTH = 4096


def require_location(value: object) -> str:
    """A store's location as text: a file path, ``":memory:"`` or a database URL; not
    blank, no NUL, valid Unicode, at most 4,096 characters (the file system's own limit)."""
    if not isinstance(value, str):
        raise InvalidArgument("path", f"must be text, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgument("path", "must not be blank")
    if "\x00" in value:
        raise InvalidArgument("path", "must not contain NUL characters")
    if not is_unicode(value):
        raise InvalidArgument("path", NOT_UNICODE)
    if len(value) > MAX_PATH_LENGTH:
        raise InvalidArgument("path", f"is longer than {MAX_PATH_LENGTH} characters")
    return value
