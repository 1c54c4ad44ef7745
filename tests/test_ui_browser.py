"""The web inspector in a real browser: Debian's headless Chromium, driven by Playwright
(``browser.py``), clicking through the pages as a person would and checking what they see.

The store is ``inspected.build``'s: an escalation (acme/ada), a cancelled run (acme/bob), a
stopped run (acme/cy), runs of other tenants, and a tenant whose names try to inject markup.
Screenshots of every page visited are written under the test's ``tmp_path``. Under
``CI=true`` a missing Chromium or Playwright fails the test; elsewhere it is skipped with the
reason in one line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import browser
import pytest
from inspected import HOSTILE_RECIPIENT, HOSTILE_TENANT, Inspected, build

from chimeway_lite import FakeClock
from chimeway_lite.tools.ui import documents, make_server, open_read_only

pytestmark = pytest.mark.slow


@pytest.fixture
def inspector(tmp_path: Path) -> Iterator[tuple[str, Inspected]]:
    reason = browser.skip_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run in CI: {reason}")
        pytest.skip(reason)
    path = tmp_path / "chimeway.db"
    data = build(path)
    with open_read_only(path, clock=FakeClock(data.now)) as store:
        server = make_server(store, "127.0.0.1", 0, quiet=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.url, data
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def _short(value: str) -> str:
    return value[-12:]


def test_a_person_finds_a_run_by_recipient_and_reads_it(
    inspector: tuple[str, Inspected], tmp_path: Path
) -> None:
    url, data = inspector
    shots = tmp_path / "screenshots"
    shots.mkdir()
    dialogs: list[str] = []
    with browser.browser_page(width=1280, height=900) as page:
        tab = page.playwright
        tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

        # The runs of every tenant, newest first.
        page.goto(url + "/")
        page.screenshot(shots / "1-runs.png")
        text = page.text()
        assert "Runs" in text
        rows = tab.locator("table.cw-table tbody tr")
        assert rows.count() == len(data.runs)
        assert "cancelled" in text and "workflow_stopped" in text and HOSTILE_TENANT in text

        # Filter by recipient, with the form.
        tab.get_by_label("Recipient").fill("ada")
        tab.get_by_role("button", name="Filter").click()
        tab.wait_for_load_state("load")
        page.screenshot(shots / "2-runs-of-ada.png")
        assert "recipient=ada" in page.url
        assert rows.count() == 2
        tenants = {rows.nth(i).locator("td").nth(1).inner_text() for i in range(2)}
        assert tenants == {"acme", "globex"}

        # Into acme's escalation.
        page.click_link(_short(data.runs["acme/ada"]))
        assert page.url == url + documents.run_path("acme", data.runs["acme/ada"])
        page.screenshot(shots / "3-run-escalation.png")
        text = page.text()
        assert data.runs["acme/ada"] in text
        facts = tab.locator("dl.cw-facts").inner_text()
        assert "completed" in facts and "2. email (email)" in facts and "ada" in facts
        why = tab.locator("#explanation").inner_text()
        assert why.startswith("Why: Completed on step 'email'")
        assert "Next: Nothing: completed is terminal" in why
        svg = tab.locator("#timeline svg")
        assert svg.count() == 1
        box = svg.bounding_box()
        assert box is not None and box["width"] > 400 and box["height"] > 200
        deliveries = tab.locator("#deliveries").inner_text()
        assert "inapp" in deliveries and "email" in deliveries
        assert deliveries.count("succeeded") >= 4  # two deliveries, each with one attempt
        trace = tab.locator("#trace tbody tr")
        assert trace.count() == 6
        assert "reactivated_from_wait" in tab.locator("#trace").inner_text()

        # Follow the email delivery.
        email = _short(data.deliveries["acme/ada/email"])
        tab.locator("#deliveries").get_by_role("link", name=email, exact=True).click()
        tab.wait_for_load_state("load")
        page.screenshot(shots / "4-delivery.png")
        text = page.text()
        assert f"Delivery {data.deliveries['acme/ada/email']}" in text
        assert "Why: Attempt 1 ended succeeded" in text
        assert tab.locator("#attempts tbody tr").count() == 1

        # Back to the run, then the cancelled and the stopped runs.
        page.click_link(_short(data.runs["acme/ada"]))
        assert "Run " + data.runs["acme/ada"] in page.text()
        page.goto(url + "/?tenant=acme&state=stopped")
        assert rows.count() == 2
        page.click_link(_short(data.runs["acme/bob"]))
        page.screenshot(shots / "5-run-cancelled.png")
        facts = tab.locator("dl.cw-facts").inner_text()
        assert "stopped" in facts and "cancelled" in facts
        assert tab.locator("#explanation").inner_text().startswith("Why: Cancelled by the host")
        assert "cancelled" in tab.locator("#deliveries").inner_text()
        page.goto(url + documents.run_path("acme", data.runs["acme/cy"]))
        page.screenshot(shots / "6-run-stopped.png")
        assert "workflow_stopped" in tab.locator("dl.cw-facts").inner_text()
        assert "permanent_failure" in tab.locator("#deliveries").inner_text()

        # The outbox and due work.
        page.click_link("Outbox")
        page.screenshot(shots / "7-outbox.png")
        outbox = page.text()
        assert "frank" in outbox and "gus" in outbox and "leased until" in outbox
        page.click_link("Due")
        page.screenshot(shots / "8-due.png")
        due = tab.locator("#due-runs").inner_text()
        assert "dee" in due and "(in 40 min)" in due

        # The hostile tenant's run: its names are text, and nothing ran.
        run = data.runs[f"{HOSTILE_TENANT}/{HOSTILE_RECIPIENT}"]
        page.goto(url + documents.run_path(HOSTILE_TENANT, run))
        page.screenshot(shots / "9-run-hostile.png")
        assert HOSTILE_TENANT in page.text() and HOSTILE_RECIPIENT in page.text()
        assert tab.locator("main script, main img").count() == 0
        assert tab.evaluate("document.scripts.length") == 0

    assert dialogs == []
    written = sorted(p.name for p in shots.iterdir())
    assert len(written) == 9
    assert all((shots / name).stat().st_size > 10_000 for name in written)
