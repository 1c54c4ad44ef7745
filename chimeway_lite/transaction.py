"""One unit of work on the store: every read and write of the engine, inside one transaction.

A :class:`Transaction` is what ``with store.transaction() as tx:`` yields, and what each public
:class:`~chimeway_lite.store.Store` method runs on. It never begins or ends a transaction
itself: the store opens ``BEGIN IMMEDIATE`` before and commits or rolls back after. Decisions
come from :mod:`chimeway_lite.machine`; this module only reads their inputs and writes their
results.
"""

from __future__ import annotations

from .inspection import Inspection
from .outbox import Outbox
from .progression import DUE_RUNS
from .signals import Signals

__all__ = ["DUE_RUNS", "Transaction"]


class Transaction(Outbox, Signals, Inspection):
    """The engine's operations inside one open transaction (see the module docstring).

    Built from the modules that hold each concern: :mod:`~chimeway_lite.spine` (run and trace
    rows, the low-level seed API), :mod:`~chimeway_lite.progression`,
    :mod:`~chimeway_lite.outbox`, :mod:`~chimeway_lite.signals` and
    :mod:`~chimeway_lite.inspection`.
    """
