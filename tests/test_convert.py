"""The one converter between rows and records, and the fixed-width timestamp text."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import RECORDS, ROW_TABLES, aware_datetimes, json_objects, timestamps, utc_datetimes

from chimeway_lite import (
    Delivery,
    DeliveryStatus,
    InvalidArgument,
    RunState,
    WorkflowRun,
    WorkflowTransition,
)
from chimeway_lite.backends.sqlite import convert
from chimeway_lite.core import records
from chimeway_lite.core import timestamps as ts
from chimeway_lite.core.text import canonical_json

TEXT_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00")


# -- timestamps -----------------------------------------------------------------------------------


@given(timestamps)
def test_timestamp_text_is_32_characters_with_six_fractional_digits(instant: datetime) -> None:
    text = ts.to_text(instant)
    assert len(text) == 32
    assert TEXT_FORM.fullmatch(text), text


@given(timestamps)
def test_timestamp_text_round_trips_to_an_equal_utc_datetime(instant: datetime) -> None:
    back = ts.from_text(ts.to_text(instant))
    assert back == instant
    assert back.microsecond == instant.microsecond
    assert back.utcoffset() == timedelta(0)


def test_zero_microseconds_keep_their_six_digits() -> None:
    instant = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    assert instant.isoformat() == "2026-01-05T09:30:00+00:00"  # what we must not store
    assert ts.to_text(instant) == "2026-01-05T09:30:00.000000+00:00"
    assert ts.to_text(instant.replace(microsecond=7)) == "2026-01-05T09:30:00.000007+00:00"


@given(timestamps, timestamps)
def test_text_order_is_time_order(a: datetime, b: datetime) -> None:
    text_a, text_b = ts.to_text(a), ts.to_text(b)
    assert (text_a < text_b) == (a < b)
    assert (text_a == text_b) == (a == b)


@given(aware_datetimes)
def test_any_offset_is_stored_as_the_same_instant_in_utc(instant: datetime) -> None:
    text = ts.to_text(instant)
    assert len(text) == 32
    assert text.endswith("+00:00")
    assert ts.from_text(text) == instant


@given(st.lists(st.tuples(aware_datetimes, st.booleans()), min_size=1, max_size=12))
def test_the_text_of_each_instant_written_is_its_own_whatever_came_before(
    steps: list[tuple[datetime, bool]],
) -> None:
    # The writer remembers the last two instants' texts (by identity, then by equality:
    # equal instants of other objects or other offsets share the UTC text). A sequence of
    # new, repeated and equal-but-other instants each gets exactly its own text.
    write = convert.unstructure_hook(datetime)
    seen: list[datetime] = []
    for instant, again in steps:
        if again and seen:
            earlier = seen[len(seen) // 2]
            instant = earlier + timedelta(0)  # an equal instant, another object
            if instant.tzinfo is UTC:
                instant = instant.astimezone(timezone(timedelta(hours=3)))  # another offset
        seen.append(instant)
        assert write(instant) == ts.to_text(instant)
        assert write(instant) == ts.to_text(instant)  # and again, from the memory


def test_extreme_years_keep_the_width() -> None:
    first = datetime(1, 1, 1, tzinfo=UTC)
    last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert ts.to_text(first) == "0001-01-01T00:00:00.000000+00:00"
    assert ts.to_text(last) == "9999-12-31T23:59:59.999999+00:00"
    assert ts.from_text(ts.to_text(first)) == first


@pytest.mark.parametrize("value", [datetime(2026, 1, 5), "2026-01-05", 1767605400, None])
def test_require_utc_refuses_naive_and_non_datetimes(value: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ts.require_utc(value, "when")
    assert caught.value.name == "when"
    assert isinstance(caught.value, ValueError)


def test_require_utc_converts_an_offset_to_utc() -> None:
    local = datetime(2026, 1, 5, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    converted = ts.require_utc(local, "when")
    assert converted == local
    assert converted.tzinfo is UTC
    assert converted.hour == 9


# -- rows <-> records ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(RECORDS), ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_record_round_trips_through_a_row(cls: type[Any], data: st.DataObject) -> None:
    record = data.draw(RECORDS[cls])
    row = convert.to_row(record)
    assert convert.from_row(cls, row) == record
    # A row survives JSON (what a tool reading the table sees): only plain values in it.
    assert convert.from_row(cls, json.loads(json.dumps(row))) == record


@pytest.mark.parametrize("cls", list(ROW_TABLES), ids=lambda c: c.__name__)
@given(data=st.data())
def test_row_columns_hold_only_sql_values(cls: type[Any], data: st.DataObject) -> None:
    """A table row holds str/int/None only: never a datetime, enum member, dict or tuple,
    which sqlite3 would refuse or store in another form (CONTRACT §8 storage layout)."""
    row = convert.to_row(data.draw(RECORDS[cls]), exclude=("steps",))
    assert list(row) == [f.name for f in attrs.fields(cls) if f.name != "steps"]
    for name, value in row.items():
        assert value is None or type(value) in (str, int), (name, value)


@given(utc_datetimes(), utc_datetimes())
def test_datetime_columns_are_fixed_width_text(started: datetime, last: datetime) -> None:
    run = WorkflowRun(
        id="r",
        tenant_id="t",
        notification_id="n",
        workflow_definition_id="d",
        current_step_id="s",
        state=RunState.WAITING,
        status_reason="waiting_for_step_progression",
        status_context={},
        started_at=started,
        last_transition_at=last,
        suspended_until=None,
        pending_signals=(),
        terminal_reason=None,
    )
    row = convert.to_row(run)
    assert row["started_at"] == ts.to_text(started)
    assert len(row["last_transition_at"]) == 32
    assert row["suspended_until"] is None


def test_enum_columns_hold_the_plain_string_value() -> None:
    instant = datetime(2026, 1, 5, tzinfo=UTC)
    transition = WorkflowTransition(
        id="x",
        seq=1,
        workflow_run_id="r",
        workflow_step_id=None,
        delivery_id=None,
        from_state=RunState.WAITING,
        to_state=RunState.ACTIVE,
        reason="signal_received",
        context={"event_name": "read"},
        inserted_at=instant,
    )
    row = convert.to_row(transition)
    assert type(row["from_state"]) is str and row["from_state"] == "waiting"
    assert type(row["to_state"]) is str and row["to_state"] == "active"
    assert row["context"] == '{"event_name":"read"}'
    back = convert.from_row(WorkflowTransition, row)
    assert back.to_state is RunState.ACTIVE
    assert back.from_state is RunState.WAITING


def test_json_columns_and_tuples() -> None:
    instant = datetime(2026, 1, 5, tzinfo=UTC)
    delivery = Delivery(
        id="d",
        tenant_id="t",
        notification_id="n",
        channel="email",
        status=DeliveryStatus.CANCELLED,
        suppression_reason="bounced",
        workflow_run_id=None,
        workflow_step_id=None,
        inserted_at=instant,
        updated_at=instant,
    )
    assert convert.to_row(delivery)["status"] == "cancelled"
    run_row = {
        "id": "r",
        "tenant_id": "t",
        "notification_id": "n",
        "workflow_definition_id": "d",
        "current_step_id": "s",
        "state": "waiting",
        "status_reason": "x",
        "status_context": '{"b":1,"a":[1,2]}',
        "started_at": "2026-01-05T09:30:00.000000+00:00",
        "last_transition_at": "2026-01-05T09:30:00.000001+00:00",
        "suspended_until": None,
        "pending_signals": '["read","clicked"]',
        "terminal_reason": None,
    }
    run = convert.from_row(WorkflowRun, run_row)
    assert run.status_context == {"a": [1, 2], "b": 1}
    assert run.pending_signals == ("read", "clicked")
    assert run.state is RunState.WAITING
    assert run.last_transition_at == datetime(2026, 1, 5, 9, 30, 0, 1, tzinfo=UTC)
    again = convert.to_row(run)
    assert again["status_context"] == '{"a":[1,2],"b":1}'  # canonical: sorted, compact
    assert again["pending_signals"] == '["read","clicked"]'  # order kept


@given(json_objects)
def test_dumps_is_canonical_json(value: dict[str, Any]) -> None:
    text = canonical_json(value)
    assert json.loads(text) == value
    assert text == json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    assert canonical_json(dict(reversed(list(value.items())))) == text


@pytest.mark.parametrize("value", [{"x": float("nan")}, {"x": float("inf")}, {"x": object()}])
def test_dumps_refuses_what_is_not_json(value: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        canonical_json(value)


def test_field_names_follow_the_record() -> None:
    assert convert.field_names(WorkflowRun)[:3] == ("id", "tenant_id", "notification_id")
    assert "context" not in convert.field_names(WorkflowTransition, exclude=("context",))
    assert len(convert.field_names(WorkflowRun)) == len(attrs.fields(WorkflowRun))


def test_to_row_exclude_drops_columns() -> None:
    instant = datetime(2026, 1, 5, tzinfo=UTC)
    delivery = Delivery(
        "d", "t", "n", "email", DeliveryStatus.PENDING, None, None, None, instant, instant
    )
    row = convert.to_row(delivery, exclude=("inserted_at", "no_such_field"))
    assert "inserted_at" not in row
    assert row["updated_at"] == "2026-01-05T00:00:00.000000+00:00"


def test_the_global_cattrs_converter_is_left_alone() -> None:
    instant = datetime(2026, 1, 5, tzinfo=UTC)
    convert.to_row(
        WorkflowTransition("x", 1, "r", None, None, None, RunState.ACTIVE, "r", {}, instant)
    )
    assert cattrs.global_converter.unstructure(instant) is instant
    assert cattrs.global_converter.unstructure({"a": 1}) == {"a": 1}


def test_every_record_type_has_a_strategy() -> None:
    """A new record type must join the round trips: give it a strategy in strategies.py."""
    record_types = {
        value
        for value in vars(records).values()
        if isinstance(value, type) and attrs.has(value) and value.__module__ == records.__name__
    }
    assert record_types == set(RECORDS)
