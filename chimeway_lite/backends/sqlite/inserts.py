"""Multi-row INSERTs of records: one statement for many rows, values by position.

An :class:`Insert` knows a table, its columns (record field names) and how a record becomes
its column values — the rules of :mod:`~chimeway_lite.backends.sqlite.convert`, applied only
to the fields that need one, in a function generated for the record type (no dict per row,
no named parameters to look up). Rows are written in their order, several to a statement:
``INSERT … VALUES (?, …), (?, …)``, so a trigger's two trace rows or a batch's history rows
cost one statement, not one each. The rowids (and an AUTOINCREMENT column) come out in the
same order as inserting row by row.

Statement sizes are powers of two up to :data:`MOST_ROWS` (a count is split into them: 100
rows are 64 + 32 + 4), so each table has a handful of distinct statements for the
connection's statement cache, whatever the counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from . import convert

#: The most rows one statement takes: 128 rows of the widest record (17 columns) are far
#: below SQLite's limit on parameters (32,766).
MOST_ROWS = 128


def _chunks(count: int) -> list[int]:
    """``count`` as a sum of powers of two of at most :data:`MOST_ROWS`, largest first."""
    sizes = []
    while count >= MOST_ROWS:
        sizes.append(MOST_ROWS)
        count -= MOST_ROWS
    size = MOST_ROWS
    while count:
        if count >= size:
            sizes.append(size)
            count -= size
        size //= 2
    return sizes


class Insert:
    """The INSERT of one record type into one table (see the module docstring)."""

    __slots__ = ("_head", "_sql", "columns", "one", "values")

    def __init__(self, table: str, cls: type[Any], *, exclude: tuple[str, ...] = ()) -> None:
        self.columns = convert.field_names(cls, exclude=exclude)
        #: The column values of one record, in :attr:`columns` order.
        self.values = values_of(cls, self.columns)
        self._head = f"INSERT INTO {table} ({', '.join(self.columns)}) VALUES "
        self._sql: dict[int, str] = {}
        #: The statement inserting one row (the most common count, kept at hand).
        self.one = self.sql(1)

    def sql(self, rows: int) -> str:
        """The statement inserting ``rows`` rows."""
        found = self._sql.get(rows)
        if found is None:
            one = "(" + ", ".join("?" * len(self.columns)) + ")"
            found = self._sql[rows] = self._head + ", ".join([one] * rows)
        return found

    def statements(self, records: Sequence[Any]) -> list[tuple[str, list[Any]]]:
        """(statement, parameters) pairs that insert ``records`` in order."""
        row = self.values
        done = 0
        found = []
        for size in _chunks(len(records)):
            params: list[Any] = []
            for record in records[done : done + size]:
                params += row(record)
            found.append((self.sql(size), params))
            done += size
        return found


def values_of(cls: type[Any], names: Sequence[str]) -> Callable[[Any], list[Any]]:
    """A function from a record of ``cls`` to the column values of the fields ``names``, in
    that order: the values of :func:`~.convert.to_row`, as a list.

    It is generated once per (type, fields), as the readers of :mod:`.convert` are: one
    expression per column (the attribute itself, its rule, or for ``X | None`` ``None`` or
    the rule of ``X``), so a record costs one call per converted value and no loop, copy
    or keyword dict."""
    fields = {f.name: f for f in attrs.fields(attrs.resolve_types(cls))}
    if len(names) < 2:
        raise ValueError("a record insert has two columns or more")
    scope: dict[str, Any] = {}
    items = [
        convert.value_rule(fields[name].type, f"r.{name}", scope, f"h{i}")
        for i, name in enumerate(names)
    ]
    source = f"def values(r):\n    return [{', '.join(items)}]\n"
    label = f"<chimeway_lite writer of {cls.__name__}, {len(names)} columns>"
    exec(compile(source, label, "exec"), scope)
    values: Callable[[Any], list[Any]] = scope["values"]
    return values
