"""What a host's hook sees: one payload-free record per thing the store did (CONTRACT §17).

A :class:`StoreEvent` is made for every trace row a unit of work appends (a run's
transition) and every row of a delivery's attempt history (a claim, a lease extension, an
outcome). It carries ids, states, reason codes and times — never a trigger's data, a
signal's payload, a step's config or a trace context, so a hook can log or export it as it
is.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import attrs


class EventKind(StrEnum):
    """What a :class:`StoreEvent` reports."""

    #: A run moved: one row of its trace (``reason`` is the row's reason).
    TRANSITION = "transition"
    #: A worker claimed a delivery for one attempt (``reason`` is ``claimed``).
    DELIVERY_CLAIMED = "delivery_claimed"
    #: A worker pushed the lease of the attempt in hand (``reason`` is ``lease_extended``).
    DELIVERY_LEASE_EXTENDED = "delivery_lease_extended"
    #: An attempt ended: ``reason`` is the outcome recorded for it (``succeeded``,
    #: ``failed``, ``suppressed``, ``cancelled``, or ``lease_expired``); ``to_state`` is
    #: where the delivery went (``pending`` again when a failure is retried).
    DELIVERY_OUTCOME = "delivery_outcome"


@attrs.frozen
class StoreEvent:
    """One transition or delivery attempt, as hooks, logs and spans report it.

    ``from_state``/``to_state`` are run states for a transition and delivery statuses for a
    delivery event (``from_state`` is None for a run's first row, and for a claim, which
    takes pending deliveries and dispatched ones whose lease ran out alike). ``step_key``
    is the step the row names (None when it names none); ``delivery_id`` the delivery it
    concerns; ``attempt`` the delivery's attempt (None for a transition); ``seq`` the trace
    row's number (None for a delivery event); ``at`` when the store recorded it.
    """

    kind: EventKind
    tenant_id: str
    run_id: str | None
    reason: str
    from_state: str | None
    to_state: str | None
    step_key: str | None
    delivery_id: str | None
    attempt: int | None
    at: datetime
    seq: int | None = None
    suppression_reason: str | None = None

    def describe(self) -> str:
        """One line for people and logs: ids, states and reason codes, nothing else."""
        moved = f"{self.from_state or '-'} -> {self.to_state or '-'}"
        parts = [self.kind.value, f"tenant={self.tenant_id}", f"run={self.run_id or '-'}"]
        if self.step_key is not None:
            parts.append(f"step={self.step_key}")
        if self.delivery_id is not None:
            parts.append(f"delivery={self.delivery_id}")
        if self.attempt is not None:
            parts.append(f"attempt={self.attempt}")
        parts.append(f"{moved} ({self.reason})")
        if self.suppression_reason is not None:
            parts.append(f"suppression_reason={self.suppression_reason}")
        return " ".join(parts)
