"""Signals and the due sweep: ``signal`` and ``tick`` (``--watch``)."""

from __future__ import annotations

import json
import signal as signals
from contextlib import closing
from datetime import datetime
from typing import Any

import click

from ...backends.wakeups import WorkListener
from ...core.errors import StoreBusy
from ...core.records import Progress, ProgressKind, Signal
from ...core.text import duration_text
from ...engine.explanation import why_of
from ...engine.operations import Reader
from ...store import Store
from .. import listing
from .app import Settings, command, echo, emit_json, open_store, parse_instant, time_text

#: The shortest pause of ``tick --watch`` when a run stays due after a sweep (it backs off,
#: doubling up to ``--max-sleep``), so that a run the sweep cannot move is no busy loop.
MIN_SLEEP = 1.0


def _sleep(seconds: float, listener: WorkListener) -> None:
    # One indirection, so that tests replace the pause of `tick --watch` without real time.
    # On the store's listener, a commit of new work by another process ends it early
    # (PostgreSQL: LISTEN/NOTIFY; SQLite's listener only sleeps).
    listener.wait(seconds)


# -- signals and the due sweep -----------------------------------------------------------------


@command("signal", short_help="Send a signal to a tenant's waiting runs.")
@click.argument("tenant")
@click.argument("event")
@click.option("--actor", default=None, help="Only runs whose recipient is this actor.")
@click.option(
    "--correlation-key",
    "correlation_key",
    default=None,
    help="Only runs of notifications triggered with this correlation key.",
)
@click.option("--dry-run", is_flag=True, help="Only show which runs it would resume.")
def signal_command(
    settings: Settings,
    tenant: str,
    event: str,
    actor: str | None,
    correlation_key: str | None,
    dry_run: bool,
) -> None:
    """Send signal EVENT to TENANT's waiting runs (recorded, then routed in one transaction).

    A run that waits for EVENT later in its current step counts it too (it came early)."""
    with open_store(settings) as store:
        candidate = Signal(tenant, event, actor_id=actor, correlation_key=correlation_key)
        if dry_run:
            run_ids = store.preview_signal(candidate)
            signal_id = None
        else:
            stored, resumed = store.track_signal(candidate)
            run_ids, signal_id = list(resumed), stored.id
    if settings.as_json:
        emit_json(
            {
                "tenant_id": tenant,
                "event_name": event,
                "actor_id": actor,
                "correlation_key": correlation_key,
                "dry_run": dry_run,
                "signal_id": signal_id,
                "run_ids": run_ids,
            }
        )
        return
    count = f"{len(run_ids)} run" + ("" if len(run_ids) == 1 else "s")
    if dry_run:
        echo(f"dry run: signal {event!r} would resume {count}; nothing was written")
    else:
        echo(f"signal {event!r} recorded ({signal_id}); resumed {count}")
    for run_id in run_ids:
        echo(f"  {run_id}")
    if run_ids and not dry_run:
        echo(
            "resumed runs complete (cancelled_by_signal) at the next `chimeway-lite tick`, "
            "or move on where an on_signal rule leads"
        )


@command("cancel", short_help="Stop a tenant's unfinished runs.")
@click.argument("tenant")
@click.option("--run", "run_id", default=None, help="This run.")
@click.option(
    "--correlation-key", "correlation_key", default=None, help="The runs of this correlation key."
)
@click.option("--recipient", default=None, help="The runs of this recipient.")
def cancel_command(
    settings: Settings,
    tenant: str,
    run_id: str | None,
    correlation_key: str | None,
    recipient: str | None,
) -> None:
    """Stop TENANT's unfinished runs that every given selector matches (at least one) and
    cancel their pending deliveries."""
    if run_id is None and correlation_key is None and recipient is None:
        raise click.UsageError("give at least one of --run, --correlation-key, --recipient")
    with open_store(settings) as store:
        stopped = store.cancel(
            tenant, run_id=run_id, correlation_key=correlation_key, recipient=recipient
        )
    if settings.as_json:
        emit_json({"tenant_id": tenant, "stopped": [run.id for run in stopped]})
        return
    echo(f"stopped {len(stopped)} run{'' if len(stopped) == 1 else 's'}")
    for run in stopped:
        echo(f"  {run.id}")


def _progress_row(view: Reader, progress: Progress) -> dict[str, Any]:
    """What one progression of the sweep did, whose run it was, and why (the sentence of
    its move in the machine's table)."""
    run = progress.run
    step = view.get_current_step(run).step_key
    return {
        "run_id": run.id,
        "tenant_id": run.tenant_id,
        "recipient": view.explain(run.tenant_id, run.id).recipient,
        "kind": progress.kind.value,
        "reason": progress.reason,
        "state": run.state.value,
        "terminal_reason": run.terminal_reason,
        "step": step,
        "why": why_of(run, step),
        "planned_deliveries": [{"id": d.id, "channel": d.channel} for d in progress.deliveries],
    }


def moved_text(row: dict[str, Any]) -> str:
    """What a progression did, in words: ``advanced to step 'email'``, ``completed on step
    'inapp' (cancelled_by_signal)``, ``waiting on step 'inapp'``; then its reason and the
    deliveries it planned."""
    kind, step = row["kind"], row["step"]
    if kind == ProgressKind.ADVANCED:
        text = f"advanced to step {step!r} ({row['reason']})"
    elif kind in (ProgressKind.COMPLETED, ProgressKind.STOPPED):
        text = f"{row['state']} on step {step!r} ({row['terminal_reason'] or row['reason']})"
    elif kind == ProgressKind.WAITING:
        text = f"waiting on step {step!r} ({row['reason']})"
    else:
        text = f"unchanged on step {step!r} ({row['reason']})"
    planned = row["planned_deliveries"]
    if planned:
        channels = ", ".join(d["channel"] for d in planned)
        text += (
            f"; planned {len(planned)} deliver{'y' if len(planned) == 1 else 'ies'} ({channels})"
        )
    return text


def _sweep(store: Store, settings: Settings, now: datetime | None) -> int:
    at = store.clock.now() if now is None else now
    progressed = store.progress_due_runs(now=at)
    with store.snapshot() as view:  # one read for the whole report
        moved = [_progress_row(view, p) for p in progressed]
    if settings.as_json:
        # One JSON object per sweep, on one line (JSON Lines with --watch).
        echo(json.dumps(listing.plain({"at": at, "progressed": moved})))
    elif not moved:
        echo(f"{time_text(at)}  nothing due")
    else:
        echo(f"{time_text(at)}  {len(moved)} run{'' if len(moved) == 1 else 's'} progressed")
        for row in moved:
            whose = f"{row['tenant_id']}/{row['recipient'] or '-'}"
            echo(f"  {row['run_id']}  {whose}  {moved_text(row)}")
            echo(f"      {row['why']}")
    return len(moved)


def pause_after_sweep(
    now: datetime, next_due: datetime | None, *, backoff: float, max_sleep: float
) -> tuple[float, float]:
    """How long ``tick --watch`` sleeps after a sweep, and the next backoff.

    Until the next due time (at most ``max_sleep``); nothing due: ``max_sleep``. A run still
    due right after a sweep is one the sweep cannot move (or one that just arrived): sleep
    ``backoff`` and double it for next time, so that it never turns into a busy loop.
    """
    if next_due is None:
        return max_sleep, MIN_SLEEP
    wait = (next_due - now).total_seconds()
    if wait > 0:
        return min(wait, max_sleep), MIN_SLEEP
    return min(backoff, max_sleep), min(backoff * 2, max_sleep)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@command(short_help="Progress the runs that are due.")
@click.option("--watch", is_flag=True, help="Repeat: sleep until the next due time, sweep again.")
@click.option("--now", "now_text", metavar="TIME", help="Sweep as if at this ISO-8601 time.")
@click.option(
    "--max-sleep",
    type=click.FloatRange(min=0.01),
    default=60.0,
    show_default=True,
    help="With --watch: never sleep longer than this (seconds), to pick up new runs.",
)
@click.option(
    "--cycles", type=click.IntRange(min=1), default=None, help="With --watch: stop after N sweeps."
)
def tick(
    settings: Settings, watch: bool, now_text: str | None, max_sleep: float, cycles: int | None
) -> None:
    """Progress every run that is due (waits that elapsed, runs a signal resumed)."""
    now = parse_instant(now_text, "--now")
    if watch and now is not None:
        raise click.UsageError("--now cannot be combined with --watch")
    with open_store(settings) as store:
        if not watch:
            _sweep(store, settings, now)
            return
        previous = signals.signal(signals.SIGTERM, _raise_interrupt)
        try:
            _watch(store, settings, max_sleep=max_sleep, cycles=cycles)
        except KeyboardInterrupt:
            echo("stopped", err=True)
        finally:
            signals.signal(signals.SIGTERM, previous)


def _watch(store: Store, settings: Settings, *, max_sleep: float, cycles: int | None) -> None:
    with closing(store.backend.listener()) as listener:
        _watch_on(store, settings, listener, max_sleep=max_sleep, cycles=cycles)


def _watch_on(
    store: Store,
    settings: Settings,
    listener: WorkListener,
    *,
    max_sleep: float,
    cycles: int | None,
) -> None:
    backoff = MIN_SLEEP
    done = 0
    while True:
        try:
            _sweep(store, settings, None)
        except StoreBusy as exc:
            # Another process held the lock for longer than busy_timeout: a moment's
            # contention, not a reason to stop watching.
            echo(f"warning: {exc}; sweeping again in {backoff:.3g} s", err=True)
            _sleep(backoff, listener)
            backoff = min(backoff * 2, max_sleep)
            continue
        done += 1
        if cycles is not None and done >= cycles:
            return
        next_due = store.next_due_at()
        pause, backoff = pause_after_sweep(
            store.clock.now(), next_due, backoff=backoff, max_sleep=max_sleep
        )
        if not settings.as_json:
            target = "nothing waiting" if next_due is None else f"next due {time_text(next_due)}"
            length = f"{pause:.3g} s" if pause < 60 else duration_text(pause)
            echo(f"  {target}; sleeping {length}")
        _sleep(pause, listener)
