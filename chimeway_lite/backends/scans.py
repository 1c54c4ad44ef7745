"""What verify's scans share on every backend: the parameters of their scope, the readers
that turn each row into its record (or the error that kept it from being read), and the
merge of a parent scan with its children's."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from ..core.records import Delivery, DeliveryEvent, WorkflowRun, WorkflowTransition
from ..core.timestamps import to_text
from .base import DeliveryHistory, IdRange, RunTrace
from .sqlite import convert

# Each row as its record, or the error that kept it from being read.
READ_RUN = convert.reading(WorkflowRun)
READ_TRANSITION = convert.reading(WorkflowTransition)
READ_DELIVERY = convert.reading(Delivery)
READ_EVENT = convert.reading(DeliveryEvent)


def scope(tenant_id: str | None, since: datetime | None, ids: IdRange) -> dict[str, Any]:
    """The named parameters of a scan: its tenant, its time, its id range (None: open)."""
    return {
        "tenant_id": tenant_id,
        "since": None if since is None else to_text(since),
        "after": ids[0],
        "upto": ids[1],
    }


def with_children(
    parents: Iterable[Any], children: Iterable[Any], key: int
) -> Iterator[tuple[str, Any, list[Any]]]:
    """(id, parent row, its child rows) for parents ordered by id (their first column) and
    children ordered by the column at ``key``: a merge of two ordered scans (both on an
    index), so the store is never held in memory, only one parent and its children at a
    time."""
    groups = itertools.groupby(children, key=lambda r: str(r[key]))
    pending = next(groups, None)
    for parent in parents:
        parent_id = str(parent[0])
        while pending is not None and pending[0] < parent_id:
            pending = next(groups, None)  # children without their parent: a foreign key
        found: list[Any] = []
        if pending is not None and pending[0] == parent_id:
            found = list(pending[1])
            pending = next(groups, None)
        yield parent_id, parent, found


def run_traces(runs: Iterable[Any], transitions: Iterable[Any]) -> Iterator[RunTrace]:
    """Each run of a scan of runs by id, with its rows of a scan of trace rows by run id and
    seq (the seq is a trace row's second column)."""
    for run_id, run_row, children in with_children(runs, transitions, 2):
        trace = tuple([(r[1], READ_TRANSITION(r)) for r in children])
        yield RunTrace(run_id, READ_RUN(run_row), trace)


def delivery_histories(
    deliveries: Iterable[Any], events: Iterable[Any]
) -> Iterator[DeliveryHistory]:
    """Each delivery of a scan of deliveries by id, with its rows of a scan of history rows
    by delivery id and seq (the seq is a history row's last column)."""
    for delivery_id, row, children in with_children(deliveries, events, 0):
        history = tuple([(r[-1], READ_EVENT(r)) for r in children])
        yield DeliveryHistory(delivery_id, READ_DELIVERY(row), history)
