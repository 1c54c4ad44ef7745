-- chimeway_lite schema, version 5.
--
-- The store stamps a file it creates with PRAGMA application_id = 0x63776C31 ('cwl1') and
-- PRAGMA user_version = 5; it upgrades files of versions 1 to 4 (chimeway_lite/backends/
-- sqlite/migrations.py) and refuses files stamped otherwise. Every table has one column per
-- scalar field of its record, under the same name; enums hold their string value, dicts and
-- lists hold JSON text, timestamps hold fixed-width UTC text such as
-- '2026-01-05T09:30:00.000000+00:00', so comparing text orders instants.
--
-- Every index serves a named query: benchmarks/indexes.py prints each one with the query it
-- serves and its plan (benchmarks/README.md lists them), and a test fails for an index no
-- query plan uses. Every index is paid for by every write of its table.
--
-- Applied statement by statement inside one BEGIN IMMEDIATE transaction (never executescript,
-- which commits on its own).

CREATE TABLE workflow_definitions (
    id               TEXT PRIMARY KEY NOT NULL,
    workflow_key     TEXT NOT NULL,
    workflow_version INTEGER NOT NULL CHECK (workflow_version > 0),
    notification_key TEXT NOT NULL,
    inserted_at      TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    -- identity is global across tenants (CONTRACT §3)
    UNIQUE (workflow_key, workflow_version)
);

CREATE TABLE workflow_steps (
    id                     TEXT PRIMARY KEY NOT NULL,
    workflow_definition_id TEXT NOT NULL REFERENCES workflow_definitions (id),
    step_key               TEXT NOT NULL,
    step_order             INTEGER NOT NULL CHECK (step_order > 0),
    channel                TEXT NOT NULL,
    config                 TEXT NOT NULL CHECK (json_valid(config)),
    inserted_at            TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    UNIQUE (workflow_definition_id, step_key),
    UNIQUE (workflow_definition_id, step_order)
);

CREATE TABLE notifications (
    id                     TEXT PRIMARY KEY NOT NULL,
    tenant_id              TEXT NOT NULL,
    recipient              TEXT NOT NULL,
    notification_key       TEXT NOT NULL,
    idempotency_key        TEXT NOT NULL,
    workflow_definition_id TEXT REFERENCES workflow_definitions (id),
    inserted_at            TEXT NOT NULL,
    -- the host's own data of the trigger: handed to workers, never copied into a trace
    data                   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    -- the host's own handle (an order id): signals and cancels may address it
    correlation_key        TEXT,
    -- the recipient's IANA time zone, in which send windows are read (NULL: UTC)
    timezone               TEXT,
    -- a repeated trigger finds its first result instead of writing a second (CONTRACT §7)
    UNIQUE (tenant_id, idempotency_key)
);

CREATE INDEX notifications_by_recipient ON notifications (tenant_id, recipient);
-- Signals and cancels addressed by correlation key start here.
CREATE INDEX notifications_by_correlation ON notifications (tenant_id, correlation_key)
    WHERE correlation_key IS NOT NULL;

CREATE TABLE workflow_runs (
    id                     TEXT PRIMARY KEY NOT NULL,
    tenant_id              TEXT NOT NULL,
    -- one run per notification
    notification_id        TEXT NOT NULL UNIQUE REFERENCES notifications (id),
    workflow_definition_id TEXT NOT NULL REFERENCES workflow_definitions (id),
    current_step_id        TEXT NOT NULL REFERENCES workflow_steps (id),
    state                  TEXT NOT NULL
                           CHECK (state IN ('active', 'waiting', 'completed', 'stopped')),
    status_reason          TEXT NOT NULL,
    status_context         TEXT NOT NULL CHECK (json_valid(status_context)),
    started_at             TEXT NOT NULL,
    last_transition_at     TEXT NOT NULL,
    suspended_until        TEXT,
    pending_signals        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(pending_signals)),
    terminal_reason        TEXT,
    -- the machine's own state, never read from evidence: the rule kind of the wait a
    -- waiting run is in and the step key it leads to, and the event of the signal that
    -- resumed an active run (the due sweep settles it next)
    wait_kind              TEXT,
    wait_target            TEXT,
    resumed_by             TEXT,
    -- when the cursor entered its current step: a signal routed since then counts for the
    -- step's wait even when it came before the wait began
    entered_step_at        TEXT
);

-- Signal routing without an actor reads one tenant's waiting runs, in id order. Partial:
-- only entering and leaving a wait touch it, not every trigger and state change.
CREATE INDEX workflow_runs_waiting_by_tenant ON workflow_runs (tenant_id, id)
    WHERE state = 'waiting';

-- The due sweep and next_due_at read only these two partial indexes, so their cost grows
-- with the number of due runs, not with the number of runs stored (CONTRACT §4); they are
-- the indexed form of chimeway_lite.machine.decide.due_at.
CREATE INDEX workflow_runs_waiting_due ON workflow_runs (suspended_until, id)
    WHERE state = 'waiting';
CREATE INDEX workflow_runs_signal_settle ON workflow_runs (last_transition_at, id)
    WHERE state = 'active' AND resumed_by IS NOT NULL;

-- prune keeps the signal marks an active run may still count: those routed since the
-- earliest step entry of the tenant's active runs.
CREATE INDEX workflow_runs_active_by_tenant ON workflow_runs (tenant_id, entered_step_at)
    WHERE state = 'active';

-- prune takes the oldest finished runs first, a chunk at a time, from here: it never reads
-- the runs that are still going, however many there are.
CREATE INDEX workflow_runs_finished ON workflow_runs (last_transition_at, id)
    WHERE state IN ('completed', 'stopped');

CREATE TABLE deliveries (
    id                 TEXT PRIMARY KEY NOT NULL,
    tenant_id          TEXT NOT NULL,
    notification_id    TEXT NOT NULL REFERENCES notifications (id),
    channel            TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN
                           ('pending', 'dispatched', 'succeeded', 'failed', 'suppressed',
                            'cancelled')),
    suppression_reason TEXT,
    workflow_run_id    TEXT REFERENCES workflow_runs (id),
    workflow_step_id   TEXT REFERENCES workflow_steps (id),
    inserted_at        TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    -- whom to send what, copied when the delivery is planned (CONTRACT §12)
    recipient          TEXT NOT NULL DEFAULT '',
    notification_key   TEXT NOT NULL DEFAULT '',
    step_key           TEXT NOT NULL DEFAULT '',
    -- claims so far; a retry is not claimable before available_at; a claim is held until
    -- lease_expires_at (set only while dispatched)
    attempt            INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- the step's retry limit (NULL: no policy): a lease that runs out on the last attempt
    -- exhausts the delivery instead of handing it out again
    max_attempts       INTEGER CHECK (max_attempts >= 1),
    available_at       TEXT,
    lease_expires_at   TEXT,
    digest_size        INTEGER NOT NULL DEFAULT 1 CHECK (digest_size >= 1)
);

-- The outbox: a claim takes the oldest claimable deliveries — pending ones whose retry
-- time has come (by available_at, else inserted_at) and dispatched ones whose lease ran
-- out — through these two partial indexes, so its cost follows the deliveries it takes.
CREATE INDEX deliveries_claimable ON deliveries (coalesce(available_at, inserted_at), id)
    WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_expires_at) WHERE status = 'dispatched';
-- The anchor of a progression: the latest delivery of (run, step).
CREATE INDEX deliveries_by_run_step ON deliveries (workflow_run_id, workflow_step_id);
CREATE INDEX deliveries_by_notification ON deliveries (notification_id);

CREATE TABLE workflow_transitions (
    -- a store-wide sequence; AUTOINCREMENT never reuses a number, even after prune
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- the row's public id (UUIDv7, made by the engine); no query looks a row up by it, so
    -- it has no index of its own (a unique index cost 3 pages per trigger)
    id               TEXT NOT NULL,
    workflow_run_id  TEXT NOT NULL REFERENCES workflow_runs (id),
    workflow_step_id TEXT REFERENCES workflow_steps (id),
    -- evidence, not a foreign key: a key here would make every delete of a delivery scan
    -- the whole trace; verify() checks it instead
    delivery_id      TEXT,
    from_state       TEXT CHECK (from_state IN ('active', 'waiting', 'completed', 'stopped')),
    to_state         TEXT NOT NULL
                     CHECK (to_state IN ('active', 'waiting', 'completed', 'stopped')),
    reason           TEXT NOT NULL,
    context          TEXT NOT NULL CHECK (json_valid(context)),
    inserted_at      TEXT NOT NULL
);

CREATE INDEX workflow_transitions_by_run ON workflow_transitions (workflow_run_id, seq);

-- The trace is append-only: rows are added, and only prune/forget delete them.
CREATE TRIGGER workflow_transitions_append_only
BEFORE UPDATE ON workflow_transitions
BEGIN
    SELECT RAISE(ABORT, 'workflow_transitions is append-only');
END;

-- The attempt history of every delivery: its claims, lease extensions and recorded outcomes,
-- payload-free and append-only (CONTRACT §12.3). Attempts are folded from it.
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

CREATE TABLE signals (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL,
    event_name      TEXT NOT NULL,
    actor_id        TEXT,
    -- the only place a payload is kept; never copied into a trace
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    inserted_at     TEXT NOT NULL,
    correlation_key TEXT
);

CREATE INDEX signals_by_tenant_actor ON signals (tenant_id, actor_id);

-- The mark every routed signal leaves, payload-free: a run entering a wait later in its step
-- counts a mark of one of its signals routed since it entered the step (CONTRACT §13.1). A
-- wait looks for the earliest such mark of its tenant and event, of its recipient or of no
-- actor, through this index.
CREATE TABLE signal_marks (
    seq             INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    event_name      TEXT NOT NULL,
    actor_id        TEXT,
    correlation_key TEXT,
    routed_at       TEXT NOT NULL
);

CREATE INDEX signal_marks_by_event ON signal_marks (tenant_id, event_name, actor_id, routed_at);

-- Throttles (CONTRACT §14.1): one row each time a run activates a throttled step. A throttle
-- counts the rows of its group (tenant, recipient, workflow key, step key, key value:
-- group_key is a SHA-256 digest of them, so no trigger data is kept here) made within its
-- window, through the first index; prune drops rows older than any window (31 days).
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

-- Digests (CONTRACT §14.2): a batch per group (named like a throttle's) collects the runs
-- that reach the step while it is open; closed_at and delivery_id are set when it closes
-- (a batch every run left closes without a delivery). A join finds its group's open batch
-- through the partial index; digest_members lists a delivery's runs in join order.
CREATE TABLE digest_batches (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant_id        TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    group_key        TEXT NOT NULL,
    workflow_step_id TEXT NOT NULL REFERENCES workflow_steps (id),
    opened_at        TEXT NOT NULL,
    closes_at        TEXT NOT NULL,
    closed_at        TEXT,
    -- evidence, not a foreign key (like a trace row's): the batch's one delivery
    delivery_id      TEXT
);

CREATE INDEX digest_batches_open ON digest_batches (group_key, closes_at)
    WHERE closed_at IS NULL;
CREATE INDEX digest_batches_by_delivery ON digest_batches (delivery_id)
    WHERE delivery_id IS NOT NULL;
CREATE INDEX digest_batches_by_recipient ON digest_batches (tenant_id, recipient);

-- The runs of each batch, in the order they joined; a cancelled run leaves (its row goes).
CREATE TABLE digest_members (
    seq             INTEGER PRIMARY KEY,
    batch_id        TEXT NOT NULL REFERENCES digest_batches (id),
    workflow_run_id TEXT NOT NULL REFERENCES workflow_runs (id),
    joined_at       TEXT NOT NULL
);

CREATE INDEX digest_members_by_batch ON digest_members (batch_id, seq);
CREATE INDEX digest_members_by_run ON digest_members (workflow_run_id);

-- What forget() erased: who (tenant, and whether one recipient or all), when and how many
-- rows of each table. Payload-free by design: the recipient itself is not kept.
CREATE TABLE erasures (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('tenant', 'recipient')),
    row_counts  TEXT NOT NULL CHECK (json_valid(row_counts)),
    rows_erased INTEGER NOT NULL CHECK (rows_erased >= 0),
    erased_at   TEXT NOT NULL
);

-- Views for people: what sqlite-utils and datasette show with names instead of ids
-- (docs/datasette-metadata.json adds labels and facets). No payload or trigger data in any
-- of them. The store itself never reads them.

-- One row per run: whose it is, which journey, where it stands and when it is due next
-- (due_at is chimeway_lite.machine.decide.due_at: a waiting run's suspended_until, a run a
-- signal resumed at once; a test checks the two agree).
CREATE VIEW runs_overview AS
SELECT r.tenant_id,
       r.id AS run_id,
       n.recipient,
       n.notification_key,
       d.workflow_key AS workflow_name,
       d.workflow_version,
       s.step_order,
       s.step_key,
       s.channel,
       r.state,
       r.status_reason,
       r.terminal_reason,
       CASE WHEN r.state = 'waiting' THEN r.suspended_until
            WHEN r.state = 'active' AND r.resumed_by IS NOT NULL THEN r.last_transition_at
       END AS due_at,
       r.pending_signals,
       r.started_at,
       r.last_transition_at AS updated_at,
       n.correlation_key,
       r.notification_id
  FROM workflow_runs AS r
  JOIN notifications AS n ON n.id = r.notification_id
  JOIN workflow_definitions AS d ON d.id = r.workflow_definition_id
  JOIN workflow_steps AS s ON s.id = r.current_step_id;

-- One row per delivery: whom, which step, where it stands in the outbox and when a claim
-- can take it (claimable_at: a pending one's retry time, else when it was planned; a
-- dispatched one's lease end; none once final).
CREATE VIEW deliveries_overview AS
SELECT tenant_id,
       id AS delivery_id,
       workflow_run_id AS run_id,
       recipient,
       notification_key,
       step_key,
       channel,
       status,
       suppression_reason,
       attempt,
       max_attempts,
       available_at,
       lease_expires_at,
       CASE status WHEN 'pending' THEN coalesce(available_at, inserted_at)
                   WHEN 'dispatched' THEN lease_expires_at END AS claimable_at,
       digest_size,
       inserted_at AS planned_at,
       updated_at
  FROM deliveries;

-- The trace with its run's tenant and recipient, step keys instead of step ids, and each
-- row's number within its run (1, 2, 3 … where seq counts across the whole store).
CREATE VIEW trace_overview AS
SELECT r.tenant_id,
       t.workflow_run_id AS run_id,
       n.recipient,
       row_number() OVER (PARTITION BY t.workflow_run_id ORDER BY t.seq) AS row_in_run,
       t.seq,
       t.inserted_at AS at,
       t.from_state,
       t.to_state,
       t.reason,
       s.step_key,
       t.delivery_id,
       t.context
  FROM workflow_transitions AS t
  JOIN workflow_runs AS r ON r.id = t.workflow_run_id
  JOIN notifications AS n ON n.id = r.notification_id
  LEFT JOIN workflow_steps AS s ON s.id = t.workflow_step_id;
