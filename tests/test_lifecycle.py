"""Data lifecycle: prune() of finished runs, forget() of a tenant or a recipient (issue 4)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from backends import sql as raw_sql
from factories import START, trigger
from strategies import table_dump

from chimeway_lite import (
    Erasure,
    FakeClock,
    InvalidArgument,
    Outcome,
    Signal,
    Step,
    Stop,
    Store,
    TriggerResult,
    Workflow,
)

STOPPING = Workflow(
    "stopping", 1, [Step("sms", 1, "sms", progress=[Stop(Outcome.PERMANENT_FAILURE)])]
)
TABLES = (
    "workflow_transitions",
    "delivery_events",
    "deliveries",
    "workflow_runs",
    "notifications",
    "signals",
)


def _counts(store: Store, where: str = "1", *params: object) -> dict[str, int]:
    # Table names come from TABLES above, never from input.
    return {
        table: raw_sql(store)
        .execute(f"SELECT count(*) FROM {table} WHERE {where}", params)
        .fetchone()[0]
        for table in TABLES
    }


def _one(store: Store, sql: str) -> Any:
    return raw_sql(store).execute(sql).fetchone()[0]


def _finish(store: Store, started: TriggerResult, how: str) -> None:
    delivery = started.deliveries[0]
    if how == "completed":  # the escalation's email step has no rules: completes at once
        store.record_outcome(delivery.id, "cancelled", "bounced")
        (email,) = store.claim_deliveries(1, channel="email")
        store.record_outcome(email.id, "succeeded")
    elif how == "stopped":
        store.record_outcome(delivery.id, "cancelled", "permanent_failure")
    elif how == "waiting":
        store.record_outcome(delivery.id, "succeeded")


def _tenant_rows(store: Store, tenant: str) -> dict[str, list[Any]]:
    """Every row that belongs to ``tenant``, by table."""
    queries = {
        "notifications": "SELECT * FROM notifications WHERE tenant_id = ?",
        "workflow_runs": "SELECT * FROM workflow_runs WHERE tenant_id = ?",
        "deliveries": "SELECT * FROM deliveries WHERE tenant_id = ?",
        "delivery_events": "SELECT * FROM delivery_events WHERE tenant_id = ?",
        "signal_marks": "SELECT * FROM signal_marks WHERE tenant_id = ?",
        "signals": "SELECT * FROM signals WHERE tenant_id = ?",
        "digest_batches": "SELECT * FROM digest_batches WHERE tenant_id = ?",
        "digest_members": "SELECT m.* FROM digest_members AS m JOIN workflow_runs AS r "
        "ON r.id = m.workflow_run_id WHERE r.tenant_id = ?",
        "step_activations": "SELECT * FROM step_activations WHERE tenant_id = ?",
        "workflow_transitions": "SELECT t.* FROM workflow_transitions AS t JOIN workflow_runs "
        "AS r ON r.id = t.workflow_run_id WHERE r.tenant_id = ? ORDER BY t.seq",
    }
    return {
        name: [tuple(row) for row in raw_sql(store).execute(sql, (tenant,))]
        for name, sql in queries.items()
    }


# -- prune ------------------------------------------------------------------------------------


def test_prune_deletes_finished_runs_older_than_the_cutoff_with_their_rows(
    store: Store, clock: FakeClock
) -> None:
    done = trigger(store, recipient="ada", key="done")
    _finish(store, done, "completed")
    halted = trigger(store, recipient="bob", key="halted", workflow=STOPPING)
    _finish(store, halted, "stopped")
    waiting = trigger(store, recipient="cy", key="waiting")
    _finish(store, waiting, "waiting")
    active = trigger(store, recipient="di", key="active")
    store.track_signal(Signal("acme", "something_else", "ada", {"note": "kept"}))
    clock.advance(days=30)
    recent = trigger(store, recipient="ed", key="recent")
    _finish(store, recent, "completed")  # finished after the cutoff: kept
    before = _counts(store)

    deleted = store.prune(START + timedelta(days=1))

    after = _counts(store)
    # completed: 5 trace rows, 3 attempt history rows (the in-app outcome, the email's claim
    # and outcome), 2 deliveries, run, notification; stopped: 3, 1, 1, 1, 1
    assert deleted == sum(before.values()) - sum(after.values()) == 12 + 7
    for gone in (done, halted):
        for table, column in (
            ("workflow_runs", "id"),
            ("workflow_transitions", "workflow_run_id"),
            ("deliveries", "workflow_run_id"),
        ):
            # Table and column names come from the tuple above, never from input.
            found = (
                raw_sql(store)
                .execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (gone.run.id,))
                .fetchone()[0]
            )
            assert found == 0, table
        assert (
            not raw_sql(store)
            .execute("SELECT 1 FROM notifications WHERE id = ?", (gone.notification.id,))
            .fetchone()
        )
    for kept in (waiting.run, active.run, recent.run):
        assert store.get_run(kept.id).id == kept.id
    assert after["signals"] == before["signals"] == 1  # signals are not part of a run
    assert store.fetch_definition("stopping", 1) is not None  # definitions stay
    assert store.verify() == []


def test_prune_counts_every_row_it_deletes(store: Store, clock: FakeClock) -> None:
    done = trigger(store, recipient="ada", key="done")
    _finish(store, done, "completed")
    keep = trigger(store, recipient="bob", key="keep")
    before = _counts(store)
    deleted = store.prune(clock.advance(seconds=1))
    after = _counts(store)
    assert deleted == sum(before.values()) - sum(after.values())
    # completed run: 5 trace rows, 3 attempt history rows, 2 deliveries, the run, its
    # notification
    assert deleted == 5 + 3 + 2 + 1 + 1
    assert {t: before[t] - after[t] for t in TABLES} == {
        "workflow_transitions": 5,
        "delivery_events": 3,
        "deliveries": 2,
        "workflow_runs": 1,
        "notifications": 1,
        "signals": 0,
    }
    assert store.get_run(keep.run.id).state == "active"


def test_prune_keeps_a_run_that_finished_exactly_at_the_cutoff(
    store: Store, clock: FakeClock
) -> None:
    done = trigger(store, recipient="ada", key="done")
    _finish(store, done, "completed")
    finished_at = store.get_run(done.run.id).last_transition_at
    assert store.prune(finished_at) == 0
    assert store.prune(finished_at + timedelta(microseconds=1)) == 12


def test_prune_never_touches_unfinished_runs_however_old(store: Store, clock: FakeClock) -> None:
    _finish(store, trigger(store, recipient="ada", key="w"), "waiting")
    trigger(store, recipient="bob", key="a")
    before = table_dump(store)
    assert store.prune(clock.advance(days=3650)) == 0
    assert table_dump(store) == before


def test_prune_of_one_tenant_leaves_the_others(store: Store, clock: FakeClock) -> None:
    for tenant in ("acme", "globex"):
        _finish(store, trigger(store, tenant=tenant, recipient="ada", key="k"), "completed")
    globex = _tenant_rows(store, "globex")
    assert store.prune(clock.advance(seconds=1), tenant_id="acme") == 12
    assert _tenant_rows(store, "globex") == globex
    assert _tenant_rows(store, "acme")["workflow_runs"] == []


def test_after_prune_the_sequence_keeps_rising_and_the_key_is_free_again(
    store: Store, clock: FakeClock
) -> None:
    done = trigger(store, recipient="ada", key="k")
    _finish(store, done, "completed")
    last_seq = store.list_traces("acme", done.run.id)[-1].seq
    store.prune(clock.advance(seconds=1))
    again = trigger(store, recipient="ada", key="k")
    assert not again.duplicate  # the pruned notification no longer holds its key
    assert store.list_traces("acme", again.run.id)[0].seq > last_seq
    assert store.verify() == []


@pytest.mark.parametrize(
    "before, tenant",
    [
        (datetime(2026, 1, 1), None),  # naive
        ("2026-01-01", None),
        (START, ""),
        (START, 7),
    ],
)
def test_prune_refuses_bad_arguments_and_writes_nothing(
    store: Store, before: Any, tenant: Any
) -> None:
    _finish(store, trigger(store, recipient="ada", key="k"), "completed")
    snapshot = table_dump(store)
    with pytest.raises(InvalidArgument):
        store.prune(before, tenant_id=tenant)
    assert table_dump(store) == snapshot


def test_prune_inside_a_failed_transaction_deletes_nothing(store: Store, clock: FakeClock) -> None:
    _finish(store, trigger(store, recipient="ada", key="k"), "completed")
    snapshot = table_dump(store)
    with pytest.raises(RuntimeError), store.transaction():
        assert store.prune(clock.advance(seconds=1)) == 12
        raise RuntimeError("changed my mind")
    assert table_dump(store) == snapshot


# -- forget -----------------------------------------------------------------------------------


def _population(store: Store) -> dict[str, TriggerResult]:
    """Two tenants, two recipients each, in various states, plus signals."""
    made = {}
    for tenant in ("acme", "globex"):
        for recipient in ("ada", "bob"):
            started = trigger(store, tenant=tenant, recipient=recipient, key=f"{recipient}-1")
            _finish(store, started, "waiting")
            made[f"{tenant}/{recipient}"] = started
            trigger(store, tenant=tenant, recipient=recipient, key=f"{recipient}-2")
        store.track_signal(Signal(tenant, "notification_read", "ada", {"secret": "payload"}))
        store.track_signal(Signal(tenant, "opened", None, {"secret": "payload"}))
    return made


def test_forget_a_tenant_erases_everything_of_it_and_leaves_a_tombstone(
    store: Store, clock: FakeClock
) -> None:
    _population(store)
    globex = _tenant_rows(store, "globex")
    acme = {table: len(rows) for table, rows in _tenant_rows(store, "acme").items()}
    clock.advance(minutes=5)

    erased = store.forget("acme")

    assert erased == sum(acme.values())
    assert all(rows == [] for rows in _tenant_rows(store, "acme").values())
    assert _tenant_rows(store, "globex") == globex
    (tombstone,) = store.list_erasures("acme")
    assert isinstance(tombstone, Erasure)
    assert tombstone.tenant_id == "acme"
    assert tombstone.scope == "tenant"
    assert tombstone.erased_at == clock.now()
    assert tombstone.row_counts == acme
    assert tombstone.rows_erased == erased
    assert store.list_erasures("globex") == []
    assert store.verify() == []


def test_forget_a_recipient_erases_only_their_rows(store: Store) -> None:
    made = _population(store)
    others = {
        name: store.list_traces(name.split("/")[0], result.run.id)
        for name, result in made.items()
        if name != "acme/ada"
    }
    globex = _tenant_rows(store, "globex")

    erased = store.forget("acme", "ada")

    # only globex's two notifications for ada are left
    assert _one(store, "SELECT count(*) FROM notifications WHERE recipient = 'ada'") == 2
    assert (
        _one(store, "SELECT count(*) FROM signals WHERE tenant_id = 'acme' AND actor_id = 'ada'")
        == 0
    )
    # the tenant's signal without an actor and everyone else's rows stay
    assert _one(store, "SELECT count(*) FROM signals WHERE tenant_id = 'acme'") == 1
    for name, trace in others.items():
        assert store.list_traces(name.split("/")[0], made[name].run.id) == trace
    assert _tenant_rows(store, "globex") == globex
    (tombstone,) = store.list_erasures()
    assert tombstone.scope == "recipient"
    assert tombstone.row_counts == {
        # the run the signal resumed (started, activated, waiting, signal_received) and
        # the fresh one (started, activated)
        "workflow_transitions": 4 + 2,
        "delivery_events": 1,  # the resumed run's in-app outcome
        "deliveries": 2,
        "workflow_runs": 2,
        "notifications": 2,
        "signals": 1,
        "signal_marks": 1,  # the mark of that signal
        # none of the journeys has a throttle or a digest
        "digest_members": 0,
        "digest_batches": 0,
        "step_activations": 0,
    }
    assert erased == tombstone.rows_erased == 15
    assert store.verify() == []


def test_the_tombstone_holds_no_recipient_and_no_payload(store: Store) -> None:
    recipient = "ada.lovelace@example.com"
    started = trigger(store, recipient=recipient, key="k")
    store.track_signal(Signal("acme", "notification_read", recipient, {"secret": "s3cr3t"}))
    _finish(store, started, "waiting")
    store.forget("acme", recipient)
    dump = repr(table_dump(store))
    assert recipient not in dump  # not in the tombstone, and nowhere else either
    assert "s3cr3t" not in dump


def test_forget_with_nothing_to_erase_still_records_the_request(
    store: Store, clock: FakeClock
) -> None:
    assert store.forget("nobody-here") == 0
    (tombstone,) = store.list_erasures("nobody-here")
    assert tombstone.rows_erased == 0
    assert set(tombstone.row_counts.values()) == {0}
    clock.advance(seconds=1)
    store.forget("nobody-here", "ghost")
    assert [e.scope for e in store.list_erasures("nobody-here")] == ["tenant", "recipient"]


@pytest.mark.parametrize(
    "tenant, recipient",
    [("", None), ("  ", None), (None, None), (3, None), ("acme", ""), ("acme", 5)],
)
def test_forget_refuses_bad_arguments_and_writes_nothing(
    store: Store, tenant: Any, recipient: Any
) -> None:
    _population(store)
    snapshot = table_dump(store)
    with pytest.raises(InvalidArgument):
        store.forget(tenant, recipient)
    assert table_dump(store) == snapshot


def test_forget_inside_a_failed_transaction_erases_nothing(store: Store) -> None:
    _population(store)
    snapshot = table_dump(store)
    with pytest.raises(RuntimeError), store.transaction():
        assert store.forget("acme") > 0
        raise RuntimeError("changed my mind")
    assert table_dump(store) == snapshot
    assert store.list_erasures() == []


# -- prune in chunks (CONTRACT §18) ----------------------------------------------------------------


def test_prune_outside_a_transaction_works_in_chunks_oldest_first(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chimeway_lite.store as store_module

    finished = []
    for i in range(25):
        result = trigger(store, recipient=f"r{i}")
        store.record_outcome(result.deliveries[0].id, "cancelled", "bounced")
        (email,) = store.list_deliveries("acme", result.run.id)[1:]
        store.record_outcome(email.id, "succeeded")
        finished.append(result.run.id)
        clock.advance(seconds=1)
    kept = trigger(store, recipient="still-active").run.id
    monkeypatch.setattr(store_module, "_PRUNE_CHUNK", 10)
    chunks: list[tuple[int, int]] = []
    real = store._prune_chunk

    def spy(*args: Any, **kwargs: Any) -> tuple[int, int]:
        chunks.append(real(*args, **kwargs))
        return chunks[-1]

    monkeypatch.setattr(store, "_prune_chunk", spy)
    deleted = store.prune(clock.now())
    assert [runs for _, runs in chunks] == [10, 10, 5]
    assert deleted == sum(rows for rows, _ in chunks) > 25
    assert store.get_run(kept).state.value == "active"
    assert store.verify() == []


def test_prune_inside_a_transaction_is_one_part_of_it(store: Store, clock: FakeClock) -> None:
    result = trigger(store)
    store.record_outcome(result.deliveries[0].id, "cancelled", "bounced")
    (email,) = store.list_deliveries("acme", result.run.id)[1:]
    store.record_outcome(email.id, "succeeded")
    clock.advance(days=1)

    class Undo(Exception):
        pass

    with pytest.raises(Undo), store.transaction():
        assert store.prune(clock.now()) > 0
        raise Undo
    assert store.get_run(result.run.id).state.value == "completed"
