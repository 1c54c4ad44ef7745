"""The HTML of each page, rendered from its document (:mod:`.documents`).

Each ``render_*`` function takes the page's document and returns the body's HTML; every
value goes through :func:`~.markup.esc` (directly or through the helpers of
:mod:`.markup`). :func:`render` wraps a body in the page frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ...core.records import DeliveryStatus, RunState
from ...core.timestamps import from_text
from .documents import Page, delivery_path
from .markup import (
    LONG,
    badge,
    code,
    context_text,
    esc,
    facts,
    frame,
    id_link,
    link,
    long_text,
    name,
    sentence,
    table,
    url_of,
    when,
)


def render(page: Page, *, store_label: str, scope: str | None) -> str:
    """The whole HTML document of ``page``."""
    document = page.document
    now = from_text(document["now"])
    body = _RENDERERS[page.kind](page, now, scope)
    here = {"runs": "/", "run": "/", "delivery": "/outbox", "outbox": "/outbox", "due": "/due"}
    json_url = page.path + ("&" if "?" in page.path else "?") + "format=json"
    return frame(
        title=page.title,
        body=body,
        here=here[page.kind],
        store_label=store_label,
        scope=scope,
        now=now,
        json_url=json_url,
    )


def render_error(status: int, title: str, message: str, *, store_label: str, now: datetime) -> str:
    """An error page: what went wrong, in one sentence (never a traceback)."""
    body = (
        f"<h1>{esc(status)} {esc(title)}</h1><p>{esc(message)}</p>"
        f"<p>{link('/', 'Back to the runs')}</p>"
    )
    return frame(
        title=f"{status} {title}",
        body=body,
        here="",
        store_label=store_label,
        scope=None,
        now=now,
        json_url=None,
    )


# -- pieces ------------------------------------------------------------------------------------


def _field(name: str, label: str, value: str | None, *, hint: str = "") -> str:
    shown = "" if value is None else value
    return (
        f'<label>{esc(label)}<input type="text" name="{esc(name)}" value="{esc(shown)}" '
        f'placeholder="{esc(hint)}" size="16"></label>'
    )


def _choice(name: str, label: str, value: str | None, options: Sequence[tuple[str, str]]) -> str:
    items = "".join(
        f'<option value="{esc(v)}"{" selected" if v == (value or "") else ""}>{esc(t)}</option>'
        for v, t in options
    )
    return f'<label>{esc(label)}<select name="{esc(name)}">{items}</select></label>'


def _form(action: str, fields: Sequence[str], paging: Mapping[str, Any]) -> str:
    keep = ""
    if paging["limit"] != 50:
        keep = f'<input type="hidden" name="limit" value="{esc(paging["limit"])}">'
    return (
        f'<form class="cw-filters" method="get" action="{esc(action)}" role="search">'
        f'{"".join(fields)}{keep}<button type="submit">Filter</button> '
        f"{link(action, 'Clear')}</form>"
    )


def _tenant_field(filters: Mapping[str, Any], scope: str | None) -> str:
    if scope is not None:
        return f"<label>Tenant<span>{esc(scope)}</span></label>"
    return _field("tenant", "Tenant", filters.get("tenant"), hint="any")


def _pager(paging: Mapping[str, Any], count: int, noun: str) -> str:
    first = (paging["page"] - 1) * paging["limit"] + 1
    shown = f"{noun} {first} to {first + count - 1}" if count else f"no {noun}"
    parts = [f"<span>Page {esc(paging['page'])}: {esc(shown)}</span>"]
    if paging["previous"] is not None:
        parts.append(link(paging["previous"], "Previous page"))
    if paging["next"] is not None:
        parts.append(link(paging["next"], "Next page"))
    return f'<nav class="cw-pager" aria-label="pages">{" ".join(parts)}</nav>'


def _sentences(why: str, next_move: str) -> str:
    return f'<div id="explanation">{sentence("Why", why)}{sentence("Next", next_move)}</div>'


def _reason(row: Mapping[str, Any]) -> str:
    return code(row.get("terminal_reason") or row.get("status_reason"))


def _attempts_text(row: Mapping[str, Any]) -> str:
    most = row.get("max_attempts")
    return esc(f"{row['attempt']} of {most}" if most else row["attempt"])


def _recipient(row: Mapping[str, Any]) -> str:
    """The recipient, as a link to the runs of that recipient (of the row's tenant)."""
    recipient = row.get("recipient")
    if recipient is None:
        return "-"
    shown = link(url_of("/", {"tenant": row["tenant_id"], "recipient": recipient}), recipient)
    return f'<span class="cw-long">{shown}</span>' if len(recipient) > LONG else shown


def _claimable(row: Mapping[str, Any], now: datetime) -> str:
    """When a claim can take the delivery, in words."""
    at = row.get("claimable_at")
    if at is None:
        return "-"
    shown = when(at, now)
    past = from_text(at) <= now
    if row["status"] == DeliveryStatus.DISPATCHED.value:
        return f"lease ran out at {shown}: claimable again" if past else f"leased until {shown}"
    return f"claimable now, since {shown}" if past else f"retry at {shown}"


# -- the pages ---------------------------------------------------------------------------------


def render_runs(page: Page, now: datetime, scope: str | None) -> str:
    """``/``: the filter form, the runs and the pager."""
    document = page.document
    filters = document["filters"]
    states = [("", "any"), *((s.value, s.value) for s in RunState)]
    form = _form(
        "/",
        [
            _tenant_field(filters, scope),
            _field("recipient", "Recipient", filters["recipient"], hint="any"),
            _choice("state", "State", filters["state"], states),
            _field("workflow", "Workflow", filters["workflow"], hint="any key"),
        ],
        document["paging"],
    )
    rows = [
        (
            id_link(r["url"], r["id"]),
            name(r["tenant_id"]),
            _recipient(r),
            name(r["notification_key"]),
            name(f"{r['workflow_key']} v{r['workflow_version']}"),
            name(r["current_step"]),
            badge(r["state"]),
            _reason(r),
            when(r["suspended_until"], now) if r["state"] == RunState.WAITING.value else "-",
            when(r["last_transition_at"], now),
        )
        for r in document["runs"]
    ]
    head = (
        "Run",
        "Tenant",
        "Recipient",
        "Notification",
        "Workflow",
        "Step",
        "State",
        "Reason",
        "Due",
        "Changed",
    )
    return (
        "<h1>Runs</h1>"
        + form
        + table(head, rows, empty="No runs match these filters.")
        + _pager(document["paging"], len(rows), "runs")
    )


def render_run(page: Page, now: datetime, scope: str | None) -> str:
    """``/runs/<tenant>/<run_id>``: facts, the two sentences, the timeline, the deliveries
    with their attempts, and the trace."""
    document = page.document
    run, e = document["run"], document["explanation"]
    due = "-"
    if e["due_at"] is not None:
        due = when(e["due_at"], now)
        if e["next_step"] is not None:
            due += f" → step {esc(e['next_step'])}"
    anchor = "-"
    if e["anchor_delivery_id"] is not None:
        anchor = (
            id_link(delivery_path(e["tenant_id"], e["anchor_delivery_id"]), e["anchor_delivery_id"])
            + f" {badge(e['anchor_delivery_status'])}"
        )
    last = "-"
    if e["last_transition"] is not None:
        t = e["last_transition"]
        last = f"{esc(t['reason'])} at {when(t['inserted_at'], now)}"
    summary = facts(
        [
            ("Tenant", esc(e["tenant_id"])),
            ("Recipient", _recipient(run)),
            ("Notification", esc(run["notification_key"])),
            ("Workflow", esc(f"{e['workflow_key']} v{e['workflow_version']}")),
            ("State", f"{badge(e['state'])} {esc(e['status_reason'])}"),
            (
                "Step",
                esc(
                    f"{e['current_step_order']}. {e['current_step_name']} ({e['current_channel']})"
                ),
            ),
            ("Due", due),
            ("Waiting for", esc(", ".join(e["pending_signals"]) or "-")),
            ("Anchor delivery", anchor),
            ("Terminal reason", esc(e["terminal_reason"])),
            ("Started", when(e["started_at"], now)),
            ("Changed", when(e["last_transition_at"], now)),
            ("Last decision", last),
        ]
    )
    return "".join(
        [
            f'<h1>Run <span class="cw-id">{esc(e["id"])}</span></h1>',
            _sentences(e["why"], e["next_move"]),
            summary,
            '<h2>Timeline</h2><div class="cw-timeline" id="timeline">',
            page.svg or "",
            "</div>",
            '<h2>Deliveries</h2><div id="deliveries">',
            _deliveries_table(document["deliveries"], now),
            '</div><h2>Trace</h2><div id="trace">',
            _trace_table(document["trace"], now),
            "</div>",
        ]
    )


def _attempt_rows(attempts: Sequence[Mapping[str, Any]], now: datetime) -> list[tuple[str, ...]]:
    return [
        (
            esc(a["attempt"]),
            when(a["claimed_at"], now),
            when(a["lease_expires_at"], now),
            when(a["ended_at"], now),
            badge(a["status"]),
            esc(a["suppression_reason"]),
        )
        for a in attempts
    ]


_ATTEMPT_HEAD = ("Attempt", "Claimed", "Lease until", "Ended", "Status", "Reason")


def _deliveries_table(deliveries: Sequence[Mapping[str, Any]], now: datetime) -> str:
    if not deliveries:
        return '<p class="cw-empty">No deliveries planned.</p>'
    head = ("Delivery", "Step", "Channel", "Status", "Attempts", "Planned", "Changed", "Why")
    out = []
    for d in deliveries:
        status = badge(d["status"])
        if d["suppression_reason"] is not None:
            status += f" {esc(d['suppression_reason'])}"
        cells = (
            id_link(d["url"], d["id"]),
            name(d["step_key"]),
            name(d["channel"]),
            status,
            _attempts_text(d),
            when(d["inserted_at"], now),
            when(d["updated_at"], now),
            f"{esc(d['why'])} <br><em>{esc(d['next_move'])}</em>",
        )
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        if d["attempts"]:
            inner = table(_ATTEMPT_HEAD, _attempt_rows(d["attempts"], now), empty="")
            out.append(f'<tr><td class="cw-attempts" colspan="{len(head)}">{inner}</td></tr>')
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    return (
        f'<table class="cw-table"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(out)}</tbody></table>"
    )


def _trace_table(trace: Sequence[Mapping[str, Any]], now: datetime) -> str:
    rows = [
        (
            esc(f"#{t['number']}"),
            esc(t["seq"]),
            when(t["inserted_at"], now),
            esc(f"{t['from_state'] or '-'} → {t['to_state']}"),
            code(t["reason"]),
            name(t["step_key"]),
            id_link(t["delivery_url"], t["delivery_id"]) if t["delivery_id"] else "-",
            long_text(context_text(t["context"])),
        )
        for t in trace
    ]
    head = ("#", "seq", "Time", "From → to", "Reason", "Step", "Delivery", "Context")
    return table(head, rows, empty="No trace rows.")


def render_delivery(page: Page, now: datetime, scope: str | None) -> str:
    """``/deliveries/<tenant>/<delivery_id>``: facts, the two sentences, the attempts."""
    d = page.document["delivery"]
    status = badge(d["status"])
    if d["suppression_reason"] is not None:
        status += f" {esc(d['suppression_reason'])}"
    run = id_link(d["run_url"], d["workflow_run_id"]) if d.get("run_url") else "-"
    pairs = [
        ("Tenant", esc(d["tenant_id"])),
        ("Run", run),
        ("Recipient", _recipient(d)),
        ("Notification", esc(d["notification_key"])),
        ("Step", esc(d["step_key"])),
        ("Channel", esc(d["channel"])),
        ("Status", status),
        ("Attempts", _attempts_text(d)),
        ("Retry at", when(d["available_at"], now)),
        ("Lease until", when(d["lease_expires_at"], now)),
        ("Planned", when(d["inserted_at"], now)),
        ("Changed", when(d["updated_at"], now)),
    ]
    if d["digest_size"] != 1:
        pairs.append(("Digest of", esc(f"{d['digest_size']} notifications")))
    return "".join(
        [
            f'<h1>Delivery <span class="cw-id">{esc(d["id"])}</span></h1>',
            _sentences(d["why"], d["next_move"]),
            facts(pairs),
            '<h2>Attempts</h2><div id="attempts">',
            table(_ATTEMPT_HEAD, _attempt_rows(d["attempts"], now), empty="Not attempted yet."),
            "</div>",
        ]
    )


def _outbox_rows(rows: Sequence[Mapping[str, Any]], now: datetime) -> list[tuple[str, ...]]:
    return [
        (
            id_link(r["url"], r["id"]),
            name(r["tenant_id"]),
            _recipient(r),
            name(r["notification_key"]),
            name(r["step_key"]),
            name(r["channel"]),
            badge(r["status"]),
            _attempts_text(r),
            _claimable(r, now),
            when(r["inserted_at"], now),
            id_link(r["run_url"], r["workflow_run_id"]) if r.get("run_url") else "-",
        )
        for r in rows
    ]


_OUTBOX_HEAD = (
    "Delivery",
    "Tenant",
    "Recipient",
    "Notification",
    "Step",
    "Channel",
    "Status",
    "Attempts",
    "Claimable",
    "Planned",
    "Run",
)


def render_outbox(page: Page, now: datetime, scope: str | None) -> str:
    """``/outbox``: the filter form, the deliveries and the pager."""
    document = page.document
    filters = document["filters"]
    statuses = [
        ("", "not final (pending, dispatched)"),
        *((s.value, s.value) for s in DeliveryStatus),
    ]
    form = _form(
        "/outbox",
        [
            _tenant_field(filters, scope),
            _choice("status", "Status", filters["status"], statuses),
            _field("channel", "Channel", filters["channel"], hint="any"),
        ],
        document["paging"],
    )
    rows = _outbox_rows(document["deliveries"], now)
    return (
        "<h1>Outbox</h1>"
        "<p>Deliveries oldest first; without a status, those not final yet: pending ones "
        "wait for a claim (or for their retry time), dispatched ones are held by a worker "
        "until their lease runs out.</p>"
        + form
        + table(_OUTBOX_HEAD, rows, empty="Nothing in the outbox matches.")
        + _pager(document["paging"], len(rows), "deliveries")
    )


def render_due(page: Page, now: datetime, scope: str | None) -> str:
    """``/due``: the runs due within the window and the deliveries that come back by then."""
    document = page.document
    minutes = document["within_minutes"]
    window = "the next hour" if minutes == 60 else f"the next {minutes} minutes"
    runs = [
        (
            when(r["due_at"], now),
            name(r["tenant_id"]),
            _recipient(r),
            id_link(r["url"], r["id"]),
            badge(r["state"]),
            name(r["current_step"]),
            esc(r["next_move"]),
        )
        for r in document["runs"]
    ]
    head = ("Due", "Tenant", "Recipient", "Run", "State", "Step", "What happens")
    deliveries = _outbox_rows(document["deliveries"], now)
    more = ""
    if document["more_deliveries"]:
        more = f"<p>{link('/outbox', 'More in the outbox')}</p>"
    return "".join(
        [
            f"<h1>Due in {esc(window)}</h1>",
            f"<p>Until {when(document['until'], now)}; work already due is listed first.</p>",
            '<h2>Runs</h2><div id="due-runs">',
            table(head, runs, empty=f"No run is due in {window}."),
            _pager(document["paging"], len(runs), "runs"),
            '</div><h2>Deliveries coming back</h2><div id="due-deliveries">',
            "<p>Retries whose time comes and leases that run out.</p>",
            table(_OUTBOX_HEAD, deliveries, empty=f"No delivery comes back in {window}."),
            more,
            "</div>",
        ]
    )


_RENDERERS: dict[str, Callable[[Page, datetime, str | None], str]] = {
    "runs": render_runs,
    "run": render_run,
    "delivery": render_delivery,
    "outbox": render_outbox,
    "due": render_due,
}
