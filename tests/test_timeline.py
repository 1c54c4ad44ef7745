"""The picture of a run: content (steps, waits and their due times, signals, outcomes, final
state), well-formed XML, escaped text and no external reference."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from factories import waiting

from chimeway_lite import FakeClock, RunNotFound, Signal, Store
from chimeway_lite.tools.timeline import collect, render_html, render_svg

SVG = "{http://www.w3.org/2000/svg}"


def texts(root: ET.Element) -> list[str]:
    return ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]


def groups(root: ET.Element, kind: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == kind]


def test_an_escalated_run_shows_steps_wait_due_time_outcomes_and_final_state(
    store: Store, clock: FakeClock
) -> None:
    run_id = waiting(store).run.id
    clock.advance(hours=2)
    (moved,) = store.progress_due_runs()
    clock.advance(minutes=1)
    store.record_outcome(moved.deliveries[0].id, "succeeded")

    svg = render_svg(collect(store, "acme", run_id))
    root = ET.fromstring(svg.encode())  # well-formed XML, or this raises
    shown = texts(root)

    assert root.tag == f"{SVG}svg"
    assert svg.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert {"1. inapp", "2. email", "in_app", "email"} <= set(shown)
    # one event per trace row, in order
    events = groups(root, "event")
    assert [e.get("data-reason") for e in events] == [
        t.reason for t in store.list_traces("acme", run_id)
    ]
    assert "wait" in shown and "due 2026-01-05 11:30:00" in shown
    (band,) = groups(root, "wait-band")
    assert "wait 2 h until 2026-01-05 11:30:00 -> email" in texts(band)
    assert "cancel signals: notification_read" in texts(band)
    assert "wait elapsed" in shown
    assert "outcome delivered" in shown
    (final,) = groups(root, "final-state")
    assert texts(final) == ["completed · workflow_completed"]
    deliveries = groups(root, "delivery")
    assert [d.get("data-status") for d in deliveries] == ["succeeded", "succeeded"]
    assert run_id in " ".join(shown)


def test_a_cancelled_run_shows_the_signal_and_a_run_still_waiting_says_so(
    store: Store, clock: FakeClock
) -> None:
    cancelled = waiting(store, recipient="ada").run.id
    still_waiting = waiting(store, recipient="bob").run.id
    clock.advance(minutes=30)
    store.route_signal(Signal("acme", "notification_read", actor_id="ada"))
    store.progress_due_runs()

    root = ET.fromstring(render_svg(collect(store, "acme", cancelled)))
    shown = texts(root)
    assert "signal notification_read" in shown
    assert "cancelled by notification_read" in shown
    assert texts(groups(root, "final-state")[0]) == ["completed · cancelled_by_signal"]
    assert root.find(f".//{SVG}polygon") is not None  # the signal's diamond

    still = ET.fromstring(render_svg(collect(store, "acme", still_waiting)))
    assert "still waiting" in texts(still)
    assert texts(groups(still, "final-state")[0]) == ["waiting · waiting_for_step_progression"]


def test_all_text_is_escaped(store: Store) -> None:
    tenant = "<script>alert('x')</script> & \"co\"\x01"
    run_id = waiting(store, tenant=tenant).run.id

    svg = render_svg(collect(store, tenant, run_id))
    html = render_html(collect(store, tenant, run_id))

    for document in (svg, html):
        root = ET.fromstring(document.encode())
        assert "<script>" not in document
        assert not [e for e in root.iter() if e.tag.endswith("script")]
        title = "".join(next(root.iter(f"{SVG}title")).itertext())
        assert title == f"Run {run_id} of tenant <script>alert('x')</script> & \"co\"\ufffd"


def test_the_picture_is_self_contained(store: Store) -> None:
    run_id = waiting(store).run.id
    for document in (
        render_svg(collect(store, "acme", run_id)),
        render_html(collect(store, "acme", run_id)),
    ):
        assert not re.search(r"(href|src)\s*=|@import|url\(", document)
        namespaces = set(re.findall(r"https?://[^\"' ]+", document))
        assert namespaces <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xhtml"}


def test_the_html_page_inlines_the_svg_and_lists_the_trace(store: Store) -> None:
    run_id = waiting(store).run.id
    html = render_html(collect(store, "acme", run_id))

    root = ET.fromstring(html.encode())
    xhtml = "{http://www.w3.org/1999/xhtml}"
    assert html.startswith("<!DOCTYPE html>")
    assert root.find(f".//{SVG}svg") is not None
    rows = root.findall(f".//{xhtml}tbody/{xhtml}tr")
    assert len(rows) == len(store.list_traces("acme", run_id)) == 3
    assert "waiting_for_step_progression" in "".join(rows[-1].itertext())
    assert "<?xml" not in html


def test_collect_is_tenant_scoped(store: Store) -> None:
    run_id = waiting(store).run.id
    with pytest.raises(RunNotFound):
        collect(store, "globex", run_id)
