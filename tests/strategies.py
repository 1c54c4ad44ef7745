"""Hypothesis strategies for chimeway_lite: names, JSON values, timestamps, declarations and
every record type, plus :func:`table_dump`, the "nothing was written" witness.

Everything generated here is *valid* input unless the name says otherwise, so a test can
assume that the store accepts it. Import with ``from strategies import ...`` (pytest puts
``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import backends
from hypothesis import strategies as st

from chimeway_lite import (
    Delivery,
    DeliveryAttempt,
    DeliveryExplanation,
    DeliveryStatus,
    Digest,
    Erasure,
    Notification,
    OnOutcome,
    Outcome,
    Progress,
    ProgressKind,
    Resumed,
    Retry,
    RunExplanation,
    RunState,
    SendWindow,
    Signal,
    Step,
    StepLinkage,
    Stop,
    Store,
    Throttle,
    TriggerResult,
    WaitUntil,
    Workflow,
    WorkflowDefinition,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from chimeway_lite.core.records import (
    DeliveryEvent,
    DeliveryEventKind,
    DigestBatch,
    SignalMark,
    StepActivation,
)
from chimeway_lite.machine import CONTEXT_KEYS
from chimeway_lite.machine.kinds import STEP_OPTIONS

T = TypeVar("T")

# -- names and ids ------------------------------------------------------------------------------

# Any character UTF-8 can encode (no lone surrogates); SQLite stores it as TEXT.
_CHARACTERS = st.characters(codec="utf-8")

# ... but no NUL in names and ids: the store refuses it (SQLite's JSON functions cut at NUL).
_NAME_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")

#: A declaration name (workflow/step key, channel, to_step, signal): trimmed, non-blank.
names: st.SearchStrategy[str] = (
    st.text(_NAME_CHARACTERS, min_size=1, max_size=16).map(str.strip).filter(bool)
)

#: An opaque caller id (tenant, recipient, idempotency key): non-blank, no NUL, not trimmed.
ids: st.SearchStrategy[str] = st.text(_NAME_CHARACTERS, min_size=1, max_size=24).filter(
    lambda s: bool(s.strip())
)

#: A UUID string, the form of every id the store issues.
uuids: st.SearchStrategy[str] = st.uuids().map(str)


def new_id() -> str:
    """A fresh UUID string (for records built outside hypothesis)."""
    return str(uuid.uuid4())


# -- JSON -----------------------------------------------------------------------------------------

json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(_CHARACTERS, max_size=12),
)

#: Plain JSON values (lists, never tuples: a tuple would come back as a list).
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(_CHARACTERS, max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

#: A JSON object: a dict with string keys and plain JSON values.
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(_CHARACTERS, max_size=8), json_values, max_size=4
)

#: The config keys a declaration keeps for itself: rules go in ``Step(progress=...)``, step
#: options (``retry``) in their own keyword.
_RESERVED_CONFIG_KEYS = frozenset({"progress", *(option.key for option in STEP_OPTIONS)})

#: A step config (none of the reserved keys).
configs: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(_CHARACTERS, max_size=8).filter(lambda k: k not in _RESERVED_CONFIG_KEYS),
    json_values,
    max_size=3,
)

#: A trace context within the catalogue of CONTRACT §10 (string values, as the engine writes).
contexts: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.sampled_from(sorted(CONTEXT_KEYS)), st.text(_CHARACTERS, max_size=12), max_size=5
)

# -- timestamps -----------------------------------------------------------------------------------

_FIRST = datetime(1, 1, 1)
_LAST = datetime(9999, 12, 31, 23, 59, 59, 999999)


def utc_datetimes(
    min_value: datetime = _FIRST, max_value: datetime = _LAST
) -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes with microsecond precision; one in four has zero microseconds."""
    base = st.datetimes(min_value=min_value, max_value=max_value, timezones=st.just(UTC))
    return st.one_of(base, base, base, base.map(lambda d: d.replace(microsecond=0)))


#: Fixed UTC offsets, including odd ones with seconds and microseconds.
offsets: st.SearchStrategy[timezone] = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)

#: Aware datetimes in any fixed offset (years 2..8999: converting to UTC never overflows,
#: and every instant is before the latest one a store keeps, 9000-01-01).
aware_datetimes: st.SearchStrategy[datetime] = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(8999, 12, 30), timezones=offsets
)

#: Timestamps as the store issues them: UTC, microsecond precision, any year.
timestamps = utc_datetimes()

# -- declarations -----------------------------------------------------------------------------

outcomes: st.SearchStrategy[Any] = st.sampled_from(list(Outcome)) | st.sampled_from(
    [o.value for o in Outcome]
)


def rules(step_keys: list[str]) -> st.SearchStrategy[WaitUntil | OnOutcome | Stop]:
    """A valid progress rule whose ``to_step`` (if any) is one of ``step_keys``."""
    targets = st.sampled_from(step_keys)
    return st.one_of(
        st.builds(
            WaitUntil,
            st.integers(1, 10**7),
            targets,
            # duplicates are allowed: the declaration keeps the first of each (CONTRACT §2)
            st.lists(names, max_size=4),
        ),
        st.builds(OnOutcome, outcomes, targets),
        st.builds(Stop, outcomes),
    )


_clocks = st.builds("{:02d}:{:02d}".format, st.integers(0, 23), st.integers(0, 59))

#: The step options of a step (CONTRACT §12.2, §14), each present or not; names and numbers
#: anywhere in their ranges, windows given with days in any order and repeated.
step_options: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "retry": st.builds(
            Retry,
            st.integers(1, 100),
            st.integers(1, 3600),
            st.sampled_from((1, 1.5, 2, 10.0)),
            st.none() | st.just(7200),
        ),
        "throttle": st.builds(
            Throttle, st.integers(1, 10_000), st.integers(1, 2_678_400), st.none() | names
        ),
        "digest": st.builds(
            Digest, st.integers(1, 2_678_400), st.none() | names, st.none() | st.integers(2, 1000)
        ),
        "window": st.tuples(_clocks, _clocks, st.lists(st.integers(0, 6), min_size=1))
        .filter(lambda w: w[0] != w[1])
        .map(lambda w: SendWindow(*w)),
    },
)


@st.composite
def workflows(
    draw: st.DrawFn, *, max_steps: int = 4, key: str | None = None, options: bool = True
) -> Workflow:
    """A valid :class:`Workflow`: unique step keys, orders a permutation of 1..N, rules that
    name steps of the workflow, JSON configs, step options (unless ``options`` is False: a
    step option may hold a run back from its first delivery). ``key`` fixes the workflow
    key."""
    count = draw(st.integers(1, max_steps))
    step_keys = draw(st.lists(names, min_size=count, max_size=count, unique=True))
    orders = draw(st.permutations(range(1, count + 1)))
    steps = [
        Step(
            step_key,
            order,
            draw(names),
            draw(st.lists(rules(step_keys), max_size=3)),
            draw(st.none() | configs),
            **(draw(step_options) if options else {}),
        )
        for step_key, order in zip(step_keys, orders, strict=True)
    ]
    workflow_key = key if key is not None else draw(names)
    return Workflow(workflow_key, draw(st.integers(1, 2**31)), steps)


# -- records --------------------------------------------------------------------------------------

run_states = st.sampled_from(list(RunState))
delivery_statuses = st.sampled_from(list(DeliveryStatus))
optional_names = st.none() | names


@st.composite
def workflow_steps(
    draw: st.DrawFn,
    definition_id: str | None = None,
    step_key: str | None = None,
    step_order: int | None = None,
) -> WorkflowStep:
    """A :class:`WorkflowStep` record; arguments fix its definition, key and order.

    Its config is a step config (no ``progress`` key), so the engine can index it."""
    return WorkflowStep(
        id=draw(uuids),
        workflow_definition_id=definition_id if definition_id is not None else draw(uuids),
        step_key=step_key if step_key is not None else draw(names),
        step_order=step_order if step_order is not None else draw(st.integers(1, 100)),
        channel=draw(names),
        config=draw(configs),
        inserted_at=draw(timestamps),
        updated_at=draw(timestamps),
    )


@st.composite
def workflow_definitions(draw: st.DrawFn) -> WorkflowDefinition:
    """A :class:`WorkflowDefinition` record whose steps belong to it: unique keys, orders
    1..N (what the table's unique keys demand)."""
    definition_id = draw(uuids)
    step_keys = draw(st.lists(names, max_size=3, unique=True))
    steps = [
        draw(workflow_steps(definition_id, step_key, order))
        for order, step_key in enumerate(step_keys, start=1)
    ]
    return WorkflowDefinition(
        id=definition_id,
        workflow_key=draw(names),
        workflow_version=draw(st.integers(1, 2**63 - 1)),
        notification_key=draw(names),
        steps=steps,
        inserted_at=draw(timestamps),
        updated_at=draw(timestamps),
    )


notifications = st.builds(
    Notification,
    id=uuids,
    tenant_id=ids,
    recipient=ids,
    notification_key=names,
    idempotency_key=ids,
    workflow_definition_id=st.none() | uuids,
    inserted_at=timestamps,
    data=json_objects,
    correlation_key=st.none() | ids,
    timezone=st.sampled_from([None, "UTC", "Europe/Paris", "America/New_York"]),
)

deliveries = st.builds(
    Delivery,
    id=uuids,
    tenant_id=ids,
    notification_id=uuids,
    channel=names,
    status=delivery_statuses,
    suppression_reason=optional_names,
    workflow_run_id=st.none() | uuids,
    workflow_step_id=st.none() | uuids,
    inserted_at=timestamps,
    updated_at=timestamps,
    recipient=ids,
    notification_key=names,
    step_key=names,
    attempt=st.integers(0, 100),
    available_at=st.none() | timestamps,
    lease_expires_at=st.none() | timestamps,
    digest_size=st.integers(1, 1000),
)

delivery_events = st.builds(
    DeliveryEvent,
    delivery_id=uuids,
    tenant_id=ids,
    attempt=st.integers(1, 100),
    kind=st.sampled_from(list(DeliveryEventKind)),
    at=timestamps,
    lease_expires_at=st.none() | timestamps,
    status=st.none() | st.sampled_from(["succeeded", "failed", "suppressed", "cancelled"]),
    suppression_reason=optional_names,
    available_at=st.none() | timestamps,
    seq=st.integers(1, 2**62),
)

signal_marks = st.builds(
    SignalMark,
    tenant_id=ids,
    event_name=names,
    actor_id=st.none() | ids,
    correlation_key=st.none() | ids,
    routed_at=timestamps,
    seq=st.integers(1, 2**62),
)

digest_batches = st.builds(
    DigestBatch,
    id=uuids,
    tenant_id=ids,
    recipient=ids,
    group_key=st.text("0123456789abcdef", min_size=64, max_size=64),
    workflow_step_id=uuids,
    opened_at=timestamps,
    closes_at=timestamps,
    closed_at=st.none() | timestamps,
    delivery_id=st.none() | uuids,
    size=st.integers(0, 1000),
)

step_activations = st.builds(
    StepActivation,
    tenant_id=ids,
    recipient=ids,
    group_key=st.text("0123456789abcdef", min_size=64, max_size=64),
    workflow_run_id=uuids,
    activated_at=timestamps,
)

delivery_attempts = st.builds(
    DeliveryAttempt,
    attempt=st.integers(1, 100),
    claimed_at=st.none() | timestamps,
    lease_expires_at=st.none() | timestamps,
    ended_at=st.none() | timestamps,
    status=st.sampled_from(["dispatched", "succeeded", "failed", "lease_expired"]),
    suppression_reason=optional_names,
)

delivery_explanations = st.builds(
    DeliveryExplanation,
    delivery=deliveries,
    attempts=st.lists(delivery_attempts, max_size=3),
    why=st.text(max_size=40),
    next_move=st.text(max_size=40),
)

workflow_runs = st.builds(
    WorkflowRun,
    id=uuids,
    tenant_id=ids,
    notification_id=uuids,
    workflow_definition_id=uuids,
    current_step_id=uuids,
    state=run_states,
    status_reason=names,
    status_context=json_objects,
    started_at=timestamps,
    last_transition_at=timestamps,
    suspended_until=st.none() | timestamps,
    pending_signals=st.lists(names, max_size=4),
    terminal_reason=optional_names,
    wait_kind=st.none() | st.just("wait_until"),
    wait_target=optional_names,
    resumed_by=optional_names,
    entered_step_at=st.none() | timestamps,
)

workflow_transitions = st.builds(
    WorkflowTransition,
    id=uuids,
    seq=st.integers(1, 2**63 - 1),
    workflow_run_id=uuids,
    workflow_step_id=st.none() | uuids,
    delivery_id=st.none() | uuids,
    from_state=st.none() | run_states,
    to_state=run_states,
    reason=names,
    context=json_objects,
    inserted_at=timestamps,
)

#: A signal as the host builds it (no id, no inserted_at yet).
signals = st.builds(
    Signal,
    tenant_id=ids,
    event_name=names,
    actor_id=st.none() | ids,
    payload=json_objects,
)

#: A signal as :meth:`Store.track_signal` records it (id and inserted_at set).
stored_signals = st.builds(
    Signal,
    tenant_id=ids,
    event_name=names,
    actor_id=st.none() | ids,
    payload=json_objects,
    id=uuids,
    inserted_at=timestamps,
    correlation_key=st.none() | ids,
)

step_linkages = st.builds(StepLinkage, workflow_run_id=uuids, workflow_step_id=uuids, channel=names)

resumed = st.builds(Resumed, run=workflow_runs, transition=workflow_transitions)

progresses = st.builds(
    Progress,
    kind=st.sampled_from(list(ProgressKind)),
    run=workflow_runs,
    reason=names,
    deliveries=st.lists(deliveries, max_size=2),
)

trigger_results = st.builds(
    TriggerResult,
    notification=notifications,
    run=workflow_runs,
    deliveries=st.lists(deliveries, max_size=2),
    duplicate=st.booleans(),
)

run_explanations = st.builds(
    RunExplanation,
    id=uuids,
    tenant_id=ids,
    state=run_states,
    status_reason=names,
    current_step_name=names,
    suspended_until=st.none() | timestamps,
    pending_signals=st.lists(names, max_size=3),
    terminal_reason=optional_names,
    workflow_key=names,
    workflow_version=st.integers(1, 2**31),
    current_step_order=st.integers(1, 100),
    current_channel=names,
    started_at=timestamps,
    last_transition_at=timestamps,
    status_context=json_objects,
    due_at=st.none() | timestamps,
    next_step=optional_names,
    last_transition=st.none() | workflow_transitions,
    why=st.text(max_size=40),
    next_move=st.text(max_size=40),
    anchor_delivery_id=st.none() | uuids,
    anchor_delivery_status=st.none() | delivery_statuses,
    next_decision=st.none() | st.sampled_from(list(ProgressKind)),
    blocked_by=optional_names,
)

erasures = st.builds(
    Erasure,
    id=uuids,
    tenant_id=ids,
    scope=st.sampled_from(["tenant", "recipient"]),
    row_counts=st.dictionaries(names, st.integers(0, 10**6), max_size=4),
    rows_erased=st.integers(0, 10**7),
    erased_at=timestamps,
)

#: One strategy per record type of CONTRACT §1 and §11.
RECORDS: dict[type[Any], st.SearchStrategy[Any]] = {
    WorkflowDefinition: workflow_definitions(),
    WorkflowStep: workflow_steps(),
    Notification: notifications,
    Delivery: deliveries,
    WorkflowRun: workflow_runs,
    WorkflowTransition: workflow_transitions,
    Signal: stored_signals,
    Resumed: resumed,
    RunExplanation: run_explanations,
    StepLinkage: step_linkages,
    Progress: progresses,
    TriggerResult: trigger_results,
    Erasure: erasures,
    DeliveryEvent: delivery_events,
    SignalMark: signal_marks,
    DeliveryAttempt: delivery_attempts,
    DeliveryExplanation: delivery_explanations,
    DigestBatch: digest_batches,
    StepActivation: step_activations,
}

#: The record types that are rows of a table, with the table's name.
ROW_TABLES: dict[type[Any], str] = {
    WorkflowDefinition: "workflow_definitions",
    WorkflowStep: "workflow_steps",
    Notification: "notifications",
    Delivery: "deliveries",
    WorkflowRun: "workflow_runs",
    WorkflowTransition: "workflow_transitions",
    Signal: "signals",
    Erasure: "erasures",
    DeliveryEvent: "delivery_events",
}

# -- witnesses ------------------------------------------------------------------------------------


def table_dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ``store`` (sqlite_sequence included), in rowid order, plus
    the schema version: compare two dumps to prove that nothing was written (on PostgreSQL:
    every table of the store's schema and the trace sequence)."""
    if backends.is_postgres(store):
        return backends.table_dump(store)
    conn = store.connection
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
    ]
    dump: dict[str, list[tuple[Any, ...]]] = {
        # Table names come from sqlite_master, never from input.
        name: [tuple(row) for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid')]
        for name in tables
    }
    dump["PRAGMA user_version"] = [tuple(conn.execute("PRAGMA user_version").fetchone())]
    return dump
