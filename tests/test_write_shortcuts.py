"""Two shortcuts of the write paths (issue 16) change nothing a caller can see.

* A trigger whose first step has no gate writes its decision with ``Work.apply``, without
  ``gates.admit`` and ``Work.carry_out``: it must write exactly what the general path
  writes, and return and report the same. The two are run side by side on two new stores of
  the test's backend, with the same clock and the same ids (a counter stands in for
  ``new_id`` in every module that makes ids), so that every row, every result and every hook
  event can be compared as they are.
* The engine's trace rows are written from tuples, without records
  (``Unit.append_trace``): the rows must be those ``append_transitions`` writes for the
  records of the same rows.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journeys import workflows
from strategies import contexts, table_dump, timestamps

from chimeway_lite import (
    FakeClock,
    RunState,
    Step,
    Store,
    StoreEvent,
    Throttle,
    TriggerResult,
    Workflow,
)
from chimeway_lite.backends.base import TraceRow, trace_records
from chimeway_lite.core import ids
from chimeway_lite.engine import outbox
from chimeway_lite.engine.work import Work

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@contextmanager
def counted_ids() -> Iterator[None]:
    """Every id the package makes comes from one counter, in the same form as new_id's."""
    counter = itertools.count(1)

    def next_id() -> str:
        n = next(counter)
        return f"00000000-0000-7000-8000-{n:012x}"

    patched = [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("chimeway_lite") and getattr(m, "new_id", None) is ids.new_id
    ]
    for module in patched:
        module.new_id = next_id  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.new_id = ids.new_id  # type: ignore[attr-defined]


REQUESTS: list[dict[str, Any]] = [
    {"tenant_id": "acme", "recipient": "alice", "idempotency_key": "k1"},
    {
        "tenant_id": "acme",
        "recipient": "bob",
        "idempotency_key": "k2",
        "data": {"thread": "t-1", "n": 3},
        "correlation_key": "order-9",
        "timezone": "Europe/Paris",
    },
    {"tenant_id": "globex", "recipient": "alice", "idempotency_key": "k1"},
    {"tenant_id": "acme", "recipient": "alice", "idempotency_key": "k1"},  # a duplicate
    {"tenant_id": "acme", "recipient": "alice", "idempotency_key": "k3", "data": {"thread": "t-1"}},
]


def _run(
    make: Callable[..., Store], workflow: Workflow, *, general: bool, batch: bool
) -> tuple[list[TriggerResult], list[StoreEvent], dict[str, list[tuple[Any, ...]]]]:
    events: list[StoreEvent] = []
    clock = FakeClock(T0)
    with counted_ids(), pytest.MonkeyPatch.context() as patch:
        if general:
            # what a trigger did before it had the shortcut: gates.admit, then carry_out
            patch.setattr(outbox, "ungated", lambda decision, journey: False)
        store = make(clock=clock, on_event=events.append)
        requests = [dict(r, notification_key="welcome", workflow=workflow) for r in REQUESTS]
        if batch:
            results = store.trigger_many(requests)
        else:
            results = []
            for request in requests:
                results.append(store.trigger(**request))
                clock.advance(seconds=1)
        dump = table_dump(store)
        dump.pop("chimeway_lite_schema", None)  # PostgreSQL's: stamped with the wall clock
        return results, events, dump


def _same_on_both_paths(make: Callable[..., Store], workflow: Workflow, batch: bool) -> None:
    fast = _run(make, workflow, general=False, batch=batch)
    general = _run(make, workflow, general=True, batch=batch)
    assert fast[0] == general[0]
    assert fast[1] == general[1]
    assert fast[2] == general[2]


@pytest.mark.parametrize("batch", [False, True], ids=["one by one", "trigger_many"])
def test_a_trigger_writes_returns_and_reports_what_the_general_path_does(
    new_store: Callable[..., Store], escalation: Workflow, batch: bool
) -> None:
    _same_on_both_paths(new_store, escalation, batch)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(workflow=workflows(gates=True), batch=st.booleans())
def test_any_journey_with_or_without_gates_is_triggered_as_the_general_path_triggers_it(
    new_store: Callable[..., Store], workflow: Workflow, batch: bool
) -> None:
    _same_on_both_paths(new_store, workflow, batch)


def test_the_shortcut_is_taken_only_when_the_first_step_has_no_gate(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A throttle, window or digest on the first step takes the general path (its gates
    may hold the run back, and a throttle counts the run it lets through)."""
    carried: list[str] = []
    real = Work.carry_out

    def spy(self: Work, before: Any, decision: Any, now: datetime, **kwargs: Any) -> Any:
        carried.append(kwargs["notification"].idempotency_key)
        return real(self, before, decision, now, **kwargs)

    monkeypatch.setattr(Work, "carry_out", spy)
    plain = Workflow("plain", 1, [Step("email", 1, "email")])
    gated = Workflow("gated", 1, [Step("email", 1, "email", throttle=Throttle(1, 600))])
    second_gated = Workflow(
        "later",
        1,
        [Step("in_app", 1, "in_app"), Step("email", 2, "email", throttle=Throttle(1, 60))],
    )
    for key, workflow in (("p", plain), ("g", gated), ("l", second_gated)):
        store.trigger(
            tenant_id="acme",
            notification_key="welcome",
            recipient="alice",
            workflow=workflow,
            idempotency_key=key,
        )
    assert carried == ["g"]


_states = st.sampled_from(list(RunState))
_trace = st.lists(
    st.tuples(
        st.sampled_from([None, "step"]),
        st.sampled_from([None, "delivery"]),
        st.none() | _states,
        _states,
        st.sampled_from(["workflow_started", "step_activated", "waiting_for_signal", "é✓"]),
        # (PostgreSQL's jsonb holds no NUL, and no context the machine writes has one)
        contexts.filter(lambda c: all("\x00" not in v for v in c.values())),
    ),
    min_size=1,
    max_size=10,  # past the 8 rows one hand-made statement takes
)


def _append(store: Store, rows: list[Any], now: datetime, *, as_tuples: bool) -> list[Any]:
    """Trigger one run, then append ``rows`` to its trace in one unit, as tuples or as
    records; the trace rows of the store afterwards."""
    with counted_ids():
        result = store.trigger(
            tenant_id="acme",
            notification_key="welcome",
            recipient="alice",
            workflow=Workflow("w", 1, [Step("email", 1, "email")]),
            idempotency_key="k",
        )
    run_id = result.run.id
    step_id = result.run.current_step_id
    delivery_id = result.deliveries[0].id
    with store.backend.unit(write=True) as unit:
        seqs = unit.next_seqs(len(rows))
        trace: list[TraceRow] = [
            (
                f"00000000-0000-7000-9000-{i:012x}",
                seq,
                step_id if step else None,
                delivery_id if delivery else None,
                from_state,
                to_state,
                reason,
                context,
            )
            for i, (seq, (step, delivery, from_state, to_state, reason, context)) in enumerate(
                zip(seqs, rows, strict=True)
            )
        ]
        if as_tuples:
            unit.append_trace(run_id, trace, now)
        else:
            unit.append_transitions(trace_records(run_id, trace, now))
    return table_dump(store)["workflow_transitions"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=_trace, now=timestamps)
def test_trace_rows_written_from_tuples_are_the_rows_of_their_records(
    new_store: Callable[..., Store], rows: list[Any], now: datetime
) -> None:
    as_tuples = _append(new_store(), rows, now, as_tuples=True)
    as_records = _append(new_store(), rows, now, as_tuples=False)
    assert as_tuples == as_records
    assert len(as_tuples) == 2 + len(rows)
