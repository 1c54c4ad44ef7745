"""The check of a host's JSON (trigger data, signal payloads, host contexts): its quick path
(whole containers at a time) answers exactly what the value-by-value walk answers, for every
value, good or bad; only its speed differs."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chimeway_lite.core.arguments import (
    MAX_JSON_DEPTH,
    _json_problem,
    _plain_json_problem,
    _surely_plain_json,
    require_data,
)
from chimeway_lite.core.errors import InvalidArgument


class _Text(str):
    """A str subclass: plain JSON to the walk (isinstance), not to the quick path."""


class _Number(enum.IntEnum):
    ONE = 1


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included
    st.text(),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", _Text("sub"), _Number.ONE, b"bytes"]),
    st.sampled_from([{1, 2}, object(), 1j]),
)
_keys = st.one_of(
    st.text(max_size=5),
    st.sampled_from(["\ud800", _Text("k"), 1, None, (1,), 2.5]),
)


def _nested(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(_keys, children, max_size=5),
    )


_values = st.recursive(_leaves, _nested, max_leaves=40)


def _deep(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


@settings(max_examples=2000)
@given(_values)
def test_the_quick_path_answers_what_the_walk_answers(value: Any) -> None:
    assert _plain_json_problem(value) == _json_problem(value)
    if _surely_plain_json(value):
        assert _json_problem(value) is None


@pytest.mark.parametrize(
    "value",
    [
        {"a": "\ud800"},
        {"\ud800": 1},
        ["ok", "\udfff"],
        {"a": ["x", "\ud800"]},  # a surrogate behind good text, in a list of text
        ["\ud800", "\udc00"],  # two lone halves that would pair if joined as UTF-16
        {"n": float("nan")},
        [1, float("inf")],
        {"s": {1, 2}},
        {1: "int key"},
        {"b": b"bytes"},
        _deep(MAX_JSON_DEPTH + 1),
        {"m": _Text("a str subclass")},  # plain JSON, but only the walk says so
        {"e": _Number.ONE},
    ],
)
def test_the_quick_path_is_never_sure_of_a_value_it_has_not_seen_through(value: Any) -> None:
    assert _surely_plain_json(value) is False
    assert _plain_json_problem(value) == _json_problem(value)


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"a": None, "b": True, "c": 1, "d": 1.5, "e": "text", "f": "é€😀"},
        {"items": [f"item-{i}" for i in range(1000)], "mixed": [1, "a", None, 2.5, [], {}]},
        _deep(MAX_JSON_DEPTH),
        ("a", ("b", 1)),
    ],
)
def test_the_quick_path_is_sure_of_plain_json(value: Any) -> None:
    assert _surely_plain_json(value) is True
    assert _json_problem(value) is None


def test_depth_is_counted_as_the_walk_counts_it() -> None:
    assert _plain_json_problem(_deep(MAX_JSON_DEPTH)) is None
    assert _plain_json_problem(_deep(MAX_JSON_DEPTH + 1)) == (
        f"is nested deeper than {MAX_JSON_DEPTH} levels"
    )


def test_a_dict_that_holds_itself_is_too_deep_not_an_endless_loop() -> None:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(InvalidArgument, match="nested deeper than"):
        require_data(looped, "data")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"a": "\ud800"}, "holds text that must be valid Unicode"),
        ({"\ud800": 1}, "has a key that must be valid Unicode"),
        ({"n": float("nan")}, "holds a number that is not finite"),
        ({1: 1}, "has a key of type int"),
        ({"s": {1}}, "holds a set, not a JSON value"),
    ],
)
def test_each_problem_is_named_as_before(data: dict[Any, Any], problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem) as raised:
        require_data(data, "data")
    assert raised.value.name == "data"
