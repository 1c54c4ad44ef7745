"""Inspection commands: ``explain``, ``traces``, ``runs``, ``tables``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from ...core.records import RunExplanation, RunState
from .. import listing
from .app import Settings, command, context_text, echo, emit_json, open_store, time_text


def trace_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per trace row, as ``traces`` prints them: numbered within the run (``#1``,
    ``#2`` …; the store-wide ``seq`` is in ``--json`` and ``--csv``)."""
    lines = []
    for row in rows:
        moved = f"{row['from_state'] or '-'} -> {row['to_state']}"
        at = row["inserted_at"].replace("T", " ")[:19]
        number = f"#{row['number']}"
        lines.append(
            f"{number:<4} {at}  {moved:<20} {row['reason']:<31} "
            f"step={row['step_key'] or '-'}  {context_text(row['context'])}"
        )
    return lines


def explanation_lines(e: RunExplanation, trace_length: int | None = None) -> list[str]:
    """The explanation as ``name  value`` lines, as ``explain`` prints it; with the run's
    ``trace_length``, its last row is numbered within the run (``#6``), else by seq."""
    due = "-"
    if e.due_at is not None:
        due = f"{time_text(e.due_at)} -> step {e.next_step!r}"
    anchor = "-"
    if e.anchor_delivery_id is not None:
        status = e.anchor_delivery_status.value if e.anchor_delivery_status else "?"
        anchor = f"{e.anchor_delivery_id} ({status})"
    last = "-"
    if e.last_transition is not None:
        t = e.last_transition
        number = f"#{trace_length}" if trace_length else f"seq {t.seq}"
        last = f"{number} {t.reason} at {time_text(t.inserted_at)}; {context_text(t.context)}"
    pairs = [
        ("run", e.id),
        ("tenant", e.tenant_id),
        ("for", f"{e.recipient or '-'} (notification {e.notification_key or '-'})"),
        ("workflow", f"{e.workflow_key} v{e.workflow_version}"),
        ("state", f"{e.state.value} ({e.status_reason})"),
        ("step", f"{e.current_step_order}. {e.current_step_name} (channel {e.current_channel})"),
        ("anchor", anchor),
        ("due", due),
        ("signals", ", ".join(e.pending_signals) or "-"),
        ("terminal", e.terminal_reason or "-"),
        ("started", time_text(e.started_at)),
        ("changed", time_text(e.last_transition_at)),
        ("last", last),
        ("why", e.why),
        ("next", e.next_move),
    ]
    if e.path is not None and not e.state.is_terminal:  # a finished run's why tells it
        pairs.append(("path", e.path))
    return [f"{name:<9}{value}" for name, value in pairs]


# -- inspection ------------------------------------------------------------------------------


@command(short_help="Why a run is where it is, and what moves it next.")
@click.argument("tenant")
@click.argument("run_id", metavar="RUN")
def explain(settings: Settings, tenant: str, run_id: str) -> None:
    """Why run RUN of TENANT is where it is, and what would move it next."""
    with open_store(settings) as store, store.snapshot() as view:
        explanation = view.explain(tenant, run_id)
        length = len(view.list_traces(tenant, run_id))
    if settings.as_json:
        emit_json(explanation)
    else:
        echo("\n".join(explanation_lines(explanation, length)))


_CSV_HELP = "Print CSV (with a header row) instead of text."


@command(short_help="A run's trace: each decision and its evidence.")
@click.argument("tenant")
@click.argument("run_id", metavar="RUN")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N rows.")
@click.option("--csv", "as_csv", is_flag=True, help=_CSV_HELP)
def traces(settings: Settings, tenant: str, run_id: str, limit: int | None, as_csv: bool) -> None:
    """The trace of run RUN of TENANT: every decision with its evidence, in order."""
    _one_format(settings, as_csv)
    with open_store(settings) as store:
        rows = listing.trace_rows(store, tenant, run_id, limit=limit)
    if settings.as_json:
        emit_json(rows)
    elif as_csv:
        echo(listing.to_csv(rows, listing.TRACE_COLUMNS), nl=False)
    elif rows:
        echo("\n".join(trace_lines(rows)))
    else:
        echo("no trace rows")


@command()
@click.option("--tenant", default=None, help="Only runs of this tenant.")
@click.option("--recipient", default=None, help="Only runs of this recipient.")
@click.option(
    "--state", type=click.Choice([s.value for s in RunState]), default=None, help="Only this state."
)
@click.option(
    "--limit", type=click.IntRange(min=0), default=100, show_default=True, help="At most N runs."
)
@click.option("--csv", "as_csv", is_flag=True, help=_CSV_HELP)
def runs(
    settings: Settings,
    tenant: str | None,
    recipient: str | None,
    state: str | None,
    limit: int,
    as_csv: bool,
) -> None:
    """Runs, most recently changed first."""
    _one_format(settings, as_csv)
    with open_store(settings) as store:
        rows = listing.run_rows(
            store, tenant_id=tenant, state=state, limit=limit, recipient=recipient
        )
    if settings.as_json:
        emit_json(rows)
        return
    if as_csv:
        echo(listing.to_csv(rows, listing.RUN_COLUMNS), nl=False)
        return
    if not rows:
        echo("no runs")
        return
    echo(
        f"{'run':<36}  {'tenant':<12} {'recipient':<16} {'state':<9} {'step':<12} "
        f"{'changed':<19}  reason"
    )
    for row in rows:
        due = f", due {row['suspended_until'][:19]}" if row["suspended_until"] else ""
        echo(
            f"{row['id']:<36}  {row['tenant_id']:<12} {row['recipient']:<16} {row['state']:<9} "
            f"{row['current_step']:<12} {row['last_transition_at'].replace('T', ' ')[:19]}  "
            f"{row['terminal_reason'] or row['status_reason']}{due}"
        )


@command()
def tables(settings: Settings) -> None:
    """The tables of the store file with their row counts and columns."""
    with open_store(settings) as store:
        rows = listing.table_rows(store)
    if settings.as_json:
        emit_json(rows)
        return
    for row in rows:
        echo(f"{row['table']:<22} {row['count']:>8} rows  {', '.join(row['columns'])}")


def _one_format(settings: Settings, as_csv: bool) -> None:
    if settings.as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
