"""The one cattrs converter between SQLite rows and records.

Rules, each registered once on a private :class:`cattrs.Converter` (never the global one):

* ``datetime``            <-> fixed-width UTC text (:mod:`chimeway_lite.core.timestamps`)
* ``dict[str, Any]``      <-> canonical JSON text (:func:`~chimeway_lite.core.text.canonical_json`)
* ``tuple[str, ...]``     <-> JSON array text (``pending_signals``)
* str enums               <-> their value
* ``str``                 <-  passed through (a TEXT column is already a str)
* ``X | None``            <-> None, or the rule of ``X`` (resolved once per type)

A record becomes a row with :func:`to_row` and comes back with :func:`from_row`; the row's
column names are the record's field names (CONTRACT §8).

Speed: these run for every row on every hot path, so the converter is built
without detailed validation (no per-field try/except and no intermediate dict), optional
fields get a hook made once instead of a dispatch on every value, a ``sqlite3.Row`` is read
as it is (no ``dict(row)`` copy) and JSON is written by one prebuilt encoder.

Damage: a row that passes the schema's CHECKs but holds what the engine never writes (a JSON
array where an object belongs, ``pending_signals`` that are not a list of strings, a time
that does not parse or has no offset, an unknown state) raises
:class:`~chimeway_lite.core.errors.DamagedRow` naming the table and the row's id — one
``try`` around the whole row, which costs nothing until it fires.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import Enum, StrEnum
from json.scanner import make_scanner
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs

from ...core.errors import DamagedRow
from ...core.text import canonical_json
from ...core.timestamps import to_text

T = TypeVar("T")

_converter = cattrs.Converter(detailed_validation=False)

_loads = json.loads
_fromisoformat = datetime.fromisoformat
# json.loads is this scanner behind two wrappers and two whitespace matches; stored JSON
# is compact, so the scanner alone reads it (any other text goes to json.loads).
# (typeshed types make_scanner's argument as itself; the C scanner takes a decoder)
_scan_once = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _loads_text(text: str) -> Any:
    """``json.loads(text)``, faster for compact JSON (as the store writes it)."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:  # leading whitespace, or not JSON: json.loads decides
        return _loads(text)
    if end != len(text):  # trailing whitespace or data
        return _loads(text)
    return value


class _Shape(ValueError):
    """A column value of the wrong shape (raised inside a row's conversion)."""


def _load_dict(value: Any, _: Any = None) -> dict[str, Any]:
    if isinstance(value, (str, bytes)):
        value = _loads_text(value) if type(value) is str else _loads(value)
        if type(value) is dict:
            return value  # freshly parsed: no copy needed
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Shape(f"holds a JSON {type(value).__name__} where an object belongs")
    return dict(value)


@functools.lru_cache(maxsize=256)
def _str_tuple_of_text(text: str) -> tuple[str, ...]:
    # A tuple is immutable, so one parse serves every run waiting for the same signals.
    return _str_tuple(_loads_text(text))


def _str_tuple(loaded: Any) -> tuple[str, ...]:
    if loaded is None:
        return ()
    if type(loaded) is not list or not all(type(item) is str for item in loaded):
        raise _Shape("holds JSON that is not a list of strings")
    return tuple(loaded)


def _load_str_tuple(value: Any, _: Any = None) -> tuple[str, ...]:
    if type(value) is str:
        return _str_tuple_of_text(value)
    if isinstance(value, bytes):
        return _str_tuple(_loads(value))
    return _str_tuple(list(value) if isinstance(value, tuple) else value)


def _load_datetime(value: Any, _: Any = None) -> datetime:
    if type(value) is str:
        # The stored form always ends in +00:00, which fromisoformat reads as UTC itself.
        parsed = _fromisoformat(value)
        if parsed.tzinfo is UTC:
            return parsed
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise _Shape(f"holds a {type(value).__name__} where a time belongs")
    if parsed.utcoffset() is None:
        raise _Shape("holds a time without an offset")
    return parsed.astimezone(UTC)


# The last two instants written and their texts: a unit of work stamps every row it writes
# with the same ``now`` object, and a claim writes each delivery's lease beside it (the same
# instant, read back from each row: equal, not the same object). Equal instants have one
# text (the UTC form), so a hit by equality is as good as by identity.
_last_text: tuple[datetime | None, str] = (None, "")
_prior_text: tuple[datetime | None, str] = (None, "")


def _datetime_text(value: datetime) -> str:
    global _last_text, _prior_text
    last = _last_text
    if value is last[0]:
        return last[1]
    prior = _prior_text
    if value == prior[0]:
        _prior_text, _last_text = last, prior
        return prior[1]
    if value == last[0]:
        return last[1]
    # to_text's astimezone is only needed for other offsets; the text is the same.
    text = value.isoformat(timespec="microseconds") if value.tzinfo is UTC else to_text(value)
    _prior_text, _last_text = last, (value, text)
    return text


def optional_arm(cls: Any) -> Any:
    """``X`` of ``X | None`` (one arm besides None), else None."""
    if get_origin(cls) not in (Union, type(int | None)):
        return None
    arms = [a for a in get_args(cls) if a is not type(None)]
    return arms[0] if len(arms) == 1 and len(get_args(cls)) == 2 else None


def _optional_structure(cls: Any) -> Callable[[Any, Any], Any]:
    arm = optional_arm(cls)
    inner = _converter.get_structure_hook(arm)
    return lambda value, _: None if value is None else inner(value, arm)


def _optional_unstructure(cls: Any) -> Callable[[Any], Any]:
    inner = _converter.get_unstructure_hook(optional_arm(cls))
    return lambda value: None if value is None else inner(value)


def _load_enum(value: Any, cls: Any) -> Any:
    """A stored value to its member: the member map first (where ``cls(value)`` looks
    first too, without the call: a ninth of its cost), ``cls(value)`` for anything else, so
    an unknown value raises as it did. Every state and status of every row read comes here."""
    try:
        return cls._value2member_map_[value]
    except (KeyError, TypeError):  # not a member's value, or not hashable
        return cls(value)


# StrEnum before str: otherwise the str pass-through would keep the member.
_converter.register_unstructure_hook(StrEnum, lambda v: v.value)
# Class hooks: cattrs' own for Enum (and for str, which a StrEnum also is) would win over a
# predicate.
_converter.register_structure_hook(Enum, _load_enum)
_converter.register_structure_hook(StrEnum, _load_enum)
# A predicate, not a class hook: a class hook for str would also catch the str enums.
_converter.register_structure_hook_func(lambda t: t is str, lambda v, _: v)
_converter.register_structure_hook(datetime, _load_datetime)
_converter.register_unstructure_hook(datetime, _datetime_text)
_JSON_OBJECT = dict[str, Any]
_STR_TUPLE = tuple[str, ...]
_converter.register_structure_hook_func(lambda t: t == _JSON_OBJECT, _load_dict)
_converter.register_unstructure_hook_func(lambda t: t == _JSON_OBJECT, canonical_json)
_converter.register_structure_hook_func(lambda t: t == _STR_TUPLE, _load_str_tuple)
_converter.register_unstructure_hook_func(
    lambda t: t == _STR_TUPLE, lambda v: canonical_json(list(v))
)
_converter.register_structure_hook_factory(
    lambda t: optional_arm(t) is not None, _optional_structure
)
_converter.register_unstructure_hook_factory(
    lambda t: optional_arm(t) is not None, _optional_unstructure
)


_defaults: dict[type[Any], bool] = {}


def _has_defaults(cls: type[Any]) -> bool:
    found = _defaults.get(cls)
    if found is None:
        found = _defaults[cls] = not attrs.has(cls) or any(
            f.default is not attrs.NOTHING for f in attrs.fields(cls)
        )
    return found


#: The table each record type is stored in, for :class:`DamagedRow`.
TABLES: dict[str, str] = {
    "WorkflowDefinition": "workflow_definitions",
    "WorkflowStep": "workflow_steps",
    "Notification": "notifications",
    "WorkflowRun": "workflow_runs",
    "Delivery": "deliveries",
    "DeliveryEvent": "delivery_events",
    "WorkflowTransition": "workflow_transitions",
    "Signal": "signals",
    "SignalMark": "signal_marks",
    "Erasure": "erasures",
}

# What a damaged value raises while a row is converted (json, fromisoformat, enums, attrs
# converters, a nesting deep enough to exhaust the parser).
_DAMAGE = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


def damaged(cls: type[Any], row: Any, exc: BaseException) -> DamagedRow:
    """The :class:`DamagedRow` of a row of ``cls`` whose conversion raised ``exc``."""
    try:
        row_id = row[0] if not isinstance(row, Mapping) else row.get("id")
    except (IndexError, KeyError, TypeError):
        row_id = None
    problem = (
        str(exc) if isinstance(exc, _Shape) else f"a value does not read ({type(exc).__name__})"
    )
    return DamagedRow(TABLES.get(cls.__name__, cls.__name__), row_id, problem)


#: A timestamp as the store writes it (fixed width, UTC), for SQL that must skip damaged
#: text: ``column GLOB WELL_FORMED_TIME``.
WELL_FORMED_TIME = (
    "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
    ".[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'"
)


def time_of(value: Any, table: str, row_id: object) -> datetime:
    """A stored instant read back; :class:`DamagedRow` naming the row when it is not one."""
    try:
        return _load_datetime(value)
    except _DAMAGE:
        raise DamagedRow(table, row_id, "holds a time that does not parse") from None


def from_row(cls: type[T], row: Mapping[str, Any]) -> T:
    """Build a record of type ``cls`` from a row whose keys are its field names
    (a ``sqlite3.Row`` or any mapping); :class:`DamagedRow` when a value is damaged."""
    if type(row) is not dict and _has_defaults(cls):
        # cattrs asks ``name in row`` for a field with a default, and ``in`` on a
        # sqlite3.Row looks at the values, not the column names.
        row = dict(row)
    try:
        return _converter.structure(row, cls)
    except _DAMAGE as exc:
        raise damaged(cls, row, exc) from None


#: Field types whose column value is the field value: a reader (and a writer) passes them
#: through.
AS_STORED = (str, int, str | None, int | None)
_readers: dict[type[Any], Callable[[Sequence[Any]], Any]] = {}


def _reader(cls: type[Any]) -> Callable[[Sequence[Any]], Any]:
    """The function that reads a row of :func:`columns` ``(cls)`` into a record (a row may
    stop short of the last fields, which then take their defaults).

    For each row width it meets, it generates a reader once, as attrs generates
    ``__init__``: one expression per column (the value itself, its hook, or for ``X | None``
    ``None`` or the hook of ``X``), so a row costs one call per converted value and the
    record's constructor, with no loop, copy or keyword dict."""
    fields, positional = _layout(cls)
    by_width: dict[int, Callable[[Sequence[Any]], Any]] = {}

    def read(row: Sequence[Any]) -> Any:
        width = len(row)
        found = by_width.get(width)
        if found is None:
            found = by_width[width] = _generated(cls, fields[:width], positional)
        return found(row)

    return read


def reading(cls: type[T]) -> Callable[[Sequence[Any]], T | Exception]:
    """A function from a row of :func:`columns` ``(cls)`` to its record, or to the error that
    kept it from being read (a :class:`DamagedRow` for a damaged value), for the scans of
    ``verify()``, which report a bad row and go on. It calls the generated reader of the
    row's width itself: a scan of every row of the store pays one call per row less than
    through :func:`from_values`, and no ``try`` of its own."""
    fields, positional = _layout(cls)
    by_width: dict[int, Callable[[Sequence[Any]], Any]] = {}

    def read(row: Sequence[Any]) -> T | Exception:
        found = by_width.get(len(row))
        if found is None:
            found = by_width[len(row)] = _generated(cls, fields[: len(row)], positional)
        try:
            record: T = found(row)
        except _DAMAGE as exc:
            return damaged(cls, row, exc)
        except Exception as exc:  # a row a host rewrote by hand: verify reports it
            return exc
        return record

    return read


def _layout(cls: type[Any]) -> tuple[tuple[attrs.Attribute[Any], ...], int]:
    """A record type's fields and how many of them come first as positional ones."""
    fields = attrs.fields(attrs.resolve_types(cls))
    positional = sum(1 for f in fields if not f.kw_only)
    if any(not f.kw_only for f in fields[positional:]):
        raise TypeError(f"{cls.__name__}: keyword-only fields must come last")
    return tuple(fields), positional


def _generated(
    cls: type[Any], fields: Sequence[attrs.Attribute[Any]], positional: int
) -> Callable[[Sequence[Any]], Any]:
    """A reader of rows of exactly these leading fields of ``cls`` (see :func:`_reader`)."""
    scope: dict[str, Any] = {"cls": cls}
    arguments = []
    for i, f in enumerate(fields):
        value = f"row[{i}]"
        if f.type not in AS_STORED:
            arm = optional_arm(f.type)
            hook_type = f.type if arm is None else arm
            scope[f"h{i}"] = _converter.get_structure_hook(hook_type)
            scope[f"t{i}"] = hook_type
            if arm is None:
                value = f"h{i}(row[{i}], t{i})"
            else:
                value = f"(None if row[{i}] is None else h{i}(row[{i}], t{i}))"
        arguments.append(value if i < positional else f"{f.name}={value}")
    source = f"def read(row):\n    return cls({', '.join(arguments)})\n"
    name = f"<chimeway_lite reader of {cls.__name__}, {len(fields)} columns>"
    exec(compile(source, name, "exec"), scope)
    read: Callable[[Sequence[Any]], Any] = scope["read"]
    return read


def from_values(cls: type[T], row: Sequence[Any]) -> T:
    """Build a record of type ``cls`` from a row of :func:`columns` ``(cls)``, by position
    (a row of fewer columns leaves the last fields at their defaults).

    The hot paths read rows this way: a ``sqlite3.Row`` finds a value by name
    with a linear, case-insensitive search of its columns, by index at once; and only the
    fields that need a rule (JSON, instants, enums) are converted at all.
    """
    read = _readers.get(cls)
    if read is None:
        read = _readers[cls] = _reader(cls)
    try:
        record: T = read(row)
    except _DAMAGE as exc:
        raise damaged(cls, row, exc) from None
    return record


def each(cls: type[T], rows: Sequence[Sequence[Any]]) -> list[T | DamagedRow]:
    """:func:`from_values` of every row, a damaged row standing as its :class:`DamagedRow`
    (for reads that serve many runs: one damaged row must not stop the others)."""
    read = _readers.get(cls)
    if read is None:
        read = _readers[cls] = _reader(cls)
    found: list[T | DamagedRow] = []
    for row in rows:
        try:
            found.append(read(row))
        except _DAMAGE as exc:
            found.append(damaged(cls, row, exc))
    return found


def columns(cls: type[Any], alias: str = "", *, stop: str | None = None) -> str:
    """The SELECT list that :func:`from_values` reads: every field's column in field order
    (up to, not including, the field ``stop``: the rest are not columns), each prefixed with
    ``alias.`` when given."""
    prefix = f"{alias}." if alias else ""
    names = [f.name for f in attrs.fields(cls)]
    if stop is not None:
        names = names[: names.index(stop)]
    return ", ".join(prefix + name for name in names)


def unstructure_hook(field_type: Any) -> Callable[[Any], Any]:
    """The rule that turns a field value of ``field_type`` into its column value (what
    :func:`to_row` applies to it)."""
    hook: Callable[[Any], Any] = _converter.get_unstructure_hook(field_type)
    return hook


def to_row(record: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The column values of a record (datetimes as text, dicts and tuples as JSON)."""
    row: dict[str, Any] = _converter.unstructure(record)
    for name in exclude:
        row.pop(name, None)
    return row


def value_rule(field_type: Any, value: str, scope: dict[str, Any], name: str) -> str:
    """The Python expression that turns the expression ``value`` (a field of
    ``field_type``) into its column value, for generated writers: the value itself, its rule
    (a hook bound in ``scope`` as ``name``; a str enum's ``.value`` inline), or for ``X |
    None`` ``None`` or the rule of ``X``."""
    if field_type in AS_STORED:
        return value
    arm = optional_arm(field_type)
    inner = field_type if arm is None else arm
    if isinstance(inner, type) and issubclass(inner, StrEnum):
        rule = f"{value}.value"  # the enum's rule, without a call
    else:
        scope[name] = unstructure_hook(inner)
        rule = f"{name}({value})"
    return rule if arm is None else f"(None if {value} is None else {rule})"


_changes: dict[tuple[type[Any], tuple[str, ...]], Callable[[Any, Any], dict[str, Any]]] = {}


def changed_columns(before: T, after: T, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The column values of ``after`` that differ from ``before`` (two records of one type),
    in field order, without the fields ``exclude``.

    A field holding the very same object is unchanged without a comparison, which is what
    ``attrs.evolve`` leaves; only changed fields are converted, so an unchanged JSON column
    is not serialised again. The comparison is generated once per (type, ``exclude``), one
    test per field, as the readers are.
    """
    changes = _changes.get((type(after), exclude))
    if changes is None:
        changes = _changes[type(after), exclude] = _generated_changes(type(after), exclude)
    return changes(before, after)


def _generated_changes(
    cls: type[Any], exclude: tuple[str, ...]
) -> Callable[[Any, Any], dict[str, Any]]:
    scope: dict[str, Any] = {}
    lines = ["def changes(b, a):", "    found = {}"]
    for i, f in enumerate(attrs.fields(attrs.resolve_types(cls))):
        if f.name in exclude:
            continue
        new, old = f"a.{f.name}", f"b.{f.name}"
        lines.append(f"    if {new} is not {old} and {new} != {old}:")
        lines.append(f"        found[{f.name!r}] = {value_rule(f.type, new, scope, f'h{i}')}")
    lines.append("    return found")
    label = f"<chimeway_lite changes of {cls.__name__}>"
    exec(compile("\n".join(lines) + "\n", label, "exec"), scope)
    changes: Callable[[Any, Any], dict[str, Any]] = scope["changes"]
    return changes


def field_names(cls: type[Any], *, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The column names of a record type, in field order."""
    return tuple(f.name for f in attrs.fields(cls) if f.name not in exclude)
