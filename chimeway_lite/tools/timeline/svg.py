"""A picture of one run: a self-contained SVG (or an HTML page with the SVG inline).

The picture reads the run's trace left to right, one column per trace row, on one lane per
step of the definition: where the run started, each step it activated, each delivery outcome
that moved it, each wait (a band from entering it to leaving it, labelled with its due time
and the signals that cancel it), each signal, and the final state. Below the lanes, the
run's deliveries with their statuses. The file needs no network and no external asset
(fonts are generic families, styles inline), and every piece of text is escaped, so tenant
ids, step keys and signal names of any content cannot break or inject into the document.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from ...core.records import (
    Delivery,
    DeliveryStatus,
    RunExplanation,
    RunState,
    WorkflowStep,
    WorkflowTransition,
)
from ...core.text import duration_text
from ...core.timestamps import from_text
from ...machine.kinds import kind_of, rules_of
from ...machine.table import MOVES
from ...machine.vocabulary import SIGNAL_RECEIVED, STEP_ACTIVATED, render
from ...store import Store

# Characters XML 1.0 does not allow, even escaped (C0 controls other than tab/newline/CR,
# lone surrogates, U+FFFE/U+FFFF): replaced so that the document stays well-formed.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

LEFT = 190  # the lane labels
COLUMN = 180  # one trace row
RIGHT = 40
HEADER = 150
LANE = 84
ROW = 20  # one line of the deliveries table
MIN_WIDTH = 960

_STATE_COLOURS = {
    RunState.ACTIVE: "#1f6feb",
    RunState.WAITING: "#bf8700",
    RunState.COMPLETED: "#1a7f37",
    RunState.STOPPED: "#cf222e",
}
_DELIVERY_COLOURS = {
    DeliveryStatus.PENDING: "#6e7781",
    DeliveryStatus.DISPATCHED: "#1f6feb",
    DeliveryStatus.SUCCEEDED: "#1a7f37",
    DeliveryStatus.FAILED: "#cf222e",
    DeliveryStatus.SUPPRESSED: "#8250df",
    DeliveryStatus.CANCELLED: "#cf222e",
}
_STYLE = """
text { font-family: system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif;
       font-size: 12px; fill: #24292f; }
.title { font-size: 17px; font-weight: 600; }
.muted { fill: #57606a; font-size: 11px; }
.label { font-weight: 600; }
.lane { stroke: #d0d7de; stroke-width: 1; }
.path { stroke: #8c959f; stroke-width: 1.5; fill: none; }
.wait { fill: #fff8c5; stroke: #bf8700; stroke-dasharray: 4 3; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 11px; }
"""


@attrs.frozen
class Timeline:
    """Everything the picture shows, read in one snapshot of the store."""

    explanation: RunExplanation
    steps: tuple[WorkflowStep, ...]
    transitions: tuple[WorkflowTransition, ...]
    deliveries: tuple[Delivery, ...]


def collect(store: Store, tenant_id: str, run_id: str) -> Timeline:
    """Read what :func:`render_svg` needs for one run of ``tenant_id`` (RunNotFound when the
    run is missing or another tenant's), inside one read transaction."""

    with store.snapshot() as view:
        explanation = view.explain(tenant_id, run_id)
        definition = view.fetch_definition(explanation.workflow_key, explanation.workflow_version)
        steps = () if definition is None else definition.steps
        return Timeline(
            explanation=explanation,
            steps=tuple(sorted(steps, key=lambda s: s.step_order)),
            transitions=tuple(view.list_traces(tenant_id, run_id)),
            deliveries=tuple(view.list_deliveries(tenant_id, run_id)),
        )


def esc(value: object) -> str:
    """``value`` as text that is safe inside XML/HTML text and attribute values."""
    return html.escape(_NOT_XML.sub("\ufffd", str(value)), quote=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clock(at: datetime) -> str:
    return at.strftime("%H:%M:%S")


def _time_of(value: Any) -> str:
    if isinstance(value, str):
        try:
            return from_text(value).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            return value
    return "?"


@attrs.frozen
class _Event:
    column: int
    lane: int
    transition: WorkflowTransition
    label: str
    detail: str
    colour: str


def _describe(row: WorkflowTransition, steps: dict[str, WorkflowStep]) -> tuple[str, str, str]:
    """The label, detail line and colour of one trace row, from its move's variant in the
    machine's table (a host's own reason is shown as it is)."""
    colour = _STATE_COLOURS.get(row.to_state, "#6e7781")
    move = MOVES.get(row.reason)
    if move is None:
        return row.reason, f"-> {row.to_state.value}", colour
    if row.reason == SIGNAL_RECEIVED:
        colour = "#8250df"
    variant = move.variant(row.context)
    step = steps.get(row.workflow_step_id or "")
    channel = f" ({step.channel})" if step is not None else ""
    return (
        render(variant.label, row.context, channel=channel),
        render(variant.detail, row.context),
        colour,
    )


def _events(timeline: Timeline) -> tuple[list[_Event], dict[str, int]]:
    lanes = {step.id: index for index, step in enumerate(timeline.steps)}
    steps = {step.id: step for step in timeline.steps}
    cursor = 0
    events = []
    for column, row in enumerate(timeline.transitions):
        lane = lanes.get(row.workflow_step_id or "", cursor)
        if row.reason == STEP_ACTIVATED:
            cursor = lane
        label, detail, colour = _describe(row, steps)
        events.append(_Event(column, lane, row, label, detail, colour))
    return events, lanes


def _cancel_signals(step: WorkflowStep | None, to_step: Any) -> tuple[str, ...]:
    """The signals that end a wait on ``step`` towards ``to_step``, from its wait rule."""
    if step is None:
        return ()
    rules = rules_of(step.config)
    for rule in rules:
        waits = kind_of(rule).waits(rule, rules)
        if waits is not None and waits[0] == to_step:
            return waits[1]
    return ()


def render_svg(timeline: Timeline, *, standalone: bool = True) -> str:
    """The SVG document of ``timeline``; ``standalone=False`` leaves out the XML declaration
    (for inlining in HTML)."""
    explanation = timeline.explanation
    events, lanes = _events(timeline)
    lane_count = max(1, len(timeline.steps))
    width = max(MIN_WIDTH, LEFT + COLUMN * max(1, len(events)) + RIGHT)
    lanes_top = HEADER
    lanes_bottom = lanes_top + LANE * lane_count
    table_top = lanes_bottom + 60
    height = table_top + ROW * (len(timeline.deliveries) + 2) + 30
    chars = (width - 40) // 7
    out: list[str] = []
    add = out.append

    def x_of(column: int) -> int:
        return LEFT + COLUMN * column + COLUMN // 2

    def y_of(lane: int) -> int:
        return lanes_top + LANE * lane + LANE // 2

    title = f"Run {explanation.id} of tenant {explanation.tenant_id}"
    if standalone:
        add('<?xml version="1.0" encoding="UTF-8"?>')
    add(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">'
    )
    add(f"<title>{esc(title)}</title>")
    add(f"<style>{_STYLE}</style>")
    add(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>')

    # -- header: what, whose, final state, why and what next -----------------------------------
    add(f'<text x="20" y="30" class="title">{esc(_clip(title, chars))}</text>')
    subtitle = (
        f"workflow {explanation.workflow_key} v{explanation.workflow_version} · started "
        f"{explanation.started_at.strftime('%Y-%m-%d %H:%M:%S')} UTC · "
        f"{len(timeline.transitions)} trace rows"
    )
    add(f'<text x="20" y="50" class="muted">{esc(_clip(subtitle, chars))}</text>')
    state = explanation.state
    badge = f"{state.value} · {explanation.terminal_reason or explanation.status_reason}"
    badge_width = 16 + 8 * len(badge)
    add(
        f'<g class="final-state"><rect x="20" y="62" rx="4" width="{badge_width}" height="22" '
        f'fill="{_STATE_COLOURS[state]}"/><text x="27" y="78" fill="#ffffff" '
        f'style="fill:#ffffff;font-weight:600">{esc(badge)}</text></g>'
    )
    add(f'<text x="20" y="104" class="muted">{esc(_clip("why: " + explanation.why, chars))}</text>')
    add(
        f'<text x="20" y="120" class="muted">'
        f"{esc(_clip('next: ' + explanation.next_move, chars))}</text>"
    )

    # -- lanes: one per step ---------------------------------------------------------------------
    for step in timeline.steps:
        y = y_of(lanes[step.id])
        add(f'<line x1="{LEFT - 10}" y1="{y}" x2="{width - RIGHT}" y2="{y}" class="lane"/>')
        add(
            f'<text x="20" y="{y - 4}" class="label">'
            f"{esc(_clip(f'{step.step_order}. {step.step_key}', 24))}</text>"
        )
        add(f'<text x="20" y="{y + 12}" class="muted">{esc(_clip(step.channel, 26))}</text>')

    # -- waits: a band from entering to leaving, labelled with due time and cancel signals -----
    steps = {step.id: step for step in timeline.steps}
    for index, event in enumerate(events):
        row = event.transition
        move = MOVES.get(row.reason)
        if move is None or move.to_state is not RunState.WAITING:
            continue
        end = next(
            (e for e in events[index + 1 :] if e.transition.from_state is RunState.WAITING),
            None,
        )
        x1 = x_of(event.column)
        x2 = x_of(end.column) if end is not None else width - RIGHT
        y = y_of(event.lane)
        ctx = row.context
        signals = _cancel_signals(steps.get(row.workflow_step_id or ""), ctx.get("to_step"))
        due = _time_of(ctx.get("due_at"))
        try:
            length = duration_text(
                (from_text(ctx["due_at"]) - from_text(ctx["anchor_timestamp"])).total_seconds()
            )
        except (KeyError, TypeError, ValueError):
            length = "?"
        add('<g class="wait-band">')
        add(f'<rect x="{x1}" y="{y - 11}" width="{max(x2 - x1, 8)}" height="22" class="wait"/>')
        caption = f"wait {length} until {due} -> {ctx.get('to_step')}"
        add(f'<text x="{x1 + 8}" y="{y + 26}" class="muted">{esc(_clip(caption, 60))}</text>')
        if signals:
            add(
                f'<text x="{x1 + 8}" y="{y + 40}" class="muted">'
                f"{esc(_clip('cancel signals: ' + ', '.join(signals), 60))}</text>"
            )
        if end is None:
            add(
                f'<text x="{x2 - 8}" y="{y + 26}" text-anchor="end" class="muted">'
                "still waiting</text>"
            )
        add("</g>")

    # -- the run's path and its events -------------------------------------------------------
    if events:
        points = " ".join(f"{x_of(e.column)},{y_of(e.lane)}" for e in events)
        add(f'<polyline points="{points}" class="path"/>')
    previous_day = None
    for event in events:
        row = event.transition
        x, y = x_of(event.column), y_of(event.lane)
        tooltip = (
            f"#{row.seq} {row.reason} ({row.from_state.value if row.from_state else '-'} -> "
            f"{row.to_state.value}) at {row.inserted_at.isoformat()}; context "
            + ", ".join(f"{k}={v}" for k, v in sorted(row.context.items()))
        )
        add(f'<g class="event" data-seq="{row.seq}" data-reason="{esc(row.reason)}">')
        add(f"<title>{esc(tooltip)}</title>")
        if row.reason == SIGNAL_RECEIVED:
            add(
                f'<polygon points="{x},{y - 9} {x + 9},{y} {x},{y + 9} {x - 9},{y}" '
                f'fill="{event.colour}"/>'
            )
        elif row.to_state.is_terminal:
            add(f'<circle cx="{x}" cy="{y}" r="10" fill="none" stroke="{event.colour}"/>')
            add(f'<circle cx="{x}" cy="{y}" r="6" fill="{event.colour}"/>')
        else:
            add(f'<circle cx="{x}" cy="{y}" r="6" fill="{event.colour}"/>')
        add(
            f'<text x="{x}" y="{y - 30}" text-anchor="middle" class="label">'
            f"{esc(_clip(event.label, 24))}</text>"
        )
        add(
            f'<text x="{x}" y="{y - 17}" text-anchor="middle" class="muted">'
            f"{esc(_clip(event.detail, 30))}</text>"
        )
        day = row.inserted_at.strftime("%Y-%m-%d")
        stamp = _clock(row.inserted_at)
        if day != previous_day:
            stamp = f"{day} {stamp}"
        previous_day = day
        add(
            f'<text x="{x}" y="{lanes_bottom + 18}" text-anchor="middle" class="muted">'
            f"{esc(stamp)}</text>"
        )
        add("</g>")

    # -- deliveries and their outcomes -----------------------------------------------------------
    add(f'<text x="20" y="{table_top}" class="label">Deliveries</text>')
    header = ("channel", "step", "status", "suppression", "planned", "last change", "id")
    columns = (20, 120, 240, 340, 460, 620, 780)
    y = table_top + ROW
    for x, name in zip(columns, header, strict=True):
        add(f'<text x="{x}" y="{y}" class="muted">{esc(name)}</text>')
    for delivery in timeline.deliveries:
        y += ROW
        owner = steps.get(delivery.workflow_step_id or "")
        cells = (
            delivery.channel,
            owner.step_key if owner is not None else "-",
            delivery.status.value,
            delivery.suppression_reason or "-",
            delivery.inserted_at.strftime("%Y-%m-%d %H:%M:%S"),
            delivery.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            delivery.id,
        )
        add(f'<g class="delivery" data-status="{esc(delivery.status.value)}">')
        for index, (x, cell) in enumerate(zip(columns, cells, strict=True)):
            colour = (
                f' style="fill:{_DELIVERY_COLOURS[delivery.status]};font-weight:600"'
                if index == 2
                else ""
            )
            add(f'<text x="{x}" y="{y}"{colour}>{esc(_clip(cell, 36))}</text>')
        add("</g>")
    if not timeline.deliveries:
        add(f'<text x="20" y="{y + ROW}" class="muted">none</text>')
    add("</svg>")
    return "\n".join(out) + "\n"


def render_html(timeline: Timeline) -> str:
    """An HTML page (also well-formed XML) with the SVG inline and the full trace as a table."""
    explanation = timeline.explanation
    title = f"Run {explanation.id} of tenant {explanation.tenant_id}"
    rows = []
    steps = {step.id: step.step_key for step in timeline.steps}
    for row in timeline.transitions:
        context = ", ".join(f"{k}={v}" for k, v in sorted(row.context.items()))
        cells: Sequence[object] = (
            row.seq,
            row.inserted_at.isoformat(),
            row.from_state.value if row.from_state else "-",
            row.to_state.value,
            row.reason,
            steps.get(row.workflow_step_id or "", row.workflow_step_id or "-"),
            row.delivery_id or "-",
            context,
        )
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    head = ("seq", "time (UTC)", "from", "to", "reason", "step", "delivery", "context")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en" xmlns="http://www.w3.org/1999/xhtml">',
            '<head><meta charset="utf-8"/>',
            f"<title>{esc(title)}</title>",
            "<style>body{font-family:system-ui,Helvetica,Arial,sans-serif;margin:24px;}"
            "table{border-collapse:collapse;font-size:13px;}"
            "td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;}</style>",
            "</head><body>",
            f"<h1>{esc(title)}</h1>",
            f"<p><strong>State:</strong> {esc(explanation.state.value)}"
            f" ({esc(explanation.terminal_reason or explanation.status_reason)})</p>",
            f"<p><strong>Why:</strong> {esc(explanation.why)}</p>",
            f"<p><strong>Next:</strong> {esc(explanation.next_move)}</p>",
            render_svg(timeline, standalone=False),
            "<h2>Trace</h2>",
            "<table><thead><tr>"
            + "".join(f"<th>{esc(h)}</th>" for h in head)
            + "</tr></thead><tbody>",
            *rows,
            "</tbody></table>",
            "</body></html>",
            "",
        ]
    )
