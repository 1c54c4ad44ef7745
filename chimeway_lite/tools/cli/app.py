"""The command line: ``chimeway-lite [--db PATH] [--json] COMMAND``.

Every command takes ``--db`` (default ``./chimeway.db``, or ``$CHIMEWAY_DB``) and ``--json``,
before the command name or after it. Only ``demo`` creates a store file: the other commands
refuse a path where no file exists, so a mistyped path is an error, not a new empty store.

Exit codes: 0 done; 1 an error (no such store, run not found, invalid input, store busy …),
printed as one line on stderr — with ``--json``, as ``{"error": KIND, "message": TEXT}`` —
and never as a traceback; 2 a usage error (click's own); 3 ``verify`` found problems.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import signal as signals
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import attrs
import click

from ...core.clock import Clock, FakeClock
from ...core.errors import ChimewayError
from ...core.records import Progress, RunExplanation, RunState, Signal
from ...core.text import duration_text
from ...store import Store
from .. import demo as demo_journey
from .. import listing, timeline

DEFAULT_DB = "chimeway.db"
ENV_DB = "CHIMEWAY_DB"
EXIT_ERROR = 1
EXIT_PROBLEMS = 3
#: The shortest pause of ``tick --watch`` when a run stays due after a sweep (it backs off,
#: doubling up to ``--max-sleep``), so that a run the sweep cannot move is no busy loop.
MIN_SLEEP = 1.0


@attrs.frozen
class Settings:
    """The options every command shares."""

    db: str
    as_json: bool


class CliError(click.ClickException):
    """An expected failure: one line on stderr (JSON with ``--json``), exit code 1."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, as_json: bool, kind: str = "error") -> None:
        super().__init__(message)
        self.as_json = as_json
        self.kind = kind

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the message on stderr."""
        if self.as_json:
            text = json.dumps({"error": self.kind, "message": self.message}, ensure_ascii=False)
        else:
            text = f"error: {self.message}"
        click.echo(text, err=True)


def _sleep(seconds: float) -> None:
    # One indirection, so that tests replace the pause of `tick --watch` without real time.
    time.sleep(seconds)


# -- the group and the options every command shares ------------------------------------------

_DB_HELP = f"The store file (default ./{DEFAULT_DB}, or ${ENV_DB})."
_JSON_HELP = "Print JSON instead of text."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db", metavar="PATH", envvar=ENV_DB, default=DEFAULT_DB, help=_DB_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.version_option(package_name="chimeway-lite", prog_name="chimeway-lite")
@click.pass_context
def cli(ctx: click.Context, db: str, as_json: bool) -> None:
    """chimeway-lite: durable, explainable notification journeys in one SQLite file.

    Start with `chimeway-lite demo`, then look at its runs with `runs`, `explain`,
    `traces` and `timeline`.
    """
    ctx.obj = Settings(db, as_json)


def command(*args: Any, **kwargs: Any) -> Callable[[Callable[..., None]], click.Command]:
    """A command of :func:`cli` that also takes ``--db`` and ``--json``, receives the
    resolved :class:`Settings` first, and turns ChimewayError into :class:`CliError`."""

    def decorate(function: Callable[..., None]) -> click.Command:
        @functools.wraps(function)
        def run(*positional: Any, db: str | None, as_json: bool, **named: Any) -> None:
            group = click.get_current_context().find_object(Settings)
            outer = group if group is not None else Settings(DEFAULT_DB, False)
            settings = Settings(db if db is not None else outer.db, as_json or outer.as_json)
            try:
                function(settings, *positional, **named)
            except ChimewayError as exc:
                raise CliError(
                    str(exc), as_json=settings.as_json, kind=type(exc).__name__
                ) from None

        run = click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)(run)
        run = click.option("--db", "db", metavar="PATH", default=None, help=_DB_HELP)(run)
        made: click.Command = cli.command(*args, **kwargs)(run)
        return made

    return decorate


@contextmanager
def _open(
    settings: Settings, *, create: bool = False, clock: Clock | None = None
) -> Iterator[Store]:
    if not create and not os.path.isfile(settings.db):
        what = "is a directory" if os.path.isdir(settings.db) else "does not exist"
        raise CliError(
            f"no store at {settings.db!r}: the path {what} (pass --db PATH or set "
            f"${ENV_DB}; `chimeway-lite demo` creates a store with example runs)",
            as_json=settings.as_json,
            kind="StoreNotFound",
        )
    with Store(settings.db, clock=clock) as store:
        yield store


def _emit_json(value: Any) -> None:
    click.echo(listing.to_json(value))


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat()


def _context_text(context: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(context.items())) or "-"


def _trace_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        moved = f"{row['from_state'] or '-'} -> {row['to_state']}"
        at = row["inserted_at"].replace("T", " ")[:19]
        lines.append(
            f"#{row['seq']:<5} {at}  {moved:<20} {row['reason']:<31} "
            f"step={row['step_key'] or '-'}  {_context_text(row['context'])}"
        )
    return lines


def _explanation_lines(e: RunExplanation) -> list[str]:
    due = "-"
    if e.due_at is not None:
        due = f"{_time(e.due_at)} -> step {e.next_step!r}"
    anchor = "-"
    if e.anchor_delivery_id is not None:
        status = e.anchor_delivery_status.value if e.anchor_delivery_status else "?"
        anchor = f"{e.anchor_delivery_id} ({status})"
    last = "-"
    if e.last_transition is not None:
        t = e.last_transition
        last = f"#{t.seq} {t.reason} at {_time(t.inserted_at)}; {_context_text(t.context)}"
    pairs = [
        ("run", e.id),
        ("tenant", e.tenant_id),
        ("workflow", f"{e.workflow_key} v{e.workflow_version}"),
        ("state", f"{e.state.value} ({e.status_reason})"),
        ("step", f"{e.current_step_order}. {e.current_step_name} (channel {e.current_channel})"),
        ("anchor", anchor),
        ("due", due),
        ("signals", ", ".join(e.pending_signals) or "-"),
        ("terminal", e.terminal_reason or "-"),
        ("started", _time(e.started_at)),
        ("changed", _time(e.last_transition_at)),
        ("last", last),
        ("why", e.why),
        ("next", e.next_move),
    ]
    return [f"{name:<9}{value}" for name, value in pairs]


# -- demo ------------------------------------------------------------------------------------


@command(short_help="Run the escalation journey and explain it.")
def demo(settings: Settings) -> None:
    """Run the escalation journey on a fake clock and show why each run ended where it did.

    Writes into the --db file (created if missing). Each run of the demo adds two runs with
    fresh idempotency keys, so it can run again on the same file.
    """
    clock = FakeClock(demo_journey.START)
    created = not os.path.exists(settings.db)
    with _open(settings, create=True, clock=clock) as store:
        result = demo_journey.run_demo(store, clock)
        runs = [
            (
                run,
                store.explain(result.tenant_id, run.run_id),
                listing.trace_rows(store, result.tenant_id, run.run_id),
            )
            for run in result.runs
        ]
    if settings.as_json:
        _emit_json(
            {
                "db": settings.db,
                "created": created,
                "tenant_id": result.tenant_id,
                "story": [{"at": at, "text": text} for at, text in result.narration],
                "runs": [
                    {
                        "recipient": run.recipient,
                        "run_id": run.run_id,
                        "idempotency_key": run.idempotency_key,
                        "explanation": explanation,
                        "trace": trace,
                    }
                    for run, explanation, trace in runs
                ],
            }
        )
        return
    keys = ", ".join(run.idempotency_key for run, _, _ in runs)
    where = "a new file" if created else "an existing file"
    echo = click.echo
    echo("The escalation journey: in-app now; email after 2 h unless read; email at once if")
    echo("the in-app message bounces.")
    echo(f"Store: {settings.db} ({where}); fresh idempotency keys {keys}.")
    echo(f"Clock: a fake clock from {_time(demo_journey.START)}; nothing sleeps.")
    echo("")
    for at, text in result.narration:
        echo(f"  {at.strftime('%H:%M')}  {text}")
    for run, explanation, trace in runs:
        echo("")
        echo(f"{run.recipient}'s run {run.run_id}")
        for line in _explanation_lines(explanation)[3:]:
            echo(f"  {line}")
        echo("  trace")
        for line in _trace_lines(trace):
            echo(f"    {line}")
    db = shlex.quote(settings.db)
    bob = runs[-1][0].run_id
    echo("")
    echo("Try next:")
    echo(f"  chimeway-lite --db {db} runs --tenant {result.tenant_id}")
    echo(f"  chimeway-lite --db {db} explain {result.tenant_id} {bob}")
    echo(f"  chimeway-lite --db {db} timeline {result.tenant_id} {bob} --out journey.svg")


# -- inspection ------------------------------------------------------------------------------


@command(short_help="Why a run is where it is, and what moves it next.")
@click.argument("tenant")
@click.argument("run_id", metavar="RUN")
def explain(settings: Settings, tenant: str, run_id: str) -> None:
    """Why run RUN of TENANT is where it is, and what would move it next."""
    with _open(settings) as store:
        explanation = store.explain(tenant, run_id)
    if settings.as_json:
        _emit_json(explanation)
    else:
        click.echo("\n".join(_explanation_lines(explanation)))


_CSV_HELP = "Print CSV (with a header row) instead of text."


@command(short_help="A run's trace: each decision and its evidence.")
@click.argument("tenant")
@click.argument("run_id", metavar="RUN")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N rows.")
@click.option("--csv", "as_csv", is_flag=True, help=_CSV_HELP)
def traces(settings: Settings, tenant: str, run_id: str, limit: int | None, as_csv: bool) -> None:
    """The trace of run RUN of TENANT: every decision with its evidence, in order."""
    _one_format(settings, as_csv)
    with _open(settings) as store:
        rows = listing.trace_rows(store, tenant, run_id, limit=limit)
    if settings.as_json:
        _emit_json(rows)
    elif as_csv:
        click.echo(listing.to_csv(rows, listing.TRACE_COLUMNS), nl=False)
    elif rows:
        click.echo("\n".join(_trace_lines(rows)))
    else:
        click.echo("no trace rows")


@command()
@click.option("--tenant", default=None, help="Only runs of this tenant.")
@click.option(
    "--state", type=click.Choice([s.value for s in RunState]), default=None, help="Only this state."
)
@click.option(
    "--limit", type=click.IntRange(min=0), default=100, show_default=True, help="At most N runs."
)
@click.option("--csv", "as_csv", is_flag=True, help=_CSV_HELP)
def runs(
    settings: Settings, tenant: str | None, state: str | None, limit: int, as_csv: bool
) -> None:
    """Runs, most recently changed first."""
    _one_format(settings, as_csv)
    with _open(settings) as store:
        rows = listing.run_rows(store, tenant_id=tenant, state=state, limit=limit)
    if settings.as_json:
        _emit_json(rows)
        return
    if as_csv:
        click.echo(listing.to_csv(rows, listing.RUN_COLUMNS), nl=False)
        return
    if not rows:
        click.echo("no runs")
        return
    click.echo(f"{'run':<36}  {'tenant':<12} {'state':<9} {'step':<12} {'changed':<19}  reason")
    for row in rows:
        due = f", due {row['suspended_until'][:19]}" if row["suspended_until"] else ""
        click.echo(
            f"{row['id']:<36}  {row['tenant_id']:<12} {row['state']:<9} "
            f"{row['current_step']:<12} {row['last_transition_at'].replace('T', ' ')[:19]}  "
            f"{row['terminal_reason'] or row['status_reason']}{due}"
        )


@command()
def tables(settings: Settings) -> None:
    """The tables of the store file with their row counts and columns."""
    with _open(settings) as store:
        rows = listing.table_rows(store)
    if settings.as_json:
        _emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['table']:<22} {row['count']:>8} rows  {', '.join(row['columns'])}")


def _one_format(settings: Settings, as_csv: bool) -> None:
    if settings.as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")


# -- signals and the due sweep -----------------------------------------------------------------


@command("signal", short_help="Send a signal to a tenant's waiting runs.")
@click.argument("tenant")
@click.argument("event")
@click.option("--actor", default=None, help="Only runs whose recipient is this actor.")
@click.option("--dry-run", is_flag=True, help="Only show which runs it would resume.")
def signal_command(
    settings: Settings, tenant: str, event: str, actor: str | None, dry_run: bool
) -> None:
    """Send signal EVENT to TENANT's waiting runs (recorded, then routed in one transaction)."""
    with _open(settings) as store:
        candidate = Signal(tenant, event, actor_id=actor)
        if dry_run:
            run_ids = store.preview_signal(candidate)
            signal_id = None
        else:
            stored, resumed = store.track_signal(candidate)
            run_ids, signal_id = list(resumed), stored.id
    if settings.as_json:
        _emit_json(
            {
                "tenant_id": tenant,
                "event_name": event,
                "actor_id": actor,
                "dry_run": dry_run,
                "signal_id": signal_id,
                "run_ids": run_ids,
            }
        )
        return
    count = f"{len(run_ids)} run" + ("" if len(run_ids) == 1 else "s")
    if dry_run:
        click.echo(f"dry run: signal {event!r} would resume {count}; nothing was written")
    else:
        click.echo(f"signal {event!r} recorded ({signal_id}); resumed {count}")
    for run_id in run_ids:
        click.echo(f"  {run_id}")
    if run_ids and not dry_run:
        click.echo("resumed runs complete (cancelled_by_signal) at the next `chimeway-lite tick`")


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO-8601 time such as 2026-01-05T11:30:00+00:00",
            param_hint="--now",
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _progress_row(store: Store, progress: Progress) -> dict[str, Any]:
    return {
        "run_id": progress.run.id,
        "tenant_id": progress.run.tenant_id,
        "kind": progress.kind.value,
        "reason": progress.reason,
        "state": progress.run.state.value,
        "step": store.get_current_step(progress.run).step_key,
        "planned_deliveries": [{"id": d.id, "channel": d.channel} for d in progress.deliveries],
    }


def _sweep(store: Store, settings: Settings, now: datetime | None) -> int:
    at = store.clock.now() if now is None else now
    moved = [_progress_row(store, p) for p in store.progress_due_runs(now=at)]
    if settings.as_json:
        # One JSON object per sweep, on one line (JSON Lines with --watch).
        click.echo(json.dumps(listing.plain({"at": at, "progressed": moved})))
    elif not moved:
        click.echo(f"{_time(at)}  nothing due")
    else:
        click.echo(f"{_time(at)}  {len(moved)} run{'' if len(moved) == 1 else 's'} progressed")
        for row in moved:
            click.echo(
                f"  {row['run_id']}  tenant={row['tenant_id']}  {row['kind']} -> "
                f"{row['state']} on step {row['step']!r} ({row['reason']})"
            )
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
    now = _parse_now(now_text)
    if watch and now is not None:
        raise click.UsageError("--now cannot be combined with --watch")
    with _open(settings) as store:
        if not watch:
            _sweep(store, settings, now)
            return
        previous = signals.signal(signals.SIGTERM, _raise_interrupt)
        try:
            _watch(store, settings, max_sleep=max_sleep, cycles=cycles)
        except KeyboardInterrupt:
            click.echo("stopped", err=True)
        finally:
            signals.signal(signals.SIGTERM, previous)


def _watch(store: Store, settings: Settings, *, max_sleep: float, cycles: int | None) -> None:
    backoff = MIN_SLEEP
    done = 0
    while True:
        _sweep(store, settings, None)
        done += 1
        if cycles is not None and done >= cycles:
            return
        next_due = store.next_due_at()
        pause, backoff = pause_after_sweep(
            store.clock.now(), next_due, backoff=backoff, max_sleep=max_sleep
        )
        if not settings.as_json:
            target = "nothing waiting" if next_due is None else f"next due {_time(next_due)}"
            length = f"{pause:.3g} s" if pause < 60 else duration_text(pause)
            click.echo(f"  {target}; sleeping {length}")
        _sleep(pause)


# -- integrity and pictures ------------------------------------------------------------------


@command(short_help="Check the store; exit 3 on problems.")
def verify(settings: Settings) -> None:
    """Check the store (each run's trace against its row, integrity); exit 3 on problems."""
    with _open(settings) as store:
        problems = store.verify()
    if settings.as_json:
        _emit_json({"db": settings.db, "ok": not problems, "problems": problems})
    elif problems:
        click.echo(f"{len(problems)} problem{'' if len(problems) == 1 else 's'} found:")
        for problem in problems:
            click.echo(f"  - {problem}")
    else:
        click.echo(f"ok: no problems found in {settings.db}")
    if problems:
        click.get_current_context().exit(EXIT_PROBLEMS)


@command("timeline", short_help="Draw a run as an SVG (or HTML) picture.")
@click.argument("tenant")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="The file to write (- for stdout).",
)
@click.option(
    "--format",
    "kind",
    type=click.Choice(["svg", "html"]),
    default=None,
    help="svg or html (default: from the file name; svg).",
)
def timeline_command(
    settings: Settings, tenant: str, run_id: str, out: str, kind: str | None
) -> None:
    """Draw run RUN of TENANT as a self-contained SVG (or HTML) picture."""
    if kind is None:
        kind = "html" if out.lower().endswith((".html", ".htm")) else "svg"
    with _open(settings) as store:
        picture = timeline.collect(store, tenant, run_id)
    text = timeline.render_html(picture) if kind == "html" else timeline.render_svg(picture)
    if out == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"cannot write {out!r}: {exc.strerror}", as_json=settings.as_json, kind="OSError"
        ) from None
    size = len(text.encode())
    if settings.as_json:
        _emit_json({"path": out, "format": kind, "bytes": size, "events": len(picture.transitions)})
    else:
        click.echo(
            f"wrote {out} ({kind}, {size} bytes): {len(picture.transitions)} trace rows, "
            f"final state {picture.explanation.state.value}"
        )


def main() -> None:
    """The console script ``chimeway-lite``."""
    cli(prog_name="chimeway-lite")


if __name__ == "__main__":
    main()
