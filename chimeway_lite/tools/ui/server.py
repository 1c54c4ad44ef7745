"""The web inspector's server: routing, answers and HTTP, on the standard library alone.

:class:`Inspector` turns a request (method, target, Host header) into a :class:`Response`
without any socket, so every rule is in one place: only GET and HEAD; the five pages and
their JSON (``?format=json``); 400 for bad parameters, 404 for unknown paths and for runs
or deliveries not found (another tenant's look the same), 503 while the store is busy, 500
for a damaged row (``verify()`` says more) and anything else — always one sentence, never
a traceback (that goes to the ``chimeway_lite.ui`` logger). :class:`InspectorServer` serves
it with :class:`~http.server.ThreadingHTTPServer`.

Safety: the store is opened query-only (:func:`open_read_only`); every page is sent with a
Content-Security-Policy that allows no script at all; while the server listens on a
loopback address it answers only requests whose Host header names a loopback host, so a web
page elsewhere cannot read it through DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import sys
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from ...core.clock import Clock
from ...core.errors import (
    ChimewayError,
    DeliveryNotFound,
    InvalidArgument,
    RunNotFound,
    StorageError,
    StoreBusy,
)
from ...store import Store
from .. import listing
from . import documents
from .documents import Page
from .pages import render, render_error
from .queries import DueQuery, OutboxQuery, RunsQuery, parameters, wants_json

LOG = logging.getLogger("chimeway_lite.ui")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

#: Sent with every answer: no script, no frames, no referrer, nothing cached.
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
_HTML = "text/html; charset=utf-8"
_JSON = "application/json; charset=utf-8"
_REASONS = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 500: "Error"}
_REASONS[503] = "Store busy"


def open_read_only(
    path: str | os.PathLike[str], *, clock: Clock | None = None, busy_timeout: float = 5.0
) -> Store:
    """A store for inspecting: opened as every command opens it (a file of an older schema
    version is upgraded first), then switched to query-only, so that nothing done through
    it — by the inspector or by mistake — can write (a write raises StorageError)."""
    store = Store(path, clock=clock, busy_timeout=busy_timeout)
    try:
        query_only = getattr(store.backend, "query_only", None)
        if callable(query_only):  # PostgreSQL: every unit a READ ONLY transaction
            query_only()
        else:
            store.connection.execute("PRAGMA query_only = ON")
    except BaseException:
        store.close()
        raise
    return store


@attrs.frozen
class Response:
    """An answer: status, content type, body, and headers of its own."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class _NotFound(ChimewayError, LookupError):
    """A path the inspector does not serve."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no page at {path[:80]!r}")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host name of a Host header (``[::1]:8765`` -> ``::1``, ``a:80`` -> ``a``)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _segments(path: str) -> list[str]:
    """The decoded segments of a path (``/runs/a%2Fb/r`` -> ``["runs", "a/b", "r"]``)."""
    if path != "/" and path.endswith("/"):
        path = path[:-1]
    try:
        return [unquote(part, errors="strict") for part in path.split("/")[1:]]
    except UnicodeDecodeError:
        raise InvalidArgument("path", "is not valid UTF-8 once decoded") from None


class Inspector:
    """The inspector's pages over one store (see the module docstring).

    ``scope`` limits it to one tenant; ``local_only`` makes it refuse requests whose Host
    header names no loopback host; ``store_label`` is how the top bar names the store.
    """

    def __init__(
        self,
        store: Store,
        *,
        scope: str | None = None,
        local_only: bool = True,
        store_label: str | None = None,
    ) -> None:
        self.store = store
        self.scope = scope
        self.local_only = local_only
        self.store_label = store_label if store_label is not None else os.path.basename(store.path)

    def respond(self, method: str, target: str, host: str | None = None) -> Response:
        """The answer to ``method target`` (a request target such as ``/runs?state=waiting``)
        sent with Host header ``host``."""
        split = urlsplit(target)
        as_json = ("format", "json") in _loose_pairs(split.query)
        try:
            if method not in ("GET", "HEAD"):
                return self._error(405, "only GET and HEAD: the inspector is read-only", as_json)
            if self.local_only and host and not is_loopback(_host_name(host)):
                raise InvalidArgument(
                    "Host", "names no loopback host; open the inspector as localhost"
                )
            page = self._page(split.path, split.query)
            if as_json:
                text = json.dumps(page.document, indent=2, ensure_ascii=False, allow_nan=False)
                return Response(200, _JSON, (text + "\n").encode("utf-8"))
            html = render(page, store_label=self.store_label, scope=self.scope)
            return Response(200, _HTML, html.encode("utf-8"))
        except (RunNotFound, DeliveryNotFound, _NotFound) as exc:
            return self._error(404, str(exc), as_json)
        except StoreBusy as exc:
            return self._error(503, str(exc), as_json, (("Retry-After", "1"),))
        except ValueError as exc:  # InvalidArgument and the store's other argument errors
            if isinstance(exc, ChimewayError):
                return self._error(400, str(exc), as_json)
            return self._failure(exc, as_json)
        except StorageError as exc:
            LOG.error("the store could not be read: %s", exc)
            return self._error(500, f"the store could not be read: {exc}", as_json)
        except ChimewayError as exc:  # a damaged row: its message names it, without values
            LOG.error("the inspector could not read a page: %s", exc)
            return self._error(500, str(exc), as_json)
        except Exception as exc:
            return self._failure(exc, as_json)

    def _page(self, path: str, query: str) -> Page:
        segments = _segments(path)
        store, scope = self.store, self.scope
        if segments == [""]:
            found = parameters(query, RunsQuery.NAMES)
            wants_json(found)
            return documents.runs_page(store, RunsQuery.read(found), scope)
        if segments == ["outbox"]:
            found = parameters(query, OutboxQuery.NAMES)
            wants_json(found)
            return documents.outbox_page(store, OutboxQuery.read(found), scope)
        if segments == ["due"]:
            found = parameters(query, DueQuery.NAMES)
            wants_json(found)
            return documents.due_page(store, DueQuery.read(found), scope)
        if len(segments) == 3 and segments[0] in ("runs", "deliveries") and all(segments[1:]):
            wants_json(parameters(query, ()))
            if segments[0] == "runs":
                return documents.run_page(store, segments[1], segments[2], scope)
            return documents.delivery_page(store, segments[1], segments[2], scope)
        raise _NotFound(path)

    def _failure(self, exc: BaseException, as_json: bool) -> Response:
        LOG.error("the inspector failed on a request", exc_info=exc)
        return self._error(500, "the inspector failed; its log says why", as_json)

    def _error(
        self,
        status: int,
        message: str,
        as_json: bool,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        reason = _REASONS.get(status, "Error")
        if status == 405:
            headers = (*headers, ("Allow", "GET, HEAD"))
        if as_json:
            body = json.dumps({"error": reason, "status": status, "message": message}) + "\n"
            return Response(status, _JSON, body.encode("utf-8"), headers)
        try:
            now = self.store.clock.now()
        except Exception:  # a clock that fails must not hide the error being reported
            now = datetime.now().astimezone()
        html = render_error(status, reason, message, store_label=self.store_label, now=now)
        return Response(status, _HTML, html.encode("utf-8"), headers)


def _loose_pairs(query: str) -> list[tuple[str, str]]:
    # Only to choose the format of an error: the strict reading is queries.parameters.
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=100)
    except ValueError:
        return []


class _Handler(BaseHTTPRequestHandler):
    """HTTP for :class:`Inspector`: GET and HEAD answered, other methods refused."""

    server: InspectorServer
    protocol_version = "HTTP/1.1"
    server_version = "chimeway-lite-ui"
    sys_version = ""
    timeout = 30  # seconds a connection may sit idle or half-sent

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _refuse(self) -> None:
        self.close_connection = True  # its body, if any, is never read
        self._answer(head=False)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _refuse

    def _answer(self, *, head: bool) -> None:
        response = self.server.inspector.respond(self.command, self.path, self.headers.get("Host"))
        self.send_response(response.status)
        for name, value in (*SECURITY_HEADERS, *response.headers):
            self.send_header(name, value)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            try:
                self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            line = f"{self.address_string()} - {format % args}"
            # A request line is the client's text: terminal controls in it are shown escaped.
            sys.stderr.write(listing.showable(line) + "\n")


class InspectorServer(ThreadingHTTPServer):
    """A threading HTTP server of one :class:`Inspector`; ``url`` is where it listens."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], inspector: Inspector, *, quiet: bool = False):
        self.inspector = inspector
        self.quiet = quiet
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The base address, e.g. ``http://127.0.0.1:8765``."""
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}"


def make_server(
    store: Store,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    tenant: str | None = None,
    quiet: bool = False,
) -> InspectorServer:
    """A server of the inspector over ``store`` at ``host:port`` (port 0: any free one),
    limited to ``tenant`` when given; call ``serve_forever()`` on it."""
    inspector = Inspector(store, scope=tenant, local_only=is_loopback(host))
    return InspectorServer((host, port), inspector, quiet=quiet)
