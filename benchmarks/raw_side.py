"""The physical limit: the same rows as chimeway_lite, written by hand with plain sqlite3.

Same tables (``schema.sql``), same pragmas, one ``BEGIN IMMEDIATE`` … ``COMMIT`` per unit of
work, the same row values (ids are uuid4 text, instants fixed-width text, contexts canonical
JSON). What it leaves out is everything a library adds on top: argument checks, records,
the decision of the state machine (it knows the one journey it runs), the writer gate, the
idempotency read before the insert (it relies on the unique index alone).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from shapes import DELAY_SECONDS, EVENT, NOTIFICATION_KEY, WORKFLOW, after, connect_raw, text

from chimeway_lite.backends.sqlite.connection import schema_statements
from chimeway_lite.declarations import step_config


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _id() -> str:
    return str(uuid.uuid4())


_INSERT_NOTIFICATION = (
    "INSERT INTO notifications (id, tenant_id, recipient, notification_key, idempotency_key, "
    "workflow_definition_id, inserted_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RUN = (
    "INSERT INTO workflow_runs (id, tenant_id, notification_id, workflow_definition_id, "
    "current_step_id, state, status_reason, status_context, started_at, last_transition_at, "
    "suspended_until, pending_signals, terminal_reason) "
    "VALUES (?, ?, ?, ?, ?, 'active', 'workflow_started', ?, ?, ?, NULL, '[]', NULL)"
)
_INSERT_TRANSITION = (
    "INSERT INTO workflow_transitions (id, workflow_run_id, workflow_step_id, delivery_id, "
    "from_state, to_state, reason, context, inserted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_DELIVERY = (
    "INSERT INTO deliveries (id, tenant_id, notification_id, channel, status, "
    "suppression_reason, workflow_run_id, workflow_step_id, inserted_at, updated_at) "
    "VALUES (?, ?, ?, ?, 'pending', NULL, ?, ?, ?, ?)"
)
_DUE = """
SELECT id FROM workflow_runs WHERE state = 'waiting' AND suspended_until <= :now
UNION ALL
SELECT id FROM workflow_runs
 WHERE state = 'active' AND status_reason = 'signal_received' AND last_transition_at <= :now
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
    """The journey written with plain sqlite3 on a file with the store's schema."""

    def __init__(self, path: str) -> None:
        self.conn = connect_raw(path)
        if not self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            self._create()
        row = self.conn.execute(
            "SELECT id FROM workflow_definitions WHERE workflow_key = ? AND workflow_version = ?",
            (WORKFLOW.key, WORKFLOW.version),
        ).fetchone()
        self.definition_id = row[0] if row else self._register()
        steps = dict(
            self.conn.execute(
                "SELECT step_key, id FROM workflow_steps WHERE workflow_definition_id = ?",
                (self.definition_id,),
            ).fetchall()
        )
        self.inapp, self.email = steps["inapp"], steps["email"]

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def _create(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        for statement in schema_statements():
            self.conn.execute(statement)
        self.conn.execute("COMMIT")

    def _register(self) -> str:
        now = text(datetime.now().astimezone())
        definition_id = _id()
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(
            "INSERT INTO workflow_definitions VALUES (?, ?, ?, ?, ?, ?)",
            (definition_id, WORKFLOW.key, WORKFLOW.version, NOTIFICATION_KEY, now, now),
        )
        for step in WORKFLOW.steps:
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

    def trigger(self, tenant_id: str, recipient: str, key: str, now: datetime) -> str:
        """Notification + run + 2 transitions + the first delivery; returns the run id."""
        at = text(now)
        notification_id, run_id = _id(), _id()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
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
                ),
            )
            conn.execute(
                _INSERT_RUN,
                (
                    run_id,
                    tenant_id,
                    notification_id,
                    self.definition_id,
                    self.inapp,
                    '{"source":"trigger"}',
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
                        self.inapp,
                        None,
                        "active",
                        "active",
                        "step_activated",
                        '{"source":"trigger","step_key":"inapp"}',
                        at,
                    ),
                ),
            )
            conn.execute(
                _INSERT_DELIVERY,
                (_id(), tenant_id, notification_id, "in_app", run_id, self.inapp, at, at),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return run_id

    def claim(self, limit: int, now: datetime) -> list[str]:
        """Move up to ``limit`` oldest pending deliveries to dispatched; their ids."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "UPDATE deliveries SET status = 'dispatched', updated_at = ? WHERE id IN "
            "(SELECT id FROM deliveries WHERE status = 'pending' "
            "ORDER BY inserted_at, rowid LIMIT ?) RETURNING id",
            (text(now), limit),
        ).fetchall()
        conn.execute("COMMIT")
        return [r[0] for r in rows]

    def succeeded(self, delivery_id: str, now: datetime) -> str:
        """Record a delivery as succeeded and progress its run: the in-app step enters the
        wait, the email step completes the run. Returns the run's new state."""
        at = text(now)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            run_id, step_id = conn.execute(
                "UPDATE deliveries SET status = 'succeeded', suppression_reason = NULL, "
                "updated_at = ? WHERE id = ? RETURNING workflow_run_id, workflow_step_id",
                (at, delivery_id),
            ).fetchone()
            state, current = conn.execute(
                "SELECT state, current_step_id FROM workflow_runs WHERE id = ?", (run_id,)
            ).fetchone()
            if state != "active" or current != step_id:
                conn.execute("COMMIT")
                return str(state)
            if current == self.inapp:
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
                    "last_transition_at = ?, suspended_until = ?, pending_signals = ? "
                    "WHERE id = ?",
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
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return state

    def due_ids(self, now: datetime) -> list[str]:
        """The runs the due sweep has work for (the same partial indexes as the store)."""
        return [r[0] for r in self.conn.execute(_DUE, {"now": text(now)}).fetchall()]

    def wake(self, run_id: str, now: datetime) -> bool:
        """Reactivate one due waiting run on the email step and plan its delivery."""
        at = text(now)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT tenant_id, notification_id, current_step_id, state, status_context, "
                "suspended_until FROM workflow_runs WHERE id = ?",
                (run_id,),
            ).fetchone()
            tenant_id, notification_id, current, state, context_text, due = row
            if state != "waiting" or due > at:
                conn.execute("COMMIT")
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
                "last_transition_at = ?, suspended_until = NULL, pending_signals = '[]' "
                "WHERE id = ?",
                (self.email, status_context, at, run_id),
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
                (_id(), tenant_id, notification_id, "email", run_id, self.email, at, at),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return True

    def sweep(self, now: datetime) -> int:
        """The due sweep: each due run in its own transaction; how many moved."""
        return sum(self.wake(run_id, now) for run_id in self.due_ids(now))

    def route_signal(self, tenant_id: str, actor_id: str | None, now: datetime) -> int:
        """Resume the tenant's runs waiting for ``notification_read``; how many."""
        at = text(now)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if actor_id is None:
                rows = conn.execute(_SIGNAL_ANY, (tenant_id, EVENT)).fetchall()
            else:
                rows = conn.execute(_SIGNAL_WITH_ACTOR, (tenant_id, actor_id, EVENT)).fetchall()
            ids = [r[0] for r in rows]
            conn.executemany(
                "UPDATE workflow_runs SET state = 'active', status_reason = 'signal_received', "
                "last_transition_at = ?, suspended_until = NULL, pending_signals = '[]' "
                "WHERE id = ?",
                [(at, run_id) for run_id in ids],
            )
            context = _dumps({"event_name": EVENT})
            conn.executemany(
                _INSERT_TRANSITION,
                [
                    (_id(), run_id, None, None, "waiting", "active", "signal_received", context, at)
                    for run_id in ids
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(ids)

    def explain(self, tenant_id: str, run_id: str) -> tuple[Any, ...]:
        """The rows explain reads: the run, its last trace row, its definition, its anchor."""
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
            anchor = None
            if run[5] == "active":
                anchor = conn.execute(
                    "SELECT * FROM deliveries WHERE workflow_run_id = ? AND "
                    "workflow_step_id = ? ORDER BY rowid DESC LIMIT 1",
                    (run_id, run[4]),
                ).fetchone()
        finally:
            conn.execute("COMMIT")
        return run, last, definition, anchor

    # -- the host loops of the benchmarks, as engine_side drives the Store ----------------------

    def succeed_all(self, batch: int, now: datetime) -> int:
        """Claim pending deliveries ``batch`` at a time and record each as succeeded."""
        done = 0
        while True:
            claimed = self.claim(batch, now)
            if not claimed:
                return done
            for delivery_id in claimed:
                self.succeeded(delivery_id, now)
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
