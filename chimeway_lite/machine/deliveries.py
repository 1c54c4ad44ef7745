"""The delivery lifecycle, decided as data: what a report, a claim or a lease extension does
to a delivery (CONTRACT §12). Pure: the engine passes the delivery, the step's retry policy
and ``now``, and writes what comes back.

============================  ==============================================================
pending                        claimable (from ``available_at`` on, when set); any outcome
dispatched                     an outcome; claimable again once ``lease_expires_at`` passes
failed, policy, attempts left  back to pending, claimable at the retry time (no trace row)
failed, policy exhausted       cancelled / retries_exhausted: the run branches on it
succeeded, failed (no retry),  final: the same report again is a no-op (None); another one
suppressed, cancelled          raises InvalidTransition; never claimable again
============================  ==============================================================

``attempt`` counts attempts: every claim is one, and so is a report on a pending delivery
(one never claimed counts as attempt 1). The
attempt history (:class:`~chimeway_lite.core.records.DeliveryEvent` rows) is folded into
:class:`~chimeway_lite.core.records.DeliveryAttempt` s by :func:`attempts_of`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import attrs

from ..core.errors import InvalidArgument, InvalidTransition
from ..core.records import (
    Delivery,
    DeliveryAttempt,
    DeliveryEvent,
    DeliveryEventKind,
    DeliveryStatus,
    Outcome,
)
from .kinds.retry import Retry
from .vocabulary import RETRY_SCHEDULED

__all__ = [
    "CANCEL_REASONS",
    "FINAL_STATUSES",
    "LEASE_EXPIRED",
    "OUTCOME_STATUSES",
    "RETRY_SCHEDULED",
    "WORKFLOW_CANCELLED",
    "Recorded",
    "attempts_of",
    "cancel",
    "check_report",
    "claimed",
    "expire",
    "extend_lease",
    "is_claimable",
    "record",
]

#: The statuses record_outcome takes.
OUTCOME_STATUSES = frozenset(
    {
        DeliveryStatus.SUCCEEDED,
        DeliveryStatus.FAILED,
        DeliveryStatus.SUPPRESSED,
        DeliveryStatus.CANCELLED,
    }
)
#: A delivery in one of these statuses never changes again.
FINAL_STATUSES = OUTCOME_STATUSES
#: The only reasons a cancelled delivery may carry: each is an outcome rules branch on, or
#: the cancel of its run.
WORKFLOW_CANCELLED = "workflow_cancelled"
CANCEL_REASONS = (
    Outcome.RETRIES_EXHAUSTED.value,
    Outcome.PERMANENT_FAILURE.value,
    Outcome.BOUNCED.value,
    WORKFLOW_CANCELLED,
)
#: The attempt status of an attempt whose lease ran out before another claim took it.
LEASE_EXPIRED = "lease_expired"


@attrs.frozen
class Recorded:
    """What a report does: the delivery afterwards, the history row to append, and whether
    the run progresses on it (``retried`` when it went back to pending instead)."""

    delivery: Delivery
    event: DeliveryEvent
    retried: bool


def check_report(status: DeliveryStatus, suppression_reason: str | None) -> None:
    """Refuse a report that is not an outcome, or a cancel with a reason that is not one of
    :data:`CANCEL_REASONS` — before the delivery's state is looked at."""
    if status not in OUTCOME_STATUSES:
        allowed = ", ".join(sorted(s.value for s in OUTCOME_STATUSES))
        raise InvalidArgument(
            "status", f"record_outcome takes an outcome ({allowed}), not {status.value!r}"
        )
    if status is DeliveryStatus.CANCELLED and suppression_reason not in CANCEL_REASONS:
        raise InvalidArgument(
            "suppression_reason",
            "a cancelled delivery needs one of "
            f"{', '.join(CANCEL_REASONS)} (a host's own reason belongs to 'suppressed')",
        )


def record(
    delivery: Delivery,
    status: DeliveryStatus,
    suppression_reason: str | None,
    policy: Retry | None,
    now: datetime,
) -> Recorded | None:
    """The effect of reporting ``status`` for ``delivery`` at ``now`` (checked already by
    :func:`check_report`); None when it is the same report on a final delivery."""
    if delivery.status in FINAL_STATUSES:
        if (delivery.status, delivery.suppression_reason) == (status, suppression_reason):
            return None
        raise InvalidTransition(
            f"the delivery is final ({_described(delivery)}): it takes no other outcome",
            delivery_id=delivery.id,
            from_state=delivery.status.value,
            to_state=status.value,
        )
    # A claim counted the attempt already; a report on a pending delivery (never claimed,
    # or waiting for its retry) is an attempt of its own.
    pending = delivery.status is DeliveryStatus.PENDING
    attempt = delivery.attempt + 1 if pending else delivery.attempt
    retry_at = None
    new_status, reason = status, suppression_reason
    if status is DeliveryStatus.FAILED and policy is not None:
        if attempt < policy.max_attempts:
            retry_at = policy.retry_at(attempt, now)
            new_status, reason = DeliveryStatus.PENDING, None
        else:
            new_status, reason = DeliveryStatus.CANCELLED, Outcome.RETRIES_EXHAUSTED.value
    after = attrs.evolve(
        delivery,
        status=new_status,
        suppression_reason=reason,
        attempt=attempt,
        available_at=retry_at,
        lease_expires_at=None,
        updated_at=now,
    )
    event = DeliveryEvent(
        delivery_id=delivery.id,
        tenant_id=delivery.tenant_id,
        attempt=attempt,
        kind=DeliveryEventKind.RECORDED,
        at=now,
        status=status.value,
        suppression_reason=suppression_reason,
        available_at=retry_at,
    )
    return Recorded(after, event, retried=retry_at is not None)


def expire(delivery: Delivery, now: datetime) -> Recorded:
    """A lease that ran out on the delivery's last allowed attempt: the attempt ended at the
    lease's expiry and the delivery is exhausted (cancelled, retries_exhausted), so the run
    branches on it instead of the delivery being handed out once more."""
    ended = delivery.lease_expires_at or now
    after = attrs.evolve(
        delivery,
        status=DeliveryStatus.CANCELLED,
        suppression_reason=Outcome.RETRIES_EXHAUSTED.value,
        lease_expires_at=None,
        updated_at=now,
    )
    event = DeliveryEvent(
        delivery_id=delivery.id,
        tenant_id=delivery.tenant_id,
        attempt=delivery.attempt,
        kind=DeliveryEventKind.RECORDED,
        at=ended,
        status=LEASE_EXPIRED,
    )
    return Recorded(after, event, retried=False)


def cancel(delivery: Delivery, now: datetime) -> Recorded:
    """A pending delivery of a run the host cancelled: cancelled, ``workflow_cancelled``.
    (A dispatched one is left to finish: its outcome then moves the run no more.)"""
    after = attrs.evolve(
        delivery,
        status=DeliveryStatus.CANCELLED,
        suppression_reason=WORKFLOW_CANCELLED,
        available_at=None,
        updated_at=now,
    )
    event = DeliveryEvent(
        delivery_id=delivery.id,
        tenant_id=delivery.tenant_id,
        attempt=delivery.attempt + 1,
        kind=DeliveryEventKind.RECORDED,
        at=now,
        status=DeliveryStatus.CANCELLED.value,
        suppression_reason=WORKFLOW_CANCELLED,
    )
    return Recorded(after, event, retried=False)


def extend_lease(delivery: Delivery, expires_at: datetime, now: datetime) -> Recorded:
    """Push the lease of a dispatched delivery to ``expires_at`` (also after it ran out,
    until another claim takes the delivery)."""
    if delivery.status is not DeliveryStatus.DISPATCHED:
        raise InvalidTransition(
            f"only a dispatched delivery has a lease to extend; it is {_described(delivery)}",
            delivery_id=delivery.id,
            from_state=delivery.status.value,
            to_state=DeliveryStatus.DISPATCHED.value,
        )
    after = attrs.evolve(delivery, lease_expires_at=expires_at, updated_at=now)
    event = DeliveryEvent(
        delivery_id=delivery.id,
        tenant_id=delivery.tenant_id,
        attempt=delivery.attempt,
        kind=DeliveryEventKind.LEASE_EXTENDED,
        at=now,
        lease_expires_at=expires_at,
    )
    return Recorded(after, event, retried=False)


def claimed(delivery: Delivery, now: datetime) -> DeliveryEvent:
    """The history row of a claim that made ``delivery`` (as it is after the claim)."""
    return DeliveryEvent(
        delivery_id=delivery.id,
        tenant_id=delivery.tenant_id,
        attempt=delivery.attempt,
        kind=DeliveryEventKind.CLAIMED,
        at=now,
        lease_expires_at=delivery.lease_expires_at,
    )


def is_claimable(delivery: Delivery, now: datetime) -> bool:
    """Whether a claim at ``now`` may take the delivery (what the backends' claim selects)."""
    if delivery.status is DeliveryStatus.PENDING:
        return delivery.available_at is None or delivery.available_at <= now
    if delivery.status is DeliveryStatus.DISPATCHED:
        return delivery.lease_expires_at is not None and delivery.lease_expires_at <= now
    return False


def attempts_of(events: Iterable[DeliveryEvent]) -> tuple[DeliveryAttempt, ...]:
    """Fold a delivery's history (in order) into its attempts."""
    attempts: dict[int, DeliveryAttempt] = {}
    for event in events:
        current = attempts.get(event.attempt)
        if event.kind is DeliveryEventKind.CLAIMED:
            previous = attempts.get(event.attempt - 1)
            if previous is not None and previous.ended_at is None:
                # another claim took it: the previous attempt's lease had run out
                attempts[previous.attempt] = attrs.evolve(
                    previous, status=LEASE_EXPIRED, ended_at=previous.lease_expires_at
                )
            attempts[event.attempt] = DeliveryAttempt(
                attempt=event.attempt,
                claimed_at=event.at,
                lease_expires_at=event.lease_expires_at,
                ended_at=None,
                status=DeliveryStatus.DISPATCHED.value,
                suppression_reason=None,
            )
        elif event.kind is DeliveryEventKind.LEASE_EXTENDED and current is not None:
            attempts[event.attempt] = attrs.evolve(current, lease_expires_at=event.lease_expires_at)
        elif event.kind is DeliveryEventKind.RECORDED:
            base = current or DeliveryAttempt(event.attempt, None, None, None, "", None)
            attempts[event.attempt] = attrs.evolve(
                base,
                ended_at=event.at,
                status=event.status or "",
                suppression_reason=event.suppression_reason,
            )
    return tuple(attempts[n] for n in sorted(attempts))


def _described(delivery: Delivery) -> str:
    if delivery.suppression_reason:
        return f"{delivery.status.value}, {delivery.suppression_reason}"
    return delivery.status.value
