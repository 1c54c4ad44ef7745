"""``chimeway-lite ui``: serve the read-only web inspector (:mod:`chimeway_lite.tools.ui`)."""

from __future__ import annotations

import json
import signal as signals
from typing import Any

import click

from ...core.arguments import optional_id
from ..ui import DEFAULT_HOST, DEFAULT_PORT, is_loopback, make_server, open_read_only
from .app import CliError, Settings, command, echo, require_store_file


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@command("ui", short_help="Serve a read-only web inspector of the store.")
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="The address to listen on. Anything but a loopback address lets other machines in.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="The port to listen on (0: any free port; the address is printed).",
)
@click.option("--tenant", default=None, help="Show this tenant only.")
def ui(settings: Settings, host: str, port: int, tenant: str | None) -> None:
    """Serve a read-only web inspector of the store: runs (filtered by tenant, recipient,
    state, workflow), each run with its explanation, timeline, deliveries and trace, the
    outbox, and what is due in the next hour. Every page is also JSON (?format=json).

    It never writes to the store and never shows payloads or trigger data. Stop it with
    Ctrl-C (or SIGTERM).
    """
    scope = optional_id(tenant, "--tenant")
    require_store_file(settings)
    with open_read_only(settings.db) as store:
        try:
            server = make_server(store, host, port, tenant=scope)
        except OSError as exc:
            raise CliError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                as_json=settings.as_json,
                kind="CannotListen",
            ) from None
        with server:
            url = server.url + "/"
            if settings.as_json:
                # One line, so that a caller can read the address as soon as it is printed.
                announcement = {"url": url, "db": settings.db, "tenant": scope, "read_only": True}
                echo(json.dumps(announcement, ensure_ascii=False))
            else:
                only = "" if scope is None else f", tenant {scope!r} only"
                echo(f"chimeway-lite ui: {url} on {settings.db} (read-only{only}); Ctrl-C stops it")
            if not is_loopback(host):
                echo(
                    f"warning: listening on {host}: anyone who can reach this machine can read "
                    "the store's runs",
                    err=True,
                )
            previous = signals.signal(signals.SIGTERM, _raise_interrupt)
            try:
                server.serve_forever(poll_interval=0.5)
            except KeyboardInterrupt:
                echo("stopped", err=True)
            finally:
                signals.signal(signals.SIGTERM, previous)
