"""The delivery lifecycle (CONTRACT §12): guarded status changes, leases, retries, the attempt
history, trigger data, and a delivery that tells its worker whom to send what."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from backends import sql
from factories import START, escalation_workflow, trigger
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import table_dump

from chimeway_lite import (
    DeliveryNotFound,
    DeliveryStatus,
    FakeClock,
    InvalidArgument,
    InvalidTransition,
    OnOutcome,
    Outcome,
    ProgressKind,
    Retry,
    Step,
    Store,
    Workflow,
)
from chimeway_lite.machine import deliveries as lifecycle

RETRYING = Workflow(
    "retrying",
    1,
    [
        Step(
            "email",
            1,
            "email",
            progress=[OnOutcome(Outcome.RETRIES_EXHAUSTED, "sms")],
            retry=Retry(3, 60, 2.0, 100),
            config={"template": "reset"},
        ),
        Step("sms", 2, "sms"),
    ],
)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _first(store: Store, workflow: Workflow = RETRYING, **over: Any) -> str:
    return trigger(store, workflow=workflow, **over).deliveries[0].id


# -- status changes ------------------------------------------------------------------------------


FINAL = [
    ("succeeded", None),
    ("suppressed", "opted_out"),
    ("failed", None),
    ("cancelled", "bounced"),
    ("cancelled", "permanent_failure"),
    ("cancelled", "retries_exhausted"),
]


@pytest.mark.parametrize(("status", "reason"), FINAL)
def test_a_final_delivery_takes_the_same_report_again_and_nothing_else(
    store: Store, status: str, reason: str | None
) -> None:
    delivery_id = _first(store, escalation_workflow())
    store.claim_deliveries()
    assert store.record_outcome(delivery_id, status, reason) is not None
    before = table_dump(store)
    assert store.record_outcome(delivery_id, status, reason) is None  # webhooks repeat
    assert table_dump(store) == before
    for other, other_reason in [*FINAL, ("cancelled", "workflow_cancelled")]:
        if (other, other_reason) == (status, reason):
            continue
        with pytest.raises(InvalidTransition) as caught:
            store.record_outcome(delivery_id, other, other_reason)
        assert caught.value.delivery_id == delivery_id
        assert caught.value.from_state == status
        assert status in str(caught.value)
        assert table_dump(store) == before
    assert store.claim_deliveries(channel="in_app") == []


@pytest.mark.parametrize("status", ["pending", "dispatched"])
def test_only_outcomes_are_reported_even_on_a_final_delivery(store: Store, status: str) -> None:
    delivery_id = _first(store, escalation_workflow())
    before = table_dump(store)
    with pytest.raises(InvalidArgument) as caught:
        store.record_outcome(delivery_id, status)
    assert caught.value.name == "status"
    store.record_outcome(delivery_id, "succeeded")
    with pytest.raises(InvalidArgument):
        store.record_outcome(delivery_id, status)  # arguments before state
    assert before != table_dump(store)


@pytest.mark.parametrize("reason", [None, "spam_trap", "opted_out"])
def test_a_cancel_needs_a_reason_the_rules_know(store: Store, reason: str | None) -> None:
    delivery_id = _first(store, escalation_workflow())
    before = table_dump(store)
    with pytest.raises(InvalidArgument) as caught:
        store.record_outcome(delivery_id, "cancelled", reason)
    assert caught.value.name == "suppression_reason"
    for allowed in lifecycle.CANCEL_REASONS:
        assert allowed in caught.value.problem
    assert table_dump(store) == before


def test_an_outcome_without_a_claim_is_attempt_one(store: Store) -> None:
    delivery_id = _first(store, escalation_workflow())
    store.record_outcome(delivery_id, "succeeded")  # an in-app message recorded when shown
    explanation = store.explain_delivery("acme", delivery_id)
    assert explanation.delivery.attempt == 1
    (attempt,) = explanation.attempts
    assert (attempt.attempt, attempt.claimed_at, attempt.status) == (1, None, "succeeded")


# -- leases ----------------------------------------------------------------------------------------


def test_a_claim_leases_and_an_expired_lease_is_claimed_again(
    store: Store, clock: FakeClock
) -> None:
    delivery_id = _first(store, escalation_workflow())
    (claimed,) = store.claim_deliveries(lease_seconds=60)
    assert (claimed.id, claimed.status, claimed.attempt) == (delivery_id, "dispatched", 1)
    assert claimed.lease_expires_at == START + timedelta(seconds=60)
    clock.advance(seconds=59)
    assert store.claim_deliveries() == []  # held
    assert store.next_claimable_at() == START + timedelta(seconds=60)
    clock.advance(seconds=1)
    (again,) = store.claim_deliveries(lease_seconds=30)
    assert (again.id, again.attempt) == (delivery_id, 2)
    assert again.lease_expires_at == clock.now() + timedelta(seconds=30)
    attempts = store.explain_delivery("acme", delivery_id).attempts
    assert [(a.attempt, a.status, a.ended_at) for a in attempts] == [
        (1, "lease_expired", START + timedelta(seconds=60)),
        (2, "dispatched", None),
    ]


def test_next_claimable_at_of_one_channel(store: Store, clock: FakeClock) -> None:
    """A worker of some channels asks when *its* claims find work: another channel's pending
    delivery must not wake it (it would spin on work it cannot take)."""
    assert store.next_claimable_at() is None
    trigger(store)  # an in-app delivery, pending since START
    clock.advance(minutes=1)
    email = _first(store)  # the email step of RETRYING, pending since START + 1 min
    assert store.next_claimable_at() == START
    assert store.next_claimable_at(channel="in_app") == START
    assert store.next_claimable_at(channel="email") == START + timedelta(minutes=1)
    assert store.next_claimable_at(channel="sms") is None
    (claimed,) = store.claim_deliveries(channel="email", lease_seconds=90)
    assert claimed.id == email
    assert store.next_claimable_at(channel="email") == clock.now() + timedelta(seconds=90)
    store.record_outcome(email, "failed")  # retried 60 s later
    assert store.next_claimable_at(channel="email") == clock.now() + timedelta(seconds=60)
    assert store.next_claimable_at() == START
    with pytest.raises(InvalidArgument):
        store.next_claimable_at(channel=" ")


def test_extend_lease(store: Store, clock: FakeClock) -> None:
    delivery_id = _first(store, escalation_workflow())
    with pytest.raises(InvalidTransition):  # pending: no lease to extend
        store.extend_lease(delivery_id, 60)
    store.claim_deliveries(lease_seconds=60)
    clock.advance(seconds=90)  # expired, but not claimed again yet
    extended = store.extend_lease(delivery_id, 10)
    assert extended.lease_expires_at == clock.now() + timedelta(seconds=10)
    assert store.claim_deliveries() == []
    (attempt,) = store.explain_delivery("acme", delivery_id).attempts
    assert attempt.lease_expires_at == extended.lease_expires_at
    with pytest.raises(InvalidArgument):
        store.extend_lease(delivery_id, 0)
    store.record_outcome(delivery_id, "succeeded")
    with pytest.raises(InvalidTransition):
        store.extend_lease(delivery_id, 60)
    with pytest.raises(DeliveryNotFound):
        store.extend_lease("0194a3f0-0000-7000-8000-000000000000", 60)


def test_an_outcome_after_the_lease_ran_out_still_counts(store: Store, clock: FakeClock) -> None:
    delivery_id = _first(store, escalation_workflow())
    store.claim_deliveries(lease_seconds=60)
    clock.advance(minutes=5)
    progress = store.record_outcome(delivery_id, "succeeded")
    assert progress is not None and progress.kind is ProgressKind.WAITING
    assert store.claim_deliveries() == []


def test_two_claims_never_hold_one_delivery(store: Store) -> None:
    for i in range(5):
        trigger(store, recipient=f"r{i}")
    first = store.claim_deliveries(3)
    second = store.claim_deliveries(3)
    assert len(first) == 3 and len(second) == 2
    assert not {d.id for d in first} & {d.id for d in second}


# -- retries -----------------------------------------------------------------------------------


def test_the_retry_schedule_exactly(store: Store, clock: FakeClock) -> None:
    delivery_id = _first(store)
    (claimed,) = store.claim_deliveries()
    traces_before = len(store.list_traces("acme", claimed.workflow_run_id or ""))

    progress = store.record_outcome(delivery_id, "failed")
    assert progress is not None
    assert (progress.kind, progress.reason) == (ProgressKind.NOOP, "retry_scheduled")
    (retried,) = progress.deliveries
    assert retried.status is DeliveryStatus.PENDING
    assert retried.available_at == START + timedelta(seconds=60)  # 60 * 2**0
    assert len(store.list_traces("acme", claimed.workflow_run_id or "")) == traces_before
    assert store.claim_deliveries() == []  # not before its time

    clock.set(START + timedelta(seconds=60))
    (second,) = store.claim_deliveries()
    assert second.attempt == 2
    clock.advance(seconds=5)
    progress = store.record_outcome(delivery_id, "failed")
    assert progress is not None and progress.reason == "retry_scheduled"
    # 60 * 2**1 = 120, capped at max_backoff_seconds=100
    assert progress.deliveries[0].available_at == clock.now() + timedelta(seconds=100)

    clock.advance(seconds=100)
    (third,) = store.claim_deliveries()
    assert third.attempt == 3
    progress = store.record_outcome(delivery_id, "failed")
    assert progress is not None and progress.kind is ProgressKind.ADVANCED
    assert store.get_current_step(progress.run).step_key == "sms"
    (sms,) = progress.deliveries
    assert sms.channel == "sms"
    final = store.explain_delivery("acme", delivery_id)
    assert (final.delivery.status, final.delivery.suppression_reason) == (
        "cancelled",
        "retries_exhausted",
    )
    assert [(a.attempt, a.status, a.suppression_reason) for a in final.attempts] == [
        (1, "failed", None),
        (2, "failed", None),
        (3, "failed", None),
    ]
    assert "retries exhausted" in final.why
    context = store.list_traces("acme", progress.run.id)[-2].context
    assert context["workflow_outcome"] == "retries_exhausted"
    assert store.verify() == []


def test_without_a_policy_a_failure_is_final(store: Store) -> None:
    delivery_id = _first(store, escalation_workflow())
    store.claim_deliveries()
    progress = store.record_outcome(delivery_id, "failed")
    assert progress is not None and progress.kind is ProgressKind.WAITING
    assert store.claim_deliveries() == []


def test_retry_delays_follow_the_policy() -> None:
    policy = Retry(10, 30, 3.0, 1000)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5)] == [30, 90, 270, 810, 1000]
    assert Retry(100, 1, 10.0).retry_at(100, START).year == 9999  # far past the calendar


# -- what a worker gets -------------------------------------------------------------------------


def test_a_claim_says_whom_to_send_what(store: Store) -> None:
    data = {"reset_link": "https://example.test/r/123", "order": ["o-1", 2]}
    result = trigger(store, workflow=RETRYING, recipient="ada", data=data)
    assert result.notification.data == data
    assert result.deliveries[0].data == data
    (claimed,) = store.claim_deliveries()
    assert (claimed.recipient, claimed.notification_key, claimed.step_key) == (
        "ada",
        "welcome",
        "email",
    )
    assert claimed.data == data
    assert claimed.config["template"] == "reset"
    assert claimed.config["retry"] == {"max_attempts": 3, "backoff_seconds": 60,
                                       "multiplier": 2.0, "max_backoff_seconds": 100}  # fmt: skip
    assert claimed.digest_size == 1


def test_data_never_reaches_traces_explanations_or_messages(store: Store) -> None:
    secret = "sekret-reset-token-9f8e"
    result = trigger(store, workflow=RETRYING, data={"token": secret})
    (claimed,) = store.claim_deliveries()
    store.record_outcome(claimed.id, "failed")
    explained = store.explain_delivery("acme", claimed.id)
    assert explained.delivery.data == {}
    texts = [
        json.dumps([t.context for t in store.list_traces("acme", result.run.id)]),
        repr(store.explain("acme", result.run.id)),
        repr(explained),
    ]
    assert not any(secret in text for text in texts)
    for table in ("workflow_transitions", "workflow_runs", "delivery_events", "deliveries"):
        rows = sql(store).execute(f"SELECT * FROM {table}").fetchall()
        assert not any(secret in str(tuple(row)) for row in rows), table


@pytest.mark.parametrize(
    "data",
    [
        {"big": "x" * (64 * 1024)},
        {"nan": float("nan")},
        {"deep": _nested(40)},
        {"surrogate": "\ud800"},
        {1: "int key"},
        ["not", "a", "dict"],
    ],
    ids=["too big", "nan", "too deep", "surrogate", "int key", "list"],
)
def test_bad_data_is_refused_without_echoing_it(store: Store, data: Any) -> None:
    before = table_dump(store)
    with pytest.raises(InvalidArgument) as caught:
        trigger(store, data=data)
    assert caught.value.name == "data"
    assert "x" * 100 not in str(caught.value) and "int key" not in str(caught.value)
    assert table_dump(store) == before


def test_data_up_to_the_limit_is_kept(store: Store) -> None:
    data = {"a": "é" * ((64 * 1024 - 10) // 2)}  # two UTF-8 bytes each
    assert len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()) <= 64 * 1024
    assert trigger(store, data=data).notification.data == data


# -- explain_delivery ----------------------------------------------------------------------------


def test_explain_delivery_tells_the_attempts_and_what_comes_next(
    store: Store, clock: FakeClock
) -> None:
    delivery_id = _first(store)
    fresh = store.explain_delivery("acme", delivery_id)
    assert "not claimed yet" in fresh.why and "The next claim" in fresh.next_move
    store.claim_deliveries(lease_seconds=120)
    held = store.explain_delivery("acme", delivery_id)
    assert "Attempt 1 of 3 was claimed" in held.why
    assert "Waiting for the worker's outcome" in held.next_move
    clock.advance(minutes=2)
    store.record_outcome(delivery_id, "failed")
    retry = store.explain_delivery("acme", delivery_id)
    assert retry.why == (
        "Attempt 1 of 3 failed at 2026-01-05T09:32:00+00:00; retry at 2026-01-05T09:33:00+00:00."
    )
    assert retry.next_move.startswith("The first claim from 2026-01-05T09:33:00+00:00 (in 1 min)")


def test_explain_delivery_keeps_to_its_tenant(store: Store) -> None:
    delivery_id = _first(store, escalation_workflow())
    missing = "0194a3f0-0000-7000-8000-000000000000"
    with pytest.raises(DeliveryNotFound) as other:
        store.explain_delivery("globex", delivery_id)
    with pytest.raises(DeliveryNotFound) as absent:
        store.explain_delivery("globex", missing)
    assert str(other.value).replace(delivery_id, "?") == str(absent.value).replace(missing, "?")
    with pytest.raises(DeliveryNotFound):
        store.record_outcome(delivery_id, "succeeded", tenant_id="globex")
    assert store.record_outcome(delivery_id, "succeeded", tenant_id="acme") is not None


# -- verify ------------------------------------------------------------------------------------


def test_verify_reports_a_final_delivery_rewritten_behind_the_engines_back(
    store: Store,
) -> None:
    delivery_id = _first(store, escalation_workflow())
    store.claim_deliveries()
    store.record_outcome(delivery_id, "succeeded")
    assert store.verify() == []
    sql(store).execute(
        "UPDATE deliveries SET status = 'pending', lease_expires_at = NULL WHERE id = ?",
        (delivery_id,),
    )
    problems = [p for p in store.verify() if delivery_id in p]
    assert any("its history ended it 'succeeded'" in p for p in problems), problems


def test_verify_reports_a_lease_on_a_delivery_that_is_not_dispatched(store: Store) -> None:
    delivery_id = _first(store, escalation_workflow())
    sql(store).execute(
        "UPDATE deliveries SET lease_expires_at = '2026-01-05T09:40:00.000000+00:00' WHERE id = ?",
        (delivery_id,),
    )
    assert any("a lease belongs to a dispatched delivery" in p for p in store.verify())


# -- hypothesis: no sequence breaks the lifecycle -------------------------------------------------

_steps = st.lists(
    st.one_of(
        st.tuples(st.just("claim"), st.integers(1, 120)),
        st.tuples(st.just("extend"), st.integers(1, 120)),
        st.tuples(
            st.just("record"),
            st.sampled_from(["succeeded", "failed", "suppressed", "cancelled"]),
            st.sampled_from([None, "bounced", "retries_exhausted", "opted_out"]),
        ),
        st.tuples(st.just("wait"), st.integers(1, 400)),
    ),
    max_size=30,
)


@settings(max_examples=60)
@given(_steps)
def test_no_sequence_makes_a_final_delivery_claimable_or_over_attempted(
    steps: list[tuple[Any, ...]],
) -> None:
    clock = FakeClock(START)
    with Store(":memory:", clock=clock) as store:
        delivery_id = _first(store)
        finished = False
        for step in steps:
            try:
                if step[0] == "claim":
                    claimed = store.claim_deliveries(lease_seconds=step[1])
                    taken = delivery_id in {d.id for d in claimed}
                    assert not (finished and taken), "a final delivery was claimed"
                elif step[0] == "extend":
                    store.extend_lease(delivery_id, step[1])
                elif step[0] == "record":
                    store.record_outcome(delivery_id, step[1], step[2])
                else:
                    clock.advance(seconds=step[1])
            except (InvalidTransition, InvalidArgument):
                pass
            delivery = store.explain_delivery("acme", delivery_id)
            assert delivery.delivery.attempt <= 3
            assert len(delivery.attempts) <= 3
            finished = delivery.delivery.status in lifecycle.FINAL_STATUSES
        assert store.verify() == []


def test_a_lease_that_runs_out_on_the_last_attempt_exhausts_the_delivery(
    store: Store, clock: FakeClock
) -> None:
    """Three claims whose leases all run out: the third is the last the policy allows, so
    the next claim does not hand it out a fourth time — it exhausts it, and the run
    branches on retries_exhausted (to the sms step) in the same unit of work."""
    result = trigger(store, workflow=RETRYING)
    delivery_id = result.deliveries[0].id
    for attempt in (1, 2, 3):
        (claimed,) = store.claim_deliveries(lease_seconds=60)
        assert (claimed.id, claimed.attempt, claimed.max_attempts) == (delivery_id, attempt, 3)
        clock.advance(seconds=61)
    (sms,) = store.claim_deliveries()
    assert sms.channel == "sms" and sms.step_key == "sms"
    explained = store.explain_delivery("acme", delivery_id)
    assert (explained.delivery.status, explained.delivery.suppression_reason) == (
        "cancelled",
        "retries_exhausted",
    )
    assert [(a.attempt, a.status) for a in explained.attempts] == [
        (1, "lease_expired"),
        (2, "lease_expired"),
        (3, "lease_expired"),
    ]
    assert explained.attempts[-1].ended_at == START + timedelta(seconds=2 * 61 + 60)
    assert store.get_current_step(store.get_run(result.run.id)).step_key == "sms"
    assert store.verify() == []


def test_without_a_policy_a_lease_that_runs_out_is_handed_out_again(
    store: Store, clock: FakeClock
) -> None:
    delivery_id = _first(store, escalation_workflow())
    for attempt in range(1, 6):
        (claimed,) = store.claim_deliveries(lease_seconds=1)
        assert (claimed.id, claimed.attempt, claimed.max_attempts) == (delivery_id, attempt, None)
        clock.advance(seconds=2)
    assert store.verify() == []
