"""The layout of one run's picture: where every lane, mark and line of text goes.

Top to bottom:

* the **header** — the run, whom it is for (tenant, recipient, notification key), the
  workflow, its final state as a badge, and the explanation's ``why`` and ``next`` sentences,
  wrapped to the picture's width;
* one **lane** per step of the definition — the step's name and channel on the left, then
  on a time-proportional axis (:mod:`.axis`): every trace row as a mark with its label and
  detail from the move table above the lane's line, each wait as a band (its length, target,
  due time and the signals that end it below the line), and the step's delivery attempts on
  a track under the line (each claim to its outcome, coloured by status, numbered "attempt
  2/3", with the retry that followed);
* the **axis** — a tick and the time at every instant, and each compressed gap marked as a
  break with its real length;
* the **deliveries** — one row each: step, channel, status, attempts, reason, times, id.

Text never overlaps: every line is a :class:`~.layout.Label` measured with
:mod:`.metrics`; labels of one lane that would collide go on separate tiers
(:func:`~.layout.tiers`); a text longer than its room is cut with ``…`` and keeps its full
form in a ``<title>`` tooltip; long sentences are wrapped. The picture's width is what its
content needs (at least :data:`MIN_WIDTH`); the SVG scales to its container (``viewBox``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import attrs

from ...core.records import Delivery, DeliveryAttempt, DeliveryStatus, RunState, WorkflowStep
from ...core.text import duration_text
from ...core.timestamps import from_text
from ...machine.kinds import kind_of, rules_of, wait_signals
from ...machine.table import MOVES
from ...machine.vocabulary import SIGNAL_RECEIVED, STEP_ACTIVATED
from . import axis as axes
from .layout import Label, line_height, tiers
from .metrics import fit, text_width, wrap
from .model import STATE_COLOURS, Timeline, describe, esc

MIN_WIDTH = 880.0
MARGIN = 20.0
#: The widest a lane's name may be before it wraps (three lines at most, then ``…``).
NAME_MAX = 240.0
#: The widest an event's label may be before it is cut.
LABEL_MAX = 200.0
#: The widest a caption under a lane may be before it is cut.
CAPTION_MAX = 560.0
TIER_ABOVE = 34.0  # one event label: two lines
TIER_BELOW = 16.0  # one caption line
TIER_AXIS = 15.0
NAME_PITCH = 17.0  # the lines of a lane's name

DELIVERY_COLOURS = {
    DeliveryStatus.PENDING: "#6e7781",
    DeliveryStatus.DISPATCHED: "#1f6feb",
    DeliveryStatus.SUCCEEDED: "#1a7f37",
    DeliveryStatus.FAILED: "#cf222e",
    DeliveryStatus.SUPPRESSED: "#8250df",
    DeliveryStatus.CANCELLED: "#cf222e",
}
_ATTEMPT_COLOURS = {
    **{status.value: colour for status, colour in DELIVERY_COLOURS.items()},
    "lease_expired": "#bf8700",
}


@attrs.frozen
class Scene:
    """The laid-out picture: its size and its parts in drawing order — SVG fragments
    (already escaped) and :class:`~.layout.Label` s (escaped when drawn)."""

    width: float
    height: float
    parts: tuple[str | Label, ...]

    @property
    def labels(self) -> list[Label]:
        """Every line of text in the picture."""
        return [p for p in self.parts if isinstance(p, Label)]


# -- what the lanes show ---------------------------------------------------------------------


@attrs.frozen
class _Event:
    index: int
    lane: int
    at: datetime
    slot: int
    label: str
    detail: str
    colour: str
    tooltip: str
    shape: str  # "signal" (a diamond), "end" (a ringed dot) or "dot"
    seq: int
    reason: str


@attrs.frozen
class _Wait:
    lane: int
    start: tuple[datetime, int]
    end: tuple[datetime, int] | None  # None: still waiting (drawn to its due time)
    due: datetime | None
    caption: str


@attrs.frozen
class _Attempt:
    lane: int
    delivery: Delivery
    attempt: DeliveryAttempt | None  # None: the retry still to come
    start: datetime | None
    end: datetime | None
    colour: str
    caption: str
    tooltip: str


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return from_text(value)
    except (TypeError, ValueError):
        return None


def _clock(at: datetime, with_day: bool = False) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S" if with_day else "%H:%M:%S")


def _cancel_signals(step: WorkflowStep | None, to_step: Any) -> tuple[str, ...]:
    """The signals that end a wait on ``step`` towards ``to_step``, as the machine pends on
    them: the wait rule's own, then the events its ``on_signal`` siblings add."""
    if step is None:
        return ()
    rules = rules_of(step.config)
    for rule in rules:
        waits = kind_of(rule).waits(rule, rules)
        if waits is not None and waits[0] == to_step:
            return wait_signals(rule, rules)
    return ()


def _events(timeline: Timeline, lanes: dict[str, int]) -> list[_Event]:
    steps = {step.id: step for step in timeline.steps}
    cursor = 0
    events: list[_Event] = []
    seen: dict[datetime, int] = {}
    for index, row in enumerate(timeline.transitions):
        lane = lanes.get(row.workflow_step_id or "", cursor)
        if row.reason == STEP_ACTIVATED:
            cursor = lane
        label, detail, colour = describe(row, steps)
        slot = seen.get(row.inserted_at, 0)
        seen[row.inserted_at] = slot + 1
        moved = f"{row.from_state.value if row.from_state else '-'} -> {row.to_state.value}"
        context = ", ".join(f"{k}={v}" for k, v in sorted(row.context.items()))
        tooltip = (
            f"#{index + 1} (seq {row.seq}) {row.reason}: {moved} at "
            f"{row.inserted_at.isoformat()}" + (f"; {context}" if context else "")
        )
        shape = "dot"
        if row.reason == SIGNAL_RECEIVED:
            shape = "signal"
        elif row.to_state.is_terminal:
            shape = "end"
        events.append(
            _Event(
                index,
                lane,
                row.inserted_at,
                slot,
                label,
                detail,
                colour,
                tooltip,
                shape,
                row.seq,
                row.reason,
            )
        )
    return events


# How a wait reads, by the rule kind that started it (a plain wait_until: its length).
_WAIT_CAPTIONS = {
    "digest": "collecting a digest for {length}",
    "window": "held for the send window ({length})",
}


def _waits(timeline: Timeline, events: list[_Event]) -> list[_Wait]:
    steps = {step.id: step for step in timeline.steps}
    waits = []
    for event in events:
        row = timeline.transitions[event.index]
        move = MOVES.get(row.reason)
        if move is None or move.to_state is not RunState.WAITING:
            continue
        end = next(
            (
                e
                for e in events[event.index + 1 :]
                if timeline.transitions[e.index].from_state is RunState.WAITING
            ),
            None,
        )
        context = row.context
        due = _parse(context.get("due_at"))
        anchor = _parse(context.get("anchor_timestamp")) or row.inserted_at
        length = duration_text((due - anchor).total_seconds()) if due is not None else "?"
        caption = _WAIT_CAPTIONS.get(str(context.get("rule_kind")), "wait {length}").format(
            length=length
        )
        if context.get("to_step"):
            caption += f" -> {context['to_step']}"
        if due is not None:
            caption += f", due {_clock(due, with_day=True)}"
        signals = _cancel_signals(steps.get(row.workflow_step_id or ""), context.get("to_step"))
        if signals:
            caption += " · ends early on " + ", ".join(signals)
        if end is None:
            caption += " · still waiting"
        waits.append(
            _Wait(
                event.lane,
                (event.at, event.slot),
                None if end is None else (end.at, end.slot),
                due,
                caption,
            )
        )
    return waits


def _attempts(timeline: Timeline, lanes: dict[str, int]) -> list[_Attempt]:
    marks = []
    for delivery in timeline.deliveries:
        lane = lanes.get(delivery.workflow_step_id or "")
        if lane is None:
            continue
        of = f"/{delivery.max_attempts}" if delivery.max_attempts else ""
        history = timeline.attempts_of(delivery.id)
        explained = timeline.explained.get(delivery.id)
        about = f"{delivery.channel} delivery {delivery.id}"
        if explained is not None:
            about += f": {explained.why} {explained.next_move}"
        for n, attempt in enumerate(history):
            status = attempt.status
            if attempt.suppression_reason:
                status += f" ({attempt.suppression_reason})"
            caption = f"attempt {attempt.attempt}{of} {status}"
            following = history[n + 1] if n + 1 < len(history) else None
            retried = following.claimed_at if following is not None else None
            if retried is None and following is None and delivery.status is DeliveryStatus.PENDING:
                retried = delivery.available_at
            if retried is not None and attempt.status != DeliveryStatus.SUCCEEDED.value:
                caption += f", retry {_clock(retried)}"
            end = attempt.ended_at
            if end is None and attempt.status == DeliveryStatus.DISPATCHED.value:
                end = attempt.lease_expires_at
            start = attempt.claimed_at or end
            tooltip = (
                f"attempt {attempt.attempt}{of} of {about}; claimed "
                f"{attempt.claimed_at.isoformat() if attempt.claimed_at else '-'}, ended "
                f"{attempt.ended_at.isoformat() if attempt.ended_at else '-'}: {status}"
            )
            colour = _ATTEMPT_COLOURS.get(attempt.status, "#6e7781")
            marks.append(_Attempt(lane, delivery, attempt, start, end, colour, caption, tooltip))
        waiting_retry = delivery.status is DeliveryStatus.PENDING and history
        if waiting_retry and delivery.available_at is not None:
            caption = (
                f"retry at {_clock(delivery.available_at)} (attempt {delivery.attempt + 1}{of})"
            )
            at = delivery.available_at
            marks.append(_Attempt(lane, delivery, None, at, at, "#6e7781", caption, about))
    return marks


# -- drawing helpers ---------------------------------------------------------------------------


def _f(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _group(css: str, title: str | None = None, **data: str) -> str:
    attributes = "".join(f' data-{k.replace("_", "-")}="{esc(v)}"' for k, v in data.items())
    head = f'<g class="{css}"{attributes}>'
    return head + (f"<title>{esc(title)}</title>" if title else "")


def _fitted(x: float, y: float, text: str, width: float, size: float, **style: Any) -> Label:
    """A label of ``text`` cut to ``width`` (its full text as the tooltip when cut)."""
    shown = fit(text, width, size, bold=style.get("bold", False), mono=style.get("mono", False))
    return Label(x, y, shown, size, title=None if shown == text else text, **style)


def _name_lines(step: WorkflowStep) -> list[str]:
    return wrap(f"{step.step_order}. {step.step_key}", NAME_MAX, 12, bold=True, max_lines=3)


# -- the scene ---------------------------------------------------------------------------------


@attrs.define
class _Lane:
    step: WorkflowStep
    names: list[str]
    above: list[tuple[_Event, float, float, list[Label]]] = attrs.Factory(list)
    below: list[tuple[float, float, Label]] = attrs.Factory(list)
    above_tiers: list[int] = attrs.Factory(list)
    below_tiers: list[int] = attrs.Factory(list)
    has_attempts: bool = False
    top: float = 0.0
    line_y: float = 0.0
    bottom: float = 0.0


def lay_out(timeline: Timeline) -> Scene:
    """Place everything the picture of ``timeline`` shows (see the module docstring)."""
    steps = list(timeline.steps)
    lanes_by_id = {step.id: index for index, step in enumerate(steps)}
    events = _events(timeline, lanes_by_id)
    waits = _waits(timeline, events)
    attempts = _attempts(timeline, lanes_by_id)
    lanes = [_Lane(step, _name_lines(step)) for step in steps]

    # -- x: the name column, then the axis ----------------------------------------------------
    name_width = max(
        [text_width(line, 12, bold=True) for lane in lanes for line in lane.names]
        + [min(text_width(step.channel, 11), NAME_MAX) for step in steps]
        + [60.0]
    )
    plot_left = MARGIN + name_width + 28
    instants: list[tuple[datetime, int]] = [(e.at, e.slot + 1) for e in events]
    instants += [(w.due, 1) for w in waits if w.end is None and w.due is not None]
    instants += [(at, 1) for a in attempts for at in (a.start, a.end) if at is not None]
    axis = axes.build(instants, plot_left + 10)
    right = axis.x1

    for event in events:
        if event.lane >= len(lanes):
            continue
        x = axis.x(event.at, event.slot)
        label = _fitted(0, 0, event.label, LABEL_MAX, 12, bold=True, css="label")
        detail = _fitted(0, 0, event.detail, LABEL_MAX, 11, css="muted")
        width = max(label.width, detail.width)
        left = max(plot_left, x - width / 2)
        lanes[event.lane].above.append((event, left, left + width, [label, detail]))
        right = max(right, left + width)

    def caption(lane: int, left: float, text: str) -> None:
        nonlocal right
        label = _fitted(left, 0, text, CAPTION_MAX, 11, css="muted")
        lanes[lane].below.append((left, left + label.width, label))
        right = max(right, left + label.width)

    for wait in waits:
        caption(wait.lane, axis.x(*wait.start) + 2, wait.caption)
    for mark in attempts:
        lanes[mark.lane].has_attempts = True
        at = mark.end or mark.start
        if at is not None:
            width = text_width(fit(mark.caption, CAPTION_MAX, 11), 11)
            caption(mark.lane, max(plot_left, axis.x(at) - width / 2), mark.caption)

    axis_labels: list[tuple[float, float, Label]] = []
    previous_day = None
    for at in axis.instants:
        day = at.date()
        text = _clock(at, with_day=day != previous_day)
        previous_day = day
        width = text_width(text, 10)
        left = max(plot_left, axis.x(at) - width / 2)
        axis_labels.append((left, left + width, Label(left, 0, text, 10, css="tick")))
    for gap in axis.breaks:
        text = f"≈ {duration_text(gap.seconds)}, compressed"
        width = text_width(text, 10, bold=True)
        left = max(plot_left, (gap.x1 + gap.x2 - width) / 2)
        axis_labels.append((left, left + width, Label(left, 0, text, 10, bold=True, css="gap")))
    right = max([right, *(end for _, end, _ in axis_labels)])

    for lane in lanes:
        lane.above_tiers = tiers([(left, end) for _, left, end, _ in lane.above])
        lane.below_tiers = tiers([(left, end) for left, end, _ in lane.below])
    axis_tiers = tiers([(left, end) for left, end, _ in axis_labels])

    table, table_width = _table_columns(timeline)
    width = max(MIN_WIDTH, right + MARGIN + 10, MARGIN * 2 + table_width)

    # -- y: the header, the lanes, the axis, the table ------------------------------------------
    parts: list[str | Label] = []
    y = _header(timeline, width, parts)

    y += 18
    lanes_top = y
    for index, lane in enumerate(lanes):
        lane.top = y
        above = (max(lane.above_tiers) + 1) * TIER_ABOVE if lane.above else 0.0
        above = max(above, (len(lane.names) - 1) * NAME_PITCH + 16)
        lane.line_y = y + 10 + above + 8
        below_top = lane.line_y + (36 if lane.has_attempts else 22)
        below = (max(lane.below_tiers) + 1) * TIER_BELOW if lane.below else 0.0
        lane.bottom = max(below_top + below, lane.line_y + 22) + 4
        if index % 2:
            parts.append(
                f'<rect x="0" y="{_f(lane.top)}" width="{_f(width)}" '
                f'height="{_f(lane.bottom - lane.top)}" class="band"/>'
            )
        y = lane.bottom
    lanes_bottom = y
    if not lanes:
        lanes_bottom = lanes_top + 40
        parts.append(Label(MARGIN, lanes_top + 20, "the run's definition has no steps", 12))

    for gap in axis.breaks:
        parts.append(
            f'<rect x="{_f(gap.x1 + 4)}" y="{_f(lanes_top)}" width="{_f(gap.x2 - gap.x1 - 8)}" '
            f'height="{_f(lanes_bottom - lanes_top + 6)}" class="gap-band"/>'
        )
    for lane in lanes:
        _draw_lane_base(lane, plot_left, width, parts)
    lane_of = {i: lane for i, lane in enumerate(lanes)}
    for wait in waits:
        _draw_wait(wait, lane_of[wait.lane], axis, width, parts)
    _draw_path(events, lane_of, axis, parts)
    for mark in attempts:
        _draw_attempt(mark, lane_of[mark.lane], axis, parts)
    _draw_events(lanes, axis, parts)
    for lane in lanes:
        _draw_captions(lane, parts)

    axis_y = lanes_bottom + 6
    parts.append(
        f'<line x1="{_f(plot_left)}" y1="{_f(axis_y)}" x2="{_f(width - MARGIN)}" '
        f'y2="{_f(axis_y)}" class="axis"/>'
    )
    for at in axis.instants:
        x = axis.x(at)
        parts.append(
            f'<line x1="{_f(x)}" y1="{_f(axis_y)}" x2="{_f(x)}" y2="{_f(axis_y + 5)}" '
            'class="axis"/>'
        )
    for gap in axis.breaks:
        parts.append(_zigzag(gap.x1 + gap.x2, axis_y))
    for (_, _, label), tier in zip(axis_labels, axis_tiers, strict=True):
        parts.append(attrs.evolve(label, y=axis_y + 16 + tier * TIER_AXIS))
    y = axis_y + 16 + (max(axis_tiers) + 1 if axis_tiers else 0) * TIER_AXIS + 16

    y = _draw_table(timeline, table, y, parts)
    return Scene(width, y + MARGIN, tuple(parts))


def _header(timeline: Timeline, width: float, parts: list[str | Label]) -> float:
    """Draw the header; return the y below it."""
    e = timeline.explanation
    room = width - 2 * MARGIN
    parts.append(_fitted(MARGIN, 32, f"Run {e.id}", room, 17, bold=True, css="title"))
    y = 32.0
    facts = [
        f"tenant {e.tenant_id}",
        f"recipient {e.recipient if e.recipient is not None else '-'}",
        f"notification {e.notification_key if e.notification_key is not None else '-'}",
        f"workflow {e.workflow_key} v{e.workflow_version}",
        f"started {_clock(e.started_at, with_day=True)} UTC",
        f"{len(timeline.transitions)} trace rows",
    ]
    parts.append(_group("whom"))
    y += 4
    for line in wrap(" · ".join(facts), room, 12):
        y += 17
        parts.append(Label(MARGIN, y, line, 12, css="facts"))
    parts.append("</g>")
    y += 12
    badge = f"{e.state.value} · {e.terminal_reason or e.status_reason}"
    badge_label = _fitted(MARGIN + 8, y + 15, badge, room - 16, 12, bold=True, css="badge")
    parts.append(_group("final-state"))
    parts.append(
        f'<rect x="{_f(MARGIN)}" y="{_f(y)}" rx="4" width="{_f(badge_label.width + 16)}" '
        f'height="21" fill="{STATE_COLOURS.get(e.state, "#6e7781")}"/>'
    )
    parts.append(badge_label)
    parts.append("</g>")
    y += 21
    for css, name, sentence in (("why", "why", e.why), ("next", "next", e.next_move)):
        parts.append(_group(css))
        lines = wrap(f"{name}: {sentence}", room, 12)
        for line in lines:
            y += 17
            parts.append(Label(MARGIN, y + 2, line, 12, css="sentence"))
        parts.append("</g>")
        y += 4
    return y + 4


def _draw_lane_base(lane: _Lane, plot_left: float, width: float, parts: list[str | Label]) -> None:
    step = lane.step
    parts.append(_group("lane", step_key=step.step_key))
    parts.append(
        f'<line x1="{_f(plot_left)}" y1="{_f(lane.line_y)}" x2="{_f(width - MARGIN)}" '
        f'y2="{_f(lane.line_y)}" class="lane-line"/>'
    )
    full = f"{step.step_order}. {step.step_key}"
    for n, line in enumerate(lane.names):
        y = lane.line_y - 5 - (len(lane.names) - 1 - n) * NAME_PITCH
        cut = n == len(lane.names) - 1 and line.endswith("…")
        parts.append(Label(MARGIN, y, line, 12, bold=True, css="name", title=full if cut else None))
    parts.append(_fitted(MARGIN, lane.line_y + 15, step.channel, NAME_MAX, 11, css="muted"))
    parts.append("</g>")


def _draw_wait(
    wait: _Wait, lane: _Lane, axis: axes.Axis, width: float, parts: list[str | Label]
) -> None:
    x1 = axis.x(*wait.start)
    if wait.end is not None:
        x2 = axis.x(*wait.end)
    elif wait.due is not None:
        x2 = axis.x(wait.due)
    else:
        x2 = width - MARGIN
    y = lane.line_y
    parts.append(_group("wait-band", title=wait.caption))
    parts.append(
        f'<rect x="{_f(x1)}" y="{_f(y - 8)}" width="{_f(max(x2 - x1, 6))}" height="16" '
        'class="wait"/>'
    )
    if wait.end is None and wait.due is not None:
        parts.append(
            f'<line x1="{_f(x2)}" y1="{_f(y - 12)}" x2="{_f(x2)}" y2="{_f(y + 12)}" class="due"/>'
        )
    parts.append("</g>")


def _draw_path(
    events: list[_Event], lanes: dict[int, _Lane], axis: axes.Axis, parts: list[str | Label]
) -> None:
    points = [
        f"{_f(axis.x(e.at, e.slot))},{_f(lanes[e.lane].line_y)}" for e in events if e.lane in lanes
    ]
    if len(points) > 1:
        parts.append(f'<polyline points="{" ".join(points)}" class="path"/>')


def _draw_attempt(mark: _Attempt, lane: _Lane, axis: axes.Axis, parts: list[str | Label]) -> None:
    y = lane.line_y + 20
    parts.append(
        _group(
            "attempt",
            title=mark.tooltip,
            status=mark.attempt.status if mark.attempt else "retry",
            delivery=mark.delivery.id,
        )
    )
    x2 = axis.x(mark.end) if mark.end is not None else None
    x1 = axis.x(mark.start) if mark.start is not None else x2
    if x1 is not None and x2 is not None and x2 - x1 > 1:
        dash = ' stroke-dasharray="3 2"' if mark.attempt and not mark.attempt.ended_at else ""
        parts.append(
            f'<line x1="{_f(x1)}" y1="{_f(y)}" x2="{_f(x2)}" y2="{_f(y)}" '
            f'stroke="{mark.colour}" stroke-width="3"{dash}/>'
        )
    at = x2 if x2 is not None else x1
    if at is not None:
        fill = mark.colour if mark.attempt is not None else "#ffffff"
        parts.append(
            f'<rect x="{_f(at - 4)}" y="{_f(y - 4)}" width="8" height="8" fill="{fill}" '
            f'stroke="{mark.colour}"/>'
        )
    parts.append("</g>")


def _draw_events(lanes: list[_Lane], axis: axes.Axis, parts: list[str | Label]) -> None:
    """Every trace row's mark and label, in trace order."""
    placed = sorted(
        (
            (event, left, end, lines, tier, lane)
            for lane in lanes
            for (event, left, end, lines), tier in zip(lane.above, lane.above_tiers, strict=True)
        ),
        key=lambda item: item[0].index,
    )
    for event, left, end, lines, tier, lane in placed:
        x, y = axis.x(event.at, event.slot), lane.line_y
        bottom = y - 12 - tier * TIER_ABOVE
        detail_y = bottom - 3
        label_y = detail_y - 16
        parts.append(
            _group(
                "event",
                title=event.tooltip,
                number=str(event.index + 1),
                seq=str(event.seq),
                reason=event.reason,
            )
        )
        if tier:
            parts.append(
                f'<line x1="{_f(x)}" y1="{_f(y - 7)}" x2="{_f(x)}" y2="{_f(bottom + 1)}" '
                'class="leader"/>'
            )
        if event.shape == "signal":
            parts.append(
                f'<polygon points="{_f(x)},{_f(y - 8)} {_f(x + 8)},{_f(y)} {_f(x)},{_f(y + 8)} '
                f'{_f(x - 8)},{_f(y)}" fill="{event.colour}"/>'
            )
        elif event.shape == "end":
            parts.append(
                f'<circle cx="{_f(x)}" cy="{_f(y)}" r="9" fill="#ffffff" stroke="{event.colour}" '
                'stroke-width="2"/>'
            )
            parts.append(f'<circle cx="{_f(x)}" cy="{_f(y)}" r="5" fill="{event.colour}"/>')
        else:
            parts.append(f'<circle cx="{_f(x)}" cy="{_f(y)}" r="5.5" fill="{event.colour}"/>')
        parts.append(
            f'<rect x="{_f(left - 3)}" y="{_f(label_y - 13)}" width="{_f(end - left + 6)}" '
            f'height="{_f(bottom - label_y + 15)}" class="halo"/>'
        )
        label, detail = lines
        parts.append(attrs.evolve(label, x=left, y=label_y))
        parts.append(attrs.evolve(detail, x=left, y=detail_y))
        parts.append("</g>")


def _draw_captions(lane: _Lane, parts: list[str | Label]) -> None:
    base = lane.line_y + (36 if lane.has_attempts else 22)
    for (_, _, label), tier in zip(lane.below, lane.below_tiers, strict=True):
        parts.append(attrs.evolve(label, y=base + 9 + tier * TIER_BELOW))


def _zigzag(double_x: float, y: float) -> str:
    x = double_x / 2
    return (
        f'<polyline points="{_f(x - 9)},{_f(y)} {_f(x - 5)},{_f(y - 5)} {_f(x)},{_f(y + 5)} '
        f'{_f(x + 5)},{_f(y - 5)} {_f(x + 9)},{_f(y)}" class="zigzag"/>'
    )


# -- the deliveries table ------------------------------------------------------------------------

_GUTTER = 16.0
_STATUS = 2  # the status column, in bold and its status's colour
_COLUMNS: tuple[tuple[str, float, bool], ...] = (
    ("step", 180.0, False),
    ("channel", 110.0, False),
    ("status", 90.0, False),
    ("attempts", 80.0, False),
    ("reason", 150.0, False),
    ("planned", 140.0, False),
    ("last change", 140.0, False),
    ("id", 260.0, True),
)


def _cells(timeline: Timeline) -> Iterator[tuple[Delivery, list[str]]]:
    steps = {step.id: step.step_key for step in timeline.steps}
    for d in timeline.deliveries:
        tried = str(d.attempt) + (f" of {d.max_attempts}" if d.max_attempts else "")
        yield (
            d,
            [
                steps.get(d.workflow_step_id or "", d.step_key or "-"),
                d.channel,
                d.status.value,
                tried,
                d.suppression_reason or "-",
                _clock(d.inserted_at, with_day=True),
                _clock(d.updated_at, with_day=True),
                d.id,
            ],
        )


def _table_columns(timeline: Timeline) -> tuple[list[float], float]:
    """The x offset of each column (from the margin) and the table's width."""
    widths = []
    rows = [cells for _, cells in _cells(timeline)]
    for n, (name, cap, mono) in enumerate(_COLUMNS):
        bold = n == _STATUS
        longest = max(
            [text_width(name, 11)] + [text_width(row[n], 11, mono=mono, bold=bold) for row in rows]
        )
        widths.append(min(longest, cap))
    offsets, x = [], 0.0
    for w in widths:
        offsets.append(x)
        x += w + _GUTTER
    # One more offset: where a column after the last would start.
    return [*offsets, x], x - _GUTTER


def _draw_table(
    timeline: Timeline, columns: list[float], y: float, parts: list[str | Label]
) -> float:
    parts.append(Label(MARGIN, y, "Deliveries", 12, bold=True, css="label"))
    y += 20
    for (name, _, _), x in zip(_COLUMNS, columns, strict=False):
        parts.append(Label(MARGIN + x, y, name, 11, css="muted"))
    rows = list(_cells(timeline))
    for delivery, cells in rows:
        y += 18
        explained = timeline.explained.get(delivery.id)
        title = None if explained is None else f"{explained.why} {explained.next_move}"
        parts.append(_group("delivery", title=title, status=delivery.status.value))
        for n, ((_, _, mono), cell) in enumerate(zip(_COLUMNS, cells, strict=True)):
            room = columns[n + 1] - columns[n] - _GUTTER
            style: dict[str, Any] = {"mono": mono, "css": "mono" if mono else "cell"}
            if n == _STATUS:
                style.update(bold=True, fill=DELIVERY_COLOURS[delivery.status], css="status")
            parts.append(_fitted(MARGIN + columns[n], y, cell, room, 11, **style))
        parts.append("</g>")
    if not rows:
        y += 18
        parts.append(Label(MARGIN, y, "none", 11, css="muted"))
    return y + line_height(11)
