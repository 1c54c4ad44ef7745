"""Checks of caller arguments, each raising :class:`InvalidArgument` or :class:`InvalidSignal`
with the parameter's name, before anything is read or written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

from .errors import InvalidArgument, InvalidSignal
from .records import Signal
from .text import NOT_UNICODE, is_unicode

E = TypeVar("E", bound=Enum)

MAX_ID_LENGTH = 255
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_REASON_LENGTH = 200
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
        raise InvalidArgument(name, f"must be an int >= 0, got {value!r}")
    if value < 0:
        raise InvalidArgument(name, f"must be >= 0, got {value}")
    # Beyond this sqlite3 (and fetchmany) overflow; no store holds that many rows anyway.
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
    raise InvalidArgument(name, f"must be one of {choices}; got {value!r}")


def optional_reason(value: object, name: str) -> str | None:
    """None, or a non-blank string of at most 200 characters (a reason code, not a payload)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(name, f"must be None or a non-blank string, got {value!r}")
    if len(value) > MAX_REASON_LENGTH:
        raise InvalidArgument(name, f"is longer than {MAX_REASON_LENGTH} characters")
    if not is_unicode(value):
        raise InvalidArgument(name, NOT_UNICODE)
    return value.strip()


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
    """Canonical JSON text of a dict of plain JSON values, or InvalidArgument."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(name, f"must be a dict, got {type(value).__name__}")
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(name, f"must hold plain JSON values only: {exc}") from None
    if not is_unicode(text):
        raise InvalidArgument(name, NOT_UNICODE)
    return text


def check_signal(signal: object) -> Signal:
    """Validate a signal before any write (CONTRACT §5); returns it unchanged."""
    if not isinstance(signal, Signal):
        raise InvalidSignal("signal", f"expected a Signal, got {type(signal).__name__}")
    for field in ("tenant_id", "event_name"):
        value = getattr(signal, field)
        if not isinstance(value, str) or not value.strip():
            raise InvalidSignal(field, f"must be a non-blank string, got {value!r}")
        if len(value) > MAX_ID_LENGTH:
            raise InvalidSignal(field, f"is longer than {MAX_ID_LENGTH} characters")
        if not is_unicode(value):
            raise InvalidSignal(field, NOT_UNICODE)
    actor = signal.actor_id
    if actor is not None and (not isinstance(actor, str) or not actor.strip()):
        raise InvalidSignal("actor_id", f"must be None or a non-blank string, got {actor!r}")
    if actor is not None and not is_unicode(actor):
        raise InvalidSignal("actor_id", NOT_UNICODE)
    payload = signal.payload
    if not isinstance(payload, Mapping):
        raise InvalidSignal("payload", f"must be a dict, got {type(payload).__name__}")
    try:
        text = json.dumps(payload, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidSignal("payload", f"must hold plain JSON values only: {exc}") from None
    if not is_unicode(text):
        raise InvalidSignal("payload", NOT_UNICODE)
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidSignal("payload", f"is larger than {MAX_PAYLOAD_BYTES} bytes")
    delivery_id = payload.get("delivery_id")
    if delivery_id is not None and not is_uuid(delivery_id):
        raise InvalidSignal(
            "payload.delivery_id", f"must be a delivery id (a UUID string), got {delivery_id!r}"
        )
    return signal


def payload_delivery_id(signal: Signal) -> str | None:
    """The signal's payload delivery id, normalised to lower case, if it has one."""
    value = signal.payload.get("delivery_id")
    return str(value).lower() if value is not None else None
