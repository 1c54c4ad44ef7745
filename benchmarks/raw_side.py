"""The physical limit: the same rows as chimeway_lite, written by hand with plain sqlite3.

Same tables (``schema.sql``, the file stamped the same way), same pragmas, one
``BEGIN IMMEDIATE`` … ``COMMIT`` per unit of work, the same row values: ids are UUIDv7 text
from the engine's own generator (:func:`chimeway_lite.core.ids.new_id`, so both sides pay
the same for an id and their indexes grow the same way), instants fixed-width text, contexts
canonical JSON, a delivery's copied recipient / notification key / step key and its step's
retry limit, one ``delivery_events`` row per claim and per recorded outcome, the run's
``wait_kind`` / ``wait_target`` / ``resumed_by``. A claim is the engine's claim statement
(``UPDATE … RETURNING`` of status, attempt and lease over the two partial indexes), without
the channel filter; an outcome is guarded (a final delivery takes none).

What it leaves out is everything a library adds on top: argument checks, records, the
decision of the state machine (it knows the journeys it runs), the writer gate, the
idempotency read before the insert (it relies on the unique index alone), the read of the
run's anchor delivery (it has just written it) and of the step's retry policy, and the read
of leases spent on their last attempt that precedes every claim (none are, in these
journeys).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from shapes import (
    DELAY_SECONDS,
    EVENT,
    NOTIFICATION_KEY,
    RETRY_BACKOFF_SECONDS,
    T0,
    WORKFLOW,
    after,
    connect_raw,
    text,
)

from chimeway_lite import Workflow
from chimeway_lite.backends.sqlite.connection import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    schema_statements,
)
from chimeway_lite.core.ids import new_id
from chimeway_lite.declarations import step_config


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_id = new_id

_INSERT_NOTIFICATION = (
    "INSERT INTO notifications (id, tenant_id, recipient, notification_key, idempotency_key, "
    "workflow_definition_id, inserted_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RUN = (
    "INSERT INTO workflow_runs (id, tenant_id, notification_id, workflow_definition_id, "
    "current_step_id, state, status_reason, status_context, started_at, last_transition_at, "
    "suspended_until, pending_signals, terminal_reason, entered_step_at) "
    "VALUES (?, ?, ?, ?, ?, 'active', 'workflow_started', ?, ?, ?, NULL, '[]', NULL, ?)"
)
# Every routed signal leaves a mark; a run that begins to wait looks for an earlier one
# (the engine's signal_marks rows and its early-signal read, CONTRACT §13.1).
_INSERT_MARK = (
    "INSERT INTO signal_marks (tenant_id, event_name, actor_id, correlation_key, routed_at) "
    "VALUES (?, ?, ?, NULL, ?)"
)
_EARLIEST_MARK = (
    "SELECT seq, routed_at FROM ("
    " SELECT * FROM signal_marks WHERE tenant_id = ? AND event_name IN (?)"
    "  AND actor_id = ? AND routed_at >= ? AND correlation_key IS NULL"
    " UNION ALL"
    " SELECT * FROM signal_marks WHERE tenant_id = ? AND event_name IN (?)"
    "  AND actor_id IS NULL AND routed_at >= ? AND correlation_key IS NULL)"
    " ORDER BY routed_at, seq LIMIT 1"
)
_INSERT_TRANSITION = (
    "INSERT INTO workflow_transitions (id, workflow_run_id, workflow_step_id, delivery_id, "
    "from_state, to_state, reason, context, inserted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_DELIVERY = (
    "INSERT INTO deliveries (id, tenant_id, notification_id, channel, status, "
    "suppression_reason, workflow_run_id, workflow_step_id, inserted_at, updated_at, "
    "recipient, notification_key, step_key, max_attempts) "
    "VALUES (?, ?, ?, ?, 'pending', NULL, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT = (
    "INSERT INTO delivery_events (delivery_id, tenant_id, attempt, kind, at, lease_expires_at, "
    "status, suppression_reason, available_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)"
)
# The engine's claim (backends/sqlite/outbox.py), without its channel filter: pending
# deliveries whose time has come and dispatched ones whose lease ran out, oldest first.
_CLAIM = """
UPDATE deliveries
   SET status = 'dispatched', attempt = attempt + 1, lease_expires_at = :lease,
       updated_at = :now
 WHERE id IN (
    SELECT id FROM (
        SELECT id, k FROM (
            SELECT id, coalesce(available_at, inserted_at) AS k FROM deliveries
             WHERE status = 'pending' AND coalesce(available_at, inserted_at) <= :now
               AND (available_at IS NULL OR available_at <= :now)
             ORDER BY k, id LIMIT :limit)
        UNION ALL
        SELECT id, k FROM (
            SELECT id, coalesce(available_at, inserted_at) AS k FROM deliveries
             WHERE status = 'dispatched' AND lease_expires_at <= :now
               AND (max_attempts IS NULL OR attempt < max_attempts)
             ORDER BY k, id LIMIT :limit)
        ORDER BY k, id LIMIT :limit))
RETURNING coalesce(available_at, inserted_at), id, tenant_id, attempt, lease_expires_at,
          channel, recipient, notification_key, step_key,
          (SELECT n.data FROM notifications AS n WHERE n.id = deliveries.notification_id),
          (SELECT s.config FROM workflow_steps AS s WHERE s.id = deliveries.workflow_step_id)
"""
# An outcome on a delivery that is not final (a report on a pending one is an attempt).
_SUCCEEDED = (
    "UPDATE deliveries SET status = 'succeeded', suppression_reason = NULL, "
    "attempt = attempt + (status = 'pending'), available_at = NULL, lease_expires_at = NULL, "
    "updated_at = ? WHERE id = ? AND status IN ('pending', 'dispatched') "
    "RETURNING workflow_run_id, workflow_step_id, tenant_id, attempt"
)
_RETRIED = (
    "UPDATE deliveries SET status = 'pending', suppression_reason = NULL, available_at = ?, "
    "lease_expires_at = NULL, updated_at = ? WHERE id = ? AND status = 'dispatched' "
    "RETURNING tenant_id"
)
# The indexed form of the engine's due (workflow_runs_waiting_due, workflow_runs_signal_settle).
_DUE = """
SELECT id, suspended_until AS due FROM workflow_runs
 WHERE state = 'waiting' AND suspended_until <= :now
UNION ALL
SELECT id, last_transition_at AS due FROM workflow_runs
 WHERE state = 'active' AND resumed_by IS NOT NULL AND last_transition_at <= :now
ORDER BY due, id
"""
_SIGNAL_WITH_ACTOR = """
SELECT r.id FROM notifications AS n JOIN workflow_runs AS r ON r.notification_id = n.id
 WHERE n.tenant_id = ? AND n.recipient = ? AND r.state = 'waiting'
   AND EXISTS (SELECT 1 FROM json_each(r.pending_signals) WHERE value = ?)
"""
_SIGNAL_ANY = """
SELECT r.id FROM workflow_runs AS r
 WHERE r.tenant_id = ? AND r.state = 'waiting'
   AND EXISTS (SELECT 1 FROM json_each(r.pending_signals) WHERE value = ?)
"""


class RawStore:
    """The journeys written with plain sqlite3 on a file with the store's schema.

    ``workflow`` is registered (at ``registered_at``, as the engine side registers it)
    unless the file holds it already: the escalation journey of :data:`shapes.WORKFLOW`
    (steps ``inapp`` and ``email``) or the retrying one of :data:`shapes.RETRY_WORKFLOW`
    (one step, ``send``).
    """

    def __init__(
        self,
        path: str,
        workflow: Workflow = WORKFLOW,
        *,
        registered_at: datetime = T0,
        timeout: float = 5.0,
        statements: list[str] | None = None,
    ) -> None:
        self.conn = connect_raw(path, timeout)
        self.workflow = workflow
        if not self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            self._create(schema_statements() if statements is None else statements)
        row = self.conn.execute(
            "SELECT id FROM workflow_definitions WHERE workflow_key = ? AND workflow_version = ?",
            (workflow.key, workflow.version),
        ).fetchone()
        self.definition_id = row[0] if row else self._register(registered_at)
        steps = dict(
            self.conn.execute(
                "SELECT step_key, id FROM workflow_steps WHERE workflow_definition_id = ?",
                (self.definition_id,),
            ).fetchall()
        )
        # (id, key, channel, retry limit) of each step; the journey starts on the first.
        self.steps = {
            s.key: (steps[s.key], s.key, s.channel, s.retry.max_attempts if s.retry else None)
            for s in workflow.steps
        }
        self.first = self.steps[workflow.steps[0].key]
        self.inapp = steps.get("inapp")  # the escalation journey waits after this step
        self.email = steps.get("email")
        self.activated = {key: _dumps({"source": "trigger", "step_key": key}) for key in self.steps}

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def _create(self, statements: list[str]) -> None:
        """The schema (``schema.sql``'s statements, or a variant a study passes in)."""
        self.conn.execute("BEGIN IMMEDIATE")
        for statement in statements:
            self.conn.execute(statement)
        self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
        self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        self.conn.execute("COMMIT")

    def _register(self, registered_at: datetime) -> str:
        now = text(registered_at)
        definition_id = _id()
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(
            "INSERT INTO workflow_definitions VALUES (?, ?, ?, ?, ?, ?)",
            (
                definition_id,
                self.workflow.key,
                self.workflow.version,
                NOTIFICATION_KEY,
                now,
                now,
            ),
        )
        for step in self.workflow.steps:
            self.conn.execute(
                "INSERT INTO workflow_steps VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _id(),
                    definition_id,
                    step.key,
                    step.order,
                    step.channel,
                    _dumps(step_config(step)),
                    now,
                    now,
                ),
            )
        self.conn.execute("COMMIT")
        return definition_id

    # -- units of work ------------------------------------------------------------------------

    # Each unit is its own BEGIN IMMEDIATE … COMMIT, except inside batch(): there every unit
    # is part of the one transaction batch() opened, as in the engine's batches.
    _batched = False

    def _begin(self) -> None:
        if not self._batched:
            self.conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        if not self._batched:
            self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        if not self._batched:
            self.conn.execute("ROLLBACK")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around every unit of work inside (all or nothing)."""
        self.conn.execute("BEGIN IMMEDIATE")
        self._batched = True
        try:
            yield
        except BaseException:
            self._batched = False
            self.conn.execute("ROLLBACK")
            raise
        self._batched = False
        self.conn.execute("COMMIT")

    def trigger(
        self, tenant_id: str, recipient: str, key: str, now: datetime, data: Any = None
    ) -> str:
        """Notification + run + 2 transitions + the first delivery; returns the run id.
        ``data`` is written as canonical JSON, serialised here as a host would."""
        at = text(now)
        data_text = "{}" if not data else _dumps(data)
        notification_id, run_id = _id(), _id()
        step_id, step_key, channel, max_attempts = self.first
        conn = self.conn
        self._begin()
        try:
            conn.execute(
                _INSERT_NOTIFICATION,
                (
                    notification_id,
                    tenant_id,
                    recipient,
                    NOTIFICATION_KEY,
                    key,
                    self.definition_id,
                    at,
                    data_text,
                ),
            )
            conn.execute(
                _INSERT_RUN,
                (
                    run_id,
                    tenant_id,
                    notification_id,
                    self.definition_id,
                    step_id,
                    '{"source":"trigger"}',
                    at,
                    at,
                    at,
                ),
            )
            conn.executemany(
                _INSERT_TRANSITION,
                (
                    (
                        _id(),
                        run_id,
                        None,
                        None,
                        None,
                        "active",
                        "workflow_started",
                        '{"source":"trigger"}',
                        at,
                    ),
                    (
                        _id(),
                        run_id,
                        step_id,
                        None,
                        "active",
                        "active",
                        "step_activated",
                        self.activated[step_key],
                        at,
                    ),
                ),
            )
            conn.execute(
                _INSERT_DELIVERY,
                (
                    _id(),
                    tenant_id,
                    notification_id,
                    channel,
                    run_id,
                    step_id,
                    at,
                    at,
                    recipient,
                    NOTIFICATION_KEY,
                    step_key,
                    max_attempts,
                ),
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return run_id

    def claim(self, limit: int, now: datetime, lease_seconds: int = 300) -> list[tuple[Any, ...]]:
        """Lease up to ``limit`` of the oldest claimable deliveries, recording each claim;
        each as (claim key, id, tenant, attempt, lease, channel, recipient, notification key,
        step key, data, config), oldest first."""
        at, lease = text(now), text(after(now, lease_seconds))
        conn = self.conn
        self._begin()
        try:
            rows = conn.execute(_CLAIM, {"now": at, "lease": lease, "limit": limit}).fetchall()
            rows.sort(key=lambda r: (r[0], r[1]))  # RETURNING gives no order
            conn.executemany(
                _INSERT_EVENT,
                [(r[1], r[2], r[3], "claimed", at, r[4], None, None) for r in rows],
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return rows

    def succeeded(self, delivery_id: str, now: datetime) -> str | None:
        """Record a delivery as succeeded and progress its run: the in-app step enters the
        wait, any other step completes the run. Returns the run's new state (None when the
        delivery was final already)."""
        at = text(now)
        conn = self.conn
        self._begin()
        try:
            row = conn.execute(_SUCCEEDED, (at, delivery_id)).fetchone()
            if row is None:
                self._commit()
                return None
            run_id, step_id, tenant_id, attempt = row
            conn.execute(
                _INSERT_EVENT,
                (delivery_id, tenant_id, attempt, "recorded", at, None, "succeeded", None),
            )
            state, current, entered, tenant, recipient = conn.execute(
                "SELECT r.state, r.current_step_id, r.entered_step_at, r.tenant_id, "
                "n.recipient FROM workflow_runs AS r "
                "JOIN notifications AS n ON n.id = r.notification_id WHERE r.id = ?",
                (run_id,),
            ).fetchone()
            if state != "active" or current != step_id:
                self._commit()
                return str(state)
            if current == self.inapp:
                # A read that came before the wait would complete the run (none here).
                conn.execute(
                    _EARLIEST_MARK, (tenant, EVENT, recipient, entered, tenant, EVENT, entered)
                ).fetchone()
                due = text(after(now, DELAY_SECONDS))
                context = _dumps(
                    {
                        "rule_kind": "wait_until",
                        "anchor": "prior_delivery_terminal_at",
                        "anchor_delivery_id": delivery_id,
                        "anchor_delivery_status": "succeeded",
                        "anchor_timestamp": at,
                        "due_at": due,
                        "to_step": "email",
                    }
                )
                conn.execute(
                    "UPDATE workflow_runs SET state = 'waiting', "
                    "status_reason = 'waiting_for_step_progression', status_context = ?, "
                    "last_transition_at = ?, suspended_until = ?, pending_signals = ?, "
                    "wait_kind = 'wait_until', wait_target = 'email' WHERE id = ?",
                    (context, at, due, _dumps([EVENT]), run_id),
                )
                conn.execute(
                    _INSERT_TRANSITION,
                    (
                        _id(),
                        run_id,
                        current,
                        delivery_id,
                        "active",
                        "waiting",
                        "waiting_for_step_progression",
                        context,
                        at,
                    ),
                )
                state = "waiting"
            else:
                context = _dumps(
                    {
                        "rule_kind": "implicit_completion",
                        "workflow_outcome": "delivered",
                        "anchor_delivery_id": delivery_id,
                        "delivery_status": "succeeded",
                        "suppression_reason": None,
                    }
                )
                conn.execute(
                    "UPDATE workflow_runs SET state = 'completed', "
                    "status_reason = 'workflow_completed', status_context = ?, "
                    "last_transition_at = ?, terminal_reason = 'workflow_completed' "
                    "WHERE id = ?",
                    (context, at, run_id),
                )
                conn.execute(
                    _INSERT_TRANSITION,
                    (
                        _id(),
                        run_id,
                        current,
                        delivery_id,
                        "active",
                        "completed",
                        "workflow_completed",
                        context,
                        at,
                    ),
                )
                state = "completed"
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return state

    def failed(self, delivery_id: str, attempt: int, now: datetime) -> str:
        """Record a claimed delivery's attempt ``attempt`` as failed: back to pending,
        claimable again after the step's backoff (the run is not touched). Only the retry
        of the retrying journey: its deliveries never exhaust their 3 attempts here."""
        max_attempts = self.first[3]
        if max_attempts is None or attempt >= max_attempts:
            raise NotImplementedError("the raw side writes retries, not exhausted deliveries")
        at = text(now)
        retry_at = text(after(now, RETRY_BACKOFF_SECONDS * 2.0 ** (attempt - 1)))
        conn = self.conn
        self._begin()
        try:
            row = conn.execute(_RETRIED, (retry_at, at, delivery_id)).fetchone()
            if row is not None:
                conn.execute(
                    _INSERT_EVENT,
                    (delivery_id, row[0], attempt, "recorded", at, None, "failed", retry_at),
                )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return retry_at

    def due_ids(self, now: datetime) -> list[str]:
        """The runs the due sweep has work for (the same partial indexes as the store)."""
        return [r[0] for r in self.conn.execute(_DUE, {"now": text(now)}).fetchall()]

    def wake(self, run_id: str, now: datetime) -> bool:
        """Reactivate one due waiting run on the email step and plan its delivery."""
        at = text(now)
        conn = self.conn
        self._begin()
        try:
            row = conn.execute(
                "SELECT r.tenant_id, r.notification_id, r.current_step_id, r.state, "
                "r.status_context, r.suspended_until, n.recipient, n.notification_key "
                "FROM workflow_runs AS r JOIN notifications AS n ON n.id = r.notification_id "
                "WHERE r.id = ?",
                (run_id,),
            ).fetchone()
            tenant_id, notification_id, current, state, context_text, due, recipient, key = row
            if state != "waiting" or due > at:
                self._commit()
                return False
            wait = json.loads(context_text)
            anchor_id = wait["anchor_delivery_id"]
            status_context = _dumps(
                {
                    "rule_kind": "wait_until",
                    "workflow_outcome": "wait_elapsed",
                    "anchor_delivery_id": anchor_id,
                    "from_step": "inapp",
                    "to_step": "email",
                }
            )
            conn.execute(
                "UPDATE workflow_runs SET state = 'active', current_step_id = ?, "
                "status_reason = 'progressed_on_delivery_outcome', status_context = ?, "
                "last_transition_at = ?, suspended_until = NULL, pending_signals = '[]', "
                "wait_kind = NULL, wait_target = NULL, entered_step_at = ? WHERE id = ?",
                (self.email, status_context, at, at, run_id),
            )
            conn.executemany(
                _INSERT_TRANSITION,
                (
                    (
                        _id(),
                        run_id,
                        current,
                        anchor_id,
                        "waiting",
                        "active",
                        "reactivated_from_wait",
                        _dumps({**wait, "reactivated_at": at}),
                        at,
                    ),
                    (
                        _id(),
                        run_id,
                        self.email,
                        None,
                        "active",
                        "active",
                        "step_activated",
                        '{"source":"progression","step_key":"email"}',
                        at,
                    ),
                ),
            )
            conn.execute(
                _INSERT_DELIVERY,
                (
                    _id(),
                    tenant_id,
                    notification_id,
                    "email",
                    run_id,
                    self.email,
                    at,
                    at,
                    recipient,
                    key,
                    "email",
                    None,
                ),
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return True

    def sweep(self, now: datetime) -> int:
        """The due sweep: each due run in its own transaction; how many moved."""
        return sum(self.wake(run_id, now) for run_id in self.due_ids(now))

    def route_signal(self, tenant_id: str, actor_id: str | None, now: datetime) -> int:
        """Resume the tenant's runs waiting for ``notification_read``; how many."""
        at = text(now)
        conn = self.conn
        self._begin()
        try:
            conn.execute(_INSERT_MARK, (tenant_id, EVENT, actor_id, at))
            if actor_id is None:
                rows = conn.execute(_SIGNAL_ANY, (tenant_id, EVENT)).fetchall()
            else:
                rows = conn.execute(_SIGNAL_WITH_ACTOR, (tenant_id, actor_id, EVENT)).fetchall()
            ids = [r[0] for r in rows]
            conn.executemany(
                "UPDATE workflow_runs SET state = 'active', status_reason = 'signal_received', "
                "last_transition_at = ?, suspended_until = NULL, pending_signals = '[]', "
                "wait_kind = NULL, wait_target = NULL, resumed_by = ? WHERE id = ?",
                [(at, EVENT, run_id) for run_id in ids],
            )
            context = _dumps({"event_name": EVENT})
            conn.executemany(
                _INSERT_TRANSITION,
                [
                    (_id(), run_id, None, None, "waiting", "active", "signal_received", context, at)
                    for run_id in ids
                ],
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return len(ids)

    def explain(self, tenant_id: str, run_id: str) -> tuple[Any, ...]:
        """The rows explain reads: the run, its last trace row, its definition, its anchor
        (the latest delivery of its current step, whose attempt explain reports)."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            run = conn.execute(
                "SELECT * FROM workflow_runs WHERE id = ? AND tenant_id = ?", (run_id, tenant_id)
            ).fetchone()
            last = conn.execute(
                "SELECT * FROM workflow_transitions WHERE workflow_run_id = ? "
                "ORDER BY seq DESC LIMIT 1",
                (run_id,),
            ).fetchone()
            definition = conn.execute(
                "SELECT workflow_key, workflow_version FROM workflow_definitions WHERE id = ?",
                (run[3],),
            ).fetchone()
            anchor = conn.execute(
                "SELECT * FROM deliveries WHERE workflow_run_id = ? AND "
                "workflow_step_id = ? ORDER BY rowid DESC LIMIT 1",
                (run_id, run[4]),
            ).fetchone()
        finally:
            conn.execute("COMMIT")
        return run, last, definition, anchor

    # -- the host loops of the benchmarks, as engine_side drives the Store ----------------------

    def succeed_all(self, batch: int, now: datetime, lease_seconds: int = 300) -> int:
        """Claim deliveries ``batch`` at a time and record each as succeeded (the send is a
        no-op); until a claim finds nothing. Returns the deliveries recorded."""
        done = 0
        while True:
            claimed = self.claim(batch, now, lease_seconds)
            if not claimed:
                return done
            for delivery in claimed:
                self.succeeded(delivery[1], now)
                done += 1

    def fail_all(self, batch: int, now: datetime) -> int:
        """Claim deliveries ``batch`` at a time and record each as failed (to be retried)."""
        done = 0
        while True:
            claimed = self.claim(batch, now)
            if not claimed:
                return done
            for delivery in claimed:
                self.failed(delivery[1], delivery[3], now)
                done += 1

    def journeys(self, count: int, start: datetime, batch: int, first: int = 0) -> int:
        """The loop of :func:`engine_side.journeys`; returns runs moved by the sweep."""
        for i in range(first, first + count):
            self.trigger("tenant-journey", f"user-{i}", f"journey-{i}", start)
        self.succeed_all(batch, start)
        later = after(start, DELAY_SECONDS + 1)
        moved = self.sweep(later)
        self.succeed_all(batch, later)
        return moved

    def retry_journeys(self, count: int, start: datetime, batch: int, first: int = 0) -> int:
        """The loop of :func:`engine_side.retry_journeys`; returns the deliveries that
        succeeded on their second attempt."""
        for i in range(first, first + count):
            self.trigger("tenant-retry", f"user-{i}", f"retry-{i}", start)
        self.fail_all(batch, start)
        return self.succeed_all(batch, after(start, RETRY_BACKOFF_SECONDS + 1))

    def succeed_batches(self, batch: int, now: datetime, lease_seconds: int = 300) -> int:
        """Claim ``batch`` at a time and record the claim's outcomes in one transaction."""
        done = 0
        while True:
            claimed = self.claim(batch, now, lease_seconds)
            if not claimed:
                return done
            with self.batch():
                for delivery in claimed:
                    self.succeeded(delivery[1], now)
            done += len(claimed)

    def batched_journeys(self, count: int, start: datetime, batch: int, first: int = 0) -> int:
        """The loop of :func:`engine_side.batched_journeys`: ``batch`` triggers, outcomes
        and due runs per transaction; returns runs moved by the sweep."""
        for low in range(first, first + count, batch):
            with self.batch():
                for i in range(low, min(low + batch, first + count)):
                    self.trigger("tenant-journey", f"user-{i}", f"journey-{i}", start)
        self.succeed_batches(batch, start)
        later = after(start, DELAY_SECONDS + 1)
        due = self.due_ids(later)
        moved = 0
        for low in range(0, len(due), batch):
            with self.batch():
                moved += sum(self.wake(run_id, later) for run_id in due[low : low + batch])
        self.succeed_batches(batch, later)
        return moved
