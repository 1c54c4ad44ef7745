"""Data lifecycle: pruning finished runs and erasing a tenant or recipient.

Placeholder owned by issue 4 (reliability); :meth:`Store.prune` and :meth:`Store.forget`
call these functions inside one write transaction.
"""

from __future__ import annotations

from datetime import datetime

from .transaction import Transaction


def prune(tx: Transaction, before: datetime, *, tenant_id: str | None = None) -> int:
    """Delete finished runs older than ``before`` with their rows; return the rows deleted."""
    raise NotImplementedError("prune() is being built under issue 4")


def forget(tx: Transaction, tenant_id: str, recipient: str | None = None) -> int:
    """Erase a tenant (or one recipient of it) and leave a payload-free tombstone."""
    raise NotImplementedError("forget() is being built under issue 4")
