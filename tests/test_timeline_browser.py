"""The timeline as a person sees it: every scenario of ``timeline_runs`` drawn as SVG and as
HTML, opened in headless Chromium (Debian's, driven by Playwright; nothing downloaded),
screenshot under the test's tmp_path, and measured there: the boxes the browser gives every
text element (``getBBox()``) never overlap and never leave the viewBox, no text is wider
on screen than the layout's width table says, and the HTML page never scrolls sideways.

Under ``CI=true`` these tests must run: without Chromium or Playwright they fail. Elsewhere
they are skipped with the one-line reason :func:`browser.skip_reason` gives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import browser_page, launch_chromium, skip_reason
from factories import START
from timeline_runs import SCENARIOS

from chimeway_lite import FakeClock, Store
from chimeway_lite.tools.timeline import collect, render_html, render_svg
from chimeway_lite.tools.timeline.scene import lay_out

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.slow

_WHY_NOT = skip_reason()
if _WHY_NOT is not None:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"browser tests must run under CI: {_WHY_NOT}")
    pytest.skip(_WHY_NOT, allow_module_level=True)

# The boxes of every text element of the page's first <svg>, in user units (the viewBox's),
# its viewBox, the bounding box of all it draws, and each text's length as laid out.
_MEASURE = """
(svg) => {
  const view = svg.viewBox.baseVal;
  const all = svg.getBBox();
  const texts = Array.from(svg.querySelectorAll('text')).map((node) => {
    const box = node.getBBox();
    const shown = Array.from(node.childNodes)
      .filter((child) => child.nodeType === Node.TEXT_NODE)
      .map((child) => child.data)
      .join('');
    return {x: box.x, y: box.y, w: box.width, h: box.height, text: shown,
            length: node.getComputedTextLength()};
  });
  return {view: [view.x, view.y, view.width, view.height],
          all: [all.x, all.y, all.width, all.height], texts: texts};
}
"""
_PAGE = """
() => ({scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
        svgWidth: document.querySelector('svg').getBoundingClientRect().width})
"""
#: Sub-pixel slack for the browser's rounding of boxes.
EPSILON = 0.5


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        a["x"] < b["x"] + b["w"] - EPSILON
        and b["x"] < a["x"] + a["w"] - EPSILON
        and a["y"] < b["y"] + b["h"] - EPSILON
        and b["y"] < a["y"] + a["h"] - EPSILON
    )


def _check_svg(measured: dict[str, Any], widths: list[float], shown: list[str]) -> None:
    x0, y0, width, height = measured["view"]
    texts = measured["texts"]
    assert [t["text"] for t in texts] == shown  # the browser shows what the layout placed
    for t in texts:
        assert t["w"] > 0 and t["h"] > 0, t
        assert x0 - EPSILON <= t["x"] and t["x"] + t["w"] <= x0 + width + EPSILON, t
        assert y0 - EPSILON <= t["y"] and t["y"] + t["h"] <= y0 + height + EPSILON, t
    clashes = [
        (a["text"], b["text"])
        for i, a in enumerate(texts)
        for b in texts[i + 1 :]
        if _overlaps(a, b)
    ]
    assert not clashes
    ax, ay, aw, ah = measured["all"]
    assert ax >= x0 - EPSILON and ay >= y0 - EPSILON
    assert ax + aw <= x0 + width + EPSILON and ay + ah <= y0 + height + EPSILON
    # the width table is an upper bound of what the browser lays out
    too_wide = [(t["text"], t["length"], w) for t, w in zip(texts, widths, strict=True)]
    assert [entry for entry in too_wide if entry[1] > entry[2] + EPSILON] == []


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_timeline_in_a_browser(name: str, tmp_path: Path, chromium: Browser) -> None:
    clock = FakeClock(START)
    with Store(":memory:", clock=clock) as store:
        picture = collect(store, "acme", SCENARIOS[name](store, clock))
    scene = lay_out(picture)
    widths = [label.width for label in scene.labels]
    shown = [label.text for label in scene.labels]
    svg_file = tmp_path / f"{name}.svg"
    html_file = tmp_path / f"{name}.html"
    svg_file.write_text(render_svg(picture), encoding="utf-8")
    html_file.write_text(render_html(picture), encoding="utf-8")

    with browser_page(chromium, width=1200, height=800) as page:
        page.goto(svg_file.resolve().as_uri())
        shot = page.screenshot(tmp_path / f"{name}.svg.png")
        assert shot.stat().st_size > 10_000
        _check_svg(page.playwright.locator(":root").evaluate(_MEASURE), widths, shown)

    # A narrow window: the page reflows, the picture shrinks with it, nothing scrolls sideways.
    for window in (1200, 640):
        with browser_page(chromium, width=window, height=800) as page:
            page.goto(html_file.resolve().as_uri())
            shot = page.screenshot(tmp_path / f"{name}.{window}.html.png")
            assert shot.stat().st_size > 10_000
            _check_svg(page.playwright.locator("svg").first.evaluate(_MEASURE), widths, shown)
            layout = page.playwright.evaluate(_PAGE)
            assert layout["scroll"] <= layout["client"], layout
            assert layout["svgWidth"] <= min(window, scene.width) + EPSILON
            assert "Recipient" in page.text()
