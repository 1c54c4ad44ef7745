"""Multi-row INSERTs of records: the values of to_row, by position, several rows a statement."""

from __future__ import annotations

import sqlite3
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import RECORDS

from chimeway_lite import Delivery, Notification, WorkflowRun, WorkflowTransition
from chimeway_lite.backends.sqlite import convert
from chimeway_lite.backends.sqlite.inserts import MOST_ROWS, Insert, _chunks, values_of


@attrs.frozen
class _Row:
    id: str
    tenant_id: str


INSERTED = (
    (Notification, ()),
    (WorkflowRun, ()),
    (WorkflowTransition, ()),
    (Delivery, ("data", "config")),
)


@pytest.mark.parametrize(("cls", "exclude"), INSERTED, ids=[c.__name__ for c, _ in INSERTED])
@given(data=st.data())
def test_the_values_of_a_record_are_those_of_to_row(
    cls: type[Any], exclude: tuple[str, ...], data: st.DataObject
) -> None:
    record = data.draw(RECORDS[cls])
    names = convert.field_names(cls, exclude=exclude)
    row = convert.to_row(record)
    assert values_of(cls, names)(record) == [row[name] for name in names]


@given(st.integers(min_value=0, max_value=5 * MOST_ROWS))
def test_a_count_is_split_into_powers_of_two_of_at_most_the_limit(count: int) -> None:
    sizes = _chunks(count)
    assert sum(sizes) == count
    assert sizes == sorted(sizes, reverse=True)
    assert all(size <= MOST_ROWS and size & (size - 1) == 0 for size in sizes)


def test_a_record_type_needs_two_columns() -> None:
    with pytest.raises(ValueError, match="two columns"):
        values_of(Notification, ("id",))


@pytest.mark.parametrize("count", [1, 2, 3, 100, MOST_ROWS + 5])
def test_rows_are_inserted_in_order_a_statement_per_chunk(count: int) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE signal_rows (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, tenant_id TEXT)"
    )
    insert = Insert("signal_rows", _Row)
    statements = insert.statements([_Row(f"id-{i}", f"t-{i}") for i in range(count)])
    assert len(statements) == len(_chunks(count))
    for sql, params in statements:
        conn.execute(sql, params)
    rows = conn.execute("SELECT seq, id, tenant_id FROM signal_rows ORDER BY seq").fetchall()
    assert rows == [(i + 1, f"id-{i}", f"t-{i}") for i in range(count)]
    assert insert.sql(2).count("(?, ?)") == 2


def test_nothing_to_insert_is_no_statement() -> None:
    assert Insert("signal_rows", _Row).statements([]) == []


@pytest.mark.parametrize(
    ("cls", "exclude"),
    [(WorkflowRun, ()), (Delivery, ("data", "config"))],
    ids=["WorkflowRun", "Delivery"],
)
@given(data=st.data())
def test_the_changed_columns_are_the_fields_that_differ_as_to_row_writes_them(
    cls: type[Any], exclude: tuple[str, ...], data: st.DataObject
) -> None:
    """The generated comparison of two records (issue 16) finds what a field-by-field
    comparison finds, in field order, each value converted as ``to_row`` converts it; a
    record sharing some of the other's values (as ``attrs.evolve`` leaves them) included."""
    before = data.draw(RECORDS[cls])
    other = data.draw(RECORDS[cls])
    kept = data.draw(st.sets(st.sampled_from(convert.field_names(cls))))
    after = attrs.evolve(other, **{name: getattr(before, name) for name in kept})
    row = convert.to_row(after)
    expected = {
        name: row[name]
        for name in convert.field_names(cls, exclude=exclude)
        if getattr(after, name) != getattr(before, name)
    }
    changes = convert.changed_columns(before, after, exclude=exclude)
    assert changes == expected
    assert list(changes) == list(expected)
    assert convert.changed_columns(before, before, exclude=exclude) == {}
