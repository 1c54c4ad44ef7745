"""Deep-frozen JSON values, so that a declaration cannot change after it was built.

:func:`freeze` turns dicts into :class:`FrozenDict` and lists (and tuples) into
:class:`FrozenList`, all the way down; :func:`thaw` gives plain dicts and lists back (what
JSON encoders and the stored rows use). A frozen value compares equal to the plain value it
was made from — ``FrozenDict({"a": [1]}) == {"a": [1]}`` — so declarations still equal their
stored form, and it is hashable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload


class FrozenDict(Mapping[str, Any]):
    """An immutable dict of frozen JSON values; equal to any mapping with equal items."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] = ()) -> None:  # type: ignore[assignment]
        self._data = dict(data)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return repr(self._data)


class FrozenList(Sequence[Any]):
    """An immutable list of frozen JSON values; equal to a list or tuple of equal items."""

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[Any] = ()) -> None:
        self._items = tuple(items)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> FrozenList: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return FrozenList(self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenList):
            return self._items == other._items
        if isinstance(other, (list, tuple)):
            return self._items == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return repr(list(self._items))


def freeze(value: Any) -> Any:
    """``value`` with every dict and list (or tuple) replaced by its frozen form."""
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple, FrozenList)):
        return FrozenList([freeze(v) for v in value])
    return value


def thaw(value: Any) -> Any:
    """``value`` with every mapping a plain dict and every list or tuple a plain list."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, FrozenList)):
        return [thaw(v) for v in value]
    return value
