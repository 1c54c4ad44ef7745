"""Hypothesis through the Store (CONTRACT §10): random interleavings over three tenants and three
recipients never let one tenant's signal or call touch or reveal another's runs, and random
payloads never reach a stored transition. The drawn journeys have throttles, send windows
and digests (CONTRACT §14), keyed by a trigger-data field whose values are payloads too: they
never reach a trace, a throttle's activations or a digest batch either."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from backends import scratch_store, sql
from factories import escalation_workflow, trigger
from hypothesis import given
from hypothesis import strategies as st
from journeys import (
    CATALOGUE,
    EVENTS,
    RECIPIENTS,
    SUPPRESSION_REASONS,
    T0,
    TENANTS,
    ZONES,
    leaves,
    payloads,
    tenant_rows,
    workflows,
)

from chimeway_lite import (
    DeliveryStatus,
    FakeClock,
    InvalidArgument,
    InvalidTransition,
    RunNotFound,
    Signal,
    Store,
    Workflow,
)

#: Correlation keys, the same in every tenant on purpose (None: an unkeyed notification).
KEYS = (None, "o-1", "o-2")
#: Trigger data values start with it: host data, never to be copied beyond the notification.
MARK_DATA = "sekret-data-"

_ops = st.one_of(
    st.tuples(
        st.just("trigger"),
        st.sampled_from(TENANTS),
        st.sampled_from(RECIPIENTS),
        st.integers(0, 1),
        st.sampled_from(KEYS),
        st.sampled_from(ZONES),
        # the value of the "thread" field the drawn step options may group by, or none
        st.none() | st.sampled_from(("t-1", "t-2")).map(lambda t: MARK_DATA + t),
    ),
    st.tuples(
        st.just("cancel"),
        st.sampled_from(TENANTS),
        st.sampled_from(("run", "key", "recipient")),
        st.integers(0, 99),
        st.sampled_from(KEYS[1:]),
        st.sampled_from(RECIPIENTS),
    ),
    st.tuples(
        st.just("claim"), st.integers(0, 4), st.none() | st.sampled_from(("in_app", "email"))
    ),
    st.tuples(
        st.just("outcome"),
        st.integers(0, 99),
        st.sampled_from(list(DeliveryStatus)),
        st.sampled_from(SUPPRESSION_REASONS),
    ),
    st.tuples(st.just("advance"), st.integers(1, 9000)),
    st.tuples(st.just("sweep")),
    st.tuples(st.just("progress"), st.integers(0, 99)),
    st.tuples(
        st.just("signal"),
        st.sampled_from(TENANTS),
        st.sampled_from(EVENTS),
        st.none() | st.sampled_from((*RECIPIENTS, "dave")),
        payloads(),
        st.sampled_from(("none", "own", "foreign", "unknown")),
        st.booleans(),
        st.sampled_from(KEYS),
    ),
    st.tuples(st.just("peek"), st.sampled_from(TENANTS), st.integers(0, 99)),
)


class Harness:
    """A store in memory and what the test knows of it."""

    def __init__(self, store: Store, clock: FakeClock, workflows: list[Workflow]) -> None:
        self.store = store
        self.clock = clock
        self.workflows = workflows
        self.runs: list[tuple[str, str]] = []  # (run id, tenant)
        self.sent: list[Any] = []  # payload leaves that must never reach a trace
        self.count = 0

    def deliveries(self, tenant: str | None = None, *, other: bool = False) -> list[str]:
        """Delivery ids (of a tenant, or of every other tenant)."""
        rows = (
            sql(self.store)
            .execute("SELECT id, tenant_id FROM deliveries ORDER BY rowid")
            .fetchall()
        )
        return [
            r[0] for r in rows if tenant is None or (r[1] != tenant if other else r[1] == tenant)
        ]

    @contextmanager
    def untouched_except(self, tenant: str) -> Iterator[None]:
        """Check that the block leaves every other tenant's rows as they were."""
        before = {t: tenant_rows(self.store, t) for t in TENANTS if t != tenant}
        yield
        for t, rows in before.items():
            assert tenant_rows(self.store, t) == rows, f"{tenant} touched {t}"

    def run(self, op: tuple[Any, ...]) -> None:
        """Carry out one operation and check what it must not do."""
        store = self.store
        kind = op[0]
        if kind == "trigger":
            _, tenant, recipient, which, *extra = op
            correlation_key, zone, thread = [*extra, None, None, None][:3]
            self.count += 1
            data = {} if thread is None else {"thread": thread}
            self.sent.extend(data.values())
            with self.untouched_except(tenant):
                result = trigger(
                    store,
                    tenant=tenant,
                    recipient=recipient,
                    workflow=self.workflows[which],
                    key=f"k{self.count}",
                    correlation_key=correlation_key,
                    timezone=zone,
                    data=data,
                )
            self.runs.append((result.run.id, tenant))
        elif kind == "cancel":
            self.cancel(*op[1:])
        elif kind == "claim":
            store.claim_deliveries(op[1], channel=op[2])
        elif kind == "outcome":
            ids = self.deliveries()
            if ids:
                # a report CONTRACT §12 refuses writes nothing: the sequence goes on
                with contextlib.suppress(InvalidArgument, InvalidTransition):
                    store.record_outcome(ids[op[1] % len(ids)], op[2], op[3])
        elif kind == "advance":
            self.clock.advance(op[1])
        elif kind == "sweep":
            store.progress_due_runs()
        elif kind == "progress":
            if self.runs:
                store.progress_run(self.runs[op[1] % len(self.runs)][0])
        elif kind == "signal":
            self.signal(*op[1:])
        else:
            self.peek(op[1], op[2])

    def cancel(self, tenant: str, by: str, pick: int, key: str, recipient: str) -> None:
        """Cancel from ``tenant`` by a run (maybe another tenant's), a key or a recipient:
        only the tenant's own runs stop."""
        selector: dict[str, str] = {
            "key": {"correlation_key": key},
            "recipient": {"recipient": recipient},
        }.get(by, {})
        if by == "run":
            if not self.runs:
                return
            selector = {"run_id": self.runs[pick % len(self.runs)][0]}
        with self.untouched_except(tenant):
            stopped = self.store.cancel(tenant, **selector)
        for run in stopped:
            assert run.tenant_id == tenant
            assert run.state.value == "stopped" and run.terminal_reason == "cancelled"

    def signal(
        self,
        tenant: str,
        event: str,
        actor: str | None,
        payload: dict[str, Any],
        link: str,
        track: bool,
        key: str | None = None,
    ) -> None:
        """Send a signal from ``tenant`` and check whom it resumed and what it recorded."""
        payload = dict(payload)
        payload.pop("delivery_id", None)
        self.sent.append(dict(payload))  # before a delivery id is added: that one may land
        linked: str | None = None
        if link == "own" and (own := self.deliveries(tenant)):
            linked = payload["delivery_id"] = own[-1]
        elif link == "foreign" and (foreign := self.deliveries(tenant, other=True)):
            payload["delivery_id"] = foreign[-1]
        elif link == "unknown":
            payload["delivery_id"] = str(uuid.uuid4())
            self.sent.append(payload["delivery_id"])
        signal = Signal(tenant, event, actor, payload, correlation_key=key)
        with self.untouched_except(tenant):
            preview = self.store.preview_signal(signal)
            if track:
                _, resumed = self.store.track_signal(signal)
            else:
                resumed = self.store.route_signal(signal)
        assert sorted(resumed) == sorted(preview)
        for run_id, outcome in resumed.items():
            assert outcome.run.tenant_id == tenant
            recipient, correlation = (
                sql(self.store)
                .execute(
                    "SELECT recipient, correlation_key FROM notifications WHERE id = ?",
                    (outcome.run.notification_id,),
                )
                .fetchone()
            )
            if actor is not None:
                assert recipient == actor
            if key is not None:
                assert correlation == key
            row = outcome.transition
            assert (row.workflow_run_id, row.context) == (run_id, {"event_name": event})
            assert row.delivery_id == linked

    def peek(self, tenant: str, pick: int) -> None:
        """Look at some run as ``tenant``: others' runs look exactly like missing ones."""
        if not self.runs:
            return
        run_id, owner = self.runs[pick % len(self.runs)]
        store = self.store
        with self.untouched_except(tenant):
            if owner == tenant:
                assert store.explain(tenant, run_id).id == run_id
                assert {t.workflow_run_id for t in store.list_traces(tenant, run_id)} == {run_id}
                return
            missing = str(uuid.uuid4())
            for call in (store.explain, store.list_traces, store.list_deliveries):
                with pytest.raises(RunNotFound) as foreign:
                    call(tenant, run_id)
                with pytest.raises(RunNotFound) as absent:
                    call(tenant, missing)
                assert str(foreign.value).replace(run_id, "?") == str(absent.value).replace(
                    missing, "?"
                )

    def check_traces(self) -> None:
        """No trace row (nor signal mark, nor attempt history row) holds a payload leaf, and
        no context a key outside the catalogue."""
        conn = sql(self.store)
        rows = conn.execute("SELECT * FROM workflow_transitions").fetchall()
        others = conn.execute(
            "SELECT tenant_id, event_name, actor_id, correlation_key, routed_at, 'mark' "
            "FROM signal_marks UNION ALL "
            "SELECT delivery_id, kind, status, suppression_reason, at, 'event' "
            "FROM delivery_events UNION ALL "
            "SELECT tenant_id, recipient, group_key, workflow_run_id, activated_at, 'act' "
            "FROM step_activations UNION ALL "
            "SELECT id, group_key, workflow_step_id, delivery_id, closes_at, 'batch' "
            "FROM digest_batches"
        ).fetchall()
        # the raw text of every column of every row (payload leaves hold no NUL)
        text = "\x00".join(str(value) for row in [*rows, *others] for value in row)
        for payload in self.sent:
            for leaf in leaves(payload):
                assert leaf not in text, leaf
        for row in rows:
            assert set(json.loads(row["context"])) <= set(CATALOGUE)


@pytest.mark.slow
@given(workflows(key="drawn", gates=True), st.lists(_ops, min_size=5, max_size=40))
def test_tenants_never_touch_or_see_each_other(
    backend: str, drawn: Workflow, ops: list[tuple[Any, ...]]
) -> None:
    clock = FakeClock(T0)
    with scratch_store(backend, clock=clock) as store:
        harness = Harness(store, clock, [escalation_workflow(), drawn])
        # every tenant starts with a journey for every recipient: collisions are the point
        for tenant in TENANTS:
            for recipient in RECIPIENTS:
                harness.run(("trigger", tenant, recipient, 0))
        for op in ops:
            harness.run(op)
        harness.check_traces()
        assert store.verify() == []


_waits = st.lists(
    st.tuples(st.sampled_from(TENANTS), st.sampled_from(RECIPIENTS)), min_size=1, max_size=6
)


@pytest.mark.slow
@given(
    _waits,
    st.lists(
        st.tuples(
            st.sampled_from(TENANTS),
            st.sampled_from(EVENTS),
            st.none() | st.sampled_from(RECIPIENTS),
            payloads(),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_payloads_never_reach_a_transition(
    backend: str, waits: list[tuple[str, str]], signals: list[tuple[Any, ...]]
) -> None:
    clock = FakeClock(T0)
    with scratch_store(backend, clock=clock) as store:
        harness = Harness(store, clock, [escalation_workflow()])
        for i, (tenant, recipient) in enumerate(waits):
            harness.run(("trigger", tenant, recipient, 0))
            delivery = store.list_deliveries(tenant, harness.runs[-1][0])[0]
            clock.advance(i)
            store.record_outcome(delivery.id, "succeeded")
        for tenant, event, actor, payload, track in signals:
            clock.advance(30)
            harness.signal(tenant, event, actor, payload, "none", track)
        clock.advance(hours=3)
        store.progress_due_runs()  # settle the resumed, escalate the others
        harness.check_traces()
        resumed = (
            sql(store)
            .execute("SELECT count(*) FROM workflow_transitions WHERE reason = 'signal_received'")
            .fetchone()[0]
        )
        cancelled = (
            sql(store)
            .execute(
                "SELECT count(*) FROM workflow_runs WHERE terminal_reason = 'cancelled_by_signal'"
            )
            .fetchone()[0]
        )
        assert resumed == cancelled


def test_inspection_of_another_tenants_run_looks_like_a_missing_run(backend: str) -> None:
    clock = FakeClock(T0)
    with scratch_store(backend, clock=clock) as store:
        harness = Harness(store, clock, [escalation_workflow()])
        harness.run(("trigger", "acme", "alice", 0))
        harness.run(("trigger", "globex", "alice", 0))
        acme_run, globex_run = (run_id for run_id, _ in harness.runs)
        assert store.explain("acme", acme_run).id == acme_run
        harness.peek("globex", 0)  # acme's run, seen from globex
        harness.peek("acme", 1)  # and the other way round
        for call in (store.explain, store.list_traces, store.list_deliveries):
            with pytest.raises(RunNotFound):
                call("acme", globex_run)
            with pytest.raises(RunNotFound):
                call("globex", acme_run)
