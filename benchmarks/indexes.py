"""Every index of ``schema.sql``, the named query it serves and that query's plan.

    python benchmarks/indexes.py              # a text listing
    python benchmarks/indexes.py --markdown   # the table of benchmarks/README.md

Each index (the ones ``CREATE INDEX`` makes and those of ``UNIQUE`` constraints) is named
here with one statement of the backend that reads through it, taken from the module that runs
it (``runs``, ``outbox``, ``definitions``, ``gates``, ``upkeep``), and ``EXPLAIN QUERY PLAN``
of that statement on a store with the current schema. An index is paid for by every write of
its table, so one that no statement reads is a cost without a use:
``tests/test_benchmarks.py`` fails when an index of the schema is missing here or when its
query's plan does not use it. Primary keys are not listed: they are the rows' identity.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chimeway_lite import Store
from chimeway_lite.backends.sqlite import definitions, gates, outbox, runs, upkeep


def _forget(table: str) -> str:
    return dict(upkeep._FORGET)[table]


@dataclass(frozen=True)
class Use:
    """One index and the statement that reads through it."""

    index: str
    query: str  # module.CONSTANT, and what it is for
    what: str
    sql: str


USES: tuple[Use, ...] = (
    Use(
        "sqlite_autoindex_workflow_definitions_2",
        "definitions._DEFINITION_ID",
        "a definition by key and version (trigger, upsert_definition)",
        definitions._DEFINITION_ID,
    ),
    Use(
        "sqlite_autoindex_workflow_steps_2",
        "definitions._STEP_BY_KEY",
        "a step by key (a progression's next step)",
        definitions._STEP_BY_KEY,
    ),
    Use(
        "sqlite_autoindex_workflow_steps_3",
        "definitions._STEPS",
        "a definition's steps in order",
        definitions._STEPS,
    ),
    Use(
        "sqlite_autoindex_notifications_2",
        "outbox._NOTIFICATION_BY_KEY",
        "the idempotency read of trigger",
        outbox._NOTIFICATION_BY_KEY,
    ),
    Use(
        "notifications_by_recipient",
        "runs._AWAITING_ACTOR_SIGNAL",
        "route_signal with an actor",
        runs._AWAITING_ACTOR_SIGNAL,
    ),
    Use(
        "notifications_by_correlation",
        "runs._AWAITING_KEYED_SIGNAL",
        "route_signal by correlation key",
        runs._AWAITING_KEYED_SIGNAL,
    ),
    Use(
        "sqlite_autoindex_workflow_runs_2",
        "runs._RUN_OF_NOTIFICATION",
        "a notification's run (one per notification)",
        runs._RUN_OF_NOTIFICATION,
    ),
    Use(
        "workflow_runs_waiting_by_tenant",
        "runs._AWAITING_SIGNAL",
        "route_signal without an actor: the tenant's waiting runs",
        runs._AWAITING_SIGNAL,
    ),
    Use(
        "workflow_runs_waiting_due",
        "runs.DUE_RUNS",
        "the due sweep: waiting runs by due time",
        runs.DUE_RUNS,
    ),
    Use(
        "workflow_runs_signal_settle",
        "runs.DUE_RUNS",
        "the due sweep: runs a signal resumed",
        runs.DUE_RUNS,
    ),
    Use(
        "workflow_runs_active_by_tenant",
        "upkeep._PRUNE_MARKS",
        "prune: the earliest step entry of the tenant's active runs",
        upkeep._PRUNE_MARKS,
    ),
    Use(
        "workflow_runs_finished",
        "upkeep._FINISHED_BEFORE",
        "prune: the oldest finished runs, a chunk at a time",
        upkeep._FINISHED_BEFORE,
    ),
    Use(
        "deliveries_claimable",
        "outbox._CLAIM",
        "claim_deliveries: pending deliveries due",
        outbox._CLAIM,
    ),
    Use(
        "deliveries_leased",
        "outbox._CLAIM",
        "claim_deliveries: leases that ran out",
        outbox._CLAIM,
    ),
    Use(
        "deliveries_by_run_step",
        "outbox._ANCHOR",
        "a progression's anchor delivery (record_outcome, the sweep, explain)",
        outbox._ANCHOR,
    ),
    Use(
        "deliveries_by_notification",
        "outbox._FIRST_DELIVERY",
        "trigger's repeated call: the first delivery of the notification",
        outbox._FIRST_DELIVERY,
    ),
    Use(
        "workflow_transitions_by_run",
        "runs._TRANSITIONS",
        "a run's trace (explain, timeline)",
        runs._TRANSITIONS,
    ),
    Use(
        "delivery_events_by_delivery",
        "outbox._EVENTS",
        "a delivery's attempt history",
        outbox._EVENTS,
    ),
    Use(
        "signals_by_tenant_actor",
        "upkeep._FORGET (signals)",
        "forget: the signals of a tenant or recipient",
        _forget("signals"),
    ),
    Use(
        "signal_marks_by_event",
        "runs._EARLIEST_MARK_OF_ONE",
        "a wait's early signal (a wait on one event)",
        runs._EARLIEST_MARK_OF_ONE,
    ),
    Use(
        "signal_marks_by_event",
        "runs._EARLIEST_MARK",
        "a wait's early signal (a wait on several events)",
        runs._EARLIEST_MARK,
    ),
    Use(
        "step_activations_by_group",
        "gates._RECENT",
        "a throttle's count in its window",
        gates._RECENT,
    ),
    Use(
        "step_activations_by_time",
        "gates._PRUNE_ACTIVATIONS",
        "prune: activations older than any window",
        gates._PRUNE_ACTIVATIONS,
    ),
    Use(
        "digest_batches_open",
        "gates._OPEN_BATCH",
        "a digest's open batch of the group",
        gates._OPEN_BATCH,
    ),
    Use(
        "digest_batches_by_delivery",
        "gates._DIGEST_MEMBERS",
        "the runs a digest delivery speaks for",
        gates._DIGEST_MEMBERS,
    ),
    Use(
        "digest_batches_by_recipient",
        "upkeep._FORGET (digest_batches)",
        "forget: the batches of a tenant or recipient",
        _forget("digest_batches"),
    ),
    Use(
        "digest_members_by_batch",
        "gates._MEMBERS",
        "a closing batch's waiting runs in join order",
        gates._MEMBERS,
    ),
    Use(
        "digest_members_by_run",
        "gates._BATCH_OF_RUN",
        "the open batch a run is in (cancel, prune)",
        gates._BATCH_OF_RUN,
    ),
)

_PARAM = re.compile(r":([a-z_]+)")


def schema_indexes(conn: sqlite3.Connection) -> dict[str, str]:
    """Every index of the schema but the primary keys: name -> ``table (columns)``."""
    found = {}
    tables = [
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not str(r[0]).startswith("sqlite_")
    ]
    for table in tables:
        for _, name, _, origin, _ in conn.execute(f"PRAGMA index_list({table})"):
            if origin == "pk":
                continue
            sql = conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
            ).fetchone()[0]
            if sql:
                columns = str(sql).split(" ON ", 1)[1].split(" ", 1)[1]
            else:
                named = [str(c[2]) for c in conn.execute(f"PRAGMA index_info({name})")]
                columns = f"UNIQUE ({', '.join(named)})"
            found[name] = f"{table} {' '.join(columns.split())}"
    return found


def plan(conn: sqlite3.Connection, sql: str) -> list[str]:
    """``EXPLAIN QUERY PLAN`` of ``sql``, every parameter bound (plans do not depend on the
    values: SQLite plans a statement before it binds)."""
    params = dict.fromkeys(_PARAM.findall(sql), "x")
    return [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def uses_index(lines: list[str], index: str) -> bool:
    """True when a plan reads through ``index``."""
    return any(re.search(rf"\bINDEX {re.escape(index)}\b", line) for line in lines)


def check(conn: sqlite3.Connection) -> list[str]:
    """What is wrong: indexes of the schema with no query here, queries for indexes the schema
    does not have, and queries whose plan does not use their index."""
    indexes = schema_indexes(conn)
    named = {u.index for u in USES}
    problems = [f"{name}: no query named for it" for name in sorted(set(indexes) - named)]
    problems += [f"{name}: not in the schema" for name in sorted(named - set(indexes))]
    for use in USES:
        if use.index in indexes and not uses_index(plan(conn, use.sql), use.index):
            problems.append(f"{use.index}: the plan of {use.query} does not use it")
    return problems


def _store_connection(folder: str) -> sqlite3.Connection:
    path = str(Path(folder) / "plans.db")
    Store(path).close()  # the schema exactly as the store makes it
    return sqlite3.connect(path)


def main(argv: list[str] | None = None) -> int:
    """Print the listing; exit status 1 when :func:`check` finds a problem."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="the README's table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        conn = _store_connection(folder)
        indexes = schema_indexes(conn)
        if args.markdown:
            print("| index | on | serves | query | `EXPLAIN QUERY PLAN` (the index's lines) |")
            print("|---|---|---|---|---|")
        for use in USES:
            lines = plan(conn, use.sql)
            mine = [line for line in lines if uses_index([line], use.index)]
            if args.markdown:
                shown = "<br>".join(f"`{line}`" for line in mine) or "**not used**"
                print(
                    f"| `{use.index}` | `{indexes.get(use.index, '?')}` | {use.what} | "
                    f"`{use.query}` | {shown} |"
                )
            else:
                print(f"{use.index}  [{indexes.get(use.index, '?')}]")
                print(f"  serves {use.query}: {use.what}")
                for line in lines:
                    print(f"    {line}")
        problems = check(conn)
        conn.close()
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
