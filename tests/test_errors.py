"""The error tree (CONTRACT §9): one base, leaves that keep their fields, pickling, and the
errors the store raises for bad input."""

from __future__ import annotations

import inspect
import pickle
import sqlite3
from typing import Any

import pytest
from backends import sql
from factories import trigger
from strategies import table_dump

import chimeway_lite
from chimeway_lite import (
    ChimewayError,
    ConstraintFailed,
    DamagedRow,
    DefinitionConflict,
    DeliveryNotFound,
    InvalidArgument,
    InvalidSignal,
    InvalidTransition,
    InvalidWorkflow,
    RunNotFound,
    SchemaMismatch,
    StepNotFound,
    StorageError,
    Store,
    StoreBusy,
    UnitClosed,
)
from chimeway_lite.core import errors

# One instance of every error, with the fields it must keep.
INSTANCES: list[tuple[ChimewayError, dict[str, Any]]] = [
    (
        InvalidWorkflow("steps[0](a).channel", "must not be blank", step="a", rule=None),
        {"path": "steps[0](a).channel", "problem": "must not be blank", "step": "a", "rule": None},
    ),
    (
        InvalidWorkflow("steps[1](b).progress[2](stop).outcome", "bad", step="b", rule=2),
        {"path": "steps[1](b).progress[2](stop).outcome", "step": "b", "rule": 2},
    ),
    (DefinitionConflict("escalation", 3), {"workflow_key": "escalation", "workflow_version": 3}),
    (RunNotFound("r-1"), {"run_id": "r-1"}),
    (StepNotFound("s-1"), {"step": "s-1"}),
    (DeliveryNotFound("d-1"), {"delivery_id": "d-1"}),
    (InvalidSignal("event_name", "must not be blank"), {"field": "event_name"}),
    (
        InvalidTransition(
            "completed is terminal", run_id="r", from_state="completed", to_state="active"
        ),
        {"run_id": "r", "from_state": "completed", "to_state": "active"},
    ),
    (
        InvalidArgument("limit", "must be >= 0, got -1"),
        {"name": "limit", "problem": "must be >= 0, got -1"},
    ),
    (StoreBusy("x.db", 2.5), {"path": "x.db", "timeout": 2.5}),
    (SchemaMismatch("x.db", "newer"), {"path": "x.db", "problem": "newer"}),
    (StorageError("x.db", "the disk is full"), {"path": "x.db", "problem": "the disk is full"}),
    (
        ConstraintFailed("x.db", "UNIQUE constraint failed"),
        {"path": "x.db", "problem": "UNIQUE constraint failed"},
    ),
    (UnitClosed(), {"what": "this transaction"}),
    (
        DamagedRow("workflow_runs", "r-1", "holds a JSON list where an object belongs"),
        {
            "table": "workflow_runs",
            "row_id": "r-1",
            "problem": "holds a JSON list where an object belongs",
        },
    ),
]

VALUE_ERRORS = {InvalidWorkflow, InvalidSignal, InvalidTransition, InvalidArgument}
LOOKUP_ERRORS = {RunNotFound, StepNotFound, DeliveryNotFound}


def leaves() -> set[type[ChimewayError]]:
    """Every error class the errors module defines, besides the base."""
    return {
        value
        for value in vars(errors).values()
        if inspect.isclass(value)
        and issubclass(value, ChimewayError)
        and value is not ChimewayError
    }


def test_every_leaf_has_an_instance_here() -> None:
    assert {type(error) for error, _ in INSTANCES} == leaves()


@pytest.mark.parametrize(("error", "fields"), INSTANCES, ids=lambda e: type(e).__name__)
def test_leaves_keep_their_fields_as_attributes(
    error: ChimewayError, fields: dict[str, Any]
) -> None:
    for name, value in fields.items():
        assert getattr(error, name) == value
    assert isinstance(error, ChimewayError)
    assert str(error) == error.message
    assert error.args == (error.message,)


@pytest.mark.parametrize(("error", "fields"), INSTANCES, ids=lambda e: type(e).__name__)
def test_errors_pickle_with_their_fields(error: ChimewayError, fields: dict[str, Any]) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    for name, value in fields.items():
        assert getattr(copy, name) == value


@pytest.mark.parametrize(
    "cls", sorted(leaves(), key=lambda c: c.__name__), ids=lambda c: c.__name__
)
def test_the_kind_of_each_leaf(cls: type[ChimewayError]) -> None:
    assert issubclass(cls, ChimewayError)
    assert issubclass(cls, ValueError) == (cls in VALUE_ERRORS)
    assert issubclass(cls, LookupError) == (cls in LOOKUP_ERRORS)
    assert not issubclass(cls, sqlite3.Error)


def test_messages_say_what_is_wrong() -> None:
    assert str(RunNotFound("r-1")) == "workflow run 'r-1' not found"
    assert "escalation" in str(DefinitionConflict("escalation", 3))
    assert "version 3" in str(DefinitionConflict("escalation", 3))
    assert "nothing was written" in str(StoreBusy("x.db", 1.0))
    assert str(InvalidWorkflow("workflow_key", "must not be blank")) == (
        "invalid workflow at workflow_key: must not be blank"
    )


def test_the_tree_in_the_docstring_names_every_leaf() -> None:
    assert errors.__doc__ is not None
    for cls in leaves():
        assert f"── {cls.__name__} " in errors.__doc__, cls.__name__


def test_every_leaf_is_exported() -> None:
    for cls in leaves() | {ChimewayError}:
        assert getattr(chimeway_lite, cls.__name__) is cls
        assert cls.__name__ in chimeway_lite.__all__
        assert cls.__doc__


# -- what the store raises for bad input (CONTRACT §9) -------------------------------------------


def test_record_outcome_of_an_unknown_delivery_is_a_lookup_error(memory_store: Store) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    before = table_dump(memory_store)
    with pytest.raises(ChimewayError) as caught:
        memory_store.record_outcome(missing, "succeeded")
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, DeliveryNotFound)
    assert caught.value.delivery_id == missing
    assert table_dump(memory_store) == before


@pytest.mark.parametrize("status", ["delivered", "SUCCEEDED", "", None, 3])
def test_an_unknown_status_is_a_value_error(memory_store: Store, status: Any) -> None:
    result = trigger(memory_store)
    before = table_dump(memory_store)
    with pytest.raises(ChimewayError) as caught:
        memory_store.record_outcome(result.deliveries[0].id, status)
    assert isinstance(caught.value, ValueError)
    assert caught.value.name == "status"
    assert table_dump(memory_store) == before


def test_a_definition_without_steps_is_an_invalid_workflow(memory_store: Store) -> None:
    with pytest.raises(InvalidWorkflow):
        memory_store.upsert_definition(
            "n", {"workflow_key": "w", "workflow_version": 1, "steps": []}
        )


@pytest.mark.sqlite_only
def test_no_sqlite3_exception_leaves_the_store(memory_store: Store) -> None:
    """A constraint the store does not check itself still comes out as a ChimewayError."""
    result = trigger(memory_store)
    with pytest.raises(ChimewayError) as caught, memory_store.transaction():
        sql(memory_store).execute(
            "UPDATE workflow_transitions SET reason = 'x' WHERE workflow_run_id = ?",
            (result.run.id,),
        )
    assert not isinstance(caught.value, sqlite3.Error)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
