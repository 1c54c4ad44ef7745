"""What each page shows, as a document of plain JSON values: ``?format=json`` serves it as it
is, and the HTML of :mod:`.pages` is rendered from the same document, so the two never
show different things.

Every document is read inside one read snapshot of the store, through the Store's public
API and :mod:`chimeway_lite.tools.listing`. Deliveries are copied field by field from
:data:`DELIVERY_FIELDS`, never whole: the trigger's data (``Delivery.data``) and the step's
config (``Delivery.config``) are the host's and never reach a page. Trace contexts hold
only the catalogue's keys (CONTRACT §10), so they are shown as they are.

``scope`` is the tenant the inspector was started for (``--tenant``), or None for all: a
run or delivery of another tenant is not found, and a listing filter naming another tenant
is refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs

from ...core.errors import DeliveryNotFound, InvalidArgument, RunNotFound
from ...core.records import Delivery, DeliveryExplanation
from ...machine import decide
from ...store import Store
from .. import listing, timeline
from .markup import path_of, url_of
from .queries import DueQuery, OutboxQuery, Paging, RunsQuery

#: The fields of a delivery a page may show: the listing's columns, which leave out the
#: trigger's data and the step's config.
DELIVERY_FIELDS = tuple(c for c in listing.DELIVERY_COLUMNS if c != "claimable_at")


@attrs.frozen
class Page:
    """One page: its kind (``runs``, ``run``, ``delivery``, ``outbox``, ``due``), title,
    document (plain JSON values) and, for a run, the timeline's SVG (not part of the JSON)."""

    kind: str
    title: str
    document: dict[str, Any]
    path: str
    svg: str | None = None


def run_path(tenant_id: str, run_id: str) -> str:
    """The address of a run's page."""
    return path_of("runs", tenant_id, run_id)


def delivery_path(tenant_id: str, delivery_id: str) -> str:
    """The address of a delivery's page."""
    return path_of("deliveries", tenant_id, delivery_id)


def _tenant(requested: str | None, scope: str | None) -> str | None:
    """The tenant a listing is filtered by: the one asked for, within the scope."""
    if scope is None:
        return requested
    if requested is not None and requested != scope:
        raise InvalidArgument("tenant", f"this inspector shows tenant {scope!r} only")
    return scope


def _pages(path: str, filters: dict[str, Any], paging: Paging, has_next: bool) -> dict[str, Any]:
    """The paging part of a listing document: this page and the links to its neighbours."""
    query = dict(filters, limit=None if paging.limit == Paging().limit else paging.limit)
    previous = None
    if paging.page > 1:
        previous = url_of(path, dict(query, page=paging.page - 1 if paging.page > 2 else None))
    following = url_of(path, dict(query, page=paging.page + 1)) if has_next else None
    return {
        "page": paging.page,
        "limit": paging.limit,
        "has_next": has_next,
        "previous": previous,
        "next": following,
    }


def _delivery(delivery: Delivery) -> dict[str, Any]:
    """The fields of :data:`DELIVERY_FIELDS`, and the delivery's address."""
    fields = {name: listing.plain(getattr(delivery, name)) for name in DELIVERY_FIELDS}
    fields["url"] = delivery_path(delivery.tenant_id, delivery.id)
    return fields


def _explained(explanation: DeliveryExplanation) -> dict[str, Any]:
    """A delivery with its two sentences and its attempts."""
    fields = _delivery(explanation.delivery)
    fields["why"] = explanation.why
    fields["next_move"] = explanation.next_move
    fields["attempts"] = [listing.plain(a) for a in explanation.attempts]
    if explanation.delivery.workflow_run_id is not None:
        fields["run_url"] = run_path(
            explanation.delivery.tenant_id, explanation.delivery.workflow_run_id
        )
    return fields


def _run_row(row: dict[str, Any]) -> dict[str, Any]:
    return dict(row, url=run_path(row["tenant_id"], row["id"]))


def _bare_row(run_id: str, tenant_id: str) -> dict[str, Any]:
    # A run whose notification, definition or step row is gone (verify() reports it): the
    # explanation still says what it can.
    row: dict[str, Any] = dict.fromkeys(listing.RUN_COLUMNS)
    return _run_row(dict(row, id=run_id, tenant_id=tenant_id))


# -- the pages -----------------------------------------------------------------------------------


def runs_page(store: Store, query: RunsQuery, scope: str | None) -> Page:
    """``/``: runs, most recently changed first, filtered and paged."""
    tenant = _tenant(query.tenant, scope)
    paging = query.paging
    with store.snapshot() as view:
        now = view.now()
        rows = listing.run_rows(
            store,
            tenant_id=tenant,
            state=query.state,
            recipient=query.recipient,
            workflow_key=query.workflow,
            limit=paging.limit + 1,  # one more: is there a next page?
            offset=paging.offset,
        )
    filters = {
        "tenant": query.tenant,
        "recipient": query.recipient,
        "state": query.state,
        "workflow": query.workflow,
    }
    document = {
        "page": "runs",
        "now": listing.plain(now),
        "filters": filters,
        "paging": _pages("/", filters, paging, len(rows) > paging.limit),
        "runs": [_run_row(r) for r in rows[: paging.limit]],
    }
    return Page("runs", "Runs", document, url_of("/", dict(filters, page=_page(paging))))


def _page(paging: Paging) -> int | None:
    return None if paging.page == 1 else paging.page


def run_page(store: Store, tenant_id: str, run_id: str, scope: str | None) -> Page:
    """``/runs/<tenant>/<run_id>``: the explanation, the timeline, the deliveries with their
    attempts, and the trace."""
    if scope is not None and tenant_id != scope:
        raise RunNotFound(run_id)
    with store.snapshot() as view:
        now = view.now()
        explanation = view.explain(tenant_id, run_id)
        rows = listing.run_rows(store, tenant_id=tenant_id, run_id=explanation.id, limit=1)
        trace = listing.trace_rows(store, tenant_id, explanation.id)
        deliveries = [
            _explained(view.explain_delivery(tenant_id, d.id))
            for d in view.list_deliveries(tenant_id, explanation.id)
        ]
        svg = timeline.render_svg(
            timeline.collect(store, tenant_id, explanation.id), standalone=False
        )
    for step in trace:  # numbered within the run by the listing (1, 2, 3 …)
        if step["delivery_id"] is not None:
            step["delivery_url"] = delivery_path(tenant_id, step["delivery_id"])
    document = {
        "page": "run",
        "now": listing.plain(now),
        "run": _run_row(rows[0]) if rows else _bare_row(explanation.id, tenant_id),
        "explanation": listing.plain(explanation),
        "deliveries": deliveries,
        "trace": trace,
    }
    title = f"Run {explanation.id}"
    return Page("run", title, document, run_path(tenant_id, explanation.id), svg=svg)


def delivery_page(store: Store, tenant_id: str, delivery_id: str, scope: str | None) -> Page:
    """``/deliveries/<tenant>/<delivery_id>``: where the delivery stands, its attempts."""
    if scope is not None and tenant_id != scope:
        raise DeliveryNotFound(delivery_id)
    with store.snapshot() as view:
        now = view.now()
        explanation = view.explain_delivery(tenant_id, delivery_id)
    delivery = _explained(explanation)
    document = {"page": "delivery", "now": listing.plain(now), "delivery": delivery}
    title = f"Delivery {explanation.delivery.id}"
    return Page("delivery", title, document, delivery["url"])


def outbox_page(store: Store, query: OutboxQuery, scope: str | None) -> Page:
    """``/outbox``: the deliveries not final yet (or of one status), oldest first."""
    tenant = _tenant(query.tenant, scope)
    paging = query.paging
    with store.snapshot() as view:
        now = view.now()
        rows = listing.delivery_rows(
            store,
            tenant_id=tenant,
            status=query.status,
            channel=query.channel,
            limit=paging.limit + 1,
            offset=paging.offset,
        )
    filters = {"tenant": query.tenant, "status": query.status, "channel": query.channel}
    document = {
        "page": "outbox",
        "now": listing.plain(now),
        "filters": filters,
        "paging": _pages("/outbox", filters, paging, len(rows) > paging.limit),
        "deliveries": [_delivery_row(r) for r in rows[: paging.limit]],
    }
    return Page("outbox", "Outbox", document, url_of("/outbox", dict(filters, page=_page(paging))))


def _delivery_row(row: dict[str, Any]) -> dict[str, Any]:
    extra = {"url": delivery_path(row["tenant_id"], row["id"])}
    if row["workflow_run_id"] is not None:
        extra["run_url"] = run_path(row["tenant_id"], row["workflow_run_id"])
    return dict(row, **extra)


def due_page(store: Store, query: DueQuery, scope: str | None) -> Page:
    """``/due``: the runs the due sweep will have work for within ``within`` minutes (those
    due already included), in due order, and the deliveries that come back to the outbox
    by then (retries, leases that run out)."""
    tenant = _tenant(query.tenant, scope)
    paging = query.paging
    with store.snapshot() as view:
        now = view.now()
        horizon = now + timedelta(minutes=query.within)
        runs, has_next = _due_runs(store, view.due_run_ids(horizon), tenant, paging)
        rows = listing.delivery_rows(
            store, tenant_id=tenant, before=horizon, limit=paging.limit + 1
        )
    filters = {"tenant": query.tenant, "within": query.within if query.within != 60 else None}
    document = {
        "page": "due",
        "now": listing.plain(now),
        "until": listing.plain(horizon),
        "within_minutes": query.within,
        "filters": filters,
        "paging": _pages("/due", filters, paging, has_next),
        "runs": runs,
        "deliveries": [_delivery_row(r) for r in rows[: paging.limit]],
        "more_deliveries": len(rows) > paging.limit,
    }
    return Page("due", "Due", document, url_of("/due", dict(filters, page=_page(paging))))


def _due_runs(
    store: Store, ids: list[str], tenant: str | None, paging: Paging
) -> tuple[list[dict[str, Any]], bool]:
    """The page of due runs of ``tenant`` (or all), each with its due time and next move;
    inside the caller's snapshot."""
    runs: list[dict[str, Any]] = []
    skipped = 0
    with store.snapshot() as view:
        for run_id in ids:
            rows = listing.run_rows(store, tenant_id=tenant, run_id=run_id, limit=1)
            if not rows:
                continue  # another tenant's
            if skipped < paging.offset:
                skipped += 1
                continue
            if len(runs) == paging.limit:
                return runs, True
            row = _run_row(rows[0])
            due: datetime | None = decide.due_at(view.get_run(run_id))
            row["due_at"] = listing.plain(due)
            row["next_move"] = view.explain(row["tenant_id"], run_id).next_move
            runs.append(row)
    return runs, False
