"""The picture of a run: content (whom, steps, waits and their due times, signals, outcomes,
attempts, final state), a time-proportional axis with compressed gaps marked, text that
never overlaps and never leaves the picture, well-formed XML, escaped text, no external
reference, and the formats it writes. The browser's view of it: test_timeline_browser.py."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from factories import START, escalation_workflow, trigger, waiting
from hypothesis import given
from hypothesis import strategies as st
from timeline_runs import SCENARIOS, escalated, long_names, retried

from chimeway_lite import (
    FakeClock,
    InvalidArgument,
    OnSignal,
    Retry,
    RunNotFound,
    Signal,
    Step,
    Store,
    WaitUntil,
    Workflow,
)
from chimeway_lite.tools.timeline import collect, format_for, render, render_html, render_svg
from chimeway_lite.tools.timeline.axis import BREAK, MIN_GAP, SLOT, build
from chimeway_lite.tools.timeline.layout import Box, overlapping, tiers
from chimeway_lite.tools.timeline.metrics import fit, text_width, wrap
from chimeway_lite.tools.timeline.scene import Scene, lay_out

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"


def texts(root: ET.Element) -> list[str]:
    """The text shown by each text element (its tooltip left out)."""
    return [
        (node.text or "") + "".join(child.tail or "" for child in node)
        for node in root.iter(f"{SVG}text")
    ]


def groups(root: ET.Element, kind: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == kind]


def tooltip(element: ET.Element) -> str:
    found = element.find(f"{SVG}title")
    return "" if found is None else "".join(found.itertext())


def played(name: str) -> tuple[Store, str]:
    clock = FakeClock(START)
    store = Store(":memory:", clock=clock)
    return store, SCENARIOS[name](store, clock)


def assert_laid_out_cleanly(scene: Scene) -> None:
    """No two lines of text share a pixel, and every one lies inside the picture."""
    boxes = [label.box() for label in scene.labels]
    clashes = overlapping(boxes)
    assert not clashes, [(scene.labels[i].text, scene.labels[j].text) for i, j in clashes]
    for label, box in zip(scene.labels, boxes, strict=True):
        assert box.left >= 0 and box.right <= scene.width, label
        assert box.top >= 0 and box.bottom <= scene.height, label


# -- content -------------------------------------------------------------------------------------


def test_an_escalated_run_shows_whom_steps_wait_due_time_outcomes_and_final_state(
    store: Store, clock: FakeClock
) -> None:
    run_id = escalated(store, clock)

    svg = render_svg(collect(store, "acme", run_id))
    root = ET.fromstring(svg.encode())  # well-formed XML, or this raises
    shown = texts(root)

    assert root.tag == f"{SVG}svg"
    assert svg.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    (whom,) = groups(root, "whom")
    assert "tenant acme · recipient bob · notification welcome · workflow escalation v1" in (
        " ".join(texts(whom))
    )
    assert {"1. inapp", "2. email", "in_app", "email"} <= set(shown)
    # one event per trace row, in order, each labelled from the move table
    events = groups(root, "event")
    trace = store.list_traces("acme", run_id)
    assert [e.get("data-reason") for e in events] == [t.reason for t in trace]
    assert [e.get("data-number") for e in events] == [str(n) for n in range(1, len(trace) + 1)]
    assert [texts(e)[0] for e in events] == [
        "started",
        "step inapp (in_app)",
        "wait",
        "wait elapsed",
        "step email (email)",
        "completed",
    ]
    assert texts(events[2])[1] == "due 2026-01-05 11:30:00"
    (band,) = groups(root, "wait-band")
    assert tooltip(band) == (
        "wait 2 h -> email, due 2026-01-05 11:30:00 · ends early on notification_read"
    )
    assert tooltip(band) in shown
    (final,) = groups(root, "final-state")
    assert texts(final) == ["completed · workflow_completed"]
    deliveries = groups(root, "delivery")
    assert [d.get("data-status") for d in deliveries] == ["succeeded", "succeeded"]
    assert "≈ 2 h, compressed" in shown
    assert any(line.startswith("why: Completed on step 'email'") for line in shown)
    assert run_id in " ".join(shown)


def test_a_run_read_in_time_shows_the_signal_and_a_run_still_waiting_says_so(
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
    assert any(line.endswith("· still waiting") for line in texts(still))
    assert texts(groups(still, "final-state")[0]) == ["waiting · waiting_for_step_progression"]
    assert still.find(f".//{SVG}line[@class='due']") is not None  # where the wait ends


def test_attempts_and_retries_are_drawn_on_their_step(
    memory_store: Store, clock: FakeClock
) -> None:
    run_id = retried(memory_store, clock)

    root = ET.fromstring(render_svg(collect(memory_store, "acme", run_id)))
    attempts = groups(root, "attempt")

    # push: failed then succeeded; sms: three failures; email: 1 failure; reminder: bounced;
    # final: two failures, then succeeded
    assert [a.get("data-status") for a in attempts] == [
        "failed",
        "succeeded",
        "failed",
        "failed",
        "failed",
        "failed",
        "succeeded",
        "cancelled",
        "failed",
        "failed",
        "succeeded",
    ]
    shown = texts(root)
    assert "attempt 1/3 failed, retry 09:31:20" in shown
    assert "attempt 3/3 failed" in shown  # the last: retries exhausted, no retry
    assert "attempt 1/2 cancelled (bounced)" in shown
    assert "outcome retries_exhausted" in shown
    first = attempts[0]
    assert tooltip(first).startswith("attempt 1/3 of push delivery ")
    statuses = [texts(d)[2] for d in groups(root, "delivery")]
    assert statuses == ["succeeded", "cancelled", "succeeded", "cancelled", "succeeded"]
    assert [texts(d)[3] for d in groups(root, "delivery")] == [
        "2 of 3",
        "3 of 3",
        "2 of 2",
        "1 of 2",
        "3 of 3",
    ]


def test_a_retry_still_to_come_is_drawn_at_its_time(memory_store: Store, clock: FakeClock) -> None:
    workflow = Workflow("r", 1, [Step("sms", 1, "sms", retry=Retry(3, 90))])
    result = memory_store.trigger(
        tenant_id="acme",
        notification_key="n",
        recipient="ada",
        workflow=workflow,
        idempotency_key="k",
    )
    memory_store.claim_deliveries()
    clock.advance(seconds=10)
    memory_store.record_outcome(result.deliveries[0].id, "failed")

    root = ET.fromstring(render_svg(collect(memory_store, "acme", result.run.id)))
    attempts = groups(root, "attempt")
    assert [a.get("data-status") for a in attempts] == ["failed", "retry"]
    assert "attempt 1/3 failed, retry 09:31:40" in texts(root)
    assert "retry at 09:31:40 (attempt 2/3)" in texts(root)


# -- the time axis -----------------------------------------------------------------------------


def test_the_axis_is_proportional_to_time_and_compresses_long_gaps() -> None:
    at = [START, START + timedelta(seconds=60), START + timedelta(seconds=180)]
    axis = build([(t, 1) for t in at], 100)
    first, second = axis.starts[1] - axis.starts[0], axis.starts[2] - axis.starts[1]
    assert second == pytest.approx(2 * first)  # 120 s is twice as wide as 60 s
    assert axis.breaks == ()

    at.append(START + timedelta(hours=5))
    long = build([(t, 1) for t in at], 100)
    (gap,) = long.breaks
    assert gap.seconds == 5 * 3600 - 180
    assert (gap.x1, gap.x2) == (long.starts[2], long.starts[3])
    # compressed, yet never drawn shorter than a shorter gap
    assert BREAK <= gap.x2 - gap.x1 < 5 * 3600 * long.scale
    assert gap.x2 - gap.x1 > long.starts[2] - long.starts[1]
    assert long.starts[2] - long.starts[1] == pytest.approx(2 * (long.starts[1] - long.starts[0]))


def test_rows_at_one_instant_are_spread_and_tiny_gaps_stay_visible() -> None:
    axis = build([(START, 2), (START + timedelta(milliseconds=3), 1)], 50)
    assert axis.x(START, 0) == 50
    assert axis.x(START, 1) == 50 + SLOT
    assert axis.starts[1] - (50 + SLOT) == MIN_GAP
    assert axis.x(START + timedelta(milliseconds=3)) == axis.x1


def test_an_instant_between_two_is_placed_in_proportion() -> None:
    axis = build([(START, 1), (START + timedelta(seconds=100), 1)], 0)
    middle = axis.x(START + timedelta(seconds=25))
    assert middle == pytest.approx(axis.starts[1] / 4)
    assert axis.x(START - timedelta(days=1)) == axis.x0
    assert axis.x(START + timedelta(days=1)) == axis.x1


def test_the_picture_of_a_long_wait_is_not_as_wide_as_the_wait(
    memory_store: Store, clock: FakeClock
) -> None:
    run_id = retried(memory_store, clock)
    scene = lay_out(collect(memory_store, "acme", run_id))
    # 15 rows over 26 hours, with a one-day wait: compressed, it fits a wide screen
    assert scene.width < 2000


# -- text: measured, tiered, cut with a tooltip, never overlapping -------------------------------


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_text_overlaps_or_leaves_the_picture(name: str) -> None:
    store, run_id = played(name)
    assert_laid_out_cleanly(lay_out(collect(store, "acme", run_id)))


_names = (
    st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
        min_size=1,
        max_size=200,  # a name's limit (core.names.MAX_NAME_LENGTH)
    )
    .map(str.strip)
    .filter(bool)
)


@given(
    keys=st.lists(_names, min_size=2, max_size=2, unique=True),
    channel=_names,
    delays=st.lists(st.integers(0, 200_000), min_size=3, max_size=3),
)
def test_no_text_overlaps_whatever_the_names_and_times(
    keys: list[str], channel: str, delays: list[int]
) -> None:
    clock = FakeClock(START)
    with Store(":memory:", clock=clock) as store:
        workflow = Workflow(
            "w",
            1,
            [
                Step(keys[0], 1, channel, progress=[WaitUntil(delays[1] + 1, keys[1], [channel])]),
                Step(keys[1], 2, channel),
            ],
        )
        result = store.trigger(
            tenant_id="acme",
            notification_key=channel,
            recipient=channel,
            workflow=workflow,
            idempotency_key="k",
        )
        clock.advance(seconds=delays[0])
        store.record_outcome(result.deliveries[0].id, "succeeded")
        clock.advance(seconds=delays[1] + delays[2] + 1)
        for moved in store.progress_due_runs():
            store.record_outcome(moved.deliveries[0].id, "failed")
        assert_laid_out_cleanly(lay_out(collect(store, "acme", result.run.id)))


def test_long_step_names_wrap_on_their_lane_and_are_cut_with_a_tooltip(
    memory_store: Store, clock: FakeClock
) -> None:
    run_id = long_names(memory_store, clock)
    svg = render_svg(collect(memory_store, "acme", run_id))
    root = ET.fromstring(svg)
    first, _ = groups(root, "lane")
    first_name = "remind-the-customer-about-the-unpaid-invoice-in-the-app-now!"
    # the lane's name: wrapped over lines, nothing left out
    assert "".join(texts(first)[:-1]) == f"1. {first_name}"
    assert texts(first)[-1] == "in_app_notification_center"
    # an event label too long for its room is cut, and keeps its full text as a tooltip
    cut = [
        node
        for node in root.iter(f"{SVG}text")
        if (node.text or "").endswith("…") or any((c.tail or "").endswith("…") for c in node)
    ]
    assert cut
    assert f"step {first_name} (in_app_notification_center)" in [tooltip(n) for n in cut]
    assert_laid_out_cleanly(lay_out(collect(memory_store, "acme", run_id)))


def test_measuring_cutting_and_wrapping_text() -> None:
    assert text_width("", 12) == 0
    assert text_width("ii", 12) < text_width("WW", 12)
    assert text_width("abc", 12, bold=True) > text_width("abc", 12)
    assert text_width("abc", 24) == pytest.approx(2 * text_width("abc", 12))
    assert text_width("名前", 12) > text_width("ab", 12)
    assert fit("short", 500, 12) == "short"
    cut = fit("a long label " * 10, 100, 12)
    assert cut.endswith("…") and text_width(cut, 12) <= 100
    lines = wrap("the quick brown fox jumps over the lazy dog " * 4, 120, 12)
    assert len(lines) > 3 and all(text_width(line, 12) <= 120 for line in lines)
    assert " ".join(lines) == ("the quick brown fox jumps over the lazy dog " * 4).strip()
    assert wrap("x" * 80, 100, 12, max_lines=2)[-1].endswith("…")
    assert "".join(wrap("1. " + "y" * 70, 100, 12)) == "1. " + "y" * 70


def test_tiers_put_overlapping_labels_apart() -> None:
    assert tiers([(0, 50), (100, 150)]) == [0, 0]
    assert tiers([(0, 50), (40, 90), (45, 60), (200, 210)]) == [0, 1, 2, 0]
    assert tiers([(0, 50), (55, 90)], pad=10) == [0, 1]
    assert overlapping([Box(0, 0, 10, 10), Box(10, 0, 20, 10), Box(5, 5, 15, 15)]) == [
        (0, 2),
        (1, 2),
    ]


# -- the document --------------------------------------------------------------------------------


def test_the_svg_scales_to_its_container(store: Store) -> None:
    run_id = waiting(store).run.id
    root = ET.fromstring(render_svg(collect(store, "acme", run_id)))
    width, height = map(float, root.get("viewBox", "").split()[2:])
    assert root.get("width") == "100%"
    assert root.get("height") is None
    assert f"max-width:{width:.0f}px" in root.get("style", "")
    assert width >= 880 and height > 0
    assert root.get("viewBox") == f"0 0 {width:.0f} {height:.0f}"


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
        assert title == f"Run {run_id} of tenant <script>alert('x')</script> & \"co\"\ufffd for ada"


def test_the_picture_is_self_contained(store: Store) -> None:
    run_id = waiting(store).run.id
    for document in (
        render_svg(collect(store, "acme", run_id)),
        render_html(collect(store, "acme", run_id)),
    ):
        assert not re.search(r"(href|src)\s*=|@import|url\(", document)
        namespaces = set(re.findall(r"https?://[^\"' ]+", document))
        assert namespaces <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xhtml"}


def test_no_trigger_data_reaches_the_picture(memory_store: Store) -> None:
    result = memory_store.trigger(
        tenant_id="acme",
        notification_key="welcome",
        recipient="ada",
        workflow=escalation_workflow(),
        idempotency_key="k",
        data={"secret": "s3cr3t-value"},
    )
    memory_store.record_outcome(result.deliveries[0].id, "succeeded")
    picture = collect(memory_store, "acme", result.run.id)
    assert all(d.data == {} and d.config == {} for d in picture.deliveries)
    for document in (render_svg(picture), render_html(picture)):
        assert "s3cr3t-value" not in document and "secret" not in document


def test_the_html_page_inlines_the_svg_and_lists_the_trace_deliveries_and_attempts(
    memory_store: Store, clock: FakeClock
) -> None:
    run_id = retried(memory_store, clock)
    html = render_html(collect(memory_store, "acme", run_id))

    root = ET.fromstring(html.encode())
    assert html.startswith("<!DOCTYPE html>")
    assert "<?xml" not in html
    assert root.find(f".//{SVG}svg") is not None
    facts = dict(
        zip(
            ["".join(n.itertext()) for n in root.iter(f"{XHTML}dt")],
            ["".join(n.itertext()) for n in root.iter(f"{XHTML}dd")],
            strict=True,
        )
    )
    assert (facts["Recipient"], facts["Notification"]) == ("eve", "welcome")
    assert facts["State"] == "completed (cancelled_by_signal)"
    trace, deliveries, attempts = (
        table.findall(f"{XHTML}tbody/{XHTML}tr") for table in root.iter(f"{XHTML}table")
    )
    assert len(trace) == 15
    assert ["".join(r[0].itertext()) for r in trace] == [f"#{n}" for n in range(1, 16)]
    assert "retries_exhausted" in "".join(trace[5].itertext())
    assert len(deliveries) == 5 and len(attempts) == 11
    assert ["".join(r[4].itertext()) for r in attempts[:3]] == ["failed", "succeeded", "failed"]


def test_collect_is_tenant_scoped(store: Store) -> None:
    run_id = waiting(store).run.id
    with pytest.raises(RunNotFound):
        collect(store, "globex", run_id)


# -- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "wanted", "kind"),
    [
        ("run.svg", None, "svg"),
        ("RUN.SVG", None, "svg"),
        ("run.html", None, "html"),
        ("run.htm", None, "html"),
        ("-", None, "svg"),
        ("-", "html", "html"),
        ("picture", "svg", "svg"),
        ("run.html", "html", "html"),
    ],
)
def test_the_format_comes_from_the_name_or_the_option(
    path: str, wanted: str | None, kind: str
) -> None:
    assert format_for(path, wanted) == kind


@pytest.mark.parametrize(
    ("path", "wanted", "message"),
    [
        ("run.png", None, "cannot write '.png' files"),
        ("run.pdf", "svg", "cannot write '.pdf' files"),
        ("picture", None, "has no suffix"),
        ("run.svg", "html", "the name 'run.svg' says svg, but --format says html"),
        ("run.svg", "png", "must be one of svg, html"),
    ],
)
def test_a_format_the_timeline_cannot_write_is_refused(
    path: str, wanted: str | None, message: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        format_for(path, wanted)
    assert message in str(refused.value)


def test_render_by_format_name(store: Store) -> None:
    picture = collect(store, "acme", waiting(store).run.id)
    assert render(picture, "svg") == render_svg(picture)
    assert render(picture, "html") == render_html(picture)
    with pytest.raises(InvalidArgument):
        render(picture, "png")


def test_a_wait_names_the_on_signal_events_that_end_it_too(store: Store) -> None:
    journey = Workflow(
        "nudge",
        1,
        [
            Step(
                "inapp",
                1,
                "in_app",
                progress=[
                    WaitUntil(3600, "email", ["notification_read"]),
                    OnSignal("clicked", "thanks"),
                ],
            ),
            Step("email", 2, "email"),
            Step("thanks", 3, "email"),
        ],
    )
    run_id = waiting(store, workflow=journey, notification_key="nudge").run.id
    shown = " ".join(texts(ET.fromstring(render_svg(collect(store, "acme", run_id)))))
    # The machine pends on both (CONTRACT §13.4): the picture says so.
    assert "ends early on notification_read, clicked" in shown


def test_digest_and_window_waits_say_what_they_wait_for(store: Store) -> None:
    from chimeway_lite import Digest, SendWindow

    digest = Workflow("digested", 1, [Step("email", 1, "email", digest=Digest(600))])
    held = Workflow("held", 1, [Step("push", 1, "push", window=SendWindow("23:00", "23:30"))])
    collecting = trigger(store, workflow=digest, notification_key="digested").run.id
    outside = trigger(store, workflow=held, notification_key="held").run.id
    shown = " ".join(texts(ET.fromstring(render_svg(collect(store, "acme", collecting)))))
    assert "collecting a digest for 10 min" in shown
    shown = " ".join(texts(ET.fromstring(render_svg(collect(store, "acme", outside)))))
    assert "held for the send window" in shown
