"""The records of chimeway_lite: one frozen attrs class per row type, plus str enums.

Records describe the domain and know nothing about SQL; :mod:`chimeway_lite.convert` turns
rows into records and back. Change a record with :func:`attrs.evolve`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

import attrs


class RunState(StrEnum):
    """The state of a workflow run; ``completed`` and ``stopped`` are terminal."""

    ACTIVE = "active"
    WAITING = "waiting"
    COMPLETED = "completed"
    STOPPED = "stopped"

    @property
    def is_terminal(self) -> bool:
        """True for the states nothing leaves."""
        return self in (RunState.COMPLETED, RunState.STOPPED)


class DeliveryStatus(StrEnum):
    """Where a planned delivery stands in the outbox."""

    PENDING = "pending"
    DISPATCHED = "dispatched"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    """The outcome of a delivery as progress rules see it."""

    DELIVERED = "delivered"
    SUPPRESSED = "suppressed"
    TEMPORARY_FAILURE = "temporary_failure"
    RETRIES_EXHAUSTED = "retries_exhausted"
    PERMANENT_FAILURE = "permanent_failure"
    BOUNCED = "bounced"


class ProgressKind(StrEnum):
    """What one progression did to a run."""

    ADVANCED = "advanced"
    WAITING = "waiting"
    COMPLETED = "completed"
    STOPPED = "stopped"
    NOOP = "noop"


def _tuple_of_str(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _steps(value: Iterable[WorkflowStep]) -> tuple[WorkflowStep, ...]:
    return tuple(value)


def _deliveries(value: Iterable[Delivery]) -> tuple[Delivery, ...]:
    return tuple(value)


@attrs.frozen
class WorkflowStep:
    """One stored step of a definition; ``config["progress"]`` holds its rules."""

    id: str
    workflow_definition_id: str
    step_key: str
    step_order: int
    channel: str
    config: dict[str, Any]
    inserted_at: datetime
    updated_at: datetime


@attrs.frozen
class WorkflowDefinition:
    """A registered workflow, identified by (workflow_key, workflow_version) across tenants."""

    id: str
    workflow_key: str
    workflow_version: int
    notification_key: str
    steps: tuple[WorkflowStep, ...] = attrs.field(converter=_steps)
    inserted_at: datetime
    updated_at: datetime


@attrs.frozen
class Notification:
    """One triggered notification of a tenant for a recipient.

    ``data`` is the host's own data of the trigger (CONTRACT §12.4): handed to workers on
    every delivery, never written into a trace, an explanation or a message.
    ``correlation_key`` is the host's own handle for the notification (an order id, say):
    signals and cancels may address it (CONTRACT §13.2, §13.3).
    """

    id: str
    tenant_id: str
    recipient: str
    notification_key: str
    idempotency_key: str
    workflow_definition_id: str | None
    inserted_at: datetime
    data: dict[str, Any] = attrs.field(factory=dict)
    correlation_key: str | None = None


@attrs.frozen
class Delivery:
    """One planned send on one channel, as it moves through the outbox (CONTRACT §12).

    Whom to send what comes with it: ``recipient``, ``notification_key`` and ``step_key``
    (copied when it is planned), and, filled when a worker claims it, ``data`` (the
    trigger's data) and ``config`` (its step's config). ``attempt`` counts its attempts (0
    when planned) and ``max_attempts`` is its step's retry policy's limit (None: no
    policy); ``available_at`` is when a retry may be claimed (None: at once);
    ``lease_expires_at`` is when a claim held while ``dispatched`` runs out.
    """

    id: str
    tenant_id: str
    notification_id: str
    channel: str
    status: DeliveryStatus
    suppression_reason: str | None
    workflow_run_id: str | None
    workflow_step_id: str | None
    inserted_at: datetime
    updated_at: datetime
    recipient: str = ""
    notification_key: str = ""
    step_key: str = ""
    attempt: int = 0
    max_attempts: int | None = None
    available_at: datetime | None = None
    lease_expires_at: datetime | None = None
    digest_size: int = 1
    data: dict[str, Any] = attrs.field(factory=dict)
    config: dict[str, Any] = attrs.field(factory=dict)


class DeliveryEventKind(StrEnum):
    """What happened to a delivery, as its attempt history records it."""

    CLAIMED = "claimed"
    LEASE_EXTENDED = "lease_extended"
    RECORDED = "recorded"


@attrs.frozen
class DeliveryEvent:
    """One row of a delivery's attempt history (append-only, payload-free): a claim (with
    its lease), a lease extension, or a recorded outcome (with the retry time when the
    failure is retried). ``seq`` orders the history; it is None until stored."""

    delivery_id: str
    tenant_id: str
    attempt: int
    kind: DeliveryEventKind
    at: datetime
    lease_expires_at: datetime | None = None
    status: str | None = None
    suppression_reason: str | None = None
    available_at: datetime | None = None
    seq: int | None = None


@attrs.frozen
class DeliveryAttempt:
    """One attempt at a delivery, from the attempt history (CONTRACT §12.3).

    ``status`` is the outcome recorded for the attempt (``failed`` also for the attempt that
    exhausted a retry policy), ``lease_expired`` when another claim took the delivery after
    its lease ran out, or ``dispatched`` while it is in flight. ``claimed_at`` is None for an
    outcome recorded without a claim; ``ended_at`` is None while in flight.
    """

    attempt: int
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    ended_at: datetime | None
    status: str
    suppression_reason: str | None


def _attempts(value: Iterable[DeliveryAttempt]) -> tuple[DeliveryAttempt, ...]:
    return tuple(value)


@attrs.frozen
class DeliveryExplanation:
    """Where a delivery stands and why: its record (``data`` left out), every attempt, and
    two sentences for people — ``why`` (the last thing that happened to it) and
    ``next_move`` (what happens next, and when)."""

    delivery: Delivery
    attempts: tuple[DeliveryAttempt, ...] = attrs.field(converter=_attempts)
    why: str
    next_move: str


@attrs.frozen
class WorkflowRun:
    """The row of one running journey; ``id`` is also called the execution id.

    The last four fields are the machine's own state, never read from evidence:
    ``wait_kind`` is the rule kind of the wait a ``waiting`` run is in (``"wait_until"``),
    ``wait_target`` the step key that wait leads to, ``resumed_by`` the event of the signal
    that ended the run's wait, which the next progression settles (CONTRACT §4 item 6), and
    ``entered_step_at`` when the cursor entered its current step: a signal routed since then
    counts for the step's wait even when it came before the wait began (CONTRACT §13.1). The
    first three are None when they do not apply.
    """

    id: str
    tenant_id: str
    notification_id: str
    workflow_definition_id: str
    current_step_id: str
    state: RunState
    status_reason: str
    status_context: dict[str, Any]
    started_at: datetime
    last_transition_at: datetime
    suspended_until: datetime | None
    pending_signals: tuple[str, ...] = attrs.field(converter=_tuple_of_str)
    terminal_reason: str | None
    wait_kind: str | None = None
    wait_target: str | None = None
    resumed_by: str | None = None
    entered_step_at: datetime | None = None


@attrs.frozen
class WorkflowTransition:
    """One append-only trace row: a decision and its payload-free evidence."""

    id: str
    seq: int
    workflow_run_id: str
    workflow_step_id: str | None
    delivery_id: str | None
    from_state: RunState | None
    to_state: RunState
    reason: str
    context: dict[str, Any]
    inserted_at: datetime


def _payload(value: Any) -> Any:
    return {} if value is None else value


@attrs.frozen
class Signal:
    """An event from the host such as ``notification_read``.

    ``actor_id`` narrows it to the runs of that recipient and ``correlation_key`` to the
    runs of notifications triggered with that key (CONTRACT §13.2). ``id`` and
    ``inserted_at`` stay None until :meth:`Store.track_signal` records it.
    """

    tenant_id: str
    event_name: str
    actor_id: str | None = None
    payload: dict[str, Any] = attrs.field(default=None, converter=_payload)
    id: str | None = attrs.field(default=None, kw_only=True)
    inserted_at: datetime | None = attrs.field(default=None, kw_only=True)
    correlation_key: str | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class SignalMark:
    """The payload-free mark a routed signal leaves (CONTRACT §13.1): which event, of which
    tenant, for which actor and correlation key, and when. A run that enters a wait for the
    event later in its step counts it. ``seq`` orders marks routed at the same instant."""

    tenant_id: str
    event_name: str
    actor_id: str | None
    correlation_key: str | None
    routed_at: datetime
    seq: int | None = None


@attrs.frozen
class Resumed:
    """A run resumed by a signal and the ``signal_received`` row that records it."""

    run: WorkflowRun
    transition: WorkflowTransition


@attrs.frozen
class Progress:
    """The result of one progression: what happened (``kind``), the run afterwards, the
    reason (the new status_reason, or the noop reason) and the deliveries it planned."""

    kind: ProgressKind
    run: WorkflowRun
    reason: str
    deliveries: tuple[Delivery, ...] = attrs.field(default=(), converter=_deliveries)


@attrs.frozen
class TriggerResult:
    """What :meth:`Store.trigger` recorded, or found already recorded (``duplicate``)."""

    notification: Notification
    run: WorkflowRun
    deliveries: tuple[Delivery, ...] = attrs.field(converter=_deliveries)
    duplicate: bool


@attrs.frozen
class StepLinkage:
    """The run and step a notification's deliveries are currently planned for."""

    workflow_run_id: str
    workflow_step_id: str
    channel: str


@attrs.frozen
class RunExplanation:
    """Why a run is where it is, and what would move it next.

    The first eight fields are the reference implementation's; the rest add the evidence:
    ``due_at`` and ``next_step`` of a wait, the signals that would cancel it
    (``pending_signals``), the last decision (``last_transition``) and two sentences for
    people (``why`` and ``next_move``). The delivery the next decision looks at is
    ``anchor_delivery_id`` / ``anchor_delivery_status`` (the latest delivery of the current
    step) and ``anchor_attempt`` its attempts so far; ``next_decision`` is what a
    progression at the time of the explanation would do, and ``blocked_by`` its noop reason
    when it would do nothing (``wait_not_due``, ``prior_delivery_not_converged``,
    ``run_not_active`` …). ``recipient`` and ``notification_key`` say whom the run is for
    and what was triggered; ``path`` tells the way the run took so far, step by step, and
    why (the ``why`` of a finished run that went through more than one step ends with it).
    """

    id: str
    tenant_id: str
    state: RunState
    status_reason: str
    current_step_name: str
    suspended_until: datetime | None
    pending_signals: tuple[str, ...] = attrs.field(converter=_tuple_of_str)
    terminal_reason: str | None
    workflow_key: str
    workflow_version: int
    current_step_order: int
    current_channel: str
    started_at: datetime
    last_transition_at: datetime
    status_context: dict[str, Any]
    due_at: datetime | None
    next_step: str | None
    last_transition: WorkflowTransition | None
    why: str
    next_move: str
    anchor_delivery_id: str | None = None
    anchor_delivery_status: DeliveryStatus | None = None
    anchor_attempt: int | None = None
    next_decision: ProgressKind | None = None
    blocked_by: str | None = None
    recipient: str | None = None
    notification_key: str | None = None
    path: str | None = None


@attrs.frozen
class Erasure:
    """The tombstone :meth:`Store.forget` leaves: what was erased, when, and how many rows.

    ``scope`` is ``"tenant"`` (everything of the tenant) or ``"recipient"`` (one recipient
    of it). The recipient itself is not kept, nor anything else it was asked to erase:
    ``row_counts`` maps each table to the number of rows deleted from it, and
    ``rows_erased`` is their sum.
    """

    id: str
    tenant_id: str
    scope: str
    row_counts: dict[str, Any]
    rows_erased: int
    erased_at: datetime
