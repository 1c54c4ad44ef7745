"""The pure state machine (CONTRACT §4): the decision table row by row, exact contexts, and
hypothesis invariants (terminal states never change, a noop writes nothing, contexts stay in
the catalogue, the machine agrees with the model of ``journeys.py``)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from imports import closure, imports_of, modules
from journeys import (
    CATALOGUE,
    EVENTS,
    GHOST_STEP,
    SUPPRESSION_REASONS,
    T0,
    Case,
    ModelDelivery,
    ModelRun,
    cases,
    definition_of,
    expect_progress,
    expect_resume,
    expect_start,
    expected_outcome,
    stamp,
    step_id,
    wait_context,
    workflows,
)

from chimeway_lite import (
    Delivery,
    DeliveryStatus,
    OnOutcome,
    Outcome,
    ProgressKind,
    RunState,
    Step,
    StepNotFound,
    Stop,
    WaitUntil,
    Workflow,
    WorkflowDefinition,
    WorkflowRun,
    machine,
)
from chimeway_lite.core.records import DigestBatch
from chimeway_lite.machine import Decision, DeliveryPlan, Journey, TransitionPlan
from chimeway_lite.machine.kinds import Arrival, Closing

A = RunState.ACTIVE
W = RunState.WAITING
C = RunState.COMPLETED
S = RunState.STOPPED
SETTLED = T0 + timedelta(seconds=5)  # microseconds 0 on purpose: ".000000" must be kept
NOW = T0 + timedelta(minutes=1, microseconds=250)


# -- fixtures as plain functions -----------------------------------------------------------------


def journey_of(*first_rules: Any) -> tuple[Journey, WorkflowDefinition]:
    """s1 (in_app, the given rules) -> s2 (email) -> s3 (sms), no validation."""
    workflow = Workflow(
        "journey",
        1,
        [
            Step("s1", 1, "in_app", progress=list(first_rules)),
            Step("s2", 2, "email"),
            Step("s3", 3, "sms"),
        ],
    )
    definition = definition_of(workflow)
    return Journey.of(definition), definition


def sid(key: str) -> str:
    """The id of step ``key`` in :func:`journey_of`'s definition."""
    return f"def-1:{key}"


def run_on(step: str = "s1", **fields: Any) -> WorkflowRun:
    """An active run on ``step`` (fields override)."""
    base = WorkflowRun(
        id="run-1",
        tenant_id="acme",
        notification_id="n-1",
        workflow_definition_id="def-1",
        current_step_id=sid(step),
        state=A,
        status_reason="workflow_started",
        status_context={"source": "trigger"},
        started_at=T0,
        last_transition_at=T0,
        suspended_until=None,
        pending_signals=(),
        terminal_reason=None,
    )
    return attrs.evolve(base, **fields)


def delivery(
    status: DeliveryStatus | str,
    reason: str | None = None,
    *,
    step: str = "s1",
    at: datetime = SETTLED,
    id: str = "d-1",
) -> Delivery:
    """The anchor delivery of a step."""
    return Delivery(
        id=id,
        tenant_id="acme",
        notification_id="n-1",
        channel="in_app",
        status=DeliveryStatus(status),
        suppression_reason=reason,
        workflow_run_id="run-1",
        workflow_step_id=sid(step),
        inserted_at=T0,
        updated_at=at,
    )


def waiting_run(to_step: str = "s2", delay: int = 7200, **fields: Any) -> WorkflowRun:
    """A run waiting on s1 for ``delay`` seconds after SETTLED."""
    values: dict[str, Any] = {
        "state": W,
        "status_reason": "waiting_for_step_progression",
        "status_context": wait_context("d-1", "succeeded", SETTLED, delay, to_step),
        "suspended_until": SETTLED + timedelta(seconds=delay),
        "pending_signals": ("notification_read",),
        "last_transition_at": SETTLED,
        "wait_kind": "wait_until",
        "wait_target": to_step,
    }
    return run_on(**{**values, **fields})


# -- outcome_of ----------------------------------------------------------------------------------

OUTCOME_TABLE = [
    (DeliveryStatus.SUCCEEDED, None, Outcome.DELIVERED),
    (DeliveryStatus.SUCCEEDED, "bounced", Outcome.DELIVERED),
    (DeliveryStatus.SUPPRESSED, None, Outcome.SUPPRESSED),
    (DeliveryStatus.SUPPRESSED, "quota", Outcome.SUPPRESSED),
    (DeliveryStatus.FAILED, None, Outcome.TEMPORARY_FAILURE),
    (DeliveryStatus.FAILED, "bounced", Outcome.TEMPORARY_FAILURE),
    (DeliveryStatus.CANCELLED, "retries_exhausted", Outcome.RETRIES_EXHAUSTED),
    (DeliveryStatus.CANCELLED, "permanent_failure", Outcome.PERMANENT_FAILURE),
    (DeliveryStatus.CANCELLED, "bounced", Outcome.BOUNCED),
    (DeliveryStatus.CANCELLED, None, None),
    (DeliveryStatus.CANCELLED, "quota", None),
    (DeliveryStatus.CANCELLED, "delivered", None),
    (DeliveryStatus.PENDING, None, None),
    (DeliveryStatus.PENDING, "bounced", None),
    (DeliveryStatus.DISPATCHED, None, None),
    (DeliveryStatus.DISPATCHED, "bounced", None),
]


@pytest.mark.parametrize(("status", "reason", "expected"), OUTCOME_TABLE)
def test_outcome_of_maps_every_status(
    status: DeliveryStatus, reason: str | None, expected: Outcome | None
) -> None:
    assert machine.outcome_of(status, reason) is expected


@pytest.mark.parametrize(("status", "reason", "expected"), OUTCOME_TABLE)
def test_outcome_of_accepts_string_values(
    status: DeliveryStatus, reason: str | None, expected: Outcome | None
) -> None:
    # CONTRACT §11: where a status is taken, the enum member and its string value both work.
    assert machine.outcome_of(status.value, reason) is expected


def test_outcome_table_covers_every_status() -> None:
    assert {row[0] for row in OUTCOME_TABLE} == set(DeliveryStatus)
    for status, reason, expected in OUTCOME_TABLE:
        assert expected_outcome(status.value, reason) == (expected and expected.value)


# -- start ---------------------------------------------------------------------------------------


def test_start_opens_the_run_on_the_lowest_order_step() -> None:
    workflow = Workflow("j", 1, [Step("later", 2, "email"), Step("first", 1, "in_app")])
    definition = definition_of(workflow)
    decision = machine.start(
        Journey.of(definition), run_id="run-9", tenant_id="acme", notification_id="n-9", now=NOW
    )
    assert decision == Decision(
        ProgressKind.ADVANCED,
        "workflow_started",
        WorkflowRun(
            id="run-9",
            tenant_id="acme",
            notification_id="n-9",
            workflow_definition_id="def-1",
            current_step_id=step_id(definition, "first"),
            state=A,
            status_reason="workflow_started",
            status_context={"source": "trigger"},
            started_at=NOW,
            last_transition_at=NOW,
            suspended_until=None,
            pending_signals=(),
            terminal_reason=None,
            entered_step_at=NOW,
        ),
        (
            TransitionPlan(None, A, "workflow_started", None, None, {"source": "trigger"}),
            TransitionPlan(
                A,
                A,
                "step_activated",
                step_id(definition, "first"),
                None,
                {"source": "trigger", "step_key": "first"},
            ),
        ),
        (DeliveryPlan(step_id(definition, "first"), "in_app"),),
    )


def test_a_definition_without_steps_cannot_start() -> None:
    empty = attrs.evolve(definition_of(Workflow("j", 1, [Step("a", 1, "x")])), steps=())
    with pytest.raises(StepNotFound):
        Journey.of(empty)


# -- the decision table of an active run ---------------------------------------------------------

BRANCHABLE = [
    (DeliveryStatus.SUCCEEDED, None, "delivered"),
    (DeliveryStatus.SUPPRESSED, None, "suppressed"),
    (DeliveryStatus.FAILED, None, "temporary_failure"),
    (DeliveryStatus.CANCELLED, "retries_exhausted", "retries_exhausted"),
    (DeliveryStatus.CANCELLED, "permanent_failure", "permanent_failure"),
    (DeliveryStatus.CANCELLED, "bounced", "bounced"),
]
NOT_BRANCHABLE = [
    (DeliveryStatus.PENDING, None),
    (DeliveryStatus.DISPATCHED, None),
    (DeliveryStatus.CANCELLED, None),
    (DeliveryStatus.CANCELLED, "quota"),
]

# (id, rules of s1, status, suppression_reason, kind, reason, rule_kind or None, target step)
# fmt: off
TABLE: list[tuple[str, list[Any], str, str | None, str, str, str | None, str | None]] = [
    ("no rules, delivered", [], "succeeded", None, "completed", "workflow_completed",
     "implicit_completion", None),
    ("no rules, pending", [], "pending", None, "noop", "no_progress_rules", None, None),
    ("wait, not converged", [WaitUntil(60, "s2")], "dispatched", None, "noop",
     "prior_delivery_not_converged", None, None),
    ("wait among others, not converged", [OnOutcome("bounced", "s3"), WaitUntil(60, "s2")],
     "cancelled", "quota", "noop", "prior_delivery_not_converged", None, None),
    ("no wait, not converged", [OnOutcome("delivered", "s2"), Stop("bounced")], "pending",
     None, "noop", "no_matching_progress_rule", None, None),
    ("on_outcome match", [OnOutcome("delivered", "s2")], "succeeded", None, "advanced",
     "progressed_on_delivery_outcome", "on_outcome", "s2"),
    ("stop match", [Stop("suppressed")], "suppressed", None, "stopped", "workflow_stopped",
     "stop", None),
    ("stop before on_outcome", [Stop("bounced"), OnOutcome("bounced", "s2")], "cancelled",
     "bounced", "stopped", "workflow_stopped", "stop", None),
    ("on_outcome before stop", [OnOutcome("bounced", "s2"), Stop("bounced")], "cancelled",
     "bounced", "advanced", "progressed_on_delivery_outcome", "on_outcome", "s2"),
    ("on_outcome after a wait still wins", [WaitUntil(60, "s3"), OnOutcome("bounced", "s2")],
     "cancelled", "bounced", "advanced", "progressed_on_delivery_outcome", "on_outcome", "s2"),
    ("stop after a wait still wins", [WaitUntil(60, "s3"), Stop("temporary_failure")],
     "failed", None, "stopped", "workflow_stopped", "stop", None),
    ("first on_outcome of two", [OnOutcome("delivered", "s3"), OnOutcome("delivered", "s2")],
     "succeeded", None, "advanced", "progressed_on_delivery_outcome", "on_outcome", "s3"),
    ("wait when no on_outcome matches", [OnOutcome("bounced", "s2"), WaitUntil(60, "s3")],
     "succeeded", None, "waiting", "waiting_for_step_progression", "wait_until", "s3"),
    ("first wait of two", [WaitUntil(60, "s2"), WaitUntil(120, "s3")], "succeeded", None,
     "waiting", "waiting_for_step_progression", "wait_until", "s2"),
    ("no rule matches, no wait", [OnOutcome("bounced", "s2"), Stop("suppressed")],
     "succeeded", None, "completed", "workflow_completed", "implicit_completion", None),
    ("on_outcome to an unknown step", [OnOutcome("delivered", GHOST_STEP)], "succeeded", None,
     "noop", "unknown_to_step", None, None),
    ("wait to an unknown step", [WaitUntil(60, GHOST_STEP)], "succeeded", None, "noop",
     "unknown_to_step", None, None),
]
# fmt: on


@pytest.mark.parametrize(
    ("rules", "status", "reason", "kind", "why", "rule_kind", "target"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_decision_table(
    rules: list[Any],
    status: str,
    reason: str | None,
    kind: str,
    why: str,
    rule_kind: str | None,
    target: str | None,
) -> None:
    journey, _ = journey_of(*rules)
    run = run_on()
    decision = machine.progress(run, journey, delivery(status, reason), now=NOW)
    assert (decision.kind.value, decision.reason) == (kind, why)
    if kind == "noop":
        assert decision.run == run
        assert (decision.transitions, decision.deliveries) == ((), ())
        return
    assert decision.run.status_context["rule_kind"] == rule_kind
    if kind == "advanced":
        assert decision.run.current_step_id == sid(target or "")
        assert decision.deliveries == (
            DeliveryPlan(sid(target or ""), journey.step(sid(target or "")).channel),
        )
    if kind == "waiting":
        assert decision.run.status_context["to_step"] == target
        assert decision.run.current_step_id == sid("s1")


@pytest.mark.parametrize(("status", "reason", "outcome"), BRANCHABLE)
def test_no_rules_completes_on_every_branchable_outcome(
    status: DeliveryStatus, reason: str | None, outcome: str
) -> None:
    journey, _ = journey_of()
    decision = machine.progress(run_on(), journey, delivery(status, reason), now=NOW)
    assert decision.kind is ProgressKind.COMPLETED
    assert decision.run.terminal_reason == "workflow_completed"
    assert decision.run.status_context == {
        "rule_kind": "implicit_completion",
        "workflow_outcome": outcome,
        "anchor_delivery_id": "d-1",
        "delivery_status": status.value,
        "suppression_reason": reason,
    }


@pytest.mark.parametrize(("status", "reason"), NOT_BRANCHABLE)
def test_no_rules_and_not_branchable_is_a_noop(status: DeliveryStatus, reason: str | None) -> None:
    journey, _ = journey_of()
    run = run_on()
    decision = machine.progress(run, journey, delivery(status, reason), now=NOW)
    assert (decision.kind, decision.reason) == (ProgressKind.NOOP, "no_progress_rules")
    assert decision.run is run


@pytest.mark.parametrize(("status", "reason"), NOT_BRANCHABLE)
def test_not_branchable_with_and_without_a_wait_rule(
    status: DeliveryStatus, reason: str | None
) -> None:
    with_wait, _ = journey_of(Stop("bounced"), WaitUntil(60, "s2"))
    without, _ = journey_of(Stop("bounced"), OnOutcome("delivered", "s2"))
    anchor = delivery(status, reason)
    assert machine.progress(run_on(), with_wait, anchor, now=NOW).reason == (
        "prior_delivery_not_converged"
    )
    assert machine.progress(run_on(), without, anchor, now=NOW).reason == (
        "no_matching_progress_rule"
    )


@pytest.mark.parametrize(("status", "reason", "outcome"), BRANCHABLE)
def test_wait_until_applies_to_every_branchable_outcome(
    status: DeliveryStatus, reason: str | None, outcome: str
) -> None:
    journey, _ = journey_of(
        OnOutcome("bounced" if outcome != "bounced" else "delivered", "s3"), WaitUntil(90, "s2")
    )
    decision = machine.progress(run_on(), journey, delivery(status, reason), now=NOW)
    assert decision.kind is ProgressKind.WAITING
    assert decision.run.status_context["anchor_delivery_status"] == status.value
    assert decision.run.suspended_until == SETTLED + timedelta(seconds=90)


@pytest.mark.parametrize(("status", "reason", "outcome"), BRANCHABLE)
def test_first_on_outcome_or_stop_wins_wherever_the_wait_stands(
    status: DeliveryStatus, reason: str | None, outcome: str
) -> None:
    for rules in (
        [WaitUntil(60, "s3"), OnOutcome(outcome, "s2"), Stop(outcome)],
        [OnOutcome(outcome, "s2"), WaitUntil(60, "s3"), Stop(outcome)],
        [OnOutcome(outcome, "s2"), Stop(outcome), WaitUntil(60, "s3")],
    ):
        journey, _ = journey_of(*rules)
        decision = machine.progress(run_on(), journey, delivery(status, reason), now=NOW)
        assert decision.kind is ProgressKind.ADVANCED, rules
        assert decision.run.current_step_id == sid("s2")
    for rules in (
        [WaitUntil(60, "s3"), Stop(outcome), OnOutcome(outcome, "s2")],
        [Stop(outcome), WaitUntil(60, "s3"), OnOutcome(outcome, "s2")],
    ):
        journey, _ = journey_of(*rules)
        decision = machine.progress(run_on(), journey, delivery(status, reason), now=NOW)
        assert decision.kind is ProgressKind.STOPPED, rules


def test_no_anchor_delivery_is_a_noop() -> None:
    journey, _ = journey_of(WaitUntil(60, "s2"))
    run = run_on()
    decision = machine.progress(run, journey, None, now=NOW)
    assert (decision.kind, decision.reason, decision.run) == (
        ProgressKind.NOOP,
        "no_active_step_delivery",
        run,
    )
    assert decision.is_noop


@pytest.mark.parametrize("state", [C, S])
def test_terminal_runs_do_not_move(state: RunState) -> None:
    journey, _ = journey_of(OnOutcome("delivered", "s2"))
    run = run_on(state=state, terminal_reason="workflow_completed")
    for anchor in (None, delivery("succeeded")):
        decision = machine.progress(run, journey, anchor, now=NOW + timedelta(days=9))
        assert (decision.kind, decision.reason) == (ProgressKind.NOOP, "run_not_active")
        assert decision.run is run and (decision.transitions, decision.deliveries) == ((), ())
    assert machine.resume(run, "notification_read", None, now=NOW).is_noop


# -- exact moves -----------------------------------------------------------------------------------


def test_outcome_advance_exactly() -> None:
    journey, _ = journey_of(OnOutcome(Outcome.BOUNCED, "s2"))
    decision = machine.progress(run_on(), journey, delivery("cancelled", "bounced"), now=NOW)
    context = {
        "rule_kind": "on_outcome",
        "workflow_outcome": "bounced",
        "anchor_delivery_id": "d-1",
        "from_step": "s1",
        "to_step": "s2",
        "delivery_status": "cancelled",
        "suppression_reason": "bounced",
    }
    assert decision == Decision(
        ProgressKind.ADVANCED,
        "progressed_on_delivery_outcome",
        run_on(
            "s2",
            status_reason="progressed_on_delivery_outcome",
            status_context=context,
            last_transition_at=NOW,
            entered_step_at=NOW,
        ),
        (
            TransitionPlan(A, A, "progressed_on_delivery_outcome", sid("s1"), "d-1", context),
            TransitionPlan(
                A, A, "step_activated", sid("s2"), None, {"step_key": "s2", "source": "progression"}
            ),
        ),
        (DeliveryPlan(sid("s2"), "email"),),
    )


@pytest.mark.parametrize("status", [DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED])
def test_enter_waiting_exactly(status: DeliveryStatus) -> None:
    journey, _ = journey_of(WaitUntil(7200, "s2", ["notification_read", "clicked"]))
    assert SETTLED.microsecond == 0
    decision = machine.progress(run_on(), journey, delivery(status), now=NOW)
    context = {
        "rule_kind": "wait_until",
        "anchor": "prior_delivery_terminal_at",
        "anchor_delivery_id": "d-1",
        "anchor_delivery_status": status.value,
        "anchor_timestamp": "2026-01-05T09:30:05.000000+00:00",
        "due_at": "2026-01-05T11:30:05.000000+00:00",
        "to_step": "s2",
    }
    assert decision == Decision(
        ProgressKind.WAITING,
        "waiting_for_step_progression",
        run_on(
            state=W,
            status_reason="waiting_for_step_progression",
            status_context=context,
            last_transition_at=NOW,
            suspended_until=SETTLED + timedelta(hours=2),
            pending_signals=("notification_read", "clicked"),
            wait_kind="wait_until",
            wait_target="s2",
        ),
        (TransitionPlan(A, W, "waiting_for_step_progression", sid("s1"), "d-1", context),),
    )


def test_wait_is_anchored_on_the_delivery_not_on_now() -> None:
    journey, _ = journey_of(WaitUntil(60, "s2"))
    at = datetime(2026, 2, 1, 0, 0, 0, 7, tzinfo=UTC)
    decision = machine.progress(
        run_on(), journey, delivery("succeeded", at=at), now=at + timedelta(days=3)
    )
    assert decision.run.status_context["anchor_timestamp"] == "2026-02-01T00:00:00.000007+00:00"
    assert decision.run.status_context["due_at"] == "2026-02-01T00:01:00.000007+00:00"
    assert decision.run.suspended_until == at + timedelta(seconds=60)
    assert decision.run.pending_signals == ()


def test_a_wait_past_the_calendar_ends_at_the_latest_instant() -> None:
    journey, _ = journey_of(WaitUntil(10**12, "s2"))
    decision = machine.progress(run_on(), journey, delivery("succeeded"), now=NOW)
    assert decision.run.suspended_until == datetime.max.replace(tzinfo=UTC)
    assert decision.run.status_context["due_at"] == "9999-12-31T23:59:59.999999+00:00"


def test_wait_not_due_until_the_very_microsecond() -> None:
    journey, _ = journey_of(WaitUntil(7200, "s2"))
    run = waiting_run()
    due = SETTLED + timedelta(hours=2)
    early = machine.progress(
        run, journey, delivery("succeeded"), now=due - timedelta(microseconds=1)
    )
    assert (early.kind, early.reason, early.run) == (ProgressKind.NOOP, "wait_not_due", run)
    assert (early.transitions, early.deliveries) == ((), ())
    assert machine.progress(run, journey, None, now=due).kind is ProgressKind.ADVANCED


def test_wait_without_a_due_time_is_never_due() -> None:
    journey, _ = journey_of(WaitUntil(7200, "s2"))
    run = waiting_run(suspended_until=None)
    decision = machine.progress(run, journey, None, now=datetime.max.replace(tzinfo=UTC))
    assert (decision.kind, decision.reason) == (ProgressKind.NOOP, "wait_not_due")


def test_wait_elapsed_exactly() -> None:
    journey, _ = journey_of(WaitUntil(7200, "s3"))
    run = waiting_run("s3")
    later = SETTLED + timedelta(hours=3, microseconds=1)
    decision = machine.progress(run, journey, delivery("succeeded"), now=later)
    wait = wait_context("d-1", "succeeded", SETTLED, 7200, "s3")
    status_context = {
        "rule_kind": "wait_until",
        "workflow_outcome": "wait_elapsed",
        "anchor_delivery_id": "d-1",
        "from_step": "s1",
        "to_step": "s3",
    }
    assert decision == Decision(
        ProgressKind.ADVANCED,
        "progressed_on_delivery_outcome",
        run_on(
            "s3",
            status_reason="progressed_on_delivery_outcome",
            status_context=status_context,
            last_transition_at=later,
            entered_step_at=later,
        ),
        (
            TransitionPlan(
                W,
                A,
                "reactivated_from_wait",
                sid("s1"),
                "d-1",
                {**wait, "reactivated_at": "2026-01-05T12:30:05.000001+00:00"},
            ),
            TransitionPlan(
                A, A, "step_activated", sid("s3"), None, {"step_key": "s3", "source": "progression"}
            ),
        ),
        (DeliveryPlan(sid("s3"), "sms"),),
    )


def test_wait_elapsed_to_an_unknown_step_is_a_noop() -> None:
    journey, _ = journey_of(WaitUntil(7200, "s2"))
    run = waiting_run(GHOST_STEP)
    due = SETTLED + timedelta(hours=2)
    decision = machine.progress(run, journey, None, now=due)
    assert (decision.kind, decision.reason, decision.run) == (
        ProgressKind.NOOP,
        "unknown_to_step",
        run,
    )
    # not yet due: the due check comes first
    assert machine.progress(run, journey, None, now=due - timedelta(seconds=1)).reason == (
        "wait_not_due"
    )


def test_resume_exactly() -> None:
    run = waiting_run()
    decision = machine.resume(run, "notification_read", "d-7", now=NOW)
    assert decision == Decision(
        ProgressKind.ADVANCED,
        "signal_received",
        attrs.evolve(
            run,
            state=A,
            status_reason="signal_received",
            last_transition_at=NOW,
            suspended_until=None,
            pending_signals=(),
            wait_kind=None,
            wait_target=None,
            resumed_by="notification_read",
        ),
        (
            TransitionPlan(
                W, A, "signal_received", None, "d-7", {"event_name": "notification_read"}
            ),
        ),
    )
    assert decision.run.status_context == run.status_context  # unchanged: it names the anchor
    assert (
        machine.resume(run, "notification_read", None, now=NOW).transitions[0].delivery_id is None
    )


@pytest.mark.parametrize(
    "run",
    [
        waiting_run(),  # waiting, but for another event
        run_on(pending_signals=("clicked",)),  # not waiting
        run_on(state=C, terminal_reason="workflow_completed", pending_signals=("clicked",)),
    ],
)
def test_resume_of_a_signal_not_awaited_is_a_noop(run: WorkflowRun) -> None:
    decision = machine.resume(run, "clicked", None, now=NOW)
    assert (decision.kind, decision.reason, decision.run) == (
        ProgressKind.NOOP,
        "signal_not_awaited",
        run,
    )
    assert (decision.transitions, decision.deliveries) == ((), ())


@pytest.mark.parametrize(
    "anchor",
    [None, delivery("cancelled", "bounced"), delivery("succeeded"), delivery("pending")],
    ids=["no anchor", "bounced", "delivered", "pending"],
)
def test_settle_after_signal_completes_whatever_the_delivery_says(anchor: Delivery | None) -> None:
    journey, _ = journey_of(
        OnOutcome("bounced", "s2"), WaitUntil(7200, "s2", ["notification_read"])
    )
    resumed = machine.resume(waiting_run(), "notification_read", None, now=NOW).run
    # the run's own record of what resumed it decides (a host may rewrite it)
    resumed = attrs.evolve(resumed, resumed_by="clicked")
    later = NOW + timedelta(seconds=1)
    decision = machine.progress(resumed, journey, anchor, now=later)
    context = {"rule_kind": "wait_cancelled", "event_name": "clicked", "anchor_delivery_id": "d-1"}
    assert decision == Decision(
        ProgressKind.COMPLETED,
        "workflow_completed",
        attrs.evolve(
            resumed,
            state=C,
            status_reason="workflow_completed",
            status_context=context,
            last_transition_at=later,
            terminal_reason="cancelled_by_signal",
            resumed_by=None,
        ),
        (TransitionPlan(A, C, "workflow_completed", sid("s1"), "d-1", context),),
    )


def test_stop_exactly() -> None:
    journey, _ = journey_of(Stop(Outcome.PERMANENT_FAILURE))
    decision = machine.progress(
        run_on(), journey, delivery("cancelled", "permanent_failure"), now=NOW
    )
    context = {
        "rule_kind": "stop",
        "workflow_outcome": "permanent_failure",
        "anchor_delivery_id": "d-1",
        "delivery_status": "cancelled",
        "suppression_reason": "permanent_failure",
    }
    assert decision == Decision(
        ProgressKind.STOPPED,
        "workflow_stopped",
        run_on(
            state=S,
            status_reason="workflow_stopped",
            status_context=context,
            last_transition_at=NOW,
            terminal_reason="workflow_stopped",
        ),
        (TransitionPlan(A, S, "workflow_stopped", sid("s1"), "d-1", context),),
    )


def test_implicit_completion_exactly() -> None:
    journey, _ = journey_of(OnOutcome("bounced", "s2"))
    decision = machine.progress(run_on(), journey, delivery("suppressed", "quota"), now=NOW)
    context = {
        "rule_kind": "implicit_completion",
        "workflow_outcome": "suppressed",
        "anchor_delivery_id": "d-1",
        "delivery_status": "suppressed",
        "suppression_reason": "quota",
    }
    assert decision == Decision(
        ProgressKind.COMPLETED,
        "workflow_completed",
        run_on(
            state=C,
            status_reason="workflow_completed",
            status_context=context,
            last_transition_at=NOW,
            terminal_reason="workflow_completed",
        ),
        (TransitionPlan(A, C, "workflow_completed", sid("s1"), "d-1", context),),
    )


# -- the module itself -----------------------------------------------------------------------------


def test_context_keys_are_the_spec_catalogue() -> None:
    assert frozenset(CATALOGUE) == machine.CONTEXT_KEYS


def test_noop_reasons_are_the_spec_names() -> None:
    assert {
        "wait_not_due",
        "run_not_active",
        "no_active_step_delivery",
        "no_progress_rules",
        "prior_delivery_not_converged",
        "no_matching_progress_rule",
        "unknown_to_step",
    } <= machine.NOOP_REASONS


def test_the_machine_does_no_io() -> None:
    # every module of the machine and every package module they import, directly or not
    forbidden = {"sqlite3", "psycopg", "time", "uuid", "random", "os", "secrets", "socket"}
    reached = set().union(*(closure(m) for m in modules() if m.startswith("chimeway_lite.machine")))
    for name in reached:
        bad = {i for i in imports_of(name) if i.split(".")[0] in forbidden}
        assert not bad, f"{name} imports {sorted(bad)}"
    assert not {
        m for m in reached if m.startswith(("chimeway_lite.engine", "chimeway_lite.backends"))
    }
    assert {"chimeway_lite.machine.decide", "chimeway_lite.core.records"} <= reached


# -- hypothesis on the machine ---------------------------------------------------------------------


def _key(definition: WorkflowDefinition, step_id_: str) -> str:
    return step_id_.removeprefix(f"{definition.id}:")


def _model(case: Case) -> tuple[ModelRun, ModelDelivery | None]:
    run = case.run
    model = ModelRun(
        id=run.id,
        tenant_id=run.tenant_id,
        recipient="alice",
        workflow=case.workflow,
        step_key=_key(case.definition, run.current_step_id),
        last_transition_at=run.last_transition_at,
        state=run.state.value,
        status_reason=run.status_reason,
        suspended_until=run.suspended_until,
        pending_signals=run.pending_signals,
        terminal_reason=run.terminal_reason,
        wait_to_step=run.wait_target,
        trace_rows=0,
        entered_at=run.entered_step_at,
        resumed_by=run.resumed_by,
        wait_kind=run.wait_kind,
    )
    anchor = case.anchor
    if anchor is None:
        return model, None
    return model, ModelDelivery(
        anchor.id,
        run.id,
        model.step_key,
        anchor.channel,
        anchor.updated_at,
        anchor.status.value,
        anchor.suppression_reason,
    )


def _facts(case: Case, journey: Journey) -> tuple[Arrival, Closing | None]:
    """The case's facts as the engine hands them to the machine (CONTRACT §14)."""
    facts = case.facts
    batch = None
    if facts.batch is not None:
        closes, size = facts.batch
        batch = DigestBatch("b-1", "acme", "alice", "g", case.run.current_step_id, T0, closes)
        batch = attrs.evolve(batch, size=size)
    zone = UTC if facts.zone is None else ZoneInfo(facts.zone)
    closing = None
    if facts.closing is not None:
        place, others = facts.closing
        step = journey.step(case.run.current_step_id)
        members = [(attrs.evolve(case.run, id=f"other-{i}"), step) for i in range(others)]
        if place >= 0:
            members.insert(place, (case.run, step))
        closing = Closing("b-1", tuple(members))
    return Arrival(facts.activations, batch, zone), closing


def _decide(case: Case) -> Decision:
    """The machine's decision for a case, gated by the step it activates (as the engine
    asks: :func:`machine.enter` after :func:`machine.progress`)."""
    journey = Journey.of(case.definition)
    arrival, closing = _facts(case, journey)
    decision = machine.progress(
        case.run, journey, case.anchor, now=case.now, early_signal=case.early, closing=closing
    )
    return decision if decision.is_noop else machine.enter(decision, journey, arrival, now=case.now)


def _check_decision(before: WorkflowRun, decision: Decision, now: datetime) -> None:
    """Invariants of every decision, whatever it is."""
    if decision.is_noop:
        assert decision.reason in machine.NOOP_REASONS
        assert decision.run == before
        assert (decision.transitions, decision.deliveries) == ((), ())
        return
    assert before.state not in (C, S)
    assert decision.transitions, "a move always leaves a trace"
    state: RunState | None = before.state
    for row in decision.transitions:
        assert row.from_state == state
        assert set(row.context) <= machine.CONTEXT_KEYS
        machine.check_state_change(before.id, row.from_state or row.to_state, row.to_state)
        state = row.to_state
    assert state == decision.run.state
    after = decision.run
    assert (after.id, after.tenant_id, after.notification_id, after.started_at) == (
        before.id,
        before.tenant_id,
        before.notification_id,
        before.started_at,
    )
    assert after.last_transition_at == now
    assert set(after.status_context) <= machine.CONTEXT_KEYS
    assert (after.terminal_reason is not None) == after.state.is_terminal
    assert (after.suspended_until is not None) == (after.state is W)
    if after.state is not W:
        assert after.pending_signals == ()
    # every step the decision activates gets its delivery
    activated = [row for row in decision.transitions if row.reason == "step_activated"]
    assert len(decision.deliveries) == len(activated) <= 1
    for other_before, other in decision.also:  # the rest of a digest batch it closes
        _check_decision(other_before, other, now)
        assert other.also == () and other.batch is None


@given(cases())
def test_every_decision_keeps_the_invariants(case: Case) -> None:
    _check_decision(case.run, _decide(case), case.now)


@given(cases())
def test_the_machine_agrees_with_the_model(case: Case) -> None:
    decision = _decide(case)
    model, anchor = _model(case)
    marks = [] if case.early is None else [("acme", case.early.event_name, None, T0)]
    expected = expect_progress(model, anchor, case.now, marks, lambda run, step: case.facts)
    assert (decision.kind.value, decision.reason) == (expected.kind, expected.reason)
    plan = decision.batch
    held = None if plan is None or plan.action == "close" else plan.action
    if held == "join" and plan is not None and plan.fills:
        held = "fill"
    assert held == expected.held
    closes = case.run.wait_kind == "digest" and decision.kind is not ProgressKind.NOOP
    if closes and case.run.state is W:
        place, others = case.facts.closing or (-1, 0)
        assert len(decision.also) == (others if place >= 0 else 0)
    else:
        assert decision.also == ()
    assert [p.digest_size for p in decision.deliveries] == [expected.digest_size] * len(
        decision.deliveries
    )
    run = decision.run
    assert len(decision.transitions) == model.trace_rows
    assert run.state.value == model.state
    assert _key(case.definition, run.current_step_id) == model.step_key
    assert run.status_reason == model.status_reason
    assert run.terminal_reason == model.terminal_reason
    assert run.suspended_until == model.suspended_until
    assert run.pending_signals == model.pending_signals
    assert run.last_transition_at == model.last_transition_at
    planned = [_key(case.definition, p.workflow_step_id) for p in decision.deliveries]
    assert planned == ([expected.planned_step] if expected.planned_step else [])


@given(cases(), st.sampled_from(EVENTS), st.none() | st.just("d-9"))
def test_resume_keeps_the_invariants(case: Case, event: str, delivery_id: str | None) -> None:
    decision = machine.resume(case.run, event, delivery_id, now=case.now)
    _check_decision(case.run, decision, case.now)
    model, _ = _model(case)
    assert (not decision.is_noop) == expect_resume(model, event, case.now)
    if not decision.is_noop:
        (row,) = decision.transitions
        assert row.context == {"event_name": event}
        assert (row.workflow_step_id, row.delivery_id) == (None, delivery_id)
        assert decision.run.status_context == case.run.status_context


_events = st.lists(
    st.one_of(
        st.tuples(
            st.just("outcome"),
            st.sampled_from(list(DeliveryStatus)),
            st.sampled_from(SUPPRESSION_REASONS),
            st.integers(0, 9000),
        ),
        st.tuples(st.just("tick"), st.integers(0, 9000)),
        st.tuples(st.just("signal"), st.sampled_from(EVENTS), st.integers(0, 9000)),
    ),
    max_size=25,
)


@given(workflows(ghost_targets=True, gates=True), _events)
def test_event_sequences_follow_the_model_and_terminal_states_never_change(
    workflow: Workflow, events: list[tuple[Any, ...]]
) -> None:
    """A run's life, event by event; its step options see no other run (no activation, no
    open batch) in UTC."""
    definition = definition_of(workflow)
    journey = Journey.of(definition)
    now = T0
    started = machine.start(journey, run_id="r", tenant_id="acme", notification_id="n", now=now)
    started = machine.enter(started, journey, Arrival(), now=now)
    run = started.run
    model = ModelRun("r", "acme", "alice", workflow, _key(definition, run.current_step_id), now)
    expected_start = expect_start(model, now)
    assert (started.kind.value, started.reason) == (expected_start.kind, expected_start.reason)
    anchors: dict[str, Delivery] = {}  # step id -> latest delivery (as the store keeps them)
    models: dict[str, ModelDelivery] = {}

    def plan(step: str) -> None:
        anchors[step] = delivery(
            "pending", step=_key(definition, step), at=now, id=f"d{len(anchors)}"
        )
        models[step] = ModelDelivery(anchors[step].id, "r", _key(definition, step), "x", now)

    if started.deliveries:
        plan(run.current_step_id)
    for event in events:
        now += timedelta(seconds=event[-1])
        before = run
        if event[0] == "signal":
            decision = machine.resume(run, event[1], None, now=now)
            assert (not decision.is_noop) == expect_resume(model, event[1], now)
        else:
            step = run.current_step_id
            if event[0] == "outcome" and step in anchors:
                anchors[step] = attrs.evolve(
                    anchors[step], status=event[1], suppression_reason=event[2], updated_at=now
                )
                models[step].status = event[1].value
                models[step].suppression_reason = event[2]
                models[step].updated_at = now
            decision = machine.progress(run, journey, anchors.get(step), now=now)
            if not decision.is_noop:
                decision = machine.enter(decision, journey, Arrival(), now=now)
            expected = expect_progress(model, models.get(step), now)
            assert (decision.kind.value, decision.reason) == (expected.kind, expected.reason)
        _check_decision(before, decision, now)
        if before.state.is_terminal:
            assert decision.is_noop and decision.run == before
        run = decision.run
        assert (run.state.value, _key(definition, run.current_step_id)) == (
            model.state,
            model.step_key,
        )
        assert run.terminal_reason == model.terminal_reason
        for planned in decision.deliveries:
            plan(planned.workflow_step_id)


@given(cases())
def test_decisions_do_not_change_their_inputs(case: Case) -> None:
    snapshot = copy.deepcopy(case)
    _decide(case)
    machine.resume(case.run, "clicked", None, now=case.now)
    assert case == snapshot


def test_stamp_helper_matches_the_spec_example() -> None:
    assert stamp(T0) == "2026-01-05T09:30:00.000000+00:00"
