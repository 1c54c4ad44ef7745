"""A picture of one run: a self-contained SVG, or an HTML page with the SVG inline."""

from .svg import Timeline, collect, esc, render_html, render_svg

__all__ = ["Timeline", "collect", "esc", "render_html", "render_svg"]
