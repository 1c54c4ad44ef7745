"""A RuleBasedStateMachine that drives a Store and the in-memory model of ``journeys.py``
side by side and compares them after every step: states, current step keys, pending
deliveries (and their digest sizes), trace rows per run, terminal reasons, due times. The
drawn workflows have throttles, send windows and digests (CONTRACT §14), and recipients are
in different time zones."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import backends
import pytest
from backends import sql
from factories import escalation_workflow, trigger
from hypothesis import event as event_
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from journeys import (
    EVENTS,
    RECIPIENTS,
    SUPPRESSION_REASONS,
    T0,
    TENANTS,
    ZONES,
    Expected,
    ModelStore,
    Moved,
    workflows,
)

from chimeway_lite import (
    DeliveryStatus,
    FakeClock,
    Progress,
    ProgressKind,
    Signal,
    Workflow,
)


class StoreAgainstModel(RuleBasedStateMachine):
    """Every rule acts on both; every invariant compares them."""

    #: The backend each machine's store runs on (the PostgreSQL twin below sets its own).
    backend = backends.SQLITE

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(T0)
        self.scratch = backends.scratch_store(self.backend, clock=self.clock)
        self.store = self.scratch.__enter__()
        self.model = ModelStore()
        self.workflows: list[Workflow] = [escalation_workflow()]
        self.keys: list[tuple[str, str]] = []

    def teardown(self) -> None:
        self.scratch.__exit__(None, None, None)

    @initialize(drawn=st.lists(workflows(key="drawn", gates=True), min_size=1, max_size=2))
    def register(self, drawn: list[Workflow]) -> None:
        for version, workflow in enumerate(drawn, start=1):
            self.workflows.append(Workflow(workflow.key, version, workflow.steps))

    # -- helpers -----------------------------------------------------------------------------------

    def _adopt(
        self,
        run_id: str,
        expected: Expected,
        progress: Progress | None,
        now: datetime | None = None,
    ) -> None:
        """Check one progression against the model and adopt the ids it planned, as planned
        at ``now`` (the call's own time: the clock's, unless the call was given one)."""
        assert progress is not None
        event_(f"{expected.kind}: {expected.reason}")
        assert (progress.kind.value, progress.reason) == (expected.kind, expected.reason), run_id
        assert progress.run.id == run_id
        planned = [d.workflow_step_id for d in progress.deliveries]
        if expected.planned_step is None:
            assert planned == []
            return
        (delivery,) = progress.deliveries
        step = self.store.fetch_step_by_key(
            progress.run.workflow_definition_id, expected.planned_step
        )
        assert step is not None and delivery.workflow_step_id == step.id
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.digest_size == expected.digest_size
        planned_at = self.clock.now() if now is None else now
        self.model.plan(
            run_id, expected.planned_step, delivery.id, planned_at, expected.digest_size
        )

    def _adopt_moved(self, moved: Moved) -> None:
        """Adopt what a call did to runs it does not return (the rest of a digest batch it
        filled): each one's new delivery, as the store planned it."""
        for run_id, expected in moved:
            tenant = self.model.runs[run_id].tenant_id
            planned = self.store.list_deliveries(tenant, run_id)
            own = [d for d in planned if d.id not in {m.id for m in self.model.deliveries}]
            progress = Progress(
                ProgressKind(expected.kind),
                self.store.get_run(run_id),
                expected.reason,
                tuple(own),
            )
            self._adopt(run_id, expected, progress)

    # -- rules -------------------------------------------------------------------------------------

    @rule(
        tenant=st.sampled_from(TENANTS),
        recipient=st.sampled_from(RECIPIENTS),
        which=st.integers(0, 2),
        timezone=st.sampled_from(ZONES),
    )
    def trigger(self, tenant: str, recipient: str, which: int, timezone: str | None) -> None:
        workflow = self.workflows[which % len(self.workflows)]
        key = f"k{len(self.keys)}"
        result = trigger(
            self.store,
            tenant=tenant,
            recipient=recipient,
            workflow=workflow,
            key=key,
            timezone=timezone,
        )
        assert not result.duplicate
        self.keys.append((tenant, key))
        now = self.clock.now()
        (own, *moved) = self.model.trigger(
            result.run.id, tenant, recipient, workflow, key, now, timezone
        )
        expected = own[1]
        event_(f"trigger: {expected.reason}")
        run = self.model.runs[result.run.id]
        assert (result.run.state.value, result.run.status_reason) == (run.state, run.status_reason)
        if expected.planned_step is None:
            assert result.deliveries == ()
        else:
            (first,) = result.deliveries
            assert first.digest_size == expected.digest_size
            self.model.plan(run.id, expected.planned_step, first.id, now, expected.digest_size)
        self._adopt_moved(moved)

    @precondition(lambda self: bool(self.keys))
    @rule(pick=st.integers(0, 10**6))
    def trigger_again(self, pick: int) -> None:
        tenant, key = self.keys[pick % len(self.keys)]
        result = trigger(
            self.store, tenant=tenant, recipient="someone-else", workflow=self.workflows[0], key=key
        )
        assert result.duplicate
        assert result.run.id == self.model.keys[(tenant, key)]

    @rule(limit=st.integers(0, 4), channel=st.none() | st.sampled_from(("in_app", "email", "sms")))
    def claim(self, limit: int, channel: str | None) -> None:
        claimed = self.store.claim_deliveries(limit, channel=channel)
        assert [d.id for d in claimed] == self.model.claim(limit, channel, self.clock.now())

    @precondition(lambda self: bool(self.model.deliveries))
    @rule(
        pick=st.integers(0, 10**6),
        status=st.sampled_from([*DeliveryStatus, DeliveryStatus.SUCCEEDED]),
        reason=st.sampled_from(SUPPRESSION_REASONS),
    )
    def record_outcome(self, pick: int, status: DeliveryStatus, reason: str | None) -> None:
        delivery = self.model.deliveries[pick % len(self.model.deliveries)]
        expected = self.model.record_outcome(delivery.id, status.value, reason, self.clock.now())
        if isinstance(expected, type):
            with pytest.raises(expected):
                self.store.record_outcome(delivery.id, status, reason)
            return
        progress = self.store.record_outcome(delivery.id, status, reason)
        if expected is None:
            assert progress is None
            return
        (own, *moved) = expected
        self._adopt(delivery.run_id, own[1], progress)
        self._adopt_moved(moved)

    @rule(seconds=st.sampled_from((1, 59, 600, 3600, 7199, 7200, 9000)))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.model.next_due_at() is not None)
    @rule()
    def advance_to_the_next_due_time(self) -> None:
        due = self.model.next_due_at()
        assert due is not None
        if due > self.clock.now():
            self.clock.set(due)

    @rule(early=st.booleans())
    def sweep(self, early: bool) -> None:
        now = self.clock.now() - (timedelta(microseconds=1) if early else timedelta(0))
        swept = self.store.progress_due_runs(now=now)
        changed = self.model.sweep(now)
        assert [p.run.id for p in swept] == [run_id for run_id, _ in changed]
        for (run_id, e), progress in zip(changed, swept, strict=True):
            self._adopt(run_id, e, progress, now)  # planned at the sweep's time, not the clock's

    @precondition(lambda self: bool(self.model.runs))
    @rule(pick=st.integers(0, 10**6))
    def progress_run(self, pick: int) -> None:
        run_id = list(self.model.runs)[pick % len(self.model.runs)]
        progress = self.store.progress_run(run_id)
        (own, *moved) = self.model.progress(run_id, self.clock.now())
        self._adopt(run_id, own[1], progress)
        self._adopt_moved(moved)

    @rule(
        tenant=st.sampled_from(TENANTS),
        event=st.sampled_from(EVENTS),
        actor=st.none() | st.sampled_from(RECIPIENTS),
        track=st.booleans(),
    )
    def signal(self, tenant: str, event: str, actor: str | None, track: bool) -> None:
        signal = Signal(tenant, event, actor, {"delivery_id": None})
        if track:
            _, resumed = self.store.track_signal(signal)
        else:
            resumed = self.store.route_signal(signal)
        assert sorted(resumed) == self.model.signal(tenant, event, actor, self.clock.now())
        if resumed:
            event_(f"signal resumed a run (track={track})")

    @precondition(lambda self: any(r.pending_signals for r in self.model.runs.values()))
    @rule(pick=st.integers(0, 10**6), by_actor=st.booleans())
    def signal_a_waiting_run(self, pick: int, by_actor: bool) -> None:
        awaiting = [r for r in self.model.runs.values() if r.pending_signals]
        run = awaiting[pick % len(awaiting)]
        event = run.pending_signals[pick % len(run.pending_signals)]
        self.signal(run.tenant_id, event, run.recipient if by_actor else None, track=False)

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def runs_match(self) -> None:
        rows = (
            sql(self.store)
            .execute(
                "SELECT r.*, s.step_key, (SELECT count(*) FROM workflow_transitions t "
                "WHERE t.workflow_run_id = r.id) AS trace_rows FROM workflow_runs r "
                "JOIN workflow_steps s ON s.id = r.current_step_id"
            )
            .fetchall()
        )
        assert len(rows) == len(self.model.runs)
        for row in rows:
            run = self.model.runs[row["id"]]
            seen: dict[str, Any] = {
                "tenant": row["tenant_id"],
                "state": row["state"],
                "step": row["step_key"],
                "reason": row["status_reason"],
                "terminal": row["terminal_reason"],
                "trace_rows": row["trace_rows"],
            }
            assert seen == {
                "tenant": run.tenant_id,
                "state": run.state,
                "step": run.step_key,
                "reason": run.status_reason,
                "terminal": run.terminal_reason,
                "trace_rows": run.trace_rows,
            }
        for run_id, run in self.model.runs.items():
            stored = self.store.get_run(run_id)
            assert stored.suspended_until == run.suspended_until
            assert stored.pending_signals == run.pending_signals
            assert stored.last_transition_at == run.last_transition_at

    @invariant()
    def deliveries_match(self) -> None:
        rows = (
            sql(self.store)
            .execute(
                "SELECT id, status, suppression_reason, digest_size FROM deliveries ORDER BY rowid"
            )
            .fetchall()
        )
        assert [tuple(r) for r in rows] == [
            (d.id, d.status, d.suppression_reason, d.digest_size) for d in self.model.deliveries
        ]
        pending = [r["id"] for r in rows if r["status"] == "pending"]
        assert pending == [d.id for d in self.model.deliveries if d.status == "pending"]

    @invariant()
    def due_times_match(self) -> None:
        assert self.store.next_due_at() == self.model.next_due_at()


TestStoreAgainstModel = pytest.mark.slow(StoreAgainstModel.TestCase)


class PostgresStoreAgainstModel(StoreAgainstModel):
    """The same machine on a PostgreSQL store (a new schema for each example)."""

    backend = backends.POSTGRES


if backends.postgres_dsn() is not None:  # collected when a server can be had (see backends)
    TestPostgresStoreAgainstModel = pytest.mark.slow(PostgresStoreAgainstModel.TestCase)
