"""``chimeway-lite demo``: the escalation journey on a fake clock, explained."""

from __future__ import annotations

import os
import shlex

import click

from ...core.clock import FakeClock
from .. import demo as demo_journey
from .. import listing
from .app import Settings, command, emit_json, open_store, time_text
from .inspection import explanation_lines, trace_lines


@command(short_help="Run the escalation journey and explain it.")
def demo(settings: Settings) -> None:
    """Run the escalation journey on a fake clock and show why each run ended where it did.

    Writes into the --db file (created if missing). Each run of the demo adds two runs with
    fresh idempotency keys, so it can run again on the same file.
    """
    clock = FakeClock(demo_journey.START)
    created = not os.path.exists(settings.db)
    with open_store(settings, create=True, clock=clock) as store:
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
        emit_json(
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
    echo(f"Clock: a fake clock from {time_text(demo_journey.START)}; nothing sleeps.")
    echo("")
    for at, text in result.narration:
        echo(f"  {at.strftime('%H:%M')}  {text}")
    for run, explanation, trace in runs:
        echo("")
        echo(f"{run.recipient}'s run {run.run_id}")
        for line in explanation_lines(explanation, len(trace))[4:]:
            echo(f"  {line}")
        echo("  trace")
        for line in trace_lines(trace):
            echo(f"    {line}")
    db = shlex.quote(settings.db)
    bob = runs[-1][0].run_id
    echo("")
    echo("Try next:")
    echo(f"  chimeway-lite --db {db} runs --tenant {result.tenant_id}")
    echo(f"  chimeway-lite --db {db} explain {result.tenant_id} {bob}")
    echo(f"  chimeway-lite --db {db} timeline {result.tenant_id} {bob} --out journey.svg")
