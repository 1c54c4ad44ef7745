"""The throttle step option (CONTRACT §14.1): validation with paths, the dict form, and exact
traces — a run passes below the limit, stops at it, and passes again once the window has
slid past the activations it counted; groups by tenant, recipient, workflow key (any
version), step key and key value."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from backends import sql
from factories import trigger
from journeys import trace
from strategies import table_dump

from chimeway_lite import (
    FakeClock,
    InvalidWorkflow,
    OnOutcome,
    Outcome,
    ProgressKind,
    Retry,
    RunState,
    Step,
    Store,
    Throttle,
    TriggerResult,
    Workflow,
)
from chimeway_lite.declarations import coerce_workflow, workflow_to_dict
from chimeway_lite.tools.timeline import collect, render_svg


def reset(throttle: Throttle | None = None, version: int = 1, key: str = "reset") -> Workflow:
    """One email step, at most once per recipient in 10 min (unless told otherwise)."""
    policy = Throttle(1, 600) if throttle is None else throttle
    return Workflow(key, version, [Step("email", 1, "email", throttle=policy)])


def _fire(store: Store, workflow: Workflow | None = None, **over: Any) -> TriggerResult:
    return trigger(store, workflow=reset() if workflow is None else workflow, **over)


def _step_id(store: Store, result: TriggerResult, key: str = "email") -> str:
    step = store.fetch_step_by_key(result.run.workflow_definition_id, key)
    assert step is not None
    return step.id


def _passed(result: TriggerResult) -> bool:
    return result.run.state is RunState.ACTIVE and len(result.deliveries) == 1


# -- exact traces --------------------------------------------------------------------------------


def test_below_the_limit_the_step_activates_and_at_the_limit_the_run_stops(
    store: Store, clock: FakeClock
) -> None:
    first = _fire(store)
    clock.advance(minutes=5)
    second = _fire(store)
    email = _step_id(store, first)

    assert trace(store, first.run.id) == [
        ("workflow_started", None, "active", None, None, {"source": "trigger"}),
        ("step_activated", "active", "active", email, None,
         {"source": "trigger", "step_key": "email"}),
    ]  # fmt: skip
    assert trace(store, second.run.id) == [
        ("workflow_started", None, "active", None, None, {"source": "trigger"}),
        ("workflow_throttled", "active", "stopped", email, None,
         {"rule_kind": "throttle", "step_key": "email"}),
    ]  # fmt: skip
    run = second.run
    assert (run.state, run.status_reason, run.terminal_reason) == (
        RunState.STOPPED,
        "workflow_throttled",
        "throttled",
    )
    assert run.status_context == {"rule_kind": "throttle", "step_key": "email"}
    assert run.current_step_id == email
    assert second.deliveries == ()
    assert store.list_deliveries("acme", run.id) == []
    assert store.get_run(run.id) == run
    assert store.verify() == []


def test_the_window_slides_an_activation_exactly_window_seconds_old_no_longer_counts(
    store: Store, clock: FakeClock
) -> None:
    assert _passed(_fire(store))  # 09:30:00
    clock.advance(seconds=599, microseconds=999_999)
    assert not _passed(_fire(store))  # 09:39:59.999999: the 09:30 activation still counts
    clock.advance(microseconds=1)
    assert _passed(_fire(store))  # 09:40:00: exactly 600 s old, it no longer counts
    # the throttled run at 09:39:59.999999 never counted: 10 min after 09:40 passes again
    clock.advance(seconds=599)
    assert not _passed(_fire(store))
    clock.advance(seconds=1)
    assert _passed(_fire(store))
    assert store.verify() == []


def test_a_limit_of_three_lets_three_through_in_the_window(store: Store, clock: FakeClock) -> None:
    workflow = reset(Throttle(3, 3600))
    outcomes = []
    for _ in range(5):
        outcomes.append(_passed(_fire(store, workflow)))
        clock.advance(minutes=10)
    assert outcomes == [True, True, True, False, False]
    clock.advance(minutes=10)  # 10:40: the 09:30 activation left the hour
    assert _passed(_fire(store, workflow))
    assert not _passed(_fire(store, workflow))


def test_groups_are_per_tenant_recipient_workflow_key_and_step_key(
    store: Store, clock: FakeClock
) -> None:
    assert _passed(_fire(store, recipient="ada"))
    assert _passed(_fire(store, recipient="bob"))  # another recipient
    assert _passed(_fire(store, tenant="globex", recipient="ada"))  # another tenant
    assert _passed(_fire(store, reset(key="other")))  # another workflow key
    # another version of the same workflow shares the count (any version)
    assert not _passed(_fire(store, reset(Throttle(1, 600), version=2)))
    # another step key of the same workflow does not
    renamed = Workflow("reset", 3, [Step("mail", 1, "email", throttle=Throttle(1, 600))])
    assert _passed(_fire(store, renamed))


def test_a_key_groups_by_the_value_of_that_trigger_data_field(store: Store) -> None:
    workflow = reset(Throttle(1, 600, key="account_id"))
    assert _passed(_fire(store, workflow, data={"account_id": 1}))
    assert _passed(_fire(store, workflow, data={"account_id": 2}))
    assert not _passed(_fire(store, workflow, data={"account_id": 1, "other": "x"}))
    assert _passed(_fire(store, workflow, data={"account_id": "1"}))  # a string is another value
    assert _passed(_fire(store, workflow, data={}))  # no such field: the "missing" group
    assert not _passed(_fire(store, workflow, data={"other": 1}))  # missing again
    assert _passed(_fire(store, workflow, data={"account_id": None}))  # null is a value


def test_no_trigger_data_is_kept_where_the_throttle_counts(store: Store) -> None:
    workflow = reset(Throttle(1, 600, key="account_id"))
    _fire(store, workflow, data={"account_id": "acct-sekret-42"})
    rows = sql(store).execute("SELECT * FROM step_activations").fetchall()
    assert len(rows) == 1
    assert "acct-sekret-42" not in repr([tuple(r) for r in rows])


def test_advancing_into_a_throttled_step_stops_the_run_there(
    store: Store, clock: FakeClock
) -> None:
    workflow = Workflow(
        "escalate",
        1,
        [
            Step("inapp", 1, "in_app", progress=[OnOutcome(Outcome.BOUNCED, "email")]),
            Step("email", 2, "email", throttle=Throttle(1, 3600)),
        ],
    )
    first = _fire(store, workflow)
    clock.advance(minutes=1)
    moved = store.record_outcome(first.deliveries[0].id, "cancelled", "bounced")
    assert moved is not None and moved.kind is ProgressKind.ADVANCED
    second = _fire(store, workflow)
    clock.advance(minutes=1)
    stopped = store.record_outcome(second.deliveries[0].id, "cancelled", "bounced")
    assert stopped is not None
    assert (stopped.kind, stopped.reason, stopped.deliveries) == (
        ProgressKind.STOPPED,
        "workflow_throttled",
        (),
    )
    inapp, email = _step_id(store, first, "inapp"), _step_id(store, first, "email")
    rows = trace(store, second.run.id)
    assert [r[:4] for r in rows[2:]] == [
        ("progressed_on_delivery_outcome", "active", "active", inapp),
        ("workflow_throttled", "active", "stopped", email),
    ]
    assert rows[-1][5] == {"rule_kind": "throttle", "step_key": "email"}
    assert stopped.run.current_step_id == email
    assert stopped.run.terminal_reason == "throttled"
    assert store.verify() == []


# -- explain, timeline ---------------------------------------------------------------------------


def test_explain_and_the_timeline_say_why_a_run_was_throttled(
    store: Store, clock: FakeClock
) -> None:
    _fire(store)
    clock.advance(minutes=3)
    throttled = _fire(store)
    explanation = store.explain("acme", throttled.run.id)
    assert explanation.why == (
        "Throttled: 1 email to this recipient in the last 10 min already, so step 'email' "
        "was not activated and the run stopped without sending."
    )
    assert explanation.next_move == "Nothing: stopped is terminal (throttled)."
    svg = render_svg(collect(store, "acme", throttled.run.id))
    assert "throttled" in svg and "email not sent" in svg


# -- declaration -------------------------------------------------------------------------------


def test_the_dict_form_round_trips_through_the_store(store: Store) -> None:
    workflow = reset(Throttle(2, 900, key=" account_id "))
    assert workflow.steps[0].throttle == Throttle(2, 900, "account_id")  # trimmed
    as_dict = workflow_to_dict(workflow)
    assert as_dict["steps"][0]["config"] == {
        "throttle": {"limit": 2, "window_seconds": 900, "key": "account_id"}
    }
    assert workflow_to_dict(reset())["steps"][0]["config"] == {
        "throttle": {"limit": 1, "window_seconds": 600}  # no key: absent
    }
    definition = store.upsert_definition("n", as_dict)
    assert store.persisted_workflow(definition.id) == workflow
    assert coerce_workflow(as_dict) == workflow
    # the typed declaration is the same definition
    assert store.upsert_definition("n", workflow).id == definition.id


BAD: list[tuple[Any, str]] = [
    (Throttle(0, 600), "steps[0](email).throttle.limit"),
    (Throttle(10_001, 600), "steps[0](email).throttle.limit"),
    (Throttle(True, 600), "steps[0](email).throttle.limit"),  # type: ignore[arg-type]
    (Throttle("1", 600), "steps[0](email).throttle.limit"),  # type: ignore[arg-type]
    (Throttle(1, 0), "steps[0](email).throttle.window_seconds"),
    (Throttle(1, 2_678_401), "steps[0](email).throttle.window_seconds"),
    (Throttle(1, 60.0), "steps[0](email).throttle.window_seconds"),  # type: ignore[arg-type]
    (Throttle(1, 600, key=" "), "steps[0](email).throttle.key"),
    (Throttle(1, 600, key=5), "steps[0](email).throttle.key"),  # type: ignore[arg-type]
    (Retry(3, 60), "steps[0](email).throttle"),
]


@pytest.mark.parametrize(("throttle", "path"), BAD, ids=[p[1] + f"-{i}" for i, p in enumerate(BAD)])
def test_a_bad_throttle_is_refused_with_its_path_and_nothing_is_written(
    store: Store, throttle: Any, path: str
) -> None:
    before = table_dump(store)
    with pytest.raises(InvalidWorkflow) as caught:
        _fire(store, Workflow("reset", 1, [Step("email", 1, "email", throttle=throttle)]))
    assert caught.value.path == path
    assert caught.value.step == "email"
    assert table_dump(store) == before


def test_the_limits_of_the_ranges_are_accepted() -> None:
    for throttle in (Throttle(1, 1), Throttle(10_000, 2_678_400, key="k")):
        coerce_workflow(reset(throttle))


@pytest.mark.parametrize(
    ("config", "path", "problem"),
    [
        (
            {"limit": 1, "window_seconds": 6, "per": 1},
            "steps[0].config.throttle",
            "unknown keys per",
        ),
        ({"limit": 1}, "steps[0].config.throttle", "missing keys window_seconds"),
        ([1, 60], "steps[0].config.throttle", "must be a dict"),
        ({"limit": 1, "window_seconds": -5}, "steps[0](email).throttle.window_seconds", "31 days"),
    ],
)
def test_the_dict_form_is_checked_key_by_key(config: Any, path: str, problem: str) -> None:
    step = {
        "step_key": "email",
        "step_order": 1,
        "channel": "email",
        "config": {"throttle": config},
    }
    with pytest.raises(InvalidWorkflow) as caught:
        coerce_workflow({"workflow_key": "reset", "workflow_version": 1, "steps": [step]})
    assert caught.value.path == path
    assert problem in str(caught.value)


def test_a_throttle_in_the_steps_own_config_is_refused() -> None:
    with pytest.raises(InvalidWorkflow) as caught:
        coerce_workflow(
            Workflow("w", 1, [Step("email", 1, "email", config={"throttle": {"limit": 1}})])
        )
    assert caught.value.path == "steps[0](email).config.throttle"


# -- prune and forget ------------------------------------------------------------------------------


def _activations(store: Store) -> int:
    return int(sql(store).execute("SELECT count(*) FROM step_activations").fetchone()[0])


def test_prune_drops_activations_no_throttle_can_count_any_more(
    store: Store, clock: FakeClock
) -> None:
    _fire(store)
    clock.advance(days=30)
    _fire(store)
    store.prune(clock.now())
    assert _activations(store) == 2  # the oldest is 30 days old: a 31-day window counts it
    clock.advance(days=1, seconds=1)
    store.prune(clock.now() + timedelta(days=365))  # a later cutoff reaches back from now
    assert _activations(store) == 1
    assert store.prune(clock.now(), tenant_id="globex") == 0
    assert store.verify() == []


def test_forget_erases_a_recipients_activations(store: Store) -> None:
    _fire(store, recipient="ada")
    _fire(store, recipient="bob")
    store.forget("acme", "ada")
    (tombstone,) = store.list_erasures("acme")
    assert tombstone.row_counts["step_activations"] == 1
    assert _activations(store) == 1
    assert _passed(_fire(store, recipient="ada"))  # nothing left to count against ada
