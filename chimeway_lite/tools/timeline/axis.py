"""The timeline's x axis: time-proportional, with long gaps compressed and said to be.

A run's instants (its trace rows, its deliveries' claims and outcomes, a retry's time, a
wait's due time) are placed left to right so that equal lengths of time take equal widths —
except where that would make the picture useless: a 2-hour wait between two 1-minute
steps would squeeze the steps into a few pixels. So every gap longer than :data:`RATIO`
times the shortest one is *compressed*: drawn narrower than its length asks, and marked on
the axis as a break with its real length. The other gaps share one scale — about
:data:`PER_GAP` pixels each on average, :data:`TARGET` in all at most, the longest at most
:data:`MAX_GAP` wide and none narrower than :data:`MIN_GAP` — and a compressed gap is drawn
a little wider than the widest of them (at least :data:`BREAK`), so that a longer gap never
looks shorter than a shorter one.

Gaps under a second (rows a host writes in one go) are drawn :data:`MIN_GAP` wide and take
no part in the scale; rows at the very same instant (a start and its first step) are spread
:data:`SLOT` pixels apart, in trace order, so that each stays visible.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime

import attrs

#: The width the proportional part of the axis takes at most, in pixels …
TARGET = 720.0
#: … and on average per gap.
PER_GAP = 90.0
#: The narrowest gap drawn between two instants.
MIN_GAP = 24.0
#: The widest gap that is not compressed.
MAX_GAP = 120.0
#: A gap longer than this many times the shortest one is compressed.
RATIO = 12.0
#: The narrowest a compressed gap is drawn.
BREAK = 100.0
#: The distance between two rows written at the same instant.
SLOT = 16.0
#: Gaps shorter than this (seconds) are not scaled: they are drawn MIN_GAP wide.
QUANTUM = 1.0


@attrs.frozen
class Break:
    """A compressed gap: from ``x1`` to ``x2`` on the axis, ``seconds`` long in time."""

    x1: float
    x2: float
    seconds: float


@attrs.frozen
class Axis:
    """Where each instant of a run lies on the x axis (from ``x0``)."""

    instants: tuple[datetime, ...]
    #: The x of each instant's first row; an instant with ``n`` rows spans ``(n-1) * SLOT``.
    starts: tuple[float, ...]
    slots: tuple[int, ...]
    breaks: tuple[Break, ...]
    #: Pixels per second of the uncompressed gaps (0 when there is no gap to scale).
    scale: float

    @property
    def x0(self) -> float:
        """Where the axis begins."""
        return self.starts[0] if self.starts else 0.0

    @property
    def x1(self) -> float:
        """Where the axis ends: the last row of its last instant."""
        if not self.starts:
            return 0.0
        return self.starts[-1] + (self.slots[-1] - 1) * SLOT

    def x(self, at: datetime, slot: int = 0) -> float:
        """The x of ``at`` (of its ``slot``-th row when several share it); an instant
        between two known ones is placed in proportion within their gap."""
        if not self.instants:
            return 0.0
        index = bisect.bisect_left(self.instants, at)
        if index < len(self.instants) and self.instants[index] == at:
            return self.starts[index] + min(slot, self.slots[index] - 1) * SLOT
        if index == 0:
            return self.starts[0]
        if index == len(self.instants):
            return self.x1
        before, after = self.instants[index - 1], self.instants[index]
        left = self.starts[index - 1] + (self.slots[index - 1] - 1) * SLOT
        share = (at - before) / (after - before)
        return left + share * (self.starts[index] - left)


def build(instants: Iterable[tuple[datetime, int]], x0: float) -> Axis:
    """The axis of ``instants`` — (instant, rows at it) pairs; rows ≥ 1 — starting at
    ``x0``. The same instant given twice keeps the larger row count."""
    rows: dict[datetime, int] = {}
    for at, count in instants:
        rows[at] = max(rows.get(at, 1), count, 1)
    times = tuple(sorted(rows))
    if not times:
        return Axis((), (), (), (), 0.0)
    gaps = [(times[i + 1] - times[i]).total_seconds() for i in range(len(times) - 1)]
    scaled = [g for g in gaps if g >= QUANTUM]
    shortest = min(scaled, default=0.0)
    compressed = {i for i, g in enumerate(gaps) if g > RATIO * shortest >= QUANTUM}
    kept = [g for i, g in enumerate(gaps) if g >= QUANTUM and i not in compressed]
    scale = 0.0
    if kept:
        room = min(TARGET, PER_GAP * len(kept))
        # When the bounds disagree the longest gap's wins: the shortest ones are then drawn
        # MIN_GAP wide, a little wider than their share.
        scale = min(max(room / sum(kept), MIN_GAP / min(kept)), MAX_GAP / max(kept))
    widths = [max(MIN_GAP, g * scale) for g in gaps]
    wide = max([BREAK, *(w + 12 for i, w in enumerate(widths) if i not in compressed)])
    for i in compressed:
        widths[i] = wide
    slots = tuple(rows[t] for t in times)
    starts = [x0]
    breaks = []
    for i, width in enumerate(widths):
        left = starts[-1] + (slots[i] - 1) * SLOT
        starts.append(left + width)
        if i in compressed:
            breaks.append(Break(left, left + width, gaps[i]))
    return Axis(times, tuple(starts), slots, tuple(breaks), scale)
