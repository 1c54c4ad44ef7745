"""Boxes of text and where they go: the picture's only guard against overlapping text.

Every line of text the timeline draws is a :class:`Label`: its left edge, baseline, size,
weight and face, from which :meth:`Label.box` gives the box it covers (its width from
:mod:`.metrics`, its height from the face's ascent and descent). Labels that sit on one lane
and would collide are put on *tiers* — :func:`tiers` gives each one the lowest tier where
it overlaps nothing already there — and each tier gets its own height, so no two labels of
a picture share a pixel. :func:`overlapping` lists the pairs of boxes that do overlap
(the tests assert there are none).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .metrics import ASCENT, DESCENT, text_width

#: The horizontal room kept between two labels on one tier.
PAD = 10.0


@attrs.frozen
class Box:
    """A rectangle: left, top, right, bottom (y grows downwards)."""

    left: float
    top: float
    right: float
    bottom: float

    def overlaps(self, other: Box, margin: float = 0.0) -> bool:
        """True when the two rectangles share more than a ``margin``-wide strip."""
        return (
            self.left < other.right - margin
            and other.left < self.right - margin
            and self.top < other.bottom - margin
            and other.top < self.bottom - margin
        )


@attrs.frozen
class Label:
    """One line of text, drawn from its left edge ``x`` on its baseline ``y``.

    ``title`` is the full text when ``text`` was cut to fit (shown as a tooltip);
    ``css`` its class in the picture's style; ``fill`` a colour of its own, if any.
    """

    x: float
    y: float
    text: str
    size: float
    bold: bool = False
    mono: bool = False
    css: str = ""
    title: str | None = None
    fill: str | None = None

    @property
    def width(self) -> float:
        """How wide the line is (an upper bound)."""
        return text_width(self.text, self.size, bold=self.bold, mono=self.mono)

    def box(self) -> Box:
        """The rectangle the line covers."""
        return Box(
            self.x,
            self.y - ASCENT * self.size,
            self.x + self.width,
            self.y + DESCENT * self.size,
        )


def line_height(size: float) -> float:
    """The height of a line of ``size`` pixels: its box, and nothing to spare."""
    return (ASCENT + DESCENT) * size


def tiers(extents: Sequence[tuple[float, float]], pad: float = PAD) -> list[int]:
    """For each horizontal extent (left, right), the lowest tier (0, 1, …) on which it
    overlaps no extent placed before it, taking them from left to right: the greedy
    colouring of an interval graph, which uses as few tiers as the densest point needs."""
    order = sorted(range(len(extents)), key=lambda i: extents[i])
    ends: list[float] = []  # the right end of the last extent placed on each tier
    placed = [0] * len(extents)
    for i in order:
        left, right = extents[i]
        for tier, end in enumerate(ends):
            if left >= end + pad:
                ends[tier] = right
                placed[i] = tier
                break
        else:
            placed[i] = len(ends)
            ends.append(right)
    return placed


def overlapping(boxes: Sequence[Box], margin: float = 0.0) -> list[tuple[int, int]]:
    """The pairs of indices of ``boxes`` that overlap (by more than ``margin``)."""
    order = sorted(range(len(boxes)), key=lambda i: boxes[i].left)
    found = []
    for n, i in enumerate(order):
        for j in order[n + 1 :]:
            if boxes[j].left >= boxes[i].right - margin:
                break
            if boxes[i].overlaps(boxes[j], margin):
                found.append((min(i, j), max(i, j)))
    return found
