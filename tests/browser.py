"""Headless Chromium for the tests: Debian's browser, driven by Playwright, nothing downloaded.

Playwright's wheel carries its own driver (Node.js inside the wheel); its browser download
(``playwright install``) is never used: Chromium comes from Debian (``apt-get install -y
chromium``) and is launched by path. ``skip_reason()`` says why browser tests cannot run::

    with serve_directory(site) as url, browser_page() as page:
        page.goto(url + "/index.html")
        page.click_link("Next")
        assert "Second page" in page.text()
        page.screenshot(tmp_path / "next.png")

Launching takes about 0.6 s; a test module with many pages can share one browser::

    with launch_chromium() as chromium:
        with browser_page(chromium) as page: ...
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser
    from playwright.sync_api import Page as PlaywrightPage

ENV_CHROMIUM = "CHIMEWAY_TEST_CHROMIUM"
# Needed as root on a machine whose only network is loopback: no sandbox (root), no GPU, and
# none of the background connections to Google that the closed network refuses. Even so,
# Chromium looks up update.googleapis.com and accounts.google.com: the resolver rule answers
# "not found" for every name and address but loopback ones, without asking DNS.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.*, EXCLUDE ::1",
]


def chromium_path() -> str | None:
    """The Chromium executable: ``CHIMEWAY_TEST_CHROMIUM``, else Debian's, else one on PATH.

    Debian's ``/usr/bin/chromium`` is a shell script that adds flags of its own (extensions,
    GPU rasterization) and execs ``/usr/lib/chromium/chromium``; the binary is taken instead
    when it is there, so that only ``CHROMIUM_ARGS`` apply. Either works.
    """
    wanted = os.environ.get(ENV_CHROMIUM)
    if wanted:
        return wanted if os.access(wanted, os.X_OK) else None
    if os.access("/usr/lib/chromium/chromium", os.X_OK):
        return "/usr/lib/chromium/chromium"
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((path for name in names if (path := shutil.which(name))), None)


def skip_reason() -> str | None:
    """Why browser tests cannot run here, in one line; ``None`` when they can."""
    if chromium_path() is None:
        return "no Chromium (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    return None


@contextlib.contextmanager
def launch_chromium(extra_args: Sequence[str] = ()) -> Iterator[Browser]:
    """A headless Chromium with a fresh, temporary profile, closed on leaving.

    ``extra_args`` come after ``CHROMIUM_ARGS``: a later ``--host-resolver-rules`` replaces
    the one there, for a test that needs a host name of its own.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError(skip_reason())
    args = [*CHROMIUM_ARGS, *extra_args]
    with sync_playwright() as playwright:
        # Playwright gives each launch a new --user-data-dir and removes it at close.
        chromium = playwright.chromium.launch(executable_path=executable, args=args)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A browser tab with the few actions the tests need; ``.playwright`` has all the rest."""

    def __init__(self, page: PlaywrightPage) -> None:
        self.playwright = page

    @property
    def url(self) -> str:
        """The address of the page shown."""
        return self.playwright.url

    def goto(self, url: str) -> None:
        """Open ``url`` and wait until it has loaded."""
        self.playwright.goto(url, wait_until="load")

    def click_link(self, text: str) -> None:
        """Click the link whose text is ``text`` and wait until the page it opens has loaded."""
        self.playwright.get_by_role("link", name=text, exact=True).click()
        self.playwright.wait_for_load_state("load")

    def text(self) -> str:
        """The page's visible text, as a reader sees it (hidden elements left out)."""
        return self.playwright.inner_text("body")

    def screenshot(self, path: str | os.PathLike[str], full_page: bool = True) -> Path:
        """Save a PNG of the page (all of it, or the viewport) at ``path``; answer that path.

        A document with no ``<body>``, such as an SVG file, is shot as its root element, at its
        own size: Playwright's full-page shot waits forever for such a page.
        """
        if full_page and self.playwright.evaluate("document.body === null"):
            self.playwright.locator(":root").screenshot(path=str(path))
        else:
            self.playwright.screenshot(path=str(path), full_page=full_page)
        return Path(path)


@contextlib.contextmanager
def browser_page(
    browser: Browser | None = None, width: int = 1200, height: int = 800, timeout_s: float = 10
) -> Iterator[Page]:
    """A new tab in ``browser``, or in a Chromium launched for it; closed on leaving."""
    with contextlib.ExitStack() as stack:
        if browser is None:
            browser = stack.enter_context(launch_chromium())
        context = browser.new_context(viewport={"width": width, "height": height})
        stack.callback(context.close)
        page = context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        yield Page(page)


def render_to_png(
    html_or_svg_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    width: int = 1200,
    browser: Browser | None = None,
) -> Path:
    """Screenshot a local file; answer the PNG's path.

    HTML: the whole page, laid out ``width`` pixels wide. SVG: the drawing at its own size.
    """
    with browser_page(browser, width=width, height=600) as page:
        page.goto(Path(html_or_svg_path).resolve().as_uri())
        return page.screenshot(png_path)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: str | os.PathLike[str]) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 at a free port; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=os.fspath(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
