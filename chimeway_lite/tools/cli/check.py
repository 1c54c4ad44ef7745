"""Integrity and pictures: ``verify`` and ``timeline``."""

from __future__ import annotations

from pathlib import Path

import click

from ... import verify_processes
from ...core.errors import InvalidArgument
from .. import timeline
from .app import (
    EXIT_PROBLEMS,
    CliError,
    Settings,
    command,
    echo,
    emit_json,
    open_store,
    parse_instant,
)

# -- integrity and pictures ------------------------------------------------------------------


@command(short_help="Check the store; exit 3 on problems.")
@click.option("--tenant", default=None, help="Check only this tenant's runs and deliveries.")
@click.option(
    "--since",
    "since_text",
    default=None,
    metavar="TIME",
    help="Check only the runs changed since TIME (ISO-8601; without an offset, UTC).",
)
@click.option(
    "--quick", is_flag=True, help="Skip SQLite's page-by-page integrity_check (the longest part)."
)
@click.option(
    "--workers",
    type=click.IntRange(1, verify_processes.MOST_WORKERS),
    default=1,
    show_default=True,
    help="Check the runs and deliveries in this many processes (one per CPU is a good start).",
)
def verify(
    settings: Settings, tenant: str | None, since_text: str | None, quick: bool, workers: int
) -> None:
    """Check the store (each run's trace against its row, integrity); exit 3 on problems.

    --tenant and --since narrow the checks of runs, deliveries and their history; the
    store-wide checks (the database's own, evidence, tenancy, definitions) always run.
    --workers shares the per-run checks out to worker processes: the same problems, sooner
    on a machine with CPUs to spare."""
    since = parse_instant(since_text, "--since")
    with open_store(settings) as store:
        try:
            problems = store.verify(tenant_id=tenant, since=since, quick=quick, workers=workers)
        except InvalidArgument as exc:  # a blank or oversize tenant: a usage error
            hint = "--workers" if exc.name == "workers" else "--tenant"
            raise click.BadParameter(exc.problem, param_hint=hint) from None
    if settings.as_json:
        emit_json({"db": settings.db, "ok": not problems, "problems": problems})
    elif problems:
        echo(f"{len(problems)} problem{'' if len(problems) == 1 else 's'} found:")
        for problem in problems:
            echo(f"  - {problem}")
    else:
        echo(f"ok: no problems found in {settings.db}")
    if problems:
        click.get_current_context().exit(EXIT_PROBLEMS)


@command("timeline", short_help="Draw a run as an SVG (or HTML) picture.")
@click.argument("tenant")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="The file to write: NAME.svg or NAME.html (- for stdout).",
)
@click.option(
    "--format",
    "kind",
    type=click.Choice(timeline.FORMATS),
    default=None,
    help="svg or html (default: from the file name; svg for stdout).",
)
def timeline_command(
    settings: Settings, tenant: str, run_id: str, out: str, kind: str | None
) -> None:
    """Draw run RUN of TENANT as a self-contained SVG (or HTML) picture."""
    try:
        kind = timeline.format_for(out, kind)
    except InvalidArgument as exc:  # a usage error: exit 2, nothing written
        raise click.BadParameter(exc.problem, param_hint=f"--{exc.name}") from None
    with open_store(settings) as store:
        picture = timeline.collect(store, tenant, run_id)
    text = timeline.render(picture, kind)
    if out == "-":
        echo(text, nl=False)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"cannot write {out!r}: {exc.strerror}", as_json=settings.as_json, kind="OSError"
        ) from None
    size = len(text.encode())
    if settings.as_json:
        emit_json({"path": out, "format": kind, "bytes": size, "events": len(picture.transitions)})
    else:
        echo(
            f"wrote {out} ({kind}, {size} bytes): {len(picture.transitions)} trace rows, "
            f"final state {picture.explanation.state.value}"
        )
