"""The delivery lifecycle (CONTRACT §12): claims with leases, outcomes guarded and retried,
lease extensions, and the attempt history explained. The decisions are the machine's
(:mod:`chimeway_lite.machine.deliveries`); this module gathers their facts and writes them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..core.arguments import (
    optional_id,
    optional_reason,
    require_enum,
    require_id,
    require_limit,
    require_seconds,
)
from ..core.errors import ConstraintFailed, DamagedRow, DeliveryNotFound, RunNotFound
from ..core.records import (
    Delivery,
    DeliveryExplanation,
    DeliveryStatus,
    Progress,
    ProgressKind,
    WorkflowRun,
)
from ..machine import deliveries
from ..machine.kinds.retry import Retry
from .explanation import delivery_sentences
from .progression import progress_run
from .work import Work, report_skipped


def claim_deliveries(
    work: Work, limit: int, channel: str | None, lease_seconds: int
) -> list[Delivery]:
    """Take up to ``limit`` claimable deliveries, each leased for ``lease_seconds``."""
    count = require_limit(limit, allow_none=False)
    channel = optional_id(channel, "channel")
    seconds = require_seconds(lease_seconds, "lease_seconds")
    if not count:
        return []
    now = work.now
    for spent in work.readable(work.unit.spent_leases(now), "claim_deliveries"):
        try:
            with work.unit.savepoint():
                _exhaust(work, spent, now)
        except (DamagedRow, ConstraintFailed, RunNotFound) as exc:
            # Its run is damaged: that run stays as it is, the claim goes on (CONTRACT §16).
            report_skipped("claim_deliveries", spent.id, exc)
    claimed = work.readable(
        work.unit.claim(count, channel, now, now + timedelta(seconds=seconds)),
        "claim_deliveries",
    )
    work.unit.append_delivery_events([deliveries.claimed(d, now) for d in claimed])
    return claimed


def record_outcome(
    work: Work,
    delivery_id: str,
    status: DeliveryStatus | str,
    suppression_reason: str | None,
    tenant_id: str | None,
) -> Progress | None:
    """Record a delivery's outcome and progress its run in the same unit of work.

    None when the same outcome was recorded already (webhooks repeat), or when the delivery
    belongs to no run; ``Progress(noop, retry_scheduled)`` when a failure will be retried.
    """
    delivery_id = require_id(delivery_id, "delivery_id")
    new_status = require_enum(DeliveryStatus, status, "status")
    reason = optional_reason(suppression_reason, "suppression_reason")
    tenant = optional_id(tenant_id, "tenant_id")
    deliveries.check_report(new_status, reason)
    now = work.now
    delivery = work.unit.delivery(delivery_id, tenant_id=tenant, lock=True)
    if delivery is None:
        raise DeliveryNotFound(delivery_id)
    run = None
    if delivery.workflow_run_id is not None:
        run = work.unit.run(delivery.workflow_run_id, lock=True)
    recorded = deliveries.record(delivery, new_status, reason, _policy(work, run, delivery), now)
    if recorded is None:
        return None
    work.unit.update_delivery(delivery, recorded.delivery)
    work.unit.append_delivery_events([recorded.event])
    if run is None:
        return None
    if recorded.retried:
        return Progress(ProgressKind.NOOP, run, deliveries.RETRY_SCHEDULED, (recorded.delivery,))
    return progress_run(work, run.id, now, run=run)


def _exhaust(work: Work, delivery: Delivery, now: datetime) -> None:
    """A lease ran out on the last allowed attempt: exhaust the delivery, and let its run
    branch on retries_exhausted, in this unit of work."""
    expired = deliveries.expire(delivery, now)
    work.unit.update_delivery(delivery, expired.delivery)
    work.unit.append_delivery_events([expired.event])
    if delivery.workflow_run_id is not None:
        progress_run(work, delivery.workflow_run_id, now)


def extend_lease(work: Work, delivery_id: str, seconds: int) -> Delivery:
    """Push the lease of a dispatched delivery to ``now + seconds``."""
    delivery_id = require_id(delivery_id, "delivery_id")
    length = require_seconds(seconds, "seconds")
    now = work.now
    delivery = work.unit.delivery(delivery_id, lock=True)
    if delivery is None:
        raise DeliveryNotFound(delivery_id)
    extended = deliveries.extend_lease(delivery, now + timedelta(seconds=length), now)
    work.unit.update_delivery(delivery, extended.delivery)
    work.unit.append_delivery_events([extended.event])
    return extended.delivery


def explain_delivery(work: Work, tenant_id: str, delivery_id: str) -> DeliveryExplanation:
    """Where a delivery of ``tenant_id`` stands, its attempts, and what happens next;
    another tenant's delivery and a missing one raise the same DeliveryNotFound."""
    tenant = require_id(tenant_id, "tenant_id")
    delivery = work.unit.delivery(require_id(delivery_id, "delivery_id"), tenant_id=tenant)
    if delivery is None:
        raise DeliveryNotFound(delivery_id)
    run = None
    if delivery.workflow_run_id is not None:
        run = work.unit.run(delivery.workflow_run_id)
    attempts = deliveries.attempts_of(work.unit.delivery_events(delivery.id))
    policy = _policy(work, run, delivery)
    why, next_move = delivery_sentences(delivery, attempts, policy, work.now)
    return DeliveryExplanation(delivery, attempts, why, next_move)


def _policy(work: Work, run: WorkflowRun | None, delivery: Delivery) -> Retry | None:
    """The retry policy of the delivery's step, if any."""
    if run is None or delivery.workflow_step_id is None:
        return None
    journey = work.definitions.journey(run.workflow_definition_id)
    policy = journey.options.get(delivery.workflow_step_id, {}).get("retry")
    return policy if isinstance(policy, Retry) else None
