"""The public surface: ``chimeway_lite.__all__`` and the names and signatures of CONTRACT §11."""

from __future__ import annotations

import inspect
import types
from typing import Any

import pytest

import chimeway_lite
from chimeway_lite import Store

# The names CONTRACT §11 lists.
SPEC_NAMES = [
    # Store, clock, declarations
    "Store", "FakeClock", "Workflow", "Step", "WaitUntil", "OnOutcome", "Stop", "Signal",
    # records
    "WorkflowDefinition", "WorkflowStep", "WorkflowRun", "WorkflowTransition",
    "Notification", "Delivery", "RunExplanation", "StepLinkage", "Progress",
    "TriggerResult", "Resumed",
    # enums
    "RunState", "DeliveryStatus", "Outcome",
    # errors
    "ChimewayError", "InvalidWorkflow", "DefinitionConflict", "RunNotFound", "StepNotFound",
    "InvalidSignal", "InvalidTransition", "StoreBusy", "SchemaMismatch",
    # the ready worker (SPEC §12.5)
    "Worker",
]  # fmt: skip

EMPTY = inspect.Parameter.empty
POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
KEYWORD = inspect.Parameter.KEYWORD_ONLY

# (name, kind, default) of every parameter CONTRACT §11 shows, in order.
SIGNATURES: dict[str, list[tuple[str, Any, Any]]] = {
    "Store": [
        ("path", POSITIONAL, EMPTY),
        ("clock", KEYWORD, None),
        ("busy_timeout", KEYWORD, 5.0),
    ],
    "FakeClock": [("start", POSITIONAL, EMPTY)],
    "FakeClock.advance": [("seconds", POSITIONAL, 0)],
    "Workflow": [
        ("key", POSITIONAL, EMPTY),
        ("version", POSITIONAL, EMPTY),
        ("steps", POSITIONAL, EMPTY),
    ],
    "Step": [
        ("key", POSITIONAL, EMPTY),
        ("order", POSITIONAL, EMPTY),
        ("channel", POSITIONAL, EMPTY),
        ("progress", POSITIONAL, ()),
        ("config", POSITIONAL, None),
    ],
    "WaitUntil": [
        ("delay_seconds", POSITIONAL, EMPTY),
        ("to_step", POSITIONAL, EMPTY),
        ("cancel_signals", POSITIONAL, ()),
    ],
    "OnOutcome": [("outcome", POSITIONAL, EMPTY), ("to_step", POSITIONAL, EMPTY)],
    "Stop": [("outcome", POSITIONAL, EMPTY)],
    "Signal": [
        ("tenant_id", POSITIONAL, EMPTY),
        ("event_name", POSITIONAL, EMPTY),
        ("actor_id", POSITIONAL, None),
        ("payload", POSITIONAL, None),
        ("id", KEYWORD, None),
        ("inserted_at", KEYWORD, None),
    ],
    "Store.close": [],
    "Store.upsert_definition": [
        ("notification_key", POSITIONAL, EMPTY),
        ("workflow", POSITIONAL, EMPTY),
    ],
    "Store.fetch_definition": [
        ("workflow_key", POSITIONAL, EMPTY),
        ("workflow_version", POSITIONAL, EMPTY),
    ],
    "Store.persisted_workflow": [("workflow_definition_id", POSITIONAL, EMPTY)],
    "Store.fetch_step_by_key": [
        ("workflow_definition_id", POSITIONAL, EMPTY),
        ("step_key", POSITIONAL, EMPTY),
    ],
    "Store.trigger": [
        ("tenant_id", KEYWORD, EMPTY),
        ("notification_key", KEYWORD, EMPTY),
        ("recipient", KEYWORD, EMPTY),
        ("workflow", KEYWORD, EMPTY),
        ("idempotency_key", KEYWORD, EMPTY),
    ],
    "Store.claim_deliveries": [("limit", POSITIONAL, 100), ("channel", KEYWORD, None)],
    "Store.record_outcome": [
        ("delivery_id", POSITIONAL, EMPTY),
        ("status", POSITIONAL, EMPTY),
        ("suppression_reason", POSITIONAL, None),
    ],
    "Store.trigger_many": [("requests", POSITIONAL, EMPTY)],
    "Store.record_outcomes": [("reports", POSITIONAL, EMPTY)],
    "Store.progress_run": [("run_id", POSITIONAL, EMPTY), ("now", KEYWORD, None)],
    "Store.progress_due_runs": [("now", KEYWORD, None)],
    "Store.next_due_at": [],
    "Store.route_signal": [("signal", POSITIONAL, EMPTY)],
    "Store.track_signal": [("signal", POSITIONAL, EMPTY)],
    "Store.explain": [("tenant_id", POSITIONAL, EMPTY), ("run_id", POSITIONAL, EMPTY)],
    "Store.list_traces": [
        ("tenant_id", POSITIONAL, EMPTY),
        ("run_id", POSITIONAL, EMPTY),
        ("limit", KEYWORD, None),
    ],
    "Store.get_run": [("run_id", POSITIONAL, EMPTY)],
    "Store.get_current_step": [("run", POSITIONAL, EMPTY)],
    "Store.active_step_linkage": [("notification_id", POSITIONAL, EMPTY)],
    "Store.transaction": [],
    "Store.preview_signal": [("signal", POSITIONAL, EMPTY)],
    "Store.verify": [],
    "Store.prune": [("before", POSITIONAL, EMPTY), ("tenant_id", KEYWORD, None)],
    "Store.forget": [("tenant_id", POSITIONAL, EMPTY), ("recipient", POSITIONAL, None)],
    # SPEC §12.5
    "Worker": [
        ("store", POSITIONAL, EMPTY),
        ("senders", POSITIONAL, EMPTY),
        ("lease_seconds", KEYWORD, 300),
        ("batch_size", KEYWORD, 100),
        ("max_sleep", KEYWORD, 60.0),
    ],
    "Worker.run_once": [],
    "Worker.run": [],
    "Worker.stop": [],
}

# Fields of the result records CONTRACT §11 spells out.
RESULT_FIELDS = {
    "TriggerResult": ("notification", "run", "deliveries", "duplicate"),
    "Progress": ("kind", "run", "reason", "deliveries"),
    "Resumed": ("run", "transition"),
}


def test_all_is_an_explicit_sorted_list_without_duplicates() -> None:
    names = chimeway_lite.__all__
    assert isinstance(names, list)
    assert all(isinstance(n, str) for n in names)
    assert names == sorted(names)
    assert len(set(names)) == len(names)


def test_every_name_in_all_is_importable() -> None:
    namespace: dict[str, Any] = {}
    exec("from chimeway_lite import *", namespace)
    for name in chimeway_lite.__all__:
        assert namespace[name] is getattr(chimeway_lite, name)
        assert getattr(chimeway_lite, name).__doc__, f"{name} has no docstring"


def test_every_public_attribute_is_in_all() -> None:
    public = {
        name
        for name, value in vars(chimeway_lite).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(chimeway_lite.__all__)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_spec_name_is_public(name: str) -> None:
    assert name in chimeway_lite.__all__
    assert hasattr(chimeway_lite, name)


def _target(dotted: str) -> Any:
    owner, _, member = dotted.partition(".")
    value = getattr(chimeway_lite, owner)
    return getattr(value, member) if member else value


@pytest.mark.parametrize("dotted", list(SIGNATURES))
def test_spec_signatures(dotted: str) -> None:
    """The parameters CONTRACT §11 shows come first, with its kinds and defaults; anything
    added after them must be an optional keyword."""
    parameters = [
        p
        for p in inspect.signature(_target(dotted)).parameters.values()
        if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    expected = SIGNATURES[dotted]
    actual = [(p.name, p.kind, p.default) for p in parameters[: len(expected)]]
    assert actual == expected
    for extra in parameters[len(expected) :]:
        assert extra.kind is KEYWORD and extra.default is not EMPTY, extra


def test_fake_clock_advance_takes_timedelta_keywords() -> None:
    kinds = {p.kind for p in inspect.signature(chimeway_lite.FakeClock.advance).parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD in kinds


@pytest.mark.parametrize(("name", "fields"), list(RESULT_FIELDS.items()))
def test_result_records_have_the_spec_fields(name: str, fields: tuple[str, ...]) -> None:
    import attrs

    assert (
        tuple(f.name for f in attrs.fields(getattr(chimeway_lite, name)))[: len(fields)] == fields
    )


def test_store_is_a_context_manager() -> None:
    assert hasattr(Store, "__enter__") and hasattr(Store, "__exit__")


def test_enum_values_are_the_spec_strings() -> None:
    assert [s.value for s in chimeway_lite.RunState] == [
        "active",
        "waiting",
        "completed",
        "stopped",
    ]
    assert [s.value for s in chimeway_lite.DeliveryStatus] == [
        "pending",
        "dispatched",
        "succeeded",
        "failed",
        "suppressed",
        "cancelled",
    ]
    assert [o.value for o in chimeway_lite.Outcome] == [
        "delivered",
        "suppressed",
        "temporary_failure",
        "retries_exhausted",
        "permanent_failure",
        "bounced",
    ]
    assert all(isinstance(s, str) for s in chimeway_lite.RunState)
