"""The one cattrs converter between SQLite rows and records.

Rules, each registered once on a private :class:`cattrs.Converter` (never the global one):

* ``datetime``            <-> fixed-width UTC text (:mod:`chimeway_lite.timestamps`)
* ``dict[str, Any]``      <-> canonical JSON text (sorted keys, no NaN)
* ``tuple[str, ...]``     <-> JSON array text (``pending_signals``)
* str enums               <-> their value (cattrs' default)

A record becomes a row with :func:`to_row` and comes back with :func:`from_row`; the row's
column names are the record's field names (SPEC §8).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import attrs
import cattrs

from .timestamps import from_text, to_text

T = TypeVar("T")

_converter = cattrs.Converter()


def dumps(value: Any) -> str:
    """Canonical JSON text: sorted keys, compact, UTF-8, finite numbers only."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _load_dict(value: Any, _: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, (str, bytes)) else value
    return dict(loaded) if loaded is not None else {}


def _load_str_tuple(value: Any, _: Any) -> tuple[str, ...]:
    loaded = json.loads(value) if isinstance(value, (str, bytes)) else value
    return tuple(loaded) if loaded is not None else ()


# StrEnum before str: otherwise the str pass-through would keep the member.
_converter.register_unstructure_hook(StrEnum, lambda v: v.value)
_converter.register_structure_hook(
    datetime, lambda v, _: v if isinstance(v, datetime) else from_text(v)
)
_converter.register_unstructure_hook(datetime, to_text)
_JSON_OBJECT = dict[str, Any]
_STR_TUPLE = tuple[str, ...]
_converter.register_structure_hook_func(lambda t: t == _JSON_OBJECT, _load_dict)
_converter.register_unstructure_hook_func(lambda t: t == _JSON_OBJECT, dumps)
_converter.register_structure_hook_func(lambda t: t == _STR_TUPLE, _load_str_tuple)
_converter.register_unstructure_hook_func(lambda t: t == _STR_TUPLE, lambda v: dumps(list(v)))


def from_row(cls: type[T], row: Mapping[str, Any]) -> T:
    """Build a record of type ``cls`` from a row whose keys are its field names."""
    return _converter.structure(dict(row), cls)


def to_row(record: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The column values of a record (datetimes as text, dicts and tuples as JSON)."""
    row: dict[str, Any] = _converter.unstructure(record)
    for name in exclude:
        row.pop(name, None)
    return row


def field_names(cls: type[Any], *, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The column names of a record type, in field order."""
    return tuple(f.name for f in attrs.fields(cls) if f.name not in exclude)
