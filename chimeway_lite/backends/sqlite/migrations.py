"""Upgrades of files made by older versions: version -> the SQL that makes it version + 1.

Each step runs statement by statement inside the one ``BEGIN IMMEDIATE`` transaction that
opens the file (:func:`~chimeway_lite.backends.sqlite.connection.connect`), so an upgrade is
whole or absent. A file upgraded step by step has the same tables, columns (in the same
order) and indexes as one created by ``schema.sql``; a test compares the two.
"""

from __future__ import annotations

from collections.abc import Mapping

# Version 1 kept the machine's state in evidence: the wait's target in
# status_context.to_step, "settling" as status_reason = 'signal_received' and its event in
# the latest signal_received row. Version 2 makes it explicit (wait_kind, wait_target,
# resumed_by), read from that evidence once, here. It also adds the trigger's data, what a
# delivery carries for its worker (recipient, keys, attempts, retry time, lease) and the
# attempt history.
_V1_TO_V2 = """
ALTER TABLE workflow_runs ADD COLUMN wait_kind TEXT;
ALTER TABLE workflow_runs ADD COLUMN wait_target TEXT;
ALTER TABLE workflow_runs ADD COLUMN resumed_by TEXT;
UPDATE workflow_runs
   SET wait_kind = 'wait_until',
       wait_target = CASE json_type(status_context, '$.to_step')
                     WHEN 'text' THEN json_extract(status_context, '$.to_step') END
 WHERE state = 'waiting' AND json_valid(status_context);
UPDATE workflow_runs
   SET resumed_by = (SELECT json_extract(t.context, '$.event_name')
                       FROM workflow_transitions AS t
                      WHERE t.workflow_run_id = workflow_runs.id
                        AND t.reason = 'signal_received' AND json_valid(t.context)
                      ORDER BY t.seq DESC LIMIT 1)
 WHERE state = 'active' AND status_reason = 'signal_received';
DROP INDEX workflow_runs_signal_settle;
CREATE INDEX workflow_runs_signal_settle ON workflow_runs (last_transition_at, id)
    WHERE state = 'active' AND resumed_by IS NOT NULL;

ALTER TABLE notifications ADD COLUMN data TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data));

ALTER TABLE deliveries ADD COLUMN recipient TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN notification_key TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN step_key TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0);
ALTER TABLE deliveries ADD COLUMN max_attempts INTEGER CHECK (max_attempts >= 1);
ALTER TABLE deliveries ADD COLUMN available_at TEXT;
ALTER TABLE deliveries ADD COLUMN lease_expires_at TEXT;
ALTER TABLE deliveries ADD COLUMN digest_size INTEGER NOT NULL DEFAULT 1 CHECK (digest_size >= 1);
-- Whom to send what, from the notification and the step; a delivery past pending was claimed
-- (or recorded) once; one left dispatched by a version-1 worker gets a lease of 5 minutes
-- from its last change, so the next claim after that rescues it.
UPDATE deliveries
   SET recipient = coalesce((SELECT n.recipient FROM notifications AS n
                              WHERE n.id = deliveries.notification_id), ''),
       notification_key = coalesce((SELECT n.notification_key FROM notifications AS n
                                     WHERE n.id = deliveries.notification_id), ''),
       step_key = coalesce((SELECT s.step_key FROM workflow_steps AS s
                             WHERE s.id = deliveries.workflow_step_id), ''),
       attempt = CASE status WHEN 'pending' THEN 0 ELSE 1 END,
       lease_expires_at = CASE status WHEN 'dispatched' THEN
           strftime('%Y-%m-%dT%H:%M:%S', substr(updated_at, 1, 19), '+300 seconds')
           || substr(updated_at, 20) END;
DROP INDEX deliveries_pending;
CREATE INDEX deliveries_claimable ON deliveries (coalesce(available_at, inserted_at), id)
    WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_expires_at) WHERE status = 'dispatched';

CREATE TABLE delivery_events (
    seq                INTEGER PRIMARY KEY,
    delivery_id        TEXT NOT NULL REFERENCES deliveries (id),
    tenant_id          TEXT NOT NULL,
    attempt            INTEGER NOT NULL CHECK (attempt >= 1),
    kind               TEXT NOT NULL CHECK (kind IN ('claimed', 'lease_extended', 'recorded')),
    at                 TEXT NOT NULL,
    lease_expires_at   TEXT,
    status             TEXT,
    suppression_reason TEXT,
    available_at       TEXT
);
CREATE INDEX delivery_events_by_delivery ON delivery_events (delivery_id, seq);
CREATE TRIGGER delivery_events_append_only
BEFORE UPDATE ON delivery_events
BEGIN
    SELECT RAISE(ABORT, 'delivery_events is append-only');
END;

ALTER TABLE notifications ADD COLUMN correlation_key TEXT;
CREATE INDEX notifications_by_correlation ON notifications (tenant_id, correlation_key)
    WHERE correlation_key IS NOT NULL;
ALTER TABLE signals ADD COLUMN correlation_key TEXT;
-- When the cursor entered its current step: the time of the row that put it there.
ALTER TABLE workflow_runs ADD COLUMN entered_step_at TEXT;
UPDATE workflow_runs
   SET entered_step_at = coalesce(
       (SELECT t.inserted_at FROM workflow_transitions AS t
         WHERE t.workflow_run_id = workflow_runs.id AND t.reason = 'step_activated'
           AND t.workflow_step_id = workflow_runs.current_step_id
         ORDER BY t.seq DESC LIMIT 1),
       started_at);
CREATE TABLE signal_marks (
    seq             INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    event_name      TEXT NOT NULL,
    actor_id        TEXT,
    correlation_key TEXT,
    routed_at       TEXT NOT NULL
);
CREATE INDEX signal_marks_by_event ON signal_marks (tenant_id, event_name, actor_id, routed_at);
CREATE INDEX workflow_runs_active_by_tenant ON workflow_runs (tenant_id, entered_step_at)
    WHERE state = 'active';
"""

# Version 3 adds the views for people (runs_overview, deliveries_overview, trace_overview):
# no table changes. Every upgrade makes the views afresh from schema.sql afterwards
# (connection._upgrade), so this step has nothing of its own to do.
_V2_TO_V3 = ""

# Version 4 adds the step options that gate an activation (CONTRACT §14): the recipient's time
# zone on the notification, the activations throttles count, and the digest batches with
# their runs. Nothing existing changes: every run of an older file has none of them.
_V3_TO_V4 = """
ALTER TABLE notifications ADD COLUMN timezone TEXT;

CREATE TABLE step_activations (
    seq             INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    workflow_run_id TEXT NOT NULL,
    activated_at    TEXT NOT NULL
);
CREATE INDEX step_activations_by_group ON step_activations (group_key, activated_at);
CREATE INDEX step_activations_by_time ON step_activations (activated_at);

CREATE TABLE digest_batches (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant_id        TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    group_key        TEXT NOT NULL,
    workflow_step_id TEXT NOT NULL REFERENCES workflow_steps (id),
    opened_at        TEXT NOT NULL,
    closes_at        TEXT NOT NULL,
    closed_at        TEXT,
    delivery_id      TEXT
);
CREATE INDEX digest_batches_open ON digest_batches (group_key, closes_at)
    WHERE closed_at IS NULL;
CREATE INDEX digest_batches_by_delivery ON digest_batches (delivery_id)
    WHERE delivery_id IS NOT NULL;
CREATE INDEX digest_batches_by_recipient ON digest_batches (tenant_id, recipient);

CREATE TABLE digest_members (
    seq             INTEGER PRIMARY KEY,
    batch_id        TEXT NOT NULL REFERENCES digest_batches (id),
    workflow_run_id TEXT NOT NULL REFERENCES workflow_runs (id),
    joined_at       TEXT NOT NULL
);
CREATE INDEX digest_members_by_batch ON digest_members (batch_id, seq);
CREATE INDEX digest_members_by_run ON digest_members (workflow_run_id);
"""

# Version 5 is an index diet: every index serves a named query (benchmarks/indexes.py).
# The trace's unique index on id served none, and SQLite drops a UNIQUE constraint only with
# its table, so the trace is copied into a table without it, row for row and in seq order;
# its sequence counter comes along (the counter, not max(seq): prune may have removed the
# newest rows, and a number is never handed out twice). The view over the trace goes first
# (a rename checks every view) and comes back from schema.sql afterwards. Prune finds the
# oldest finished runs through a new partial index instead of scanning the runs.
_V4_TO_V5 = """
DROP VIEW IF EXISTS trace_overview;
DROP TRIGGER workflow_transitions_append_only;
DROP INDEX workflow_transitions_by_run;
ALTER TABLE workflow_transitions RENAME TO workflow_transitions_v4;
CREATE TABLE workflow_transitions (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL,
    workflow_run_id  TEXT NOT NULL REFERENCES workflow_runs (id),
    workflow_step_id TEXT REFERENCES workflow_steps (id),
    delivery_id      TEXT,
    from_state       TEXT CHECK (from_state IN ('active', 'waiting', 'completed', 'stopped')),
    to_state         TEXT NOT NULL
                     CHECK (to_state IN ('active', 'waiting', 'completed', 'stopped')),
    reason           TEXT NOT NULL,
    context          TEXT NOT NULL CHECK (json_valid(context)),
    inserted_at      TEXT NOT NULL
);
INSERT INTO workflow_transitions
       (seq, id, workflow_run_id, workflow_step_id, delivery_id, from_state, to_state, reason,
        context, inserted_at)
SELECT seq, id, workflow_run_id, workflow_step_id, delivery_id, from_state, to_state, reason,
       context, inserted_at
  FROM workflow_transitions_v4 ORDER BY seq;
UPDATE sqlite_sequence
   SET seq = max(seq, coalesce((SELECT o.seq FROM sqlite_sequence AS o
                                 WHERE o.name = 'workflow_transitions_v4'), 0))
 WHERE name = 'workflow_transitions';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'workflow_transitions', seq FROM sqlite_sequence
 WHERE name = 'workflow_transitions_v4'
   AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'workflow_transitions');
DROP TABLE workflow_transitions_v4;
CREATE INDEX workflow_transitions_by_run ON workflow_transitions (workflow_run_id, seq);
CREATE TRIGGER workflow_transitions_append_only
BEFORE UPDATE ON workflow_transitions
BEGIN
    SELECT RAISE(ABORT, 'workflow_transitions is append-only');
END;
CREATE INDEX workflow_runs_finished ON workflow_runs (last_transition_at, id)
    WHERE state IN ('completed', 'stopped');
"""

#: version -> the statements that upgrade it by one.
MIGRATIONS: Mapping[int, str] = {1: _V1_TO_V2, 2: _V2_TO_V3, 3: _V3_TO_V4, 4: _V4_TO_V5}
