-- chimeway_lite schema for PostgreSQL, version 1.
--
-- The same tables, columns (in the same order) and names as the SQLite schema (schema.sql at
-- the project's top), in PostgreSQL's own types: instants are timestamptz, JSON is jsonb,
-- identifiers are text in the "C" collation (so ids sort bytewise, as SQLite sorts them).
-- Tables whose SQLite rows are ordered by rowid carry an identity column (seq) instead.
--
-- The store creates it on first open inside one transaction that holds an advisory lock
-- (chimeway_lite/backends/postgres/connection.py), in the first schema of the search_path,
-- and records its version in chimeway_lite_schema; a newer or foreign schema is refused.

CREATE TABLE chimeway_lite_schema (
    application text COLLATE "C" PRIMARY KEY NOT NULL,
    version     integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workflow_definitions (
    id               text COLLATE "C" PRIMARY KEY NOT NULL,
    workflow_key     text COLLATE "C" NOT NULL,
    workflow_version integer NOT NULL CHECK (workflow_version > 0),
    notification_key text COLLATE "C" NOT NULL,
    inserted_at      timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (workflow_key, workflow_version)
);

CREATE TABLE workflow_steps (
    id                     text COLLATE "C" PRIMARY KEY NOT NULL,
    workflow_definition_id text COLLATE "C" NOT NULL REFERENCES workflow_definitions (id),
    step_key               text COLLATE "C" NOT NULL,
    step_order             integer NOT NULL CHECK (step_order > 0),
    channel                text COLLATE "C" NOT NULL,
    config                 jsonb NOT NULL,
    inserted_at            timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    UNIQUE (workflow_definition_id, step_key),
    UNIQUE (workflow_definition_id, step_order)
);

CREATE TABLE notifications (
    id                     text COLLATE "C" PRIMARY KEY NOT NULL,
    tenant_id              text COLLATE "C" NOT NULL,
    recipient              text COLLATE "C" NOT NULL,
    notification_key       text COLLATE "C" NOT NULL,
    idempotency_key        text COLLATE "C" NOT NULL,
    workflow_definition_id text COLLATE "C" REFERENCES workflow_definitions (id),
    inserted_at            timestamptz NOT NULL,
    data                   jsonb NOT NULL DEFAULT '{}',
    correlation_key        text COLLATE "C",
    timezone               text COLLATE "C",
    UNIQUE (tenant_id, idempotency_key)
);

CREATE INDEX notifications_by_recipient ON notifications (tenant_id, recipient);
CREATE INDEX notifications_by_correlation ON notifications (tenant_id, correlation_key)
    WHERE correlation_key IS NOT NULL;

CREATE TABLE workflow_runs (
    id                     text COLLATE "C" PRIMARY KEY NOT NULL,
    tenant_id              text COLLATE "C" NOT NULL,
    notification_id        text COLLATE "C" NOT NULL UNIQUE REFERENCES notifications (id),
    workflow_definition_id text COLLATE "C" NOT NULL REFERENCES workflow_definitions (id),
    current_step_id        text COLLATE "C" NOT NULL REFERENCES workflow_steps (id),
    state                  text COLLATE "C" NOT NULL
                           CHECK (state IN ('active', 'waiting', 'completed', 'stopped')),
    status_reason          text COLLATE "C" NOT NULL,
    status_context         jsonb NOT NULL,
    started_at             timestamptz NOT NULL,
    last_transition_at     timestamptz NOT NULL,
    suspended_until        timestamptz,
    pending_signals        jsonb NOT NULL DEFAULT '[]',
    terminal_reason        text COLLATE "C",
    wait_kind              text COLLATE "C",
    wait_target            text COLLATE "C",
    resumed_by             text COLLATE "C",
    entered_step_at        timestamptz
);

-- Signal routing: a tenant's waiting runs with one event pending (GIN on the pending list).
CREATE INDEX workflow_runs_waiting_by_tenant ON workflow_runs (tenant_id, id)
    WHERE state = 'waiting';
CREATE INDEX workflow_runs_pending_signals ON workflow_runs USING gin (pending_signals)
    WHERE state = 'waiting';
-- The due sweep and next_due_at (the indexed form of machine.decide.due_at).
CREATE INDEX workflow_runs_waiting_due ON workflow_runs (suspended_until, id)
    WHERE state = 'waiting';
CREATE INDEX workflow_runs_signal_settle ON workflow_runs (last_transition_at, id)
    WHERE state = 'active' AND resumed_by IS NOT NULL;
CREATE INDEX workflow_runs_active_by_tenant ON workflow_runs (tenant_id, entered_step_at)
    WHERE state = 'active';
-- prune's oldest finished runs first.
CREATE INDEX workflow_runs_finished ON workflow_runs (last_transition_at, id)
    WHERE state IN ('completed', 'stopped');
CREATE INDEX workflow_runs_by_change ON workflow_runs (last_transition_at);

CREATE TABLE deliveries (
    id                 text COLLATE "C" PRIMARY KEY NOT NULL,
    tenant_id          text COLLATE "C" NOT NULL,
    notification_id    text COLLATE "C" NOT NULL REFERENCES notifications (id),
    channel            text COLLATE "C" NOT NULL,
    status             text COLLATE "C" NOT NULL CHECK (status IN
                           ('pending', 'dispatched', 'succeeded', 'failed', 'suppressed',
                            'cancelled')),
    suppression_reason text COLLATE "C",
    workflow_run_id    text COLLATE "C" REFERENCES workflow_runs (id),
    workflow_step_id   text COLLATE "C" REFERENCES workflow_steps (id),
    inserted_at        timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    recipient          text COLLATE "C" NOT NULL DEFAULT '',
    notification_key   text COLLATE "C" NOT NULL DEFAULT '',
    step_key           text COLLATE "C" NOT NULL DEFAULT '',
    attempt            integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts       integer CHECK (max_attempts >= 1),
    available_at       timestamptz,
    lease_expires_at   timestamptz,
    digest_size        integer NOT NULL DEFAULT 1 CHECK (digest_size >= 1),
    -- the order deliveries were planned in (SQLite's rowid)
    seq                bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);

CREATE INDEX deliveries_claimable ON deliveries (coalesce(available_at, inserted_at), id)
    WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_expires_at, id) WHERE status = 'dispatched';
CREATE INDEX deliveries_by_run_step ON deliveries (workflow_run_id, workflow_step_id, seq);
CREATE INDEX deliveries_by_notification ON deliveries (notification_id, seq);

-- seq comes from this sequence: unique across the store, increasing per run (a run's rows
-- are appended under its row lock).
CREATE SEQUENCE workflow_transitions_seq AS bigint;

CREATE TABLE workflow_transitions (
    seq              bigint PRIMARY KEY DEFAULT nextval('workflow_transitions_seq'),
    id               text COLLATE "C" NOT NULL UNIQUE,
    workflow_run_id  text COLLATE "C" NOT NULL REFERENCES workflow_runs (id),
    workflow_step_id text COLLATE "C" REFERENCES workflow_steps (id),
    delivery_id      text COLLATE "C",
    from_state       text COLLATE "C"
                     CHECK (from_state IN ('active', 'waiting', 'completed', 'stopped')),
    to_state         text COLLATE "C" NOT NULL
                     CHECK (to_state IN ('active', 'waiting', 'completed', 'stopped')),
    reason           text COLLATE "C" NOT NULL,
    context          jsonb NOT NULL,
    inserted_at      timestamptz NOT NULL
);

CREATE INDEX workflow_transitions_by_run ON workflow_transitions (workflow_run_id, seq);

-- n trace numbers in a row, from the first one returned (a decision's rows are adjacent in
-- seq, CONTRACT §6), unique across the store: every allocation takes a session advisory lock for the two calls on the
-- sequence, so no other one lands in between; it is held for microseconds, not for the
-- transaction.
CREATE FUNCTION chimeway_lite_next_seqs(n integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    key constant bigint := hashtextextended('chimeway_lite.seq:' || current_schema(), 0);
    first bigint;
BEGIN
    PERFORM pg_advisory_lock(key);
    BEGIN
        first := nextval('workflow_transitions_seq');
        IF n > 1 THEN
            PERFORM setval('workflow_transitions_seq', first + n - 1);
        END IF;
    EXCEPTION WHEN query_canceled OR OTHERS THEN
        PERFORM pg_advisory_unlock(key);
        RAISE;
    END;
    PERFORM pg_advisory_unlock(key);
    RETURN first;
END;
$$;

-- The trace and the attempt history are append-only: rows are added, and only prune and
-- forget delete them.
CREATE FUNCTION chimeway_lite_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'check_violation';
END;
$$;

CREATE TRIGGER workflow_transitions_append_only
BEFORE UPDATE ON workflow_transitions
FOR EACH ROW EXECUTE FUNCTION chimeway_lite_append_only();

CREATE TABLE delivery_events (
    seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id        text COLLATE "C" NOT NULL REFERENCES deliveries (id),
    tenant_id          text COLLATE "C" NOT NULL,
    attempt            integer NOT NULL CHECK (attempt >= 1),
    kind               text COLLATE "C" NOT NULL
                       CHECK (kind IN ('claimed', 'lease_extended', 'recorded')),
    at                 timestamptz NOT NULL,
    lease_expires_at   timestamptz,
    status             text COLLATE "C",
    suppression_reason text COLLATE "C",
    available_at       timestamptz
);

CREATE INDEX delivery_events_by_delivery ON delivery_events (delivery_id, seq);

CREATE TRIGGER delivery_events_append_only
BEFORE UPDATE ON delivery_events
FOR EACH ROW EXECUTE FUNCTION chimeway_lite_append_only();

CREATE TABLE signals (
    id              text COLLATE "C" PRIMARY KEY NOT NULL,
    tenant_id       text COLLATE "C" NOT NULL,
    event_name      text COLLATE "C" NOT NULL,
    actor_id        text COLLATE "C",
    payload         jsonb NOT NULL,
    inserted_at     timestamptz NOT NULL,
    correlation_key text COLLATE "C"
);

CREATE INDEX signals_by_tenant_actor ON signals (tenant_id, actor_id);

CREATE TABLE signal_marks (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text COLLATE "C" NOT NULL,
    event_name      text COLLATE "C" NOT NULL,
    actor_id        text COLLATE "C",
    correlation_key text COLLATE "C",
    routed_at       timestamptz NOT NULL
);

CREATE INDEX signal_marks_by_event ON signal_marks (tenant_id, event_name, actor_id, routed_at);

CREATE TABLE step_activations (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text COLLATE "C" NOT NULL,
    recipient       text COLLATE "C" NOT NULL,
    group_key       text COLLATE "C" NOT NULL,
    workflow_run_id text COLLATE "C" NOT NULL,
    activated_at    timestamptz NOT NULL
);

CREATE INDEX step_activations_by_group ON step_activations (group_key, activated_at);
CREATE INDEX step_activations_by_time ON step_activations (activated_at);

CREATE TABLE digest_batches (
    id               text COLLATE "C" PRIMARY KEY NOT NULL,
    tenant_id        text COLLATE "C" NOT NULL,
    recipient        text COLLATE "C" NOT NULL,
    group_key        text COLLATE "C" NOT NULL,
    workflow_step_id text COLLATE "C" NOT NULL REFERENCES workflow_steps (id),
    opened_at        timestamptz NOT NULL,
    closes_at        timestamptz NOT NULL,
    closed_at        timestamptz,
    delivery_id      text COLLATE "C"
);

CREATE INDEX digest_batches_open ON digest_batches (group_key, closes_at)
    WHERE closed_at IS NULL;
CREATE INDEX digest_batches_by_delivery ON digest_batches (delivery_id)
    WHERE delivery_id IS NOT NULL;
CREATE INDEX digest_batches_by_recipient ON digest_batches (tenant_id, recipient);

CREATE TABLE digest_members (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id        text COLLATE "C" NOT NULL REFERENCES digest_batches (id),
    workflow_run_id text COLLATE "C" NOT NULL REFERENCES workflow_runs (id),
    joined_at       timestamptz NOT NULL
);

CREATE INDEX digest_members_by_batch ON digest_members (batch_id, seq);
CREATE INDEX digest_members_by_run ON digest_members (workflow_run_id);

CREATE TABLE erasures (
    id          text COLLATE "C" PRIMARY KEY NOT NULL,
    tenant_id   text COLLATE "C" NOT NULL,
    scope       text COLLATE "C" NOT NULL CHECK (scope IN ('tenant', 'recipient')),
    row_counts  jsonb NOT NULL,
    rows_erased integer NOT NULL CHECK (rows_erased >= 0),
    erased_at   timestamptz NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);
