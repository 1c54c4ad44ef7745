"""Declaring a workflow (CONTRACT §2): normalisation, the dict form, and every validation error.

Each invalid declaration must raise :class:`InvalidWorkflow` naming the field (``path``), the
step (``step``) and the rule (``rule``), and must leave the store untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from factories import trigger
from hypothesis import given
from strategies import table_dump, workflows

from chimeway_lite import (
    ChimewayError,
    InvalidWorkflow,
    OnOutcome,
    Outcome,
    Step,
    Stop,
    Store,
    WaitUntil,
    Workflow,
)
from chimeway_lite.declarations import (
    DEFAULT_ANCHOR,
    coerce_workflow,
    rule_from_dict,
    rule_to_dict,
    rules_of,
    step_config,
    validate_workflow,
    workflow_from_dict,
    workflow_to_dict,
)

A = Step("a", 1, "in_app")
B = Step("b", 2, "email")


def two_steps(*rules: Any, **step_fields: Any) -> Workflow:
    """Workflow ``w`` v1: step ``a`` carrying ``rules`` (and ``step_fields``), then ``b``."""
    return Workflow("w", 1, [attrs.evolve(A, progress=rules, **step_fields), B])


def as_dict(*rules: Any, **first_step: Any) -> dict[str, Any]:
    """The dict form of ``two_steps``, with raw ``rules`` and overrides of step ``a``'s keys."""
    return {
        "workflow_key": "w",
        "workflow_version": 1,
        "steps": [
            {
                "step_key": "a",
                "step_order": 1,
                "channel": "in_app",
                "config": {"progress": list(rules)},
                **first_step,
            },
            {"step_key": "b", "step_order": 2, "channel": "email"},
        ],
    }


WAIT = "steps[0](a).progress[0](wait_until)"


def nested(depth: int) -> dict[str, Any]:
    """``{"x": {"x": ... {}}}`` with ``depth`` dicts below the top."""
    top: dict[str, Any] = {}
    inner = top
    for _ in range(depth):
        inner["x"] = {}
        inner = inner["x"]
    return top


@attrs.frozen
class Case:
    """An invalid declaration and the error it must raise."""

    build: Callable[[], Any]
    path: str
    step: str | None = None
    rule: int | None = None
    problem: str = ""


CASES: dict[str, Case] = {
    # -- the workflow -------------------------------------------------------------------------
    "key blank": Case(lambda: Workflow("  ", 1, [A]), "workflow_key", problem="blank"),
    "key empty": Case(lambda: Workflow("", 1, [A]), "workflow_key", problem="blank"),
    "key not a string": Case(lambda: Workflow(7, 1, [A]), "workflow_key", problem="string"),
    "key with NUL": Case(lambda: Workflow("w\x00", 1, [A]), "workflow_key", problem="NUL"),
    "key too long": Case(lambda: Workflow("k" * 201, 1, [A]), "workflow_key", problem="200"),
    "version zero": Case(lambda: Workflow("w", 0, [A]), "workflow_version", problem="> 0"),
    "version negative": Case(lambda: Workflow("w", -3, [A]), "workflow_version"),
    "version bool": Case(lambda: Workflow("w", True, [A]), "workflow_version"),
    "version float": Case(lambda: Workflow("w", 1.0, [A]), "workflow_version"),
    "version text": Case(lambda: Workflow("w", "1", [A]), "workflow_version"),
    "version beyond SQLite": Case(lambda: Workflow("w", 2**63, [A]), "workflow_version"),
    "no steps": Case(lambda: Workflow("w", 1, []), "steps", problem="at least one step"),
    "steps not a list": Case(lambda: Workflow("w", 1, "ab"), "steps", problem="list"),
    "steps not Steps": Case(lambda: Workflow("w", 1, [A, "b"]), "steps[1]", problem="Step"),
    "too many steps": Case(
        lambda: Workflow("w", 1, [Step(f"s{i}", i, "c") for i in range(1, 102)]),
        "steps",
        problem="at most 100",
    ),
    "not a workflow": Case(lambda: 42, "workflow", problem="int"),
    "a list": Case(lambda: [A, B], "workflow", problem="list"),
    # -- steps --------------------------------------------------------------------------------
    "step key blank": Case(lambda: Workflow("w", 1, [Step(" ", 1, "c")]), "steps[0].step_key"),
    "step key not a string": Case(
        lambda: Workflow("w", 1, [Step(5, 1, "c")]), "steps[0].step_key", problem="string"
    ),
    "step key duplicate": Case(
        lambda: Workflow("w", 1, [Step("a", 1, "c"), Step(" a ", 2, "d")]),
        "steps[1].step_key",
        step="a",
        problem="duplicate",
    ),
    "order not an int": Case(
        lambda: Workflow("w", 1, [Step("a", "1", "c")]), "steps[0](a).step_order", step="a"
    ),
    "order bool": Case(
        lambda: Workflow("w", 1, [Step("a", True, "c")]), "steps[0](a).step_order", step="a"
    ),
    "order duplicate": Case(
        lambda: Workflow("w", 1, [Step("a", 1, "c"), Step("b", 1, "c")]),
        "steps[1](b).step_order",
        step="b",
        problem="1..2",
    ),
    "order gap": Case(
        lambda: Workflow("w", 1, [Step("a", 1, "c"), Step("b", 3, "c")]),
        "steps[1](b).step_order",
        step="b",
        problem="1..2",
    ),
    "order zero": Case(
        lambda: Workflow("w", 1, [Step("a", 0, "c")]), "steps[0](a).step_order", step="a"
    ),
    "channel blank": Case(
        lambda: Workflow("w", 1, [Step("a", 1, "  ")]), "steps[0](a).channel", step="a"
    ),
    "channel not a string": Case(
        lambda: Workflow("w", 1, [Step("a", 1, None)]), "steps[0](a).channel", step="a"
    ),
    "config not a dict": Case(
        lambda: two_steps(config=["x"]), "steps[0](a).config", step="a", problem="dict"
    ),
    "config holds progress": Case(
        lambda: two_steps(config={"progress": []}), "steps[0](a).config.progress", step="a"
    ),
    "config holds a datetime": Case(
        lambda: two_steps(config={"when": datetime(2026, 1, 5, tzinfo=UTC)}),
        "steps[0](a).config.when",
        step="a",
        problem="not JSON",
    ),
    "config holds nan": Case(
        lambda: two_steps(config={"x": [1, float("nan")]}),
        "steps[0](a).config.x[1]",
        step="a",
        problem="non-finite",
    ),
    "config non-string key": Case(
        lambda: two_steps(config={"x": {1: "one"}}),
        "steps[0](a).config.x",
        step="a",
        problem="keys must be strings",
    ),
    "config too large": Case(
        lambda: two_steps(config={"x": "y" * 70_000}), "steps[0](a).config", step="a"
    ),
    "config nested too deep": Case(
        lambda: two_steps(config=nested(40)),
        "steps[0](a).config" + ".x" * 32,
        step="a",
        problem="deeper than 32",
    ),
    "config nested beyond recursion": Case(
        lambda: two_steps(config=nested(5000)), "steps[0](a).config" + ".x" * 32, step="a"
    ),
    "progress not a list": Case(
        lambda: Workflow("w", 1, [Step("a", 1, "c", progress="stop")]),
        "steps[0](a).progress",
        step="a",
    ),
    "too many rules": Case(
        lambda: two_steps(*[Stop("bounced")] * 33), "steps[0](a).progress", step="a"
    ),
    # -- rules ----------------------------------------------------------------------------------
    "rule not a rule": Case(lambda: two_steps("wait"), "steps[0](a).progress[0]", step="a", rule=0),
    "delay zero": Case(
        lambda: two_steps(WaitUntil(0, "b")), f"{WAIT}.delay_seconds", step="a", rule=0
    ),
    "delay negative": Case(
        lambda: two_steps(WaitUntil(-60, "b")), f"{WAIT}.delay_seconds", step="a", rule=0
    ),
    "delay float": Case(
        lambda: two_steps(WaitUntil(1.5, "b")), f"{WAIT}.delay_seconds", step="a", rule=0
    ),
    "delay bool": Case(
        lambda: two_steps(WaitUntil(True, "b")), f"{WAIT}.delay_seconds", step="a", rule=0
    ),
    "delay text": Case(
        lambda: two_steps(WaitUntil("60", "b")), f"{WAIT}.delay_seconds", step="a", rule=0
    ),
    "anchor other": Case(
        lambda: two_steps(WaitUntil(60, "b", anchor="sent_at")),
        f"{WAIT}.anchor",
        step="a",
        rule=0,
        problem=DEFAULT_ANCHOR,
    ),
    "cancel signal blank": Case(
        lambda: two_steps(WaitUntil(60, "b", ["read", "  "])),
        f"{WAIT}.cancel_signals[1]",
        step="a",
        rule=0,
    ),
    "cancel signal not a string": Case(
        lambda: two_steps(WaitUntil(60, "b", [3])), f"{WAIT}.cancel_signals[0]", step="a", rule=0
    ),
    "cancel signal with NUL": Case(
        lambda: two_steps(WaitUntil(60, "b", ["read\x00"])),
        f"{WAIT}.cancel_signals[0]",
        step="a",
        rule=0,
        problem="NUL",
    ),
    "cancel signals not a list": Case(
        lambda: two_steps(WaitUntil(60, "b", "read")), f"{WAIT}.cancel_signals", step="a", rule=0
    ),
    "cancel signals unhashable": Case(
        lambda: two_steps(WaitUntil(60, "b", ["read", ["x"]])),
        f"{WAIT}.cancel_signals[1]",
        step="a",
        rule=0,
    ),
    "eleven cancel signals": Case(
        lambda: two_steps(WaitUntil(60, "b", [f"s{i}" for i in range(11)])),
        f"{WAIT}.cancel_signals",
        step="a",
        rule=0,
        problem="at most 10",
    ),
    "wait to_step blank": Case(
        lambda: two_steps(WaitUntil(60, " ")), f"{WAIT}.to_step", step="a", rule=0
    ),
    "wait to_step None": Case(
        lambda: two_steps(WaitUntil(60, None)), f"{WAIT}.to_step", step="a", rule=0
    ),
    "wait to_step unknown": Case(
        lambda: two_steps(WaitUntil(60, "sms")),
        f"{WAIT}.to_step",
        step="a",
        rule=0,
        problem="names no step",
    ),
    "on_outcome outcome unknown": Case(
        lambda: two_steps(OnOutcome("exploded", "b")),
        "steps[0](a).progress[0](on_outcome).outcome",
        step="a",
        rule=0,
        problem="bounced",
    ),
    "on_outcome outcome not a string": Case(
        lambda: two_steps(OnOutcome(5, "b")),
        "steps[0](a).progress[0](on_outcome).outcome",
        step="a",
        rule=0,
    ),
    "on_outcome to_step unknown": Case(
        lambda: two_steps(OnOutcome("bounced", "sms")),
        "steps[0](a).progress[0](on_outcome).to_step",
        step="a",
        rule=0,
    ),
    "on_outcome to_step blank": Case(
        lambda: two_steps(OnOutcome("bounced", "")),
        "steps[0](a).progress[0](on_outcome).to_step",
        step="a",
        rule=0,
    ),
    "stop outcome unknown": Case(
        lambda: two_steps(Stop("read")),
        "steps[0](a).progress[0](stop).outcome",
        step="a",
        rule=0,
    ),
    "second rule of second step": Case(
        lambda: Workflow(
            "w", 1, [A, attrs.evolve(B, progress=[Stop("delivered"), OnOutcome("bounced", "z")])]
        ),
        "steps[1](b).progress[1](on_outcome).to_step",
        step="b",
        rule=1,
    ),
    # -- the dict form: structure -----------------------------------------------------------
    "dict unknown workflow key": Case(
        lambda: {**as_dict(), "tenant_id": "t"}, "workflow", problem="unknown keys tenant_id"
    ),
    "dict missing steps": Case(
        lambda: {"workflow_key": "w", "workflow_version": 1}, "workflow", problem="missing keys"
    ),
    "dict steps not a list": Case(
        lambda: {**as_dict(), "steps": {"a": 1}}, "steps", problem="list"
    ),
    "dict step not a dict": Case(lambda: {**as_dict(), "steps": ["a"]}, "steps[0]"),
    "dict step unknown key": Case(
        lambda: as_dict(order=1), "steps[0]", problem="unknown keys order"
    ),
    "dict step missing key": Case(
        lambda: {**as_dict(), "steps": [{"step_key": "a", "step_order": 1}]},
        "steps[0]",
        problem="missing keys channel",
    ),
    "dict step key not a string": Case(
        lambda: {**as_dict(), "steps": [{"step_key": 5, "step_order": 1, "channel": "c"}]},
        "steps[0].step_key",
    ),
    "dict config not a dict": Case(
        lambda: as_dict(config="x"), "steps[0].config", step="a", problem="dict"
    ),
    "dict progress not a list": Case(
        lambda: as_dict(config={"progress": {"kind": "stop", "outcome": "bounced"}}),
        "steps[0].config.progress",
        step="a",
    ),
    "dict rule not a dict": Case(
        lambda: as_dict("stop"), "steps[0].config.progress[0]", step="a", rule=0
    ),
    "dict rule kind unknown": Case(
        lambda: as_dict({"kind": "retry", "outcome": "bounced"}),
        "steps[0].config.progress[0].kind",
        step="a",
        rule=0,
        problem="wait_until, on_outcome, stop",
    ),
    "dict rule kind missing": Case(
        lambda: as_dict({"outcome": "bounced"}),
        "steps[0].config.progress[0].kind",
        step="a",
        rule=0,
    ),
    "dict rule unknown key": Case(
        lambda: as_dict({"kind": "stop", "outcome": "bounced", "to_step": "b"}),
        "steps[0].config.progress[0](stop)",
        step="a",
        rule=0,
        problem="unknown keys to_step",
    ),
    "dict wait unknown key": Case(
        lambda: as_dict({"kind": "wait_until", "delay_seconds": 5, "to_step": "b", "x": 1}),
        "steps[0].config.progress[0](wait_until)",
        step="a",
        rule=0,
        problem="unknown keys x",
    ),
    "dict wait missing to_step": Case(
        lambda: as_dict({"kind": "wait_until", "delay_seconds": 60}),
        "steps[0].config.progress[0](wait_until)",
        step="a",
        rule=0,
        problem="missing keys to_step",
    ),
    "dict on_outcome missing outcome": Case(
        lambda: as_dict({"kind": "on_outcome", "to_step": "b"}),
        "steps[0].config.progress[0](on_outcome)",
        step="a",
        rule=0,
        problem="missing keys outcome",
    ),
    "dict second rule": Case(
        lambda: as_dict({"kind": "stop", "outcome": "bounced"}, {"kind": "stop"}),
        "steps[0].config.progress[1](stop)",
        step="a",
        rule=1,
        problem="missing keys outcome",
    ),
    # -- the dict form: values are checked like the typed form ------------------------------
    "dict delay zero": Case(
        lambda: as_dict({"kind": "wait_until", "delay_seconds": 0, "to_step": "b"}),
        f"{WAIT}.delay_seconds",
        step="a",
        rule=0,
    ),
    "dict to_step unknown": Case(
        lambda: as_dict({"kind": "on_outcome", "outcome": "bounced", "to_step": "c"}),
        "steps[0](a).progress[0](on_outcome).to_step",
        step="a",
        rule=0,
    ),
    "dict version text": Case(lambda: {**as_dict(), "workflow_version": "1"}, "workflow_version"),
}


def check(error: InvalidWorkflow, case: Case) -> None:
    """The error names the field, step and rule of ``case``."""
    assert isinstance(error, ChimewayError)
    assert isinstance(error, ValueError)
    assert (error.path, error.step, error.rule) == (case.path, case.step, case.rule)
    assert case.problem in error.problem
    assert case.path in str(error)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_each_invalid_declaration_names_its_field_step_and_rule(case: Case) -> None:
    with pytest.raises(InvalidWorkflow) as caught:
        coerce_workflow(case.build())
    check(caught.value, case)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_an_invalid_declaration_writes_nothing(memory_store: Store, case: Case) -> None:
    memory_store.upsert_definition("welcome", Workflow("other", 1, [A]))  # something to keep
    before = table_dump(memory_store)
    with pytest.raises(InvalidWorkflow) as caught:
        memory_store.upsert_definition("welcome", case.build())
    check(caught.value, case)
    with pytest.raises(InvalidWorkflow) as caught:
        trigger(memory_store, tenant="t", recipient="u", workflow=case.build(), key="k")
    check(caught.value, case)
    assert table_dump(memory_store) == before


def test_the_error_message_reads_well() -> None:
    with pytest.raises(InvalidWorkflow) as caught:
        coerce_workflow(two_steps(WaitUntil(0, "b")))
    assert str(caught.value) == (
        f"invalid workflow at {WAIT}.delay_seconds: "
        "must be an int from 1 to 3162240000 (a century), got 0"
    )


# -- normalisation ------------------------------------------------------------------------------


def test_names_are_trimmed() -> None:
    messy = Workflow(
        " w ",
        1,
        [Step(" a ", 1, " in_app\n", [OnOutcome(" bounced ", " b "), WaitUntil(5, "\tb")]), B],
    )
    assert messy == two_steps(OnOutcome("bounced", "b"), WaitUntil(5, "b"))
    assert coerce_workflow(messy).key == "w"


def test_cancel_signals_are_trimmed_and_deduplicated_keeping_the_first() -> None:
    rule = WaitUntil(5, "b", ["read", " clicked", "read ", "opened", "clicked"])
    assert rule.cancel_signals == ("read", "clicked", "opened")


def test_eleven_names_with_duplicates_make_ten_and_pass() -> None:
    names = [f"s{i}" for i in range(10)] + ["s3"]
    workflow = coerce_workflow(two_steps(WaitUntil(60, "b", names)))
    (rule,) = workflow.steps[0].progress
    assert isinstance(rule, WaitUntil)
    assert len(rule.cancel_signals) == 10


def test_an_empty_cancel_list_is_stored_as_absent() -> None:
    assert "cancel_signals" not in rule_to_dict(WaitUntil(5, "b", []))
    assert rule_to_dict(WaitUntil(5, "b", ["read"]))["cancel_signals"] == ["read"]
    for raw in ([], None):
        rule = rule_from_dict(
            {"kind": "wait_until", "delay_seconds": 5, "to_step": "b", "cancel_signals": raw}
        )
        assert rule == WaitUntil(5, "b")


def test_the_anchor_defaults_and_may_be_given_explicitly() -> None:
    assert WaitUntil(5, "b").anchor == DEFAULT_ANCHOR == "prior_delivery_terminal_at"
    explicit = rule_from_dict(
        {"kind": "wait_until", "delay_seconds": 5, "to_step": "b", "anchor": DEFAULT_ANCHOR}
    )
    assert explicit == WaitUntil(5, "b")
    assert rule_to_dict(WaitUntil(5, "b"))["anchor"] == DEFAULT_ANCHOR


def test_enum_members_become_their_string_values() -> None:
    on = OnOutcome(Outcome.BOUNCED, "b")
    stop = Stop(Outcome.PERMANENT_FAILURE)
    assert on == OnOutcome("bounced", "b")
    assert type(on.outcome) is str and type(stop.outcome) is str
    assert rule_to_dict(stop) == {"kind": "stop", "outcome": "permanent_failure"}
    from_dict = rule_from_dict({"kind": "on_outcome", "outcome": Outcome.BOUNCED, "to_step": "b"})
    assert from_dict == on


def test_config_none_becomes_an_empty_dict_and_lists_become_tuples() -> None:
    step = Step("a", 1, "in_app", [Stop("bounced")], None)
    assert step.config == {}
    assert step.progress == (Stop("bounced"),)
    assert step == Step("a", 1, "in_app", (Stop("bounced"),), {})
    assert Workflow("w", 1, [step]) == Workflow("w", 1, (step,))


def test_config_is_copied_with_tuples_as_lists() -> None:
    """What the stored JSON gives back, so the declaration equals its persisted form; and
    later changes to the caller's dict do not reach the declaration."""
    mine = {"channels": ("sms", "email"), "nested": {"pair": (1, (2, 3))}}
    step = Step("a", 1, "in_app", config=mine)
    assert step.config == {"channels": ["sms", "email"], "nested": {"pair": [1, [2, 3]]}}
    mine["nested"]["pair"] = None
    mine["extra"] = 1
    assert step.config == {"channels": ["sms", "email"], "nested": {"pair": [1, [2, 3]]}}
    assert coerce_workflow(Workflow("w", 1, [nested_step := Step("a", 1, "c", config=nested(31))]))
    assert nested_step.config == nested(31)


def test_steps_are_kept_sorted_by_order() -> None:
    assert Workflow("w", 1, [B, A]).steps == (A, B)
    assert Workflow("w", 1, [B, A]) == Workflow("w", 1, [A, B])
    assert workflow_to_dict(Workflow("w", 1, [B, A]))["steps"][0]["step_key"] == "a"


def test_declarations_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        A.key = "z"  # type: ignore[misc]


def test_validation_returns_the_workflow_itself() -> None:
    workflow = two_steps(WaitUntil(60, "b", ["read"]))
    assert validate_workflow(workflow) is workflow
    assert coerce_workflow(workflow) is workflow


def test_step_config_puts_rules_under_progress() -> None:
    step = Step("a", 1, "in_app", [Stop("bounced")], {"template": "welcome"})
    assert step_config(step) == {
        "template": "welcome",
        "progress": [{"kind": "stop", "outcome": "bounced"}],
    }
    assert step_config(Step("a", 1, "in_app", config={"x": 1})) == {"x": 1}
    assert rules_of(step_config(step)) == (Stop("bounced"),)
    assert rules_of({}) == ()


# -- the dict form ------------------------------------------------------------------------------


def test_the_documented_dict_form_is_accepted() -> None:
    data = {
        "workflow_key": "signup",
        "workflow_version": 1,
        "steps": [
            {
                "step_key": "inapp",
                "step_order": 1,
                "channel": "in_app",
                "config": {
                    "progress": [
                        {"kind": "on_outcome", "outcome": "bounced", "to_step": "email"},
                        {
                            "kind": "wait_until",
                            "delay_seconds": 7200,
                            "to_step": "email",
                            "cancel_signals": ["read"],
                        },
                    ]
                },
            },
            {"step_key": "email", "step_order": 2, "channel": "email", "config": {}},
        ],
    }
    typed = Workflow(
        "signup",
        1,
        [
            Step(
                "inapp",
                1,
                "in_app",
                [OnOutcome("bounced", "email"), WaitUntil(7200, "email", ["read"])],
            ),
            Step("email", 2, "email"),
        ],
    )
    assert coerce_workflow(data) == typed
    assert coerce_workflow(MappingProxyType(data)) == typed
    # steps in any order, config absent or None: the same declaration
    data["steps"] = [
        {"step_key": "email", "step_order": 2, "channel": "email", "config": None},
        data["steps"][0],
    ]
    assert coerce_workflow(data) == typed


def test_the_dict_form_does_not_change_the_callers_dict() -> None:
    data = as_dict({"kind": "stop", "outcome": "bounced"})
    snapshot = json.dumps(data, sort_keys=True)
    coerce_workflow(data)
    assert json.dumps(data, sort_keys=True) == snapshot


@given(workflows())
def test_dict_form_equals_typed_form(workflow: Workflow) -> None:
    as_data = workflow_to_dict(workflow)
    assert coerce_workflow(as_data) == workflow
    # and the dict form is plain JSON: it survives a trip through text
    assert coerce_workflow(json.loads(json.dumps(as_data))) == workflow
    assert workflow_to_dict(coerce_workflow(as_data)) == as_data


@given(workflows())
def test_generated_workflows_are_valid_and_unchanged_by_validation(workflow: Workflow) -> None:
    assert validate_workflow(workflow) == workflow
    assert workflow_from_dict(workflow_to_dict(workflow)) == workflow
