"""A picture of one run: a self-contained SVG, or an HTML page with the SVG inline.

The public entry points, stable for hosts and tools that embed the picture (a web page,
a report)::

    picture = collect(store, tenant_id, run_id)       # one read snapshot; RunNotFound
    svg = render_svg(picture)                          # a standalone SVG document
    inline = render_svg(picture, standalone=False)     # the <svg> element, for HTML
    page = render_html(picture)                        # a whole HTML page
    text = render(picture, format_for("run.html"))     # by format name: "svg" or "html"

The modules: :mod:`.model` (what is read, how rows read), :mod:`.axis` (the time axis),
:mod:`.metrics` and :mod:`.layout` (text widths, tiers, no overlaps), :mod:`.scene` (the
layout), :mod:`.svg` and :mod:`.page` (the documents).
"""

from .model import FORMATS, Timeline, collect, describe, esc, format_for
from .page import render_html
from .svg import render_svg


def render(timeline: Timeline, kind: str) -> str:
    """``timeline`` as a document of format ``kind`` (one of :data:`FORMATS`)."""
    if kind == "html":
        return render_html(timeline)
    if kind == "svg":
        return render_svg(timeline)
    format_for("-", kind)  # raises InvalidArgument naming the formats
    raise AssertionError(kind)  # pragma: no cover - format_for raised


__all__ = [
    "FORMATS",
    "Timeline",
    "collect",
    "describe",
    "esc",
    "format_for",
    "render",
    "render_html",
    "render_svg",
]
