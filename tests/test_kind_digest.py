"""The digest step option (CONTRACT §14.2): exact traces of a batch — opened by the first run,
joined by the next, closed by time in the due sweep or by ``max_items`` in the joining
transaction, its opener cancelled, every run cancelled — one delivery for the batch with its
``digest_size`` and ``digest_members``, explain's sentences, and the declaration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from backends import sql as raw_sql
from click.testing import CliRunner
from factories import trigger
from journeys import trace
from strategies import table_dump

from chimeway_lite import (
    DeliveryNotFound,
    Digest,
    FakeClock,
    InvalidWorkflow,
    OnOutcome,
    Outcome,
    ProgressKind,
    RunState,
    Step,
    Store,
    TriggerResult,
    Workflow,
)
from chimeway_lite.declarations import coerce_workflow, workflow_to_dict
from chimeway_lite.tools.cli import app as cli
from chimeway_lite.tools.timeline import collect, render_svg

DUE = "2026-01-05T09:40:00.000000+00:00"  # 09:30 + the 10 min window


def comments(digest: Digest | None = None, version: int = 1) -> Workflow:
    """One email step that digests what reaches it within 10 min (unless told otherwise)."""
    policy = Digest(600) if digest is None else digest
    return Workflow("comments", version, [Step("email", 1, "email", digest=policy)])


def _fire(store: Store, workflow: Workflow | None = None, **over: Any) -> TriggerResult:
    return trigger(store, workflow=comments() if workflow is None else workflow, **over)


def _email(store: Store, result: TriggerResult) -> str:
    step = store.fetch_step_by_key(result.run.workflow_definition_id, "email")
    assert step is not None
    return step.id


def _collecting(email: str, due: str = DUE) -> list[Any]:
    return [
        ("workflow_started", None, "active", None, None, {"source": "trigger"}),
        ("waiting_for_digest", "active", "waiting", email, None,
         {"rule_kind": "digest", "step_key": "email", "due_at": due}),
    ]  # fmt: skip


def _batch_rows(store: Store) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in raw_sql(store).execute(
            "SELECT opened_at, closes_at, closed_at, delivery_id FROM digest_batches ORDER BY rowid"
        )
    ]


# -- open, join, close by time -------------------------------------------------------------------


def test_the_first_run_opens_a_batch_and_the_next_ones_join_it(
    store: Store, clock: FakeClock
) -> None:
    first = _fire(store, data={"comment": 1})
    clock.advance(minutes=4)
    second = _fire(store, data={"comment": 2})
    email = _email(store, first)
    for result in (first, second):
        assert trace(store, result.run.id) == _collecting(email)
        run = result.run
        assert (run.state, run.status_reason, result.deliveries) == (
            RunState.WAITING,
            "waiting_for_digest",
            (),
        )
        assert run.suspended_until == clock.now() - timedelta(minutes=4) + timedelta(minutes=10)
        assert (run.pending_signals, run.wait_kind, run.wait_target) == ((), "digest", "email")
        assert run.status_context == {"rule_kind": "digest", "step_key": "email", "due_at": DUE}
    assert len(_batch_rows(store)) == 1  # one batch for the group
    assert store.next_due_at() == first.run.suspended_until
    assert store.verify() == []


def test_the_batch_closes_when_its_time_comes_with_one_delivery_for_all(
    store: Store, clock: FakeClock
) -> None:
    runs = []
    for i in range(3):
        runs.append(_fire(store, data={"comment": i}))
        clock.advance(minutes=3)
    clock.advance(seconds=59)  # 09:39:59
    assert store.progress_due_runs() == []
    clock.advance(seconds=1)  # 09:40:00
    swept = store.progress_due_runs()
    opener, *merged = swept
    email = _email(store, runs[0])
    assert [p.run.id for p in swept] == [r.run.id for r in runs]
    assert (opener.kind, opener.reason) == (ProgressKind.ADVANCED, "digest_closed")
    (delivery,) = opener.deliveries
    assert (delivery.digest_size, delivery.step_key, delivery.workflow_run_id) == (
        3,
        "email",
        runs[0].run.id,
    )
    assert delivery.data == {"comment": 0}  # the opener's own data; the rest via members
    assert trace(store, runs[0].run.id) == [
        *_collecting(email),
        ("digest_closed", "waiting", "active", email, None,
         {"rule_kind": "digest", "step_key": "email"}),
        ("step_activated", "active", "active", email, None,
         {"source": "progression", "step_key": "email"}),
    ]  # fmt: skip
    assert opener.run.status_reason == "digest_closed"
    assert opener.run.status_context == {"rule_kind": "digest", "step_key": "email"}
    assert (opener.run.suspended_until, opener.run.wait_kind) == (None, None)
    for result, progress in zip(runs[1:], merged, strict=True):
        assert (progress.kind, progress.reason, progress.deliveries) == (
            ProgressKind.COMPLETED,
            "workflow_completed",
            (),
        )
        assert progress.run.terminal_reason == "merged_into_digest"
        assert trace(store, result.run.id) == [
            *_collecting(email),
            ("workflow_completed", "waiting", "completed", email, None,
             {"rule_kind": "digest", "step_key": "email"}),
        ]  # fmt: skip
    members = store.digest_members(delivery.id)
    assert [n.id for n in members] == [r.notification.id for r in runs]  # oldest first
    assert [n.data for n in members] == [{"comment": 0}, {"comment": 1}, {"comment": 2}]
    assert _batch_rows(store) == [
        (
            "2026-01-05T09:30:00.000000+00:00",
            DUE,
            "2026-01-05T09:40:00.000000+00:00",
            delivery.id,
        )
    ]
    assert store.progress_due_runs() == []
    # the opener goes on like any activated step: its delivery's outcome completes it
    done = store.record_outcome(delivery.id, "succeeded")
    assert done is not None and done.run.terminal_reason == "workflow_completed"
    assert store.verify() == []


def test_whichever_run_of_the_batch_the_sweep_reaches_first_closes_it_whole(
    store: Store, clock: FakeClock
) -> None:
    first, second = _fire(store), _fire(store)
    clock.advance(minutes=10)
    closed = store.progress_run(second.run.id)  # the sweep's unit for one due run
    moved = [closed, *closed.also]
    assert [(p.run.id, p.kind) for p in moved] == [
        (second.run.id, ProgressKind.COMPLETED),
        (first.run.id, ProgressKind.ADVANCED),
    ]
    assert store.progress_run(first.run.id).kind is ProgressKind.NOOP
    assert store.verify() == []


def test_a_run_reaching_the_step_after_the_closing_time_opens_a_new_batch(
    store: Store, clock: FakeClock
) -> None:
    first = _fire(store)
    clock.advance(minutes=10)  # the batch's time has come, but no sweep has closed it yet
    late = _fire(store)
    assert late.run.suspended_until == clock.now() + timedelta(minutes=10)
    assert len(_batch_rows(store)) == 2
    swept = store.progress_due_runs()
    assert [(p.run.id, p.deliveries[0].digest_size) for p in swept] == [(first.run.id, 1)]
    clock.advance(minutes=10)
    (alone,) = store.progress_due_runs()
    assert alone.run.id == late.run.id and alone.deliveries[0].digest_size == 1
    assert store.verify() == []


# -- close by max_items --------------------------------------------------------------------------


def test_the_join_that_reaches_max_items_closes_the_batch_in_its_own_transaction(
    store: Store, clock: FakeClock
) -> None:
    workflow = comments(Digest(600, max_items=3))
    first = _fire(store, workflow)
    clock.advance(minutes=1)
    second = _fire(store, workflow)
    clock.advance(minutes=1)
    third = _fire(store, workflow)  # the third item: the batch closes now, not at 09:40
    email = _email(store, first)
    assert (third.run.state, third.run.terminal_reason, third.deliveries) == (
        RunState.COMPLETED,
        "merged_into_digest",
        (),
    )
    assert trace(store, third.run.id) == [
        *_collecting(email),
        ("workflow_completed", "waiting", "completed", email, None,
         {"rule_kind": "digest", "step_key": "email"}),
    ]  # fmt: skip
    opener = store.get_run(first.run.id)
    assert (opener.state, opener.status_reason) == (RunState.ACTIVE, "digest_closed")
    (delivery,) = store.list_deliveries("acme", first.run.id)
    assert delivery.digest_size == 3
    assert delivery.inserted_at == clock.now()
    assert store.get_run(second.run.id).terminal_reason == "merged_into_digest"
    assert [n.id for n in store.digest_members(delivery.id)] == [
        r.notification.id for r in (first, second, third)
    ]
    # the next run opens a new batch
    clock.advance(minutes=1)
    fourth = _fire(store, workflow)
    assert fourth.run.suspended_until == clock.now() + timedelta(minutes=10)
    assert store.progress_run(first.run.id).kind is ProgressKind.NOOP  # on its delivery
    clock.advance(minutes=20)
    (alone,) = store.progress_due_runs()
    assert (alone.run.id, alone.deliveries[0].digest_size) == (fourth.run.id, 1)
    assert store.next_due_at() is None
    assert store.verify() == []


def test_max_items_closes_a_batch_joined_by_a_progression_too(
    store: Store, clock: FakeClock
) -> None:
    workflow = Workflow(
        "thread",
        1,
        [
            Step("inapp", 1, "in_app", progress=[OnOutcome(Outcome.DELIVERED, "email")]),
            Step("email", 2, "email", digest=Digest(3600, max_items=2)),
        ],
    )
    first, second = _fire(store, workflow), _fire(store, workflow)
    waiting = store.record_outcome(first.deliveries[0].id, "succeeded")
    assert waiting is not None and (waiting.kind, waiting.reason) == (
        ProgressKind.WAITING,
        "waiting_for_digest",
    )
    clock.advance(minutes=5)
    closing = store.record_outcome(second.deliveries[0].id, "succeeded")
    assert closing is not None
    assert (closing.kind, closing.reason, closing.run.terminal_reason) == (
        ProgressKind.COMPLETED,
        "workflow_completed",
        "merged_into_digest",
    )
    assert [r[0] for r in trace(store, second.run.id)] == [
        "workflow_started",
        "step_activated",
        "progressed_on_delivery_outcome",
        "waiting_for_digest",
        "workflow_completed",
    ]
    sent = [d for d in store.list_deliveries("acme", first.run.id) if d.channel == "email"]
    assert [d.digest_size for d in sent] == [2]
    assert store.verify() == []


# -- cancelled runs ------------------------------------------------------------------------------


def test_when_the_opener_is_cancelled_the_oldest_run_still_waiting_sends(
    store: Store, clock: FakeClock
) -> None:
    runs = [_fire(store, correlation_key=f"c{i}") for i in range(3)]
    (cancelled,) = store.cancel("acme", correlation_key="c0")
    assert cancelled.state is RunState.STOPPED
    assert trace(store, runs[0].run.id)[-1][:3] == ("workflow_cancelled", "waiting", "stopped")
    clock.advance(minutes=10)
    swept = store.progress_due_runs()
    assert [(p.run.id, p.reason) for p in swept] == [
        (runs[1].run.id, "digest_closed"),
        (runs[2].run.id, "workflow_completed"),
    ]
    (delivery,) = swept[0].deliveries
    assert delivery.digest_size == 2
    assert [n.id for n in store.digest_members(delivery.id)] == [
        runs[1].notification.id,
        runs[2].notification.id,
    ]
    assert store.verify() == []


def test_a_batch_every_run_left_plans_nothing_and_a_new_run_opens_another(
    store: Store, clock: FakeClock
) -> None:
    first = _fire(store, correlation_key="a")
    _fire(store, correlation_key="a")
    assert len(store.cancel("acme", correlation_key="a")) == 2
    closed = _batch_rows(store)
    assert closed == [(closed[0][0], DUE, "2026-01-05T09:30:00.000000+00:00", None)]
    clock.advance(minutes=2)
    fresh = _fire(store)  # the empty batch is still before its closing time: a new one
    assert fresh.run.suspended_until == clock.now() + timedelta(minutes=10)
    clock.advance(minutes=30)
    (sent,) = store.progress_due_runs()
    assert sent.run.id == fresh.run.id and sent.deliveries[0].digest_size == 1
    assert store.list_deliveries("acme", first.run.id) == []
    assert store.verify() == []


# -- groups --------------------------------------------------------------------------------------


def test_batches_group_by_recipient_tenant_key_value_and_across_versions(
    store: Store, clock: FakeClock
) -> None:
    keyed = Digest(600, key="thread_id")
    runs = {
        "ada-1": _fire(store, comments(keyed), data={"thread_id": 1}),
        "ada-1-v2": _fire(store, comments(keyed, version=2), data={"thread_id": 1}),
        "ada-2": _fire(store, comments(keyed), data={"thread_id": 2}),
        "ada-none": _fire(store, comments(keyed), data={}),
        "ada-none-again": _fire(store, comments(keyed), data={"other": 1}),
        "bob-1": _fire(store, comments(keyed), recipient="bob", data={"thread_id": 1}),
        "globex-1": _fire(store, comments(keyed), tenant="globex", data={"thread_id": 1}),
    }
    clock.advance(minutes=10)
    swept = store.progress_due_runs()
    sizes = {p.run.id: p.deliveries[0].digest_size for p in swept if p.deliveries}
    by_name = {name: sizes.get(r.run.id) for name, r in runs.items()}
    assert by_name == {
        "ada-1": 2,  # v1 and v2 share the batch
        "ada-1-v2": None,
        "ada-2": 1,
        "ada-none": 2,  # no such field: the "missing" group
        "ada-none-again": None,
        "bob-1": 1,
        "globex-1": 1,
    }
    v2 = store.get_run(runs["ada-1-v2"].run.id)
    assert v2.terminal_reason == "merged_into_digest"
    assert store.verify() == []


def test_no_trigger_data_is_kept_where_batches_are_grouped(store: Store) -> None:
    _fire(store, comments(Digest(600, key="thread_id")), data={"thread_id": "sekret-thread"})
    rows = raw_sql(store).execute("SELECT * FROM digest_batches").fetchall()
    assert "sekret-thread" not in repr([tuple(r) for r in rows])


# -- digest_members ------------------------------------------------------------------------------


def test_a_delivery_without_a_digest_speaks_for_its_own_notification(store: Store) -> None:
    result = trigger(store, data={"x": 1})
    (delivery,) = result.deliveries
    assert delivery.digest_size == 1
    (member,) = store.digest_members(delivery.id)
    assert (member.id, member.data) == (result.notification.id, {"x": 1})


def test_digest_members_of_no_delivery_is_not_found(store: Store) -> None:
    with pytest.raises(DeliveryNotFound):
        store.digest_members("01a23f2c-0000-7000-8000-000000000000")


# -- explain, the timeline, the CLI --------------------------------------------------------------


def test_explain_counts_the_items_collected_and_says_when_the_batch_closes(
    location: str, clock: FakeClock
) -> None:
    with Store(location, clock=clock) as store:
        runs = [_fire(store, comments(Digest(3600, max_items=20))) for _ in range(3)]
        clock.advance(minutes=5)
        explanation = store.explain("acme", runs[0].run.id)
        assert explanation.why == (
            "Collecting: 3 items, closes at 10:30 UTC; then one email on step 'email' "
            "carries them all."
        )
        assert explanation.next_move == (
            "At 2026-01-05T10:30:00+00:00 (in 55 min) the due sweep closes the batch (sooner, "
            "the moment it holds 20 items): its oldest run still waiting sends one email for "
            "all of them, the others complete (merged_into_digest)."
        )
        assert (explanation.due_at, explanation.next_step) == (runs[0].run.suspended_until, "email")
        clock.advance(hours=1)
        swept = store.progress_due_runs()
        assert store.explain("acme", runs[0].run.id).why == (
            "The digest of step 'email' closed with 3 items: one email carries them all."
        )
        assert store.explain("acme", runs[2].run.id).why == (
            "Completed: merged into the digest of step 'email'; another run of its batch "
            "sends one email for all of them."
        )
        svg = render_svg(collect(store, "acme", runs[2].run.id))
        assert "collecting" in svg and "merged" in svg
        assert "digest closed" in render_svg(collect(store, "acme", swept[0].run.id))
    result = CliRunner().invoke(
        cli.cli, ["--db", location, "explain", "acme", runs[1].run.id], prog_name="chimeway-lite"
    )
    assert result.exit_code == 0, result.output
    assert "Completed: merged into the digest of step 'email'" in result.output
    assert "merged_into_digest" in result.output


def test_explain_of_a_recipient_in_paris_says_the_local_closing_time(
    store: Store, clock: FakeClock
) -> None:
    run = _fire(store, timezone="Europe/Paris").run
    assert store.explain("acme", run.id).why.startswith(
        "Collecting: 1 item, closes at 10:40 Europe/Paris;"
    )


# -- declaration ---------------------------------------------------------------------------------


def test_the_dict_form_round_trips_through_the_store(store: Store) -> None:
    workflow = comments(Digest(600, key=" thread_id ", max_items=20))
    as_dict = workflow_to_dict(workflow)
    assert as_dict["steps"][0]["config"] == {
        "digest": {"window_seconds": 600, "key": "thread_id", "max_items": 20}
    }
    assert workflow_to_dict(comments())["steps"][0]["config"] == {"digest": {"window_seconds": 600}}
    definition = store.upsert_definition("n", as_dict)
    assert store.persisted_workflow(definition.id) == workflow
    assert store.upsert_definition("n", workflow).id == definition.id


BAD: list[tuple[Any, str]] = [
    (Digest(0), "steps[1](email).digest.window_seconds"),
    (Digest(2_678_401), "steps[1](email).digest.window_seconds"),
    (Digest("600"), "steps[1](email).digest.window_seconds"),  # type: ignore[arg-type]
    (Digest(600, key=""), "steps[1](email).digest.key"),
    (Digest(600, key=["k"]), "steps[1](email).digest.key"),  # type: ignore[arg-type]
    (Digest(600, max_items=1), "steps[1](email).digest.max_items"),
    (Digest(600, max_items=1001), "steps[1](email).digest.max_items"),
    (Digest(600, max_items=2.5), "steps[1](email).digest.max_items"),  # type: ignore[arg-type]
    ("600", "steps[1](email).digest"),
]


@pytest.mark.parametrize(("digest", "path"), BAD, ids=[f"{p[1]}-{i}" for i, p in enumerate(BAD)])
def test_a_bad_digest_is_refused_with_its_path_and_nothing_is_written(
    store: Store, digest: Any, path: str
) -> None:
    workflow = Workflow(
        "comments", 1, [Step("inapp", 1, "in_app"), Step("email", 2, "email", digest=digest)]
    )
    before = table_dump(store)
    with pytest.raises(InvalidWorkflow) as caught:
        _fire(store, workflow)
    assert (caught.value.path, caught.value.step) == (path, "email")
    assert table_dump(store) == before


def test_the_dict_form_is_checked_key_by_key() -> None:
    def declared(digest: Any) -> Any:
        email = {"step_key": "email", "step_order": 2, "channel": "email"}
        steps = [{"step_key": "inapp", "step_order": 1, "channel": "in_app"}, email]
        email["config"] = {"digest": digest}
        return {"workflow_key": "comments", "workflow_version": 1, "steps": steps}

    for digest, path, problem in (
        ({"window_seconds": 600, "size": 3}, "steps[1].config.digest", "unknown keys size"),
        ({"max_items": 3}, "steps[1].config.digest", "missing keys window_seconds"),
        ({"window_seconds": 0}, "steps[1](email).digest.window_seconds", "from 1 to 2678400"),
    ):
        with pytest.raises(InvalidWorkflow) as caught:
            coerce_workflow(declared(digest))
        assert caught.value.path == path
        assert problem in str(caught.value)


# -- the cost of a group or a batch ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "_RECENT",
        "_OPEN_BATCH",
        "_BATCH_OF_RUN",
        "_MEMBERS",
        "_LEAVE",
        "_CLOSE_IF_EMPTY",
        "_CLOSE",
        "_DIGEST_MEMBERS",
        "_BATCH_SIZE",
        "_PRUNE_ACTIVATIONS",
    ],
)
@pytest.mark.sqlite_only
def test_the_queries_of_throttles_and_digests_read_only_their_indexes(
    store: Store, name: str
) -> None:
    """A throttle check, a join and the close of a batch of N runs cost what the group or
    the batch holds, never what the store holds: no statement scans a table."""
    import re

    from chimeway_lite.backends.sqlite import gates

    sql = getattr(gates, name)
    params = dict.fromkeys(re.findall(r":(\w+)", sql))
    plan = raw_sql(store).execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    details = [str(row["detail"]) for row in plan]
    assert any(d.startswith("SEARCH") for d in details), details
    assert not [d for d in details if d.startswith("SCAN") and "subquery" not in d], details


# -- prune and forget ------------------------------------------------------------------------------


def _count(store: Store, table: str) -> int:
    return int(raw_sql(store).execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_prune_takes_finished_runs_out_of_their_batch_and_drops_batches_left_empty(
    store: Store, clock: FakeClock
) -> None:
    runs = [_fire(store) for _ in range(3)]
    clock.advance(minutes=10)
    opener = store.progress_due_runs()[0]
    clock.advance(minutes=1)
    # the two merged runs are finished; the opener still waits for its delivery's outcome
    store.prune(clock.now())
    assert _count(store, "digest_members") == 1
    assert _count(store, "digest_batches") == 1  # the opener is still in it
    (member,) = store.digest_members(opener.deliveries[0].id)
    assert member.id == runs[0].notification.id
    assert store.verify() == []
    store.record_outcome(opener.deliveries[0].id, "succeeded")
    clock.advance(minutes=1)
    store.prune(clock.now())
    assert (_count(store, "digest_members"), _count(store, "digest_batches")) == (0, 0)
    assert store.verify() == []


def test_forget_erases_a_recipients_batches_and_keeps_the_others(
    store: Store, clock: FakeClock
) -> None:
    _fire(store, recipient="ada", data={"secret": "ada-sekret"})
    _fire(store, recipient="ada")
    kept = _fire(store, recipient="bob")
    erased = store.forget("acme", "ada")
    (tombstone,) = store.list_erasures("acme")
    assert (tombstone.row_counts["digest_members"], tombstone.row_counts["digest_batches"]) == (
        2,
        1,
    )
    assert erased == tombstone.rows_erased
    assert _count(store, "digest_batches") == 1
    assert "ada-sekret" not in repr(table_dump(store))
    clock.advance(minutes=10)
    (sent,) = store.progress_due_runs()
    assert sent.run.id == kept.run.id
    assert store.verify() == []
