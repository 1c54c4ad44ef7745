"""Integrity checks of a store: each run's trace folded and compared with its row.

Placeholder owned by issue 4 (reliability); :meth:`Store.verify` calls :func:`verify`.
"""

from __future__ import annotations

from .transaction import Transaction


def verify(tx: Transaction) -> list[str]:
    """The problems found in the store; empty when healthy."""
    raise NotImplementedError("verify() is being built under issue 4")
