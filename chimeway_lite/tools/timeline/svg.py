"""The picture of one run as a self-contained SVG document.

:func:`render_svg` draws the :class:`~.scene.Scene` that :func:`~.scene.lay_out` made of a
:class:`~.model.Timeline`. The document scales to its container: ``viewBox`` is the
picture's own size, ``width`` is 100% (never wider than that size), so a long run shrinks
to fit a window instead of running off it. It needs no network and no external asset (the
fonts are named families with generic fallbacks, the style is inline), and every piece of
text is escaped, so tenant ids, step keys and signal names of any content cannot break or
inject into it.
"""

from __future__ import annotations

from .layout import Label
from .metrics import MONO, SANS
from .model import Timeline, esc
from .scene import Scene, lay_out

# Sizes, weights and faces are set on each text element (inline, so that no rule can change
# what the layout measured); the classes only colour.
_STYLE = f"""
text {{ font-family: {SANS}; fill: #24292f; font-kerning: none; white-space: pre; }}
.badge {{ fill: #ffffff; }}
.muted, .tick, .gap {{ fill: #57606a; }}
.band {{ fill: #f6f8fa; }}
.gap-band {{ fill: #eaeef2; opacity: 0.7; }}
.lane-line {{ stroke: #d0d7de; stroke-width: 1; }}
.path {{ stroke: #8c959f; stroke-width: 1.5; fill: none; }}
.leader {{ stroke: #afb8c1; stroke-width: 1; }}
.halo {{ fill: #ffffff; opacity: 0.85; }}
.wait {{ fill: #fff8c5; stroke: #bf8700; stroke-dasharray: 4 3; }}
.due {{ stroke: #bf8700; stroke-width: 2; }}
.axis {{ stroke: #8c959f; stroke-width: 1; }}
.zigzag {{ stroke: #57606a; stroke-width: 1.5; fill: #ffffff; }}
"""


def _text(label: Label) -> str:
    style = f"font-size:{label.size:g}px;font-weight:{700 if label.bold else 400}"
    if label.mono:
        style += f";font-family:{MONO}"
    if label.fill:
        style += f";fill:{label.fill}"
    css = f' class="{label.css}"' if label.css else ""
    body = esc(label.text)
    if label.title:
        body = f"<title>{esc(label.title)}</title>{body}"
    return f'<text x="{label.x:.1f}" y="{label.y:.1f}"{css} style="{esc(style)}">{body}</text>'


def draw(scene: Scene, title: str, *, standalone: bool = True) -> str:
    """The SVG document of ``scene``; ``standalone=False`` leaves out the XML declaration
    (for inlining in HTML)."""
    width, height = f"{scene.width:.0f}", f"{scene.height:.0f}"
    out = ['<?xml version="1.0" encoding="UTF-8"?>'] if standalone else []
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" '
        f'style="max-width:{width}px;height:auto" role="img" aria-label="{esc(title)}">'
    )
    out.append(f"<title>{esc(title)}</title>")
    out.append(f"<style>{_STYLE}</style>")
    out.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>')
    out.extend(_text(part) if isinstance(part, Label) else part for part in scene.parts)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def title_of(timeline: Timeline) -> str:
    """The picture's title: which run, of which tenant, for whom."""
    e = timeline.explanation
    whom = f" for {e.recipient}" if e.recipient is not None else ""
    return f"Run {e.id} of tenant {e.tenant_id}{whom}"


def render_svg(timeline: Timeline, *, standalone: bool = True) -> str:
    """The SVG document of ``timeline``; ``standalone=False`` leaves out the XML declaration
    (for inlining in an HTML page). A stable entry point: its signature does not change."""
    return draw(lay_out(timeline), title_of(timeline), standalone=standalone)
