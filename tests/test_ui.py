"""The web inspector over HTTP: its pages and their JSON, filters and pages, errors, escaping,
secrets that never show, the read-only store, the tenant scope and the Host check.

The server runs in a thread on an ephemeral port of 127.0.0.1, over the store of
``inspected.build`` (read it for who is where), on each backend. The browser test is
``test_ui_browser``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import attrs
import backends
import pytest
from factories import trigger, waiting
from hypothesis import given
from hypothesis import strategies as st
from inspected import HOSTILE, HOSTILE_TENANT, SECRETS, SLASHED_TENANT, Inspected, build
from strategies import table_dump

from chimeway_lite import FakeClock, StorageError, Store, StoreBusy
from chimeway_lite.tools.ui import (
    Inspector,
    InspectorServer,
    documents,
    make_server,
    open_read_only,
)
from chimeway_lite.tools.ui.server import SECURITY_HEADERS, is_loopback


@attrs.frozen
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        assert self.headers["content-type"] == "application/json; charset=utf-8"
        return json.loads(self.body)


def request(port: int, path: str, *, method: str = "GET", host: str | None = None) -> Answer:
    """One HTTP request to 127.0.0.1:``port``; ``host`` replaces the Host header."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=host is not None)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Answer(response.status, headers, response.read())
    finally:
        connection.close()


@contextlib.contextmanager
def serving(server: InspectorServer) -> Iterator[int]:
    """Serve in a thread; yield the port; shut down on leaving."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@attrs.frozen
class Site:
    store: Store
    port: int
    data: Inspected
    path: str

    def get(self, path: str, **options: Any) -> Answer:
        return request(self.port, path, **options)

    def json(self, path: str) -> Any:
        answer = self.get(path + ("&" if "?" in path else "?") + "format=json")
        assert answer.status == 200, answer.text
        return answer.json()

    def run_url(self, name: str) -> str:
        return documents.run_path(self.data.tenant_of(name), self.data.runs[name])

    def delivery_url(self, name: str, key: str | None = None) -> str:
        return documents.delivery_path(self.data.tenant_of(name), self.data.deliveries[key or name])


@pytest.fixture(scope="module")
def site(module_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The inspector over the store of ``inspected.build``, on each backend in turn."""
    path = backends.new_location(module_backend, tmp_path_factory.mktemp("ui"))
    data = build(path)
    try:
        with (
            open_read_only(path, clock=FakeClock(data.now)) as store,
            serving(make_server(store, "127.0.0.1", 0, quiet=True)) as port,
        ):
            yield Site(store, port, data, path)
    finally:
        backends.close_sql(path)
        backends.drop_location(path)


# -- the runs ----------------------------------------------------------------------------------


def test_the_runs_page_lists_every_tenants_runs_most_recent_first(site: Site) -> None:
    document = site.json("/")

    runs = document["runs"]
    assert {f"{r['tenant_id']}/{r['recipient']}" for r in runs} == set(site.data.runs)
    changed = [r["last_transition_at"] for r in runs]
    assert changed == sorted(changed, reverse=True)
    ada = next(r for r in runs if r["id"] == site.data.runs["acme/ada"])
    assert (ada["state"], ada["terminal_reason"], ada["current_step"]) == (
        "completed",
        "workflow_completed",
        "email",
    )
    assert ada["url"] == site.run_url("acme/ada")
    assert document["now"] == "2026-01-05T11:40:00.000000+00:00"
    assert document["paging"] == {
        "page": 1,
        "limit": 50,
        "has_next": False,
        "previous": None,
        "next": None,
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tenant=acme", {"acme/ada", "acme/bob", "acme/cy", "acme/dee"}),
        ("recipient=ada", {"acme/ada", "globex/ada"}),
        ("recipient=ada&tenant=globex", {"globex/ada"}),
        ("state=waiting", {"acme/dee", "globex/ada"}),
        ("state=stopped", {"acme/bob", "acme/cy"}),
        ("workflow=reminder", {"acme/cy"}),
        ("workflow=receipt&state=active", {"globex/frank"}),
        ("tenant=&recipient=&state=&workflow=reminder", {"acme/cy"}),  # an empty form field
        ("recipient=nobody", set()),
    ],
)
def test_the_runs_page_filters(site: Site, query: str, expected: set[str]) -> None:
    runs = site.json("/?" + query)["runs"]

    assert {f"{r['tenant_id']}/{r['recipient']}" for r in runs} == expected


def test_the_runs_page_comes_in_pages(site: Site) -> None:
    everything = [r["id"] for r in site.json("/")["runs"]]

    first = site.json("/?limit=4")
    second = site.json(first["paging"]["next"])
    third = site.json(second["paging"]["next"])

    assert [r["id"] for r in first["runs"] + second["runs"] + third["runs"]] == everything
    assert (first["paging"]["previous"], first["paging"]["next"]) == (None, "/?limit=4&page=2")
    assert second["paging"]["previous"] == "/?limit=4"
    assert (third["paging"]["has_next"], third["paging"]["next"]) == (False, None)
    assert site.json("/?limit=4&page=9")["runs"] == []
    html = site.get("/?limit=4&page=2&state=").text
    assert 'href="/?limit=4&amp;page=3">Next page</a>' in html
    assert 'href="/?limit=4">Previous page</a>' in html


def test_the_runs_page_shows_a_filter_form_and_a_table(site: Site) -> None:
    html = site.get("/?state=waiting").text

    assert '<form class="cw-filters" method="get" action="/"' in html
    assert '<option value="waiting" selected>waiting</option>' in html
    assert html.count('<span class="cw-badge cw-waiting">waiting</span>') == 2
    short = site.data.runs["acme/dee"][-12:]
    assert f'href="{site.run_url("acme/dee")}"' in html and f">{short}</a>" in html
    assert "(in 40 min)" in html  # dee is due at 12:20, the page is of 11:40


# -- one run, one delivery -----------------------------------------------------------------------


def test_a_runs_page_has_its_explanation_deliveries_attempts_and_trace(site: Site) -> None:
    document = site.json(site.run_url("acme/ada"))

    assert document["run"]["recipient"] == "ada"
    explanation = document["explanation"]
    assert (explanation["state"], explanation["terminal_reason"]) == (
        "completed",
        "workflow_completed",
    )
    assert explanation["why"].startswith("Completed")
    trace = document["trace"]
    assert [t["number"] for t in trace] == list(range(1, len(trace) + 1))
    assert [t["reason"] for t in trace] == [
        "workflow_started",
        "step_activated",
        "waiting_for_step_progression",
        "reactivated_from_wait",
        "step_activated",
        "workflow_completed",
    ]
    assert trace[2]["delivery_url"] == site.delivery_url("acme/ada")
    inapp, email = document["deliveries"]
    assert (inapp["step_key"], inapp["status"], email["step_key"], email["status"]) == (
        "inapp",
        "succeeded",
        "email",
        "succeeded",
    )
    assert [a["status"] for a in inapp["attempts"]] == ["succeeded"]
    assert inapp["attempts"][0]["claimed_at"] == "2026-01-05T09:30:00.000000+00:00"
    assert email["url"] == site.delivery_url("acme/ada", "acme/ada/email")
    assert inapp["why"] and inapp["next_move"]


def test_a_runs_html_page_embeds_the_timeline_and_says_why(site: Site) -> None:
    html = site.get(site.run_url("acme/cy")).text

    timeline = html.split('<div class="cw-timeline" id="timeline">', 1)[1]
    assert timeline.lstrip().startswith("<svg")
    assert "<?xml" not in html  # inlined, not a standalone document
    assert '<span class="cw-badge cw-stopped">stopped</span>' in html
    assert '<p class="cw-sentence"><strong>Why:</strong> Stopped' in html
    assert "permanent_failure" in html


def test_a_deliverys_page_has_its_attempts_and_its_run(site: Site) -> None:
    document = site.json(site.delivery_url("globex/frank"))["delivery"]

    assert (document["status"], document["attempt"], document["max_attempts"]) == (
        "pending",
        1,
        3,
    )
    assert document["available_at"] == "2026-01-05T11:36:00.000000+00:00"
    assert [(a["attempt"], a["status"]) for a in document["attempts"]] == [(1, "failed")]
    assert document["run_url"] == site.run_url("globex/frank")
    assert document["next_move"] == "The next claim (claim_deliveries) takes it: attempt 2 of 3."
    html = site.get(site.delivery_url("globex/frank")).text
    assert "<h2>Attempts</h2>" in html and "1 of 3" in html


def test_a_tenant_id_with_url_characters_has_working_pages(site: Site) -> None:
    url = site.run_url(f"{SLASHED_TENANT}/hal")
    assert "%2F" in url and "%3F" in url and "%23" in url

    document = site.json(url)

    assert document["run"]["tenant_id"] == SLASHED_TENANT
    assert site.json(document["deliveries"][0]["url"])["delivery"]["recipient"] == "hal"
    assert site.json("/?tenant=" + "eu%2Facme%252F%3F%23")["runs"][0]["recipient"] == "hal"


# -- the outbox and due work ---------------------------------------------------------------------


def test_the_outbox_shows_what_is_not_final_oldest_first(site: Site) -> None:
    rows = site.json("/outbox")["deliveries"]

    assert [f"{r['tenant_id']}/{r['recipient']}" for r in rows] == [
        "globex/frank",
        "globex/gus",
        f"{HOSTILE_TENANT}/{HOSTILE[1]}",
        f"{SLASHED_TENANT}/hal",
    ]
    frank, gus = rows[0], rows[1]
    assert (frank["status"], frank["claimable_at"]) == (
        "pending",
        "2026-01-05T11:36:00.000000+00:00",
    )
    assert (gus["status"], gus["lease_expires_at"]) == (
        "dispatched",
        "2026-01-05T11:45:00.000000+00:00",
    )
    assert [
        r["recipient"] for r in site.json("/outbox?tenant=globex&status=dispatched")["deliveries"]
    ] == ["gus"]
    assert {
        r["recipient"] for r in site.json("/outbox?status=succeeded&channel=email")["deliveries"]
    } == {"ada"}
    html = site.get("/outbox").text
    assert "claimable now" in html and "leased until" in html and "(in 5 min)" in html


def test_the_outbox_says_when_a_claim_can_take_each_delivery_at_any_time(site: Site) -> None:
    def outbox_at(hour: int, minute: int, second: int = 0) -> str:
        at = site.data.now.replace(hour=hour, minute=minute, second=second)
        with open_read_only(site.path, clock=FakeClock(at)) as store:
            return Inspector(store).respond("GET", "/outbox?tenant=globex").body.decode()

    before = outbox_at(11, 35, 30)
    after = outbox_at(11, 50)

    assert "retry at <time" in before and "(in 30 s)" in before
    assert "leased until <time" in before
    assert "claimable now, since <time" in after and "(14 min ago)" in after
    assert "lease ran out at <time" in after and ": claimable again" in after


def test_due_shows_the_runs_and_deliveries_of_the_next_hour(site: Site) -> None:
    document = site.json("/due")

    assert document["until"] == "2026-01-05T12:40:00.000000+00:00"
    assert [(r["tenant_id"], r["recipient"], r["due_at"]) for r in document["runs"]] == [
        ("acme", "dee", "2026-01-05T12:20:00.000000+00:00")
    ]
    assert "email" in document["runs"][0]["next_move"]
    assert [r["recipient"] for r in document["deliveries"]] == ["frank", "gus"]
    later = site.json("/due?within=180")
    assert [r["recipient"] for r in later["runs"]] == ["dee", "ada"]
    assert site.json("/due?within=180&tenant=globex")["runs"][0]["tenant_id"] == "globex"
    paged = site.json("/due?within=180&limit=1&page=2")
    assert ([r["recipient"] for r in paged["runs"]], paged["paging"]["has_next"]) == (
        ["ada"],
        False,
    )
    assert (
        site.json("/due?within=180&limit=1")["paging"]["next"] == "/due?within=180&limit=1&page=2"
    )
    html = site.get("/due").text
    assert "<h1>Due in the next hour</h1>" in html and "(in 40 min)" in html


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/?state=sleeping", "state"),
        ("/?colour=red", "colour"),
        ("/?limit=0", "limit"),
        ("/?limit=501", "limit"),
        ("/?page=-1", "page"),
        ("/?page=1.5", "page"),
        ("/?page=%D9%A3", "page"),  # an Arabic-Indic digit is no page number here
        ("/?state=waiting&state=active", "state"),
        ("/?format=xml", "format"),
        ("/?tenant=%20", "tenant_id"),
        ("/?recipient=" + "r" * 300, "recipient"),
        ("/?tenant=%ff", "query"),
        ("/outbox?status=lost", "status"),
        ("/outbox?state=pending", "state"),
        ("/due?within=0", "within"),
        ("/due?within=100000", "within"),
        ("/runs/acme/x?limit=5", "limit"),
        ("/" + "?a=1" + "&a=1" * 30, "query"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(site: Site, path: str, name: str) -> None:
    html = site.get(path)
    answer = site.get(path + "&format=json" if "?" in path else path + "?format=json")

    assert html.status == answer.status == 400
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    error = answer.json()
    assert (error["status"], error["error"]) == (400, "Bad request")
    assert f"invalid {name}" in error["message"]
    assert "Traceback" not in html.text and "Traceback" not in answer.text


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/runs",
        "/runs/acme",
        "/runs/acme/x/y",
        "/deliveries//x",
        "/outbox/more",
        "/favicon.ico",
    ],
)
def test_unknown_paths_are_404(site: Site, path: str) -> None:
    answer = site.get(path)

    assert answer.status == 404
    assert "<h1>404 Not found</h1>" in answer.text


def test_another_tenants_run_or_delivery_looks_like_a_missing_one(site: Site) -> None:
    run = site.data.runs["globex/ada"]
    delivery = site.data.deliveries["globex/ada"]

    for kind, real in (("runs", run), ("deliveries", delivery)):
        other = site.get(f"/{kind}/acme/{real}?format=json")
        missing = site.get(f"/{kind}/acme/{real[:-4]}0000?format=json")
        assert other.status == missing.status == 404
        assert other.json()["message"].replace(real, "ID") == missing.json()["message"].replace(
            real[:-4] + "0000", "ID"
        )


def test_only_get_and_head_are_served(site: Site) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        answer = site.get("/", method=method)
        assert (answer.status, answer.headers["allow"]) == (405, "GET, HEAD"), method
    head = site.get("/outbox", method="HEAD")
    full = site.get("/outbox")
    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-length"] == str(len(full.body))


def test_every_answer_carries_the_security_headers(site: Site) -> None:
    for path in ("/", "/?format=json", "/nope", "/?state=x", site.run_url("acme/ada")):
        answer = site.get(path)
        for name, value in SECURITY_HEADERS:
            assert answer.headers[name.lower()] == value, (path, name)
    assert "script-src" not in SECURITY_HEADERS[0][1]  # default-src 'none': no script at all
    assert "default-src 'none'" in SECURITY_HEADERS[0][1]


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example", 400),
        ("evil.example:8765", 400),
        ("192.168.1.5", 400),
        ("localhost", 200),
        ("localhost:1234", 200),
        ("127.0.0.1:1", 200),
        ("127.1.2.3", 200),
        ("[::1]:8765", 200),
    ],
)
def test_a_local_inspector_answers_only_loopback_host_names(
    site: Site, host: str, status: int
) -> None:
    answer = site.get("/", host=host)

    assert answer.status == status
    if status == 400:
        assert "invalid Host" in answer.text


def test_an_inspector_listening_on_other_addresses_takes_any_host(site: Site) -> None:
    inspector = Inspector(site.store, local_only=False)

    assert inspector.respond("GET", "/", "inspector.internal:8765").status == 200
    assert Inspector(site.store).respond("GET", "/", "inspector.internal").status == 400
    assert (is_loopback("localhost"), is_loopback("::1"), is_loopback("10.0.0.1")) == (
        True,
        True,
        False,
    )


def test_failures_are_one_sentence_and_the_log_has_the_rest(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("internal detail of the failure")

    monkeypatch.setattr(documents, "runs_page", broken)
    with caplog.at_level(logging.ERROR, logger="chimeway_lite.ui"):
        answer = site.get("/")
        as_json = site.get("/?format=json")

    assert answer.status == as_json.status == 500
    for text in (answer.text, as_json.text):
        assert "internal detail" not in text and "Traceback" not in text
    assert as_json.json()["message"] == "the inspector failed; its log says why"
    assert "internal detail of the failure" in caplog.text


def test_a_busy_store_is_503_with_retry_after(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(*args: Any) -> None:
        raise StoreBusy(str(site.path), 5.0)

    monkeypatch.setattr(documents, "outbox_page", busy)
    answer = site.get("/outbox")

    assert (answer.status, answer.headers["retry-after"]) == (503, "1")


# -- escaping and secrets ------------------------------------------------------------------------


class _Markup(HTMLParser):
    """The elements, attribute names and link targets of a document."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        if tag == "a":
            self.links.append(dict(attrs).get("href") or "")


def _crawl(site: Site, start: list[str], limit: int = 200) -> dict[str, Answer]:
    """Every page reachable from ``start`` by the links of the pages (and each page's JSON)."""
    seen: dict[str, Answer] = {}
    queue = list(start)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        answer = site.get(path)
        seen[path] = answer
        assert answer.status == 200, (path, answer.text[:300])
        if "json" not in answer.headers["content-type"]:
            for href in _Markup(answer.text).links:
                if href.startswith("/") and href not in seen:
                    queue.append(href)
    return seen


def test_no_page_ever_shows_the_data_config_or_payload(site: Site) -> None:
    pages = _crawl(site, ["/", "/outbox", "/due", "/?limit=2", "/due?within=600"])

    kinds = {path.split("?")[0].split("/")[1] for path in pages}
    assert {"", "runs", "deliveries", "outbox", "due"} <= kinds
    assert len([p for p in pages if p.startswith("/runs/")]) >= 2 * len(site.data.runs) - 1
    assert any("format=json" in p for p in pages)
    for path, answer in pages.items():
        for secret in SECRETS:
            assert secret not in answer.text, (path, secret)


def test_hostile_names_are_shown_as_text_never_as_markup(site: Site) -> None:
    name = f"{HOSTILE_TENANT}/{HOSTILE[1]}"
    paths = ["/", "/outbox", "/?tenant=" + HOSTILE_TENANT.replace("<", "%3C")]
    paths += [site.run_url(name), site.delivery_url(name)]

    for path in paths:
        answer = site.get(path)
        assert answer.status == 200, path
        markup = _Markup(answer.text)
        assert "script" not in markup.tags and "img" not in markup.tags and "i" not in markup.tags
        assert not {a for a in markup.attributes if a.startswith("on")}, path
        for value in HOSTILE:
            assert value not in answer.text, (path, value)
    run_page = site.get(site.run_url(name)).text
    for value in HOSTILE:
        assert (
            value.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace('"', "&quot;")
            .replace("'", "&#x27;")
            in run_page
        ), value
    assert site.json(site.run_url(name))["run"]["tenant_id"] == HOSTILE_TENANT


def test_control_characters_in_a_name_cannot_break_the_page() -> None:
    from chimeway_lite.tools.ui.markup import esc

    assert esc("a\x00b\x1bc\ud800d") == "a\ufffdb\ufffdc\ufffdd"
    assert esc(None) == "-"
    assert esc("<\"&'>") == "&lt;&quot;&amp;&#x27;&gt;"


# -- read-only and scoped ------------------------------------------------------------------------


def _dump(path: str) -> dict[str, list[tuple[Any, ...]]]:
    with Store(path) as store:
        return table_dump(store)


def test_the_inspector_writes_nothing_and_its_store_cannot_write(site: Site) -> None:
    before = _dump(site.path)

    _crawl(site, ["/", "/outbox", "/due"], limit=40)

    assert _dump(site.path) == before
    with pytest.raises(StorageError, match="read-only"):
        site.store.cancel("acme", recipient="dee")
    with pytest.raises(StorageError):
        site.store.progress_due_runs(now=site.data.now.replace(hour=23))
    assert _dump(site.path) == before
    assert site.store.explain("acme", site.data.runs["acme/dee"]).state.value == "waiting"


def test_a_tenant_scoped_inspector_shows_that_tenant_only(site: Site) -> None:
    with serving(make_server(site.store, "127.0.0.1", 0, tenant="globex", quiet=True)) as port:
        runs = request(port, "/?format=json").json()["runs"]
        assert {r["tenant_id"] for r in runs} == {"globex"} and len(runs) == 3
        assert {
            r["tenant_id"] for r in request(port, "/outbox?format=json").json()["deliveries"]
        } == {"globex"}
        assert (
            request(port, "/due?within=600&format=json").json()["runs"][0]["tenant_id"] == "globex"
        )
        assert request(port, "/?tenant=globex&format=json").json()["runs"] == runs
        refused = request(port, "/?tenant=acme&format=json")
        assert (refused.status, refused.json()["message"]) == (
            400,
            "invalid tenant: this inspector shows tenant 'globex' only",
        )
        assert request(port, site.run_url("acme/ada")).status == 404
        assert request(port, site.delivery_url("acme/ada")).status == 404
        assert request(port, site.run_url("globex/ada")).status == 200
        assert "tenant globex only" in request(port, "/").text


def test_a_damaged_row_is_one_sentence_and_the_listings_still_show(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    with Store(path) as writer:
        run = waiting(writer, recipient="ada").run
        other = trigger(writer, recipient="bob")
    raw = sqlite3.connect(path)
    raw.execute(
        "UPDATE workflow_runs SET status_context = '[]', suspended_until = 'soon' WHERE id = ?",
        (run.id,),
    )
    raw.execute("UPDATE deliveries SET updated_at = 'late' WHERE id = ?", (other.deliveries[0].id,))
    raw.commit()
    raw.close()

    with open_read_only(path) as store:
        inspector = Inspector(store)
        listing = inspector.respond("GET", "/")
        outbox = inspector.respond("GET", "/outbox")
        page = inspector.respond("GET", documents.run_path("acme", run.id) + "?format=json")
        delivery = inspector.respond("GET", documents.delivery_path("acme", other.deliveries[0].id))

    assert (listing.status, outbox.status) == (200, 200)
    assert b"<td>soon</td>" in listing.body and b"bob" in outbox.body
    assert page.status == delivery.status == 500
    message = json.loads(page.body)["message"]
    assert message.startswith(f"workflow_runs row {run.id} is damaged") and "verify()" in message
    assert b"Traceback" not in delivery.body and b"deliveries row" in delivery.body


# -- hostile requests ----------------------------------------------------------------------------

# What a request line can carry once http.server has decoded it (latin-1): any byte.
_BYTE_TEXT = st.text(st.characters(max_codepoint=0xFF), max_size=40)
_HOSTILE_TEXT = st.one_of(
    st.sampled_from([*HOSTILE, "%", "%ff", "%00", "..", "\x00", "a/b", "?#&=", " "]),
    st.text(max_size=30),
)
_NAMES = st.sampled_from(
    [
        *("tenant", "recipient", "state", "workflow", "status", "channel", "within", "page"),
        *("limit", "format", "colour", "<script>"),
    ]
)


@st.composite
def _targets(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["", "outbox", "due", "runs", "deliveries", "x"]))
    segments = [kind, *draw(st.lists(_HOSTILE_TEXT, max_size=3))]
    if draw(st.booleans()):
        path = "/" + "/".join(quote(s, safe="") for s in segments)
    else:
        path = "/" + "/".join(segments) + draw(_BYTE_TEXT)
    query = draw(st.lists(st.tuples(_NAMES, _HOSTILE_TEXT), max_size=4))
    if not query:
        return path
    return path + "?" + urlencode(query)


@given(target=_targets(), host=st.sampled_from([None, "127.0.0.1:8765", "localhost"]))
def test_hostile_requests_get_a_page_or_one_sentence(
    site: Site, target: str, host: str | None
) -> None:
    answer = Inspector(site.store).respond("GET", target, host)

    assert answer.status in (200, 400, 404), (target, answer.body[:300])
    text = answer.body.decode("utf-8")
    assert "Traceback" not in text
    if answer.content_type.startswith("text/html"):
        markup = _Markup(text)
        assert not {"script", "img", "iframe", "i"} & markup.tags, target
        assert not {a for a in markup.attributes if a.startswith("on")}, target
        for value in HOSTILE:
            assert value not in text, (target, value)
    else:
        json.loads(text)
