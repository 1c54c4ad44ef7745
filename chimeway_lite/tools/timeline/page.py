"""The picture of one run as an HTML page: the facts, the SVG inline, the trace and the
deliveries with every attempt as tables.

The page is also well-formed XML (XHTML served as HTML), needs no network, script or
external style, and escapes every piece of text. Its layout is the browser's: the SVG
scales to the page's width, long ids wrap inside their table cells, and a table too wide
for a narrow window scrolls on its own instead of the page.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import Timeline, describe, esc
from .svg import render_svg, title_of

_STYLE = (
    "body{font-family:'DejaVu Sans','Bitstream Vera Sans',sans-serif;margin:24px;"
    "color:#24292f;max-width:100%;}"
    "h1{font-size:20px;overflow-wrap:anywhere;}h2{font-size:16px;margin-top:28px;}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;font-size:14px;}"
    "dt{font-weight:700;}dd{margin:0;overflow-wrap:anywhere;}"
    "figure{margin:16px 0;}figure svg{display:block;}"
    ".wide{overflow-x:auto;}table{border-collapse:collapse;font-size:13px;width:100%;min-width:1100px;}"
    "td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top;"
    "overflow-wrap:break-word;}"
    "th{background:#f6f8fa;}td.short{white-space:nowrap;}td.long{overflow-wrap:anywhere;}"
    "td.id{font-family:'DejaVu Sans Mono',monospace;font-size:12px;overflow-wrap:anywhere;}"
)


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], kinds: str) -> str:
    """A table; ``kinds`` has one letter per column: ``s`` a short cell that never wraps,
    ``l`` a long one that wraps anywhere, ``i`` an id (monospace, wraps anywhere), ``t``
    plain text."""
    classes = {"s": ' class="short"', "l": ' class="long"', "i": ' class="id"', "t": ""}
    lines = [
        '<div class="wide"><table><thead><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr></thead>",
        "<tbody>",
    ]
    for row in rows:
        cells = "".join(
            f"<td{classes[kind]}>{esc(c)}</td>" for kind, c in zip(kinds, row, strict=True)
        )
        lines.append(f"<tr>{cells}</tr>")
    if not rows:
        lines.append(f'<tr><td colspan="{len(head)}">none</td></tr>')
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def _time(value: object) -> str:
    return "-" if value is None else getattr(value, "isoformat", lambda: str(value))()


def render_html(timeline: Timeline) -> str:
    """An HTML page (also well-formed XML) with the run's facts, the SVG inline, its trace
    (numbered within the run) and its deliveries and their attempts. A stable entry point:
    its signature does not change."""
    e = timeline.explanation
    title = title_of(timeline)
    steps = {step.id: step for step in timeline.steps}
    facts = [
        ("Tenant", e.tenant_id),
        ("Recipient", e.recipient if e.recipient is not None else "-"),
        ("Notification", e.notification_key if e.notification_key is not None else "-"),
        ("Workflow", f"{e.workflow_key} v{e.workflow_version}"),
        ("State", f"{e.state.value} ({e.terminal_reason or e.status_reason})"),
        ("Step", f"{e.current_step_order}. {e.current_step_name} (channel {e.current_channel})"),
        ("Why", e.why),
        ("Next", e.next_move),
    ]
    trace = []
    for number, row in enumerate(timeline.transitions, start=1):
        label, detail, _ = describe(row, steps)
        step = steps.get(row.workflow_step_id or "")
        trace.append(
            (
                f"#{number}",
                row.inserted_at.isoformat(),
                row.from_state.value if row.from_state else "-",
                row.to_state.value,
                row.reason,
                f"{label} · {detail}",
                step.step_key if step is not None else (row.workflow_step_id or "-"),
                row.delivery_id or "-",
                ", ".join(f"{k}={v}" for k, v in sorted(row.context.items())) or "-",
            )
        )
    deliveries = []
    attempts = []
    for d in timeline.deliveries:
        step = steps.get(d.workflow_step_id or "")
        of = f" of {d.max_attempts}" if d.max_attempts else ""
        explained = timeline.explained.get(d.id)
        deliveries.append(
            (
                step.step_key if step is not None else (d.step_key or "-"),
                d.channel,
                d.status.value,
                f"{d.attempt}{of}",
                d.suppression_reason or "-",
                "-" if explained is None else f"{explained.why} {explained.next_move}",
                d.id,
            )
        )
        for attempt in timeline.attempts_of(d.id):
            attempts.append(
                (
                    d.channel,
                    f"{attempt.attempt}{of}",
                    _time(attempt.claimed_at),
                    _time(attempt.ended_at),
                    attempt.status,
                    attempt.suppression_reason or "-",
                    d.id,
                )
            )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en" xmlns="http://www.w3.org/1999/xhtml">',
            '<head><meta charset="utf-8"/>',
            '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
            f"<title>{esc(title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head><body>",
            f"<h1>{esc(title)}</h1>",
            "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>",
            "<figure>",
            render_svg(timeline, standalone=False),
            "</figure>",
            "<h2>Trace</h2>",
            _table(
                ("#", "time (UTC)", "from", "to", "reason", "reads", "step", "delivery", "context"),
                trace,
                "sssssttil",
            ),
            "<h2>Deliveries</h2>",
            _table(
                ("step", "channel", "status", "attempts", "reason", "why · next", "id"),
                deliveries,
                "tssssti",
            ),
            "<h2>Attempts</h2>",
            _table(
                ("channel", "attempt", "claimed", "ended", "status", "reason", "delivery"),
                attempts,
                "tsssssi",
            ),
            "</body></html>",
            "",
        ]
    )
