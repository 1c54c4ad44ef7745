"""How near raw sqlite3 a direct trigger path that keeps the pure machine could come: the
question a rewrite of the hot paths (issue 16) has to answer first.

    python benchmarks/direct_path.py                 # 3,000 triggers per side, 7 rounds
    python benchmarks/direct_path.py -n 1000 --rounds 3
    python benchmarks/direct_path.py --smoke         # a few triggers, one round (the test)

Four sides trigger the escalation journey (``shapes.WORKFLOW``), one unit of work per
trigger, each on a new file of its own in the same directory, in alternating slices:

* ``engine`` — ``Store.trigger`` with the ``Workflow`` object, as ``run.py``'s trigger row;
* ``direct`` — a plain sqlite3 connection with the store's pragmas, and per trigger: the
  engine's own argument checks (``core.arguments``), the machine's decision
  (``machine.decide.start`` on the ``Journey`` of the registered definition) and the gate
  check a start makes (``decide.entering``), then the engine's eight statements — the
  definition-key check and the trace counter read included — with their parameters taken
  straight from the decision. What it leaves out is the Store, the unit of work and its
  executor, the writer gate, the ``Notification`` / ``Delivery`` records and the
  ``TriggerResult``; the step's key and retry limit come from a table made once per journey;
* ``direct, 6 statements`` — the same without those two statements: the trace's ``seq`` is
  left to AUTOINCREMENT (it counts on from the same place) and the definition's key is not
  checked. Between the two direct sides is what the two statements cost;
* ``raw`` — ``raw_side.RawStore.trigger``: the rows alone, no checks, no decision.

All four files must hold the same rows, value for value (``shapes.table_dump``, ids by
version and order): the direct path is a faithful prototype, not a cheaper imitation. The
table gives medians over the rounds of triggers per second, µs per trigger and the ratios.
No figure here is a target; compare within one run (benchmarks/README.md).

``--outcomes`` measures ``record_outcome`` the same way (the workers' case: an in-app
delivery reported succeeded, its run entering the wait). Every side starts from a copy of one
file holding ``-n`` triggered and claimed journeys, and reports each delivery once:

* ``engine`` — ``Store.record_outcome``;
* ``direct`` — a plain connection, the engine's checks, ``deliveries.record`` and
  ``decide.progress`` on records read with the backend's converter, and the engine's own 12
  statements (its SQL constants; counted as for the trigger, ``BEGIN`` and ``COMMIT``
  included): the delivery, the run, the delivery's update and event, the run's anchor, the
  recipient's address, the early-signal mark, the run's update, the trace counter and the
  trace row;
* ``direct, 10 statements`` — the same with the address joined into the run's read and the
  trace's ``seq`` left to AUTOINCREMENT;
* ``raw`` — ``raw_side.RawStore.succeeded``, 8 statements: ``UPDATE … RETURNING``, the
  address joined, no anchor read, no records, no machine.

As for the trigger, every file must dump equal to the engine's.

``--machine`` adds a table of the pure parts of the trigger and of ``record_outcome`` (the
workers' case: an in-app delivery reported succeeded, its run entering the wait), each
timed alone with ``timeit`` on the engine's own inputs: the argument checks, the rows read
into records, the machine's calls and the canonical JSON of what they decide. These are
what a direct path that keeps the machine still pays, beside its statements.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterable
from typing import Any

import engine_side
from raw_side import RawStore
from shapes import NOTIFICATION_KEY, T0, WORKFLOW, first_difference, table_dump, text

from chimeway_lite import Delivery, DeliveryStatus, Retry, Store, WorkflowRun
from chimeway_lite.backends.sqlite import outbox as sqlite_outbox
from chimeway_lite.backends.sqlite import runs as sqlite_runs
from chimeway_lite.backends.sqlite.convert import changed_columns, columns, from_values
from chimeway_lite.core.arguments import (
    checked_data,
    optional_id,
    optional_key,
    optional_reason,
    require_enum,
    require_id,
)
from chimeway_lite.core.ids import new_id
from chimeway_lite.core.text import canonical_json
from chimeway_lite.engine.gates import require_timezone
from chimeway_lite.engine.work import not_before
from chimeway_lite.machine import decide, deliveries
from chimeway_lite.machine.journey import Journey
from chimeway_lite.machine.vocabulary import RunState

SIDES = ("engine", "direct", "direct, 6 statements", "raw")
OUTCOME_SIDES = ("engine", "direct", "direct, 10 statements", "raw")

_NOTIFICATION = (
    "INSERT INTO notifications (id, tenant_id, recipient, notification_key, idempotency_key, "
    "workflow_definition_id, inserted_at, correlation_key, timezone, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DEFINITION_KEY = (
    "UPDATE workflow_definitions SET notification_key = ?, updated_at = ? "
    "WHERE id = ? AND notification_key != ?"
)
_RUN = (
    "INSERT INTO workflow_runs (id, tenant_id, notification_id, workflow_definition_id, "
    "current_step_id, state, status_reason, status_context, started_at, last_transition_at, "
    "suspended_until, pending_signals, terminal_reason, wait_kind, wait_target, resumed_by, "
    "entered_step_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?)"
)
_SEQUENCE = "SELECT seq FROM sqlite_sequence WHERE name = 'workflow_transitions'"
_TRANSITIONS_WITH_SEQ = (
    "INSERT INTO workflow_transitions (id, seq, workflow_run_id, workflow_step_id, "
    "delivery_id, from_state, to_state, reason, context, inserted_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TRANSITIONS = (
    "INSERT INTO workflow_transitions (id, workflow_run_id, workflow_step_id, delivery_id, "
    "from_state, to_state, reason, context, inserted_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELIVERY = (
    "INSERT INTO deliveries (id, tenant_id, notification_id, channel, status, "
    "suppression_reason, workflow_run_id, workflow_step_id, inserted_at, updated_at, "
    "recipient, notification_key, step_key, attempt, max_attempts, available_at, "
    "lease_expires_at, digest_size) "
    "VALUES (?, ?, ?, ?, 'pending', NULL, ?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, NULL, ?)"
)


_DELIVERY_BY_ID = f"SELECT {columns(Delivery, stop='data')} FROM deliveries WHERE id = ?"
_RUN_BY_ID = f"SELECT {columns(WorkflowRun)} FROM workflow_runs WHERE id = ?"
_RUN_AND_ADDRESS = (
    f"SELECT {columns(WorkflowRun, 'r')}, n.recipient, n.correlation_key "
    "FROM workflow_runs AS r JOIN notifications AS n ON n.id = r.notification_id "
    "WHERE r.id = ?"
)
_TRANSITION = (
    "INSERT INTO workflow_transitions (id, workflow_run_id, workflow_step_id, delivery_id, "
    "from_state, to_state, reason, context, inserted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RUN_FIELDS = len(columns(WorkflowRun).split(", "))


def _state(value: RunState | None) -> str | None:
    return None if value is None else value.value


class DirectStore(RawStore):
    """Triggers written straight from the machine's decision on a plain connection (the
    file made and the journey registered as ``RawStore`` does). ``full``: with the engine's
    definition-key check and trace counter read."""

    def __init__(self, path: str, *, full: bool) -> None:
        super().__init__(path, WORKFLOW)
        self.full = full
        with Store(path) as store:  # the definition as the engine reads it, for Journey.of
            definition = store.fetch_definition(WORKFLOW.key, WORKFLOW.version)
        assert definition is not None and definition.id == self.definition_id
        self.journey = Journey.of(definition)
        # per step: (step key, retry limit), made once per journey
        self.plan_of = {step_id: (key, limit) for step_id, key, _, limit in self.steps.values()}

    def _trace_params(self, run_id: str, plans: Any, at: str) -> list[Any]:
        """The trace rows' parameters, in the order of the engine's insert; with ``full``,
        each with its ``seq`` counted on from the trace counter (read here), else without
        (AUTOINCREMENT numbers them)."""
        params: list[Any] = []
        if self.full:
            row = self.conn.execute(_SEQUENCE).fetchone()
            seq = (row[0] if row else 0) + 1
        for plan in plans:
            params.append(new_id())
            if self.full:
                params.append(seq)
                seq += 1
            params += (
                run_id,
                plan.workflow_step_id,
                plan.delivery_id,
                _state(plan.from_state),
                plan.to_state.value,
                plan.reason,
                canonical_json(plan.context),
                at,
            )
        return params

    def trigger_direct(
        self, tenant_id: str, recipient: str, key: str, now: Any, data: Any = None
    ) -> str:
        """One trigger: the engine's checks and decision, the engine's statements."""
        tenant_id = require_id(tenant_id, "tenant_id")
        recipient = require_id(recipient, "recipient")
        key = require_id(key, "idempotency_key")
        notification_key = require_id(NOTIFICATION_KEY, "notification_key")
        data, data_text = checked_data(data, "data")
        correlation_key = optional_key(None, "correlation_key")
        timezone = require_timezone(None)
        journey = self.journey
        notification_id = new_id()
        decision = decide.start(
            journey,
            run_id=new_id(),
            tenant_id=tenant_id,
            notification_id=notification_id,
            now=now,
        )
        if decide.entering(decision, journey) is not None:
            raise AssertionError("the benchmark's journey has no gate")
        run = decision.run
        at = text(now)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                _NOTIFICATION,
                (
                    notification_id,
                    tenant_id,
                    recipient,
                    notification_key,
                    key,
                    journey.definition_id,
                    at,
                    correlation_key,
                    timezone,
                    data_text,
                ),
            )
            if self.full:
                conn.execute(
                    _DEFINITION_KEY,
                    (notification_key, at, journey.definition_id, notification_key),
                )
            conn.execute(
                _RUN,
                (
                    run.id,
                    tenant_id,
                    notification_id,
                    run.workflow_definition_id,
                    run.current_step_id,
                    run.state.value,
                    run.status_reason,
                    canonical_json(run.status_context),
                    at,
                    at,
                    None,
                    "[]",
                    None,
                    at,
                ),
            )
            params = self._trace_params(run.id, decision.transitions, at)
            conn.execute(_TRANSITIONS_WITH_SEQ if self.full else _TRANSITIONS, params)
            for delivery in decision.deliveries:
                step_key, max_attempts = self.plan_of[delivery.workflow_step_id]
                conn.execute(
                    _DELIVERY,
                    (
                        new_id(),
                        tenant_id,
                        notification_id,
                        delivery.channel,
                        run.id,
                        delivery.workflow_step_id,
                        at,
                        at,
                        recipient,
                        notification_key,
                        step_key,
                        max_attempts,
                        delivery.digest_size,
                    ),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return run.id

    def succeeded_direct(self, delivery_id: str, now: Any) -> RunState | None:
        """One outcome, ``succeeded``: the engine's checks, records and decisions, the
        engine's statements (``full``: all 12; else the address joined, no counter read).
        Returns the run's new state (None when nothing was recorded)."""
        delivery_id = require_id(delivery_id, "delivery_id")
        status = require_enum(DeliveryStatus, "succeeded", "status")
        reason = optional_reason(None, "suppression_reason")
        optional_id(None, "tenant_id")
        deliveries.check_report(status, reason)
        journey = self.journey
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            delivery = from_values(
                Delivery, conn.execute(_DELIVERY_BY_ID, (delivery_id,)).fetchone()
            )
            assert delivery.workflow_run_id is not None and delivery.workflow_step_id is not None
            if self.full:
                run = from_values(
                    WorkflowRun, conn.execute(_RUN_BY_ID, (delivery.workflow_run_id,)).fetchone()
                )
            else:
                row = conn.execute(_RUN_AND_ADDRESS, (delivery.workflow_run_id,)).fetchone()
                run = from_values(WorkflowRun, row[:_RUN_FIELDS])
                address = row[_RUN_FIELDS:]
            policy = journey.options.get(delivery.workflow_step_id, {}).get("retry")
            recorded = deliveries.record(
                delivery, status, reason, policy if isinstance(policy, Retry) else None, now
            )
            if recorded is None:
                conn.execute("COMMIT")
                return None
            changed = changed_columns(delivery, recorded.delivery, exclude=("data", "config"))
            conn.execute(
                sqlite_outbox._update_delivery_sql(tuple(changed)),
                {**changed, "where_id": delivery.id},
            )
            event = sqlite_outbox._INSERT_EVENT
            conn.execute(event.one, event.values(recorded.event))
            at = not_before(run, now)
            assert run.state is RunState.ACTIVE and run.resumed_by is None  # no digest wait
            anchor_row = conn.execute(
                sqlite_outbox._ANCHOR, {"run_id": run.id, "step_id": run.current_step_id}
            ).fetchone()
            anchor = None if anchor_row is None else from_values(Delivery, anchor_row)
            mark = None
            if anchor is not None and decide.outcome_of(anchor.status, anchor.suppression_reason):
                events = decide.wait_signals(run, journey)
                if events:
                    if self.full:
                        address = conn.execute(
                            sqlite_outbox._ADDRESS, {"id": run.notification_id}
                        ).fetchone()
                    assert len(events) == 1
                    mark_row = conn.execute(
                        sqlite_runs._EARLIEST_MARK_OF_ONE,
                        {
                            "tenant_id": run.tenant_id,
                            "since": text(run.entered_step_at or run.started_at),
                            "recipient": address[0],
                            "correlation_key": address[1],
                            "event": events[0],
                        },
                    ).fetchone()
                    assert mark_row is None, "the benchmark routes no signal"
            decision = decide.progress(run, journey, anchor, now=at, early_signal=mark)
            if decision.is_noop:
                conn.execute("COMMIT")
                return run.state
            assert decide.entering(decision, journey) is None and not decision.deliveries
            after = decision.run
            changed = changed_columns(run, after)
            conn.execute(
                sqlite_runs._update_run_sql(tuple(changed)), {**changed, "where_id": run.id}
            )
            assert len(decision.transitions) == 1
            params = self._trace_params(run.id, decision.transitions, text(at))
            conn.execute(sqlite_runs._TRACE_SQL[1] if self.full else _TRANSITION, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return after.state


def measure(folder: str, count: int, rounds: int) -> tuple[dict[str, list[float]], list[str]]:
    """Seconds per trigger in each round for each side (``count`` triggers each), and the
    problems: files that do not hold the same rows as the engine's."""
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    problems: list[str] = []
    for round_ in range(rounds):
        paths = {side: os.path.join(folder, f"{i}-{round_}.db") for i, side in enumerate(SIDES)}
        for side, value in _round(paths, count).items():
            seconds[side].append(value)
        problems += _differences(paths)
        _remove(paths.values())
    return seconds, problems


def _differences(paths: dict[str, str]) -> list[str]:
    """A problem for each side whose file does not dump equal to the engine's."""
    reference = table_dump(paths["engine"])
    problems = []
    for side, path in paths.items():
        difference = first_difference(reference, table_dump(path))
        if difference is not None:
            problems.append(f"{side} wrote other rows than the engine: {difference:.300}")
    return problems


def _remove(paths: Iterable[str]) -> None:
    """Remove each store file with its WAL, shared memory and lock file."""
    for path in paths:
        for suffix in ("", "-wal", "-shm", "-lock"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)


def _round(paths: dict[str, str], count: int) -> dict[str, float]:
    """One round: ``count`` triggers per side in 10 slices, the sides taking turns to go
    first; seconds per trigger of each side."""
    store, _ = engine_side.open_store(paths["engine"], T0)
    store.upsert_definition("welcome", WORKFLOW)
    direct = DirectStore(paths["direct"], full=True)
    direct6 = DirectStore(paths["direct, 6 statements"], full=False)
    raw = RawStore(paths["raw"])
    calls: dict[str, Callable[[str, str, str], object]] = {
        "engine": lambda t, r, k: engine_side.trigger(store, t, r, k),
        "direct": lambda t, r, k: direct.trigger_direct(t, r, k, T0),
        "direct, 6 statements": lambda t, r, k: direct6.trigger_direct(t, r, k, T0),
        "raw": lambda t, r, k: raw.trigger(t, r, k, T0),
    }
    totals = dict.fromkeys(SIDES, 0.0)
    slices = 10
    per_slice = max(1, count // slices)
    for s in range(slices):
        for side in SIDES[s % 4 :] + SIDES[: s % 4]:
            call = calls[side]
            started = time.perf_counter()
            for i in range(s * per_slice, (s + 1) * per_slice):
                call("tenant-direct", f"user-{i}", f"direct-{i}")
            totals[side] += time.perf_counter() - started
    store.close()
    for opened in (direct, direct6, raw):
        opened.close()
    return {side: total / (per_slice * slices) for side, total in totals.items()}


def _claimed_file(path: str, count: int) -> list[str]:
    """A file holding ``count`` triggered journeys, their in-app deliveries claimed; the
    claimed deliveries' ids, oldest first."""
    store, _ = engine_side.open_store(path, T0)
    with store:
        store.upsert_definition("welcome", WORKFLOW)
        for i in range(count):
            engine_side.trigger(store, "tenant-direct", f"user-{i}", f"direct-{i}")
        ids: list[str] = []
        while len(ids) < count:
            claimed = store.claim_deliveries(min(500, count - len(ids)))
            assert claimed, "every triggered delivery is claimable at T0"
            ids += [d.id for d in claimed]
    return ids


def measure_outcomes(
    folder: str, count: int, rounds: int
) -> tuple[dict[str, list[float]], list[str]]:
    """Seconds per outcome in each round for each side (``count`` outcomes each, from copies
    of one claimed file), and the problems: files that do not dump equal to the engine's."""
    seconds: dict[str, list[float]] = {side: [] for side in OUTCOME_SIDES}
    problems: list[str] = []
    for round_ in range(rounds):
        seed = os.path.join(folder, f"outcomes-seed-{round_}.db")
        ids = _claimed_file(seed, count)
        paths = {
            side: os.path.join(folder, f"outcomes-{i}-{round_}.db")
            for i, side in enumerate(OUTCOME_SIDES)
        }
        for path in paths.values():
            shutil.copyfile(seed, path)
        for side, value in _outcome_round(paths, ids).items():
            seconds[side].append(value)
        problems += _differences(paths)
        _remove([seed, *paths.values()])
    return seconds, problems


def _outcome_round(paths: dict[str, str], ids: list[str]) -> dict[str, float]:
    """One round of outcomes: every side reports ``ids`` in 10 slices, taking turns to go
    first; seconds per outcome of each side."""
    store, _ = engine_side.open_store(paths["engine"], T0)
    direct = DirectStore(paths["direct"], full=True)
    direct8 = DirectStore(paths["direct, 10 statements"], full=False)
    raw = RawStore(paths["raw"])
    calls: dict[str, Callable[[str], object]] = {
        "engine": lambda d: store.record_outcome(d, "succeeded"),
        "direct": lambda d: direct.succeeded_direct(d, T0),
        "direct, 10 statements": lambda d: direct8.succeeded_direct(d, T0),
        "raw": lambda d: raw.succeeded(d, T0),
    }
    totals = dict.fromkeys(OUTCOME_SIDES, 0.0)
    slices = 10
    per_slice = max(1, len(ids) // slices)
    for s in range(slices):
        for side in OUTCOME_SIDES[s % 4 :] + OUTCOME_SIDES[: s % 4]:
            call = calls[side]
            started = time.perf_counter()
            for delivery_id in ids[s * per_slice : (s + 1) * per_slice]:
                call(delivery_id)
            totals[side] += time.perf_counter() - started
    store.close()
    for opened in (direct, direct8, raw):
        opened.close()
    return {side: total / (per_slice * slices) for side, total in totals.items()}


def table(seconds: dict[str, list[float]], what: str = "trigger") -> str:
    """The Markdown table: per side, calls per second, µs per call, speed against raw
    sqlite3 and against the engine (``what``: trigger or outcome)."""
    per = {side: statistics.median(values) for side, values in seconds.items()}
    lines = [
        f"| side | {what}s/s | µs per {what} | speed vs raw sqlite3 | speed vs engine |",
        "|---|---:|---:|---:|---:|",
    ]
    for side in seconds:
        lines.append(
            f"| {side} | {1 / per[side]:,.0f} | {per[side] * 1e6:,.1f} | "
            f"{per['raw'] / per[side]:.2f} | {per['engine'] / per[side]:.2f} |"
        )
    return "\n".join(lines)


def machine_costs(folder: str, number: int, repeat: int) -> list[tuple[str, str, float]]:
    """µs per call (median of ``repeat`` timings of ``number`` calls) of the pure parts of
    two write paths, in this process: (path, part, µs). The record_outcome parts are the
    workers' case, an in-app delivery reported succeeded and its run entering the wait."""
    store, _ = engine_side.open_store(os.path.join(folder, "machine.db"), T0)
    with store:
        definition = store.upsert_definition("welcome", WORKFLOW)
        journey = Journey.of(definition)
        run_id = engine_side.trigger(store, "tenant-direct", "user-0", "direct-0")
        (claimed,) = store.claim_deliveries(1)
        conn = store.connection
        delivery_row = conn.execute(
            f"SELECT {columns(Delivery, stop='data')} FROM deliveries WHERE id = ?", (claimed.id,)
        ).fetchone()
        run_row = conn.execute(
            f"SELECT {columns(WorkflowRun)} FROM workflow_runs WHERE id = ?", (run_id,)
        ).fetchone()
    delivery = from_values(Delivery, delivery_row)
    run = from_values(WorkflowRun, run_row)
    recorded = deliveries.record(delivery, DeliveryStatus.SUCCEEDED, None, None, T0)
    assert recorded is not None
    decision = decide.progress(run, journey, recorded.delivery, now=T0)
    assert decision.run.state is RunState.WAITING  # the workers' case
    started = decide.start(journey, run_id="r", tenant_id="t", notification_id="n", now=T0)

    def trigger_checks() -> None:
        require_id("tenant-direct", "tenant_id")
        require_id("user-1", "recipient")
        require_id("direct-1", "idempotency_key")
        require_id(NOTIFICATION_KEY, "notification_key")
        checked_data(None, "data")
        optional_key(None, "correlation_key")
        require_timezone(None)

    def trigger_decision() -> None:
        made = decide.start(journey, run_id="r", tenant_id="t", notification_id="n", now=T0)
        decide.entering(made, journey)

    def trigger_json() -> None:
        canonical_json(started.run.status_context)
        for plan in started.transitions:
            canonical_json(plan.context)

    def outcome_checks() -> None:
        require_id(claimed.id, "delivery_id")
        status = require_enum(DeliveryStatus, "succeeded", "status")
        optional_reason(None, "suppression_reason")
        optional_id(None, "tenant_id")
        deliveries.check_report(status, None)

    def outcome_records() -> None:
        from_values(Delivery, delivery_row)  # the reported delivery
        from_values(WorkflowRun, run_row)
        from_values(Delivery, delivery_row)  # the run's anchor, read again after the update

    def outcome_record() -> None:
        deliveries.record(delivery, DeliveryStatus.SUCCEEDED, None, None, T0)

    def outcome_decision() -> None:
        decide.progress(run, journey, recorded.delivery, now=T0)

    def outcome_json() -> None:
        canonical_json(decision.run.status_context)
        canonical_json(list(decision.run.pending_signals))
        for plan in decision.transitions:
            canonical_json(plan.context)

    parts: list[tuple[str, str, Callable[[], None]]] = [
        ("trigger", "argument checks", trigger_checks),
        ("trigger", "decide.start + decide.entering", trigger_decision),
        ("trigger", "the contexts' canonical JSON", trigger_json),
        ("record_outcome", "argument checks", outcome_checks),
        ("record_outcome", "3 rows read into records (delivery, run, anchor)", outcome_records),
        ("record_outcome", "deliveries.record (the outcome)", outcome_record),
        ("record_outcome", "decide.progress (the run enters its wait)", outcome_decision),
        ("record_outcome", "the run's and trace's JSON", outcome_json),
    ]
    costs = []
    for path, part, call in parts:
        timings = timeit.repeat(call, number=number, repeat=repeat)
        costs.append((path, part, statistics.median(timings) / number * 1e6))
    return costs


def machine_table(costs: list[tuple[str, str, float]]) -> str:
    """The Markdown table of :func:`machine_costs`, with each path's sum."""
    lines = ["| path | part | µs per call |", "|---|---|---:|"]
    for path in dict.fromkeys(p for p, _, _ in costs):
        mine = [(part, us) for p, part, us in costs if p == path]
        lines += [f"| {path} | {part} | {us:.1f} |" for part, us in mine]
        lines.append(f"| {path} | **sum** | **{sum(us for _, us in mine):.1f}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table; exit 1 when the sides wrote different rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="triggers per side and round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="30 triggers, one round")
    parser.add_argument(
        "--machine",
        action="store_true",
        help="also time the pure parts (checks, decisions, records, JSON) of trigger and "
        "record_outcome",
    )
    parser.add_argument(
        "--outcomes",
        action="store_true",
        help="also measure record_outcome (succeeded, the run entering its wait) per side",
    )
    args = parser.parse_args(argv)
    count, rounds = (30, 1) if args.smoke else (args.n, args.rounds)
    outcomes: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="chimeway-direct-") as folder:
        seconds, problems = measure(folder, count, rounds)
        if args.outcomes:
            outcomes, more = measure_outcomes(folder, count, rounds)
            problems += more
        costs = machine_costs(folder, 100 if args.smoke else 20_000, 7) if args.machine else []
    print(f"{count:,} triggers per side, {rounds} round(s); medians")
    print()
    print(table(seconds))
    if outcomes:
        print()
        print(f"{count:,} outcomes per side (record_outcome, succeeded), {rounds} round(s)")
        print()
        print(table(outcomes, "outcome"))
    if costs:
        print()
        print(machine_table(costs))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
