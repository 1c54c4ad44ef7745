"""Batches: trigger_many and record_outcomes — one unit of work, each item as if alone."""

from __future__ import annotations

from typing import Any

import pytest
from backends import sql
from factories import START, escalation_workflow
from strategies import table_dump

from chimeway_lite import (
    DeliveryNotFound,
    FakeClock,
    InvalidArgument,
    InvalidTransition,
    ProgressKind,
    RunState,
    Store,
)

JOURNEY = escalation_workflow()


def _request(i: int, **changes: Any) -> dict[str, Any]:
    request = {
        "tenant_id": "acme",
        "notification_key": "welcome",
        "recipient": f"user-{i}",
        "workflow": JOURNEY,
        "idempotency_key": f"k{i}",
    }
    request.update(changes)
    return request


def _shape(store: Store) -> list[tuple[Any, ...]]:
    """Every run's recipient, state and trace reasons, and its deliveries' channels and
    statuses: what a batch must leave as calls one by one would."""
    rows = (
        sql(store)
        .execute(
            "SELECT n.recipient, r.state, r.status_reason, "
            "(SELECT group_concat(reason) FROM (SELECT reason FROM workflow_transitions "
            "  WHERE workflow_run_id = r.id ORDER BY seq)), "
            "(SELECT group_concat(channel || ':' || status) FROM (SELECT channel, status "
            "  FROM deliveries WHERE workflow_run_id = r.id ORDER BY inserted_at, id)) "
            "FROM workflow_runs r JOIN notifications n ON n.id = r.notification_id "
            "ORDER BY n.recipient"
        )
        .fetchall()
    )
    return [tuple(r) for r in rows]


def test_trigger_many_leaves_what_triggers_one_by_one_leave(tmp_path: Any) -> None:
    requests = [_request(i) for i in range(20)] + [_request(3)]  # a repeat within the batch
    one = Store(str(tmp_path / "one.db"), clock=FakeClock(START))
    alone = [one.trigger(**r) for r in requests]
    many = Store(str(tmp_path / "many.db"), clock=FakeClock(START))
    batched = many.trigger_many(requests)
    assert [r.duplicate for r in batched] == [r.duplicate for r in alone] == [False] * 20 + [True]
    assert batched[20].run.id == batched[3].run.id
    assert _shape(many) == _shape(one)
    assert many.verify() == []


def test_record_outcomes_progress_each_run_in_order(store: Store, clock: FakeClock) -> None:
    started = store.trigger_many([_request(i) for i in range(5)])
    reports: list[Any] = [(s.deliveries[0].id, "succeeded") for s in started[:3]]
    reports.append((started[3].deliveries[0].id, "cancelled", "bounced"))
    reports.append(
        {"delivery_id": started[4].deliveries[0].id, "status": "succeeded", "tenant_id": "acme"}
    )
    reports.append((started[0].deliveries[0].id, "succeeded"))  # a webhook repeats
    results = store.record_outcomes(reports)
    assert [None if r is None else r.kind for r in results] == [
        ProgressKind.WAITING,
        ProgressKind.WAITING,
        ProgressKind.WAITING,
        ProgressKind.ADVANCED,
        ProgressKind.WAITING,
        None,
    ]
    assert store.get_run(started[3].run.id).state is RunState.ACTIVE
    assert store.verify() == []


def test_a_failing_item_names_itself_and_the_batch_writes_nothing(store: Store) -> None:
    store.trigger(**_request(99))
    before = table_dump(store)
    with pytest.raises(InvalidArgument) as caught:
        store.trigger_many([_request(0), _request(1), _request(2, recipient=" ")])
    assert caught.value.item == 2
    assert str(caught.value).startswith("item 2: invalid recipient")
    assert table_dump(store) == before
    delivery = store.trigger(**_request(5)).deliveries[0]
    store.record_outcome(delivery.id, "succeeded")
    before = table_dump(store)
    with pytest.raises(InvalidTransition) as refused:
        store.record_outcomes([(delivery.id, "succeeded"), (delivery.id, "failed")])
    assert refused.value.item == 1
    with pytest.raises(DeliveryNotFound) as missing:
        store.record_outcomes(
            [
                (delivery.id, "succeeded"),
                {"delivery_id": delivery.id, "status": "succeeded", "tenant_id": "globex"},
            ]
        )
    assert missing.value.item == 1
    assert table_dump(store) == before


@pytest.mark.parametrize(
    "batch",
    [
        "not a list",
        {"tenant_id": "acme"},
        7,
        [7],
        [{"bogus": 1}],
        [("only-one",)],
        [(1, 2, 3, 4)],
        [{"tenant_id": "acme", "recipient": "ada", "idempotency_key": "k"}],  # no workflow
    ],
)
def test_a_batch_of_the_wrong_shape_is_a_clear_error(store: Store, batch: Any) -> None:
    before = table_dump(store)
    with pytest.raises(InvalidArgument):
        store.trigger_many(batch)
    with pytest.raises(InvalidArgument):
        store.record_outcomes(batch)
    assert table_dump(store) == before


def test_a_batch_inside_a_transaction_is_part_of_it(store: Store) -> None:
    class Undo(Exception):
        pass

    before = table_dump(store)
    with pytest.raises(Undo), store.transaction() as tx:
        tx.trigger_many([_request(i) for i in range(3)])
        store.trigger_many([_request(i + 10) for i in range(3)])
        raise Undo
    assert table_dump(store) == before


def test_errors_survive_pickling_with_their_item(store: Store) -> None:
    import pickle

    with pytest.raises(InvalidArgument) as caught:
        store.trigger_many([_request(0, tenant_id="")])
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.item == 0 and str(copy) == str(caught.value)


def _statements(store: Store) -> list[str]:
    seen: list[str] = []
    store.connection.set_trace_callback(seen.append)
    return seen


def test_a_batch_reads_the_trace_counter_and_sets_the_key_once(tmp_path: Any) -> None:
    """A unit holds the write lock, so it numbers its trace rows on from one read of the
    counter and sets a definition's notification key once: a batch of 5 costs one of each."""
    with Store(str(tmp_path / "s.db"), clock=FakeClock(START)) as store:
        store.trigger(**_request(0))
        seen = _statements(store)
        results = store.trigger_many([_request(i) for i in range(1, 6)])
        store.connection.set_trace_callback(None)
        assert sum("FROM sqlite_sequence" in s for s in seen) == 1
        assert sum("UPDATE workflow_definitions" in s for s in seen) == 1
        seqs = [t.seq for r in results for t in store.list_traces("acme", r.run.id)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert store.verify() == []


def test_a_rolled_back_savepoint_makes_the_unit_read_the_counter_and_key_again(
    tmp_path: Any,
) -> None:
    """What a nested transaction wrote and rolled back is forgotten: the next trace rows
    follow the last kept one, and the notification key it had set is set again."""
    with Store(str(tmp_path / "s.db"), clock=FakeClock(START)) as store:
        store.trigger(**_request(0))
        with store.transaction() as tx:
            kept = tx.trigger(**_request(1))
            with pytest.raises(RuntimeError), store.transaction() as inner:
                inner.trigger(**_request(2, notification_key="other"))
                raise RuntimeError
            after = tx.trigger(**_request(3, notification_key="other"))
        last_kept = store.list_traces("acme", kept.run.id)[-1].seq
        assert store.list_traces("acme", after.run.id)[0].seq == last_kept + 1
        (key,) = store.connection.execute(
            "SELECT notification_key FROM workflow_definitions"
        ).fetchone()
        assert key == "other"
        assert store.verify() == []
