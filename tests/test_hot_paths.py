"""The shortcuts of the hot paths (issue 5) change nothing a caller can see.

Each test pins one shortcut to the behaviour it must keep: the validated-declaration cache
still sees a config changed in place, the changed-columns UPDATE leaves the row the full
UPDATE would have left, the recipient-first signal query keeps tenants apart, ids are
time-ordered uuids, the one-entry timestamp-text cache never hands one instant another's
text, and verify's shortcuts (issue 16: the compact-JSON scanner, the generated row readers,
the instant check of a time key) read and judge what the long way did.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from backends import sql
from factories import escalation_workflow, trigger
from hypothesis import given
from hypothesis import strategies as st
from strategies import json_values, table_dump

from chimeway_lite import (
    DamagedRow,
    DefinitionConflict,
    DeliveryStatus,
    FakeClock,
    RunState,
    Signal,
    Step,
    Store,
    Workflow,
    WorkflowRun,
)
from chimeway_lite.backends.sqlite import convert
from chimeway_lite.core import text


def _stored_run(store: Store, run_id: str) -> dict[str, Any]:
    row = sql(store).execute("SELECT * FROM workflow_runs WHERE id = ?", (run_id,))
    return dict(row.fetchone())


@pytest.mark.parametrize("changed", ["other", 1.0, True], ids=["value", "float", "bool"])
def test_a_config_changed_after_a_trigger_is_still_a_conflict(
    store: Store, changed: object
) -> None:
    """A declaration cannot be changed in place (its config is deep-frozen), so the cache of
    validated declarations cannot be fooled; a new declaration with a config that differs
    only as 1 / 1.0 / True differ is a conflict, not a hit."""
    workflow = Workflow("digest", 1, [Step("email", 1, "email", config={"template": 1})])
    trigger(store, workflow=workflow, key="k1")
    before = table_dump(store)
    with pytest.raises(TypeError):
        workflow.steps[0].config["template"] = changed  # type: ignore[index]
    changed_workflow = Workflow(
        "digest", 1, [Step("email", 1, "email", config={"template": changed})]
    )
    with pytest.raises(DefinitionConflict):
        trigger(store, workflow=changed_workflow, key="k2")
    assert table_dump(store) == before


def test_the_same_declaration_object_triggers_without_registering_again(store: Store) -> None:
    workflow = escalation_workflow()
    first = trigger(store, workflow=workflow, key="k1")
    second = trigger(store, workflow=workflow, key="k2", recipient="bob")
    assert first.run.workflow_definition_id == second.run.workflow_definition_id
    count = sql(store).execute("SELECT count(*) FROM workflow_definitions").fetchone()[0]
    assert count == 1


def test_an_updated_run_row_is_the_row_of_its_record(store: Store, clock: FakeClock) -> None:
    """The progression writes only changed columns; the row must still be exactly what
    writing the whole record would give, at every step of a journey."""
    result = trigger(store, recipient="alice")
    (delivery,) = store.claim_deliveries(10)
    waiting = store.record_outcome(delivery.id, DeliveryStatus.SUCCEEDED)
    assert waiting is not None
    assert _stored_run(store, result.run.id) == convert.to_row(waiting.run)
    clock.advance(minutes=5)
    resumed = store.route_signal(Signal("acme", "notification_read", actor_id="alice"))
    assert _stored_run(store, result.run.id) == convert.to_row(resumed[result.run.id].run)
    clock.advance(minutes=5)
    (settled,) = store.progress_due_runs()
    assert _stored_run(store, result.run.id) == convert.to_row(settled.run)
    assert store.get_run(result.run.id) == settled.run


def test_a_signal_with_an_actor_resumes_only_that_recipient_in_that_tenant(
    store: Store,
) -> None:
    workflow = escalation_workflow()
    runs = {}
    for tenant in ("acme", "globex"):
        for recipient in ("alice", "bob"):
            runs[tenant, recipient] = trigger(
                store,
                workflow=workflow,
                key=f"{tenant}-{recipient}",
                tenant=tenant,
                recipient=recipient,
            ).run.id
    for delivery in store.claim_deliveries(10):
        store.record_outcome(delivery.id, DeliveryStatus.SUCCEEDED)
    resumed = store.route_signal(Signal("acme", "notification_read", actor_id="alice"))
    assert list(resumed) == [runs["acme", "alice"]]
    everyone = store.route_signal(Signal("globex", "notification_read"))
    assert list(everyone) == sorted([runs["globex", "alice"], runs["globex", "bob"]])


def test_every_id_the_store_makes_is_time_ordered(store: Store) -> None:
    """UUIDv7 (CONTRACT §1): canonical text, and an id made later sorts after (appends to
    the indexes instead of scattering across them)."""
    result = trigger(store)
    trace = store.list_traces("acme", result.run.id)
    ids = [result.notification.id, result.run.id, *(t.id for t in trace)]
    ids += [d.id for d in result.deliveries]
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    later = trigger(store)
    assert later.notification.id > max(ids)


def test_instants_written_in_turn_keep_their_own_text() -> None:
    first = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    second = first + timedelta(microseconds=1)
    runs = [
        WorkflowRun("r", "t", "n", "d", "s", RunState.ACTIVE, "x", {}, at, at, None, (), None)
        for at in (first, second, first, second)
    ]
    texts = [convert.to_row(run)["started_at"] for run in runs]
    assert (
        texts
        == [
            "2026-01-05T09:30:00.000000+00:00",
            "2026-01-05T09:30:00.000001+00:00",
        ]
        * 2
    )


def test_a_context_that_keeps_the_other_rules_is_never_too_big_so_it_is_not_encoded() -> None:
    """context_problems skips the JSON size check when no context that keeps the other rules
    can exceed it: the worst such context (every catalogue key, each at its longest value)
    stays under the bound, which stays under MAX_CONTEXT_BYTES."""
    from chimeway_lite.core.text import json_size
    from chimeway_lite.machine import host_rules
    from chimeway_lite.machine.table import CONTEXT_KEYS

    worst: dict[str, Any] = {}
    for key in CONTEXT_KEYS:
        if key in host_rules.TIME_KEYS:
            worst[key] = "2026-01-05T09:30:00.000000+00:00"
        elif key in host_rules.CODE_KEYS:
            worst[key] = "a" * 64
        else:  # a control character takes six bytes as JSON (\u0001)
            worst[key] = "\x01" * host_rules.MAX_CONTEXT_TEXT
    assert host_rules.context_problems(worst) == []
    assert json_size(worst) <= host_rules._LARGEST_CLEAN_CONTEXT < host_rules.MAX_CONTEXT_BYTES
    # one character more, or a key outside the catalogue, is still a problem
    too_long = dict(worst, step_key="\x01" * (host_rules.MAX_CONTEXT_TEXT + 1))
    assert host_rules.context_problems(too_long) == [
        f"context step_key is longer than {host_rules.MAX_CONTEXT_TEXT} characters"
    ]
    assert host_rules.context_problems({**worst, "note": "x"}) == [
        "context keys outside the catalogue: note"
    ]


def _statements(store: Store) -> list[str]:
    seen: list[str] = []
    store.connection.set_trace_callback(lambda sql: seen.append(" ".join(sql.split())))
    return seen


@pytest.mark.sqlite_only
def test_a_known_declaration_inserts_its_notification_without_reading_the_key_first(
    store: Store,
) -> None:
    workflow = escalation_workflow()
    trigger(store, workflow=workflow, key="k1")
    seen = _statements(store)
    trigger(store, workflow=workflow, key="k2", recipient="bob")
    assert not [s for s in seen if s.startswith("SELECT") and "FROM notifications" in s]
    assert seen[1].startswith("INSERT INTO notifications")
    # A new declaration object is validated and registered (or found) first, as before.
    seen.clear()
    trigger(store, workflow=escalation_workflow(), key="k3", recipient="eve")
    assert seen[1].startswith("SELECT") and "FROM notifications" in seen[1]


def test_a_triggers_data_is_made_json_once_and_stored_as_that_json(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {"user": {"name": "Ada", "é": [1, 2.5, None]}, "items": ["x" * 50] * 40}
    encoded: list[bool] = []
    real = text._encode

    def counting(value: Any) -> str:
        encoded.append(value is data)
        return real(value)

    monkeypatch.setattr(text, "_encode", counting)
    first = trigger(store, key="k1", data=data)
    assert encoded.count(True) == 1  # the 64 KiB rule's text is the row's text
    monkeypatch.undo()
    again = trigger(store, key="k1", data={"other": 1})
    assert again.duplicate and again.notification == first.notification
    assert again.notification.data == data  # read back from the row


@pytest.mark.sqlite_only
def test_an_outcome_that_waits_checks_early_signals_without_reading_the_data(
    store: Store,
) -> None:
    workflow = escalation_workflow()
    first = trigger(store, workflow=workflow, key="k1", data={"big": ["x" * 100] * 300})
    # a read by another recipient of the same tenant, before the outcome: not this run's
    store.route_signal(Signal("acme", "notification_read", actor_id="someone-else"))
    seen = _statements(store)
    store.record_outcome(first.deliveries[0].id, DeliveryStatus.SUCCEEDED)
    reads = [s for s in seen if s.startswith("SELECT") and "FROM notifications" in s]
    assert reads and all(s.startswith("SELECT recipient, correlation_key FROM") for s in reads)
    assert store.get_run(first.run.id).state is RunState.WAITING  # the other actor's read
    # ... and the run's own recipient's read, routed before the outcome, is found the same way
    second = trigger(store, workflow=workflow, key="k2", recipient="bob", data={"n": 1})
    store.route_signal(Signal("acme", "notification_read", actor_id="bob"))
    store.record_outcome(second.deliveries[0].id, DeliveryStatus.SUCCEEDED)
    assert store.get_run(second.run.id).state is not RunState.WAITING


@pytest.mark.parametrize("conflicting", [False, True], ids=["same", "conflicting"])
def test_a_duplicate_of_a_known_declaration_is_the_first_result_and_writes_nothing(
    store: Store, clock: FakeClock, conflicting: bool
) -> None:
    workflow = escalation_workflow()
    first = trigger(store, workflow=workflow, key="k1", notification_key="welcome")
    trigger(store, workflow=workflow, key="k2", notification_key="welcome")
    before = table_dump(store)
    clock.advance(60)
    other = Workflow(workflow.key, workflow.version, [Step("only", 1, "email")])
    again = trigger(
        store,
        workflow=other if conflicting else workflow,
        key="k1",
        notification_key="renamed",
        data={"ignored": True},
    )
    assert again.duplicate
    assert (again.notification, again.run, again.deliveries) == (
        first.notification,
        first.run,
        first.deliveries,
    )
    assert table_dump(store) == before


# -- verify's shortcuts: the compact-JSON scanner, the generated readers, the instant check ----


@given(
    json_values,
    st.sampled_from(["", " ", "\n", "\t "]),
    st.sampled_from(["", " ", "\n", "x", "}", "[1]"]),
)
def test_compact_json_reads_as_json_loads_reads_it(value: Any, before: str, after: str) -> None:
    text = before + json.dumps(value, separators=(",", ":")) + after
    try:
        expected: Any = ("value", json.loads(text))
    except ValueError as exc:
        expected = ("error", type(exc))
    try:
        found: Any = ("value", convert._loads_text(text))
    except ValueError as exc:
        found = ("error", type(exc))
    assert repr(found) == repr(expected)  # repr: NaN is not equal to itself


def test_a_generated_reader_reads_a_full_row_and_a_short_one_as_the_fields_say() -> None:
    at = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    run = WorkflowRun(
        "r", "t", "n", "d", "s", RunState.WAITING, "x", {"k": 1}, at, at, at, ("read",), None
    )
    row = tuple(convert.to_row(run).values())
    assert convert.from_values(WorkflowRun, row) == run
    # a row that stops short leaves the last fields at their defaults, as before
    names = convert.field_names(WorkflowRun)
    defaults = [f for f in attrs.fields(WorkflowRun) if f.default is not attrs.NOTHING]
    short = row[: len(names) - len(defaults)]
    assert convert.from_values(WorkflowRun, short) == attrs.evolve(
        run, **{f.name: f.default for f in defaults}
    )
    # a damaged value of the optional time still names the row
    damaged = (*row[:10], "yesterday", *row[11:])
    with pytest.raises(DamagedRow) as caught:
        convert.from_values(WorkflowRun, damaged)
    assert caught.value.row_id == "r"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2026-01-05T09:30:00.000000+00:00", None),
        ("2026-01-05T09:30:00+02:00", None),
        ("2026-01-05T09:30:00", "is an instant without an offset"),
        ("yesterday", "is not an instant (ISO-8601 text with an offset)"),
        ("2026-01-05T09:30:00\x00+00:00", "contains NUL"),
        ("2026-01-05T09:30:00.000000+00:00é", "is not an instant (ISO-8601 text with an offset)"),
        (12, None),
    ],
    ids=["stored", "offset", "naive", "text", "nul", "non-ascii", "int"],
)
def test_a_time_key_is_checked_as_an_instant_on_the_short_path_and_the_long(
    value: Any, problem: str | None
) -> None:
    from chimeway_lite.machine import host_rules

    for key in sorted(host_rules.TIME_KEYS):
        assert host_rules.context_problems({key: value}) == (
            [] if problem is None else [f"context {key} {problem}"]
        )
