"""Data lifecycle: pruning finished runs, and erasing a tenant or one recipient of it.

Both run inside the caller's write unit (:meth:`Store.prune` and :meth:`Store.forget` open
one each), so they delete everything they select or nothing.

prune
    A run is *finished* when its state is ``completed`` or ``stopped``; it is older than the
    cutoff when its ``last_transition_at`` (the instant it finished, unless a host rewrote
    it) is strictly before ``before``. Such a run goes with its whole trace, every delivery
    of its notification, and the notification itself. Active and waiting runs are never
    pruned, however old. Signals are left alone (they are tenant facts, not parts of a run;
    :func:`forget` erases them), and so are definitions (global, shared by every tenant).
    The count returned is the number of rows deleted across the four tables. A pruned
    notification no longer holds its idempotency key: triggering the same key again starts
    a new journey (keep the cutoff longer than any retry window of the host).

forget
    Erases, for one tenant — or for one recipient of it — the notifications, their runs,
    traces and deliveries, and the signals (the tenant's, or those whose ``actor_id`` is the
    recipient, which is how signals name their recipient: CONTRACT §5). Then it writes one
    tombstone row in ``erasures`` (an :class:`~chimeway_lite.core.records.Erasure`): tenant
    id, scope (``tenant`` or ``recipient``), the time from the store clock, the rows deleted
    per table and their sum. The tombstone holds no recipient and no payload — only that an
    erasure happened, of what scope, and how big it was; it is written even when nothing
    matched, as a record that the request was carried out. Earlier tombstones of the
    tenant are kept. The count returned is the rows erased, not counting the tombstone.
"""

from __future__ import annotations

from datetime import datetime

from ..core.arguments import optional_id, require_id
from ..core.ids import new_id
from ..core.records import Erasure
from ..core.timestamps import require_utc
from .work import Work


def prune(
    work: Work, before: datetime, tenant_id: str | None, limit: int | None = None
) -> tuple[int, int]:
    """Delete finished runs older than ``before`` with their rows (the oldest ``limit`` of
    them, when given); return (rows deleted, runs deleted).

    ``tenant_id`` limits the prune to one tenant; None prunes every tenant.
    """
    cutoff = require_utc(before, "before")
    return work.unit.prune(cutoff, optional_id(tenant_id, "tenant_id"), limit)


def forget(work: Work, tenant_id: str, recipient: str | None) -> int:
    """Erase a tenant (or one recipient of it) and leave a payload-free tombstone.

    Returns the number of rows erased (the tombstone not counted).
    """
    tenant = require_id(tenant_id, "tenant_id")
    who = optional_id(recipient, "recipient")
    counts = work.unit.forget(tenant, who)
    work.unit.erase_after_commit()
    erasure = Erasure(
        id=new_id(),
        tenant_id=tenant,
        scope="tenant" if who is None else "recipient",
        row_counts=counts,
        rows_erased=sum(counts.values()),
        erased_at=work.now,
    )
    work.unit.insert_erasure(erasure)
    return erasure.rows_erased


def erasures(work: Work, tenant_id: str | None) -> list[Erasure]:
    """The tombstones :func:`forget` left, oldest first; of one tenant, or of all."""
    return work.unit.erasures(optional_id(tenant_id, "tenant_id"))
