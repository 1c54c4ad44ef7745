"""Definitions (CONTRACT §3): registration, identity, conflicts and the round trip to rows."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from backends import sql
from factories import escalation_workflow, trigger
from hypothesis import given
from strategies import table_dump, workflows

from chimeway_lite import (
    DefinitionConflict,
    FakeClock,
    InvalidArgument,
    InvalidWorkflow,
    OnOutcome,
    Step,
    Stop,
    Store,
    Workflow,
    WorkflowDefinition,
)
from chimeway_lite.declarations import coerce_workflow, step_config, workflow_to_dict
from chimeway_lite.engine.definitions import DefinitionIndex, canonical_steps

# -- the round trip -------------------------------------------------------------------------------


@given(workflows())
def test_declaration_to_rows_to_declaration(workflow: Workflow) -> None:
    with Store(":memory:") as store:
        definition = store.upsert_definition("welcome", workflow)
        assert store.persisted_workflow(definition.id) == workflow
        assert store.fetch_definition(workflow.key, workflow.version) == definition


@given(workflows())
def test_dict_registration_round_trips_too(workflow: Workflow) -> None:
    with Store(":memory:") as store:
        definition = store.upsert_definition("welcome", workflow_to_dict(workflow))
        assert store.persisted_workflow(definition.id) == workflow


@given(workflows())
def test_the_rows_hold_the_declaration_as_plain_data(workflow: Workflow) -> None:
    """Storage layout (CONTRACT §8): one row per step, config (with ``progress``) as JSON text."""
    with Store(":memory:") as store:
        definition = store.upsert_definition("welcome", workflow)
        rows = (
            sql(store)
            .execute(
                "SELECT step_key, step_order, channel, config FROM workflow_steps "
                "WHERE workflow_definition_id = ? ORDER BY step_order",
                (definition.id,),
            )
            .fetchall()
        )
        assert [(r[0], r[1], r[2], json.loads(r[3])) for r in rows] == [
            (s.key, s.order, s.channel, step_config(s)) for s in workflow.steps
        ]
        assert [s.step_order for s in definition.steps] == list(range(1, len(rows) + 1))
        for step in definition.steps:
            assert store.fetch_step_by_key(definition.id, step.step_key) == step


def test_a_config_with_tuples_round_trips(store: Store) -> None:
    workflow = Workflow("w", 1, [Step("a", 1, "in_app", config={"pair": (1, (2, "x"))})])
    definition = store.upsert_definition("n", workflow)
    assert store.persisted_workflow(definition.id) == workflow
    assert store.upsert_definition("n", workflow).id == definition.id


def test_registration_returns_the_stored_definition(store: Store, clock: FakeClock) -> None:
    definition = store.upsert_definition("escalate", escalation_workflow())
    assert definition.workflow_key == "escalation"
    assert definition.workflow_version == 1
    assert definition.notification_key == "escalate"
    assert definition.inserted_at == definition.updated_at == clock.now()
    assert [s.step_key for s in definition.steps] == ["inapp", "email"]
    assert all(s.workflow_definition_id == definition.id for s in definition.steps)
    assert definition.steps[0].config["progress"][0] == {
        "kind": "on_outcome",
        "outcome": "bounced",
        "to_step": "email",
    }
    row = (
        sql(store)
        .execute(
            "SELECT workflow_key, workflow_version, notification_key FROM workflow_definitions"
        )
        .fetchone()
    )
    assert tuple(row) == ("escalation", 1, "escalate")


# -- identity and conflicts ---------------------------------------------------------------------


def test_identical_registration_returns_the_same_definition(store: Store, clock: FakeClock) -> None:
    first = store.upsert_definition("escalate", escalation_workflow())
    clock.advance(60)
    before = table_dump(store)
    again = store.upsert_definition("escalate", escalation_workflow())
    assert again == first
    assert table_dump(store) == before  # same key too: nothing to write


def test_identical_registration_updates_the_notification_key(
    store: Store, clock: FakeClock
) -> None:
    first = store.upsert_definition("escalate", escalation_workflow())
    later = clock.advance(60)
    again = store.upsert_definition("escalate_v2", workflow_to_dict(escalation_workflow()))
    assert again.id == first.id
    assert again.steps == first.steps
    assert again.notification_key == "escalate_v2"
    assert again.inserted_at == first.inserted_at
    assert again.updated_at == later
    assert store.fetch_definition("escalation", 1) == again
    assert sql(store).execute("SELECT count(*) FROM workflow_definitions").fetchone()[0] == 1
    assert sql(store).execute("SELECT count(*) FROM workflow_steps").fetchone()[0] == 2


def test_identity_ignores_how_the_declaration_was_written(store: Store) -> None:
    first = store.upsert_definition("escalate", escalation_workflow())
    data = workflow_to_dict(escalation_workflow())
    data["steps"].reverse()
    data["workflow_key"] = "  escalation "
    for step in data["steps"]:
        step["config"] = {**step["config"]}  # same content, new dict
    assert store.upsert_definition("escalate", data).id == first.id


def _changed(change: str) -> Workflow:
    base = escalation_workflow()
    inapp, email = base.steps
    if change == "channel":
        return attrs.evolve(base, steps=[inapp, attrs.evolve(email, channel="sms")])
    if change == "config":
        return attrs.evolve(base, steps=[inapp, attrs.evolve(email, config={"template": "x"})])
    if change == "rule":
        return attrs.evolve(base, steps=[attrs.evolve(inapp, progress=[Stop("bounced")]), email])
    if change == "delay":
        wait = attrs.evolve(inapp.progress[1], delay_seconds=60)
        return attrs.evolve(
            base, steps=[attrs.evolve(inapp, progress=[inapp.progress[0], wait]), email]
        )
    if change == "rule order":
        reordered = attrs.evolve(inapp, progress=list(reversed(inapp.progress)))
        return attrs.evolve(base, steps=[reordered, email])
    if change == "cancel signals":
        wait = attrs.evolve(inapp.progress[1], cancel_signals=())
        return attrs.evolve(
            base, steps=[attrs.evolve(inapp, progress=[inapp.progress[0], wait]), email]
        )
    if change == "extra step":
        return attrs.evolve(base, steps=[*base.steps, Step("sms", 3, "sms")])
    if change == "fewer steps":
        return Workflow("escalation", 1, [Step("inapp", 1, "in_app")])
    if change == "step key":
        return Workflow(
            "escalation",
            1,
            [
                attrs.evolve(inapp, progress=[OnOutcome("bounced", "mail")]),
                attrs.evolve(email, key="mail"),
            ],
        )
    if change == "orders swapped":
        return Workflow(
            "escalation",
            1,
            [attrs.evolve(inapp, order=2), attrs.evolve(email, order=1)],
        )
    raise AssertionError(change)


CHANGES = [
    "channel",
    "config",
    "rule",
    "delay",
    "rule order",
    "cancel signals",
    "extra step",
    "fewer steps",
    "step key",
    "orders swapped",
]


@pytest.mark.parametrize("change", CHANGES)
def test_same_key_and_version_with_other_steps_conflicts_and_changes_nothing(
    store: Store, clock: FakeClock, change: str
) -> None:
    store.upsert_definition("escalate", escalation_workflow())
    clock.advance(60)
    before = table_dump(store)
    with pytest.raises(DefinitionConflict) as caught:
        store.upsert_definition("another_key", _changed(change))
    assert caught.value.workflow_key == "escalation"
    assert caught.value.workflow_version == 1
    assert "new version" in str(caught.value)
    assert table_dump(store) == before
    # the conflict also stops a trigger, before anything is written
    with pytest.raises(DefinitionConflict):
        trigger(store, tenant="t", notification_key="escalate", workflow=_changed(change))
    assert table_dump(store) == before


@pytest.mark.parametrize("change", CHANGES)
def test_a_new_version_takes_the_change(store: Store, change: str) -> None:
    first = store.upsert_definition("escalate", escalation_workflow())
    changed = attrs.evolve(_changed(change), version=2)
    second = store.upsert_definition("escalate", changed)
    assert second.id != first.id
    assert store.persisted_workflow(second.id) == changed
    assert store.persisted_workflow(first.id) == escalation_workflow()


def test_conflicts_are_found_after_reopening(location: str, clock: FakeClock) -> None:
    with Store(location, clock=clock) as store:
        first = store.upsert_definition("escalate", escalation_workflow())
    with Store(location, clock=clock) as store:
        before = table_dump(store)
        with pytest.raises(DefinitionConflict):
            store.upsert_definition("escalate", _changed("channel"))
        assert table_dump(store) == before
        assert store.upsert_definition("escalate", escalation_workflow()) == first


def test_a_registration_seen_by_another_store_is_respected(location: str) -> None:
    """Two stores on one file (two processes, in effect): the second must not trust a cache
    that predates the first's registration."""
    with Store(location) as one, Store(location) as two:
        assert two.fetch_definition("escalation", 1) is None
        first = one.upsert_definition("escalate", escalation_workflow())
        with pytest.raises(DefinitionConflict):
            two.upsert_definition("escalate", _changed("config"))
        assert two.upsert_definition("escalate", escalation_workflow()).id == first.id


def test_a_rolled_back_registration_leaves_no_trace_in_the_cache(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.ensure_definition("escalate", escalation_workflow())
        raise RuntimeError("host changed its mind")
    assert store.fetch_definition("escalation", 1) is None
    # had the cache kept the rolled-back steps, this would be a conflict
    changed = _changed("channel")
    definition = store.upsert_definition("escalate", changed)
    assert store.persisted_workflow(definition.id) == changed


def test_workflow_identity_is_global_across_tenants(store: Store) -> None:
    one = trigger(store, tenant="acme", notification_key="escalate", key="k")
    two = trigger(store, tenant="globex", notification_key="escalate", key="k")
    assert one.run.workflow_definition_id == two.run.workflow_definition_id
    with pytest.raises(DefinitionConflict):
        trigger(
            store, tenant="initech", notification_key="escalate", workflow=_changed("rule"), key="k"
        )


def test_canonical_steps_ignore_spelling_but_not_content() -> None:
    data = workflow_to_dict(escalation_workflow())
    data["steps"].reverse()
    assert canonical_steps(coerce_workflow(data)) == canonical_steps(escalation_workflow())
    for change in CHANGES:
        assert canonical_steps(_changed(change)) != canonical_steps(escalation_workflow())


# -- lookups --------------------------------------------------------------------------------------


def test_lookups_of_unknown_things_return_none(store: Store) -> None:
    definition = store.upsert_definition("escalate", escalation_workflow())
    other = store.upsert_definition("x", Workflow("other", 1, [Step("sms", 1, "sms")]))
    assert store.fetch_definition("escalation", 2) is None
    assert store.fetch_definition("nope", 1) is None
    assert store.fetch_definition("escalation", 2**64) is None
    assert store.persisted_workflow("0b6c6d36-8ad4-4d0b-93a4-6d1b3c0b5f6e") is None
    assert store.fetch_step_by_key(definition.id, "sms") is None
    assert store.fetch_step_by_key(other.id, "sms") is not None
    assert store.fetch_step_by_key(other.id, "email") is None


@pytest.mark.parametrize(
    ("key", "version", "name"),
    [
        (None, 1, "workflow_key"),
        (5, 1, "workflow_key"),
        ("w", "1", "workflow_version"),
        ("w", True, "workflow_version"),
        ("w", 1.0, "workflow_version"),
    ],
)
def test_fetch_definition_refuses_ill_typed_identities(
    store: Store, key: Any, version: Any, name: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        store.fetch_definition(key, version)
    assert caught.value.name == name


@pytest.mark.parametrize("bad", ["", "   ", None, 5])
def test_lookups_refuse_blank_ids(store: Store, bad: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        store.persisted_workflow(bad)
    assert caught.value.name == "workflow_definition_id"
    with pytest.raises(InvalidArgument):
        store.fetch_step_by_key(bad, "email")
    definition = store.upsert_definition("escalate", escalation_workflow())
    with pytest.raises(InvalidArgument) as caught:
        store.fetch_step_by_key(definition.id, bad)
    assert caught.value.name == "step_key"


@pytest.mark.parametrize("bad", ["", "  ", None, 3, b"key"])
def test_a_blank_notification_key_is_refused_before_any_write(store: Store, bad: Any) -> None:
    before = table_dump(store)
    with pytest.raises(InvalidArgument) as caught:
        store.upsert_definition(bad, escalation_workflow())
    assert caught.value.name == "notification_key"
    assert table_dump(store) == before


# -- a definition without steps -----------------------------------------------------------------


def test_a_workflow_without_steps_is_invalid(store: Store) -> None:
    before = table_dump(store)
    with pytest.raises(InvalidWorkflow) as caught:
        store.upsert_definition("n", Workflow("empty", 1, []))
    assert caught.value.path == "steps"
    with pytest.raises(InvalidWorkflow):
        store.upsert_definition("n", {"workflow_key": "empty", "workflow_version": 1, "steps": []})
    assert table_dump(store) == before


def test_a_definition_without_steps_cannot_start_a_run(store: Store, clock: FakeClock) -> None:
    definition = store.upsert_definition("escalate", escalation_workflow())
    hollow = attrs.evolve(definition, steps=())
    notification_id = _insert_notification(store, "acme", definition.id)
    before = table_dump(store)
    with pytest.raises(InvalidWorkflow) as caught, store.transaction() as tx:
        tx.create_initial_run(notification_id, hollow, clock.now(), "acme")
    assert caught.value.path == "steps"
    assert table_dump(store) == before


def _insert_notification(store: Store, tenant_id: str, definition_id: str) -> str:
    notification_id = "a1f0c4de-0000-4000-8000-000000000001"
    sql(store).execute(
        "INSERT INTO notifications (id, tenant_id, recipient, notification_key, "
        "idempotency_key, workflow_definition_id, inserted_at) "
        "VALUES (?, ?, 'u', 'escalate', 'k', ?, '2026-01-05T09:30:00.000000+00:00')",
        (notification_id, tenant_id, definition_id),
    )
    return notification_id


# -- the in-memory index ------------------------------------------------------------------------


def test_the_index_reads_through_to_its_parent_and_merges_children() -> None:
    parent = DefinitionIndex()
    child = parent.child()
    child.identities[("w", 1)] = ("id", "[]")
    assert parent.identity("w", 1) is None
    assert child.identity("w", 1) == ("id", "[]")
    grandchild = child.child()
    assert grandchild.identity("w", 1) == ("id", "[]")
    assert grandchild.journey("id") is None
    parent.merge(child)
    assert parent.identity("w", 1) == ("id", "[]")


def test_definitions_are_frozen_records(store: Store) -> None:
    definition = store.upsert_definition("escalate", escalation_workflow())
    assert isinstance(definition, WorkflowDefinition)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        definition.notification_key = "x"  # type: ignore[misc]
