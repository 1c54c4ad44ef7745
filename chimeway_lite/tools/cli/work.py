"""Sending: ``work`` — a :class:`~chimeway_lite.tools.worker.Worker` on the senders a host
names as ``--senders module:attribute``."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import click

from ...core.text import duration_text
from .. import listing
from ..worker import Handled, Sender, Worker
from .app import CliError, Settings, command, echo, open_store, time_text

#: The exit code when a second SIGINT/SIGTERM abandons the delivery in hand (128 + SIGINT).
EXIT_INTERRUPTED = 130


class BadSenders(ValueError):
    """``--senders`` does not name a mapping of channels to callables."""


def load_senders(reference: str) -> dict[str, Sender]:
    """The senders ``reference`` (``module:attribute``) names: a mapping of channel to
    callable, or a callable that returns one. The attribute may be dotted
    (``module:obj.senders``); the module is imported with the current directory on
    ``sys.path``, as ``python -m`` would. BadSenders says what is wrong, in one line."""
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name.strip() or not attribute.strip():
        raise BadSenders(
            f"--senders must be MODULE:ATTRIBUTE (say, myapp.notify:SENDERS), got {reference!r}"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise BadSenders(
                f"cannot import {module_name!r} (--senders {reference!r}): no such module"
            ) from None
        raise BadSenders(_failed(f"importing {module_name!r}", exc)) from None
    except Exception as exc:
        raise BadSenders(_failed(f"importing {module_name!r}", exc)) from None
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise BadSenders(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(value, Mapping) and callable(value):
        try:
            value = value()
        except Exception as exc:
            raise BadSenders(_failed(f"calling {reference!r}", exc)) from None
    if not isinstance(value, Mapping):
        raise BadSenders(
            f"{reference!r} is not a mapping of channel to sender (got {type(value).__name__})"
        )
    if not value:
        raise BadSenders(f"{reference!r} maps no channel to a sender")
    for channel, sender in value.items():
        if not isinstance(channel, str) or not channel.strip():
            raise BadSenders(f"{reference!r}: a channel must be a non-blank string: {channel!r}")
        if not callable(sender):
            raise BadSenders(
                f"{reference!r}: the sender of channel {channel!r} is not callable "
                f"(got {type(sender).__name__})"
            )
    return dict(value)


def _failed(what: str, exc: Exception) -> str:
    first_line = str(exc).strip().splitlines()[:1]
    return f"{what} failed: {type(exc).__name__}" + (f": {first_line[0]}" if first_line else "")


def _chosen(
    senders: dict[str, Sender], channels: tuple[str, ...], reference: str
) -> dict[str, Sender]:
    if not channels:
        return senders
    for channel in channels:
        if channel not in senders:
            raise BadSenders(
                f"unknown channel {channel!r}: {reference!r} has senders for "
                + ", ".join(repr(c) for c in senders)
            )
    return {channel: senders[channel] for channel in dict.fromkeys(channels)}


def _pause_text(pause: float) -> str:
    return f"{pause:.3g} s" if pause < 60 else duration_text(pause)


def _show_pass(settings: Settings, at: Any, handled: Handled, pause: float | None) -> None:
    if settings.as_json:
        row = {"at": at, "deliveries": handled.deliveries, "runs": handled.runs, "pause": pause}
        echo(json.dumps(listing.plain(row)))  # one line per pass: JSON Lines
        return
    sent = f"{handled.deliveries} deliver{'y' if handled.deliveries == 1 else 'ies'}"
    runs = f"{handled.runs} run{'' if handled.runs == 1 else 's'}"
    tail = "" if pause is None else f"; sleeping {_pause_text(pause)}"
    echo(f"{time_text(at)}  sent {sent}, progressed {runs}{tail}")


@command(short_help="Send deliveries with your senders; sweep the due runs.")
@click.option(
    "--senders",
    "reference",
    required=True,
    metavar="MODULE:ATTRIBUTE",
    help="A mapping of channel to sender (or a callable returning one), e.g. myapp.notify:SENDERS.",
)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="C",
    help="Only this channel (repeat for several); default: every channel of --senders.",
)
@click.option(
    "--lease-seconds",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="How long a claim holds a delivery; it must outlast one send.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="At most this many deliveries (and due runs) per pass.",
)
@click.option(
    "--max-sleep",
    type=click.FloatRange(min=0.01),
    default=60.0,
    show_default=True,
    help="Never sleep longer than this (seconds), to pick up work other processes create.",
)
@click.option("--once", is_flag=True, help="One pass, then exit (for scripts and cron).")
def work(
    settings: Settings,
    reference: str,
    channels: tuple[str, ...],
    lease_seconds: int,
    batch_size: int,
    max_sleep: float,
    once: bool,
) -> None:
    """Claim the deliveries of your channels, send each with your sender, record its outcome,
    and progress the runs that are due; then sleep until there is work again. Ctrl-C or
    SIGTERM stops it after the delivery in hand."""
    try:
        senders = _chosen(load_senders(reference), channels, reference)
    except BadSenders as exc:
        raise CliError(str(exc), as_json=settings.as_json, kind="InvalidSenders") from None
    # The worker's warnings (a sender that raised, an outcome refused) reach stderr as one
    # line each, like every command's (see app.command).
    with open_store(settings) as store:
        worker = Worker(
            store,
            senders,
            lease_seconds=lease_seconds,
            batch_size=batch_size,
            max_sleep=max_sleep,
        )

        def on_pass(handled: Handled, pause: float | None) -> None:
            _show_pass(settings, store.clock.now(), handled, pause)

        try:
            if once:
                on_pass(worker.run_once(), None)
                return
            if not settings.as_json:
                echo(
                    f"working on {settings.db}: channel{'s' if len(senders) > 1 else ''} "
                    f"{', '.join(senders)} ({reference}); Ctrl-C stops"
                )
            worker.run(on_pass=on_pass)
        except KeyboardInterrupt:
            echo("interrupted: the delivery in hand is left to its lease", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        echo("stopped", err=True)
