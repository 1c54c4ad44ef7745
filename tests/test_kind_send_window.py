"""The send window step option (CONTRACT §14.3): a run outside the window waits for its next
opening in the recipient's time zone — across DST changes in Europe/Paris and
America/New_York, in a gap and in a fold, for a window across midnight, on some weekdays
only, and in UTC for a recipient without a zone — and the due sweep opens it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from backends import sql
from factories import trigger
from journeys import trace
from strategies import table_dump

from chimeway_lite import (
    Digest,
    FakeClock,
    InvalidArgument,
    InvalidWorkflow,
    OnOutcome,
    Outcome,
    ProgressKind,
    RunState,
    SendWindow,
    Signal,
    Step,
    Store,
    Throttle,
    TriggerResult,
    WaitUntil,
    Workflow,
)
from chimeway_lite.declarations import coerce_workflow, workflow_to_dict
from chimeway_lite.machine.kinds.send_window import instant_of, next_opening

PARIS, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")
DAYTIME = SendWindow("08:00", "21:00")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def push(window: SendWindow = DAYTIME, *, version: int = 1, **step: Any) -> Workflow:
    return Workflow("notice", version, [Step("push", 1, "push", window=window, **step)])


def declared(window: Any) -> dict[str, Any]:
    """The dict form of :func:`push` with ``config["window"] = window``."""
    step = {"step_key": "push", "step_order": 1, "channel": "push", "config": {"window": window}}
    return {"workflow_key": "notice", "workflow_version": 1, "steps": [step]}


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock from the first day of 2026 (these tests set it forward to each case)."""
    return FakeClock(utc(2026, 1, 1))


def _fire(
    store: Store, clock: FakeClock, at: datetime, workflow: Workflow | None = None, **over: Any
) -> TriggerResult:
    clock.set(at)
    return trigger(store, workflow=push() if workflow is None else workflow, **over)


def _opening(store: Store, clock: FakeClock, at: datetime, **over: Any) -> datetime | None:
    """When a run triggered at ``at`` would be sent: None when at once."""
    result = _fire(store, clock, at, **over)
    if result.run.state is RunState.ACTIVE:
        assert len(result.deliveries) == 1
        return None
    assert result.run.status_reason == "waiting_for_send_window"
    return result.run.suspended_until


# -- exact traces --------------------------------------------------------------------------------


def test_inside_the_window_the_step_activates_at_once(store: Store, clock: FakeClock) -> None:
    result = _fire(store, clock, utc(2026, 1, 5, 9, 30), timezone="Europe/Paris")  # 10:30 local
    assert result.notification.timezone == "Europe/Paris"
    assert [r[0] for r in trace(store, result.run.id)] == ["workflow_started", "step_activated"]
    assert len(result.deliveries) == 1


def test_outside_the_window_the_run_waits_and_the_due_sweep_opens_it(
    store: Store, clock: FakeClock
) -> None:
    result = _fire(store, clock, utc(2026, 1, 5, 22), timezone="Europe/Paris")  # 23:00 local
    step = store.fetch_step_by_key(result.run.workflow_definition_id, "push")
    assert step is not None
    due = "2026-01-06T07:00:00.000000+00:00"  # 08:00 in Paris, winter time
    assert trace(store, result.run.id) == [
        ("workflow_started", None, "active", None, None, {"source": "trigger"}),
        ("waiting_for_send_window", "active", "waiting", step.id, None,
         {"rule_kind": "window", "step_key": "push", "due_at": due}),
    ]  # fmt: skip
    run = result.run
    assert (run.state, run.suspended_until, run.pending_signals, result.deliveries) == (
        RunState.WAITING,
        utc(2026, 1, 6, 7),
        (),
        (),
    )
    assert (run.wait_kind, run.wait_target) == ("window", "push")
    assert store.next_due_at() == utc(2026, 1, 6, 7)
    clock.set(utc(2026, 1, 6, 6, 59, 59))
    assert store.progress_due_runs() == []
    clock.set(utc(2026, 1, 6, 7))
    (opened,) = store.progress_due_runs()
    assert (opened.kind, opened.reason, opened.run.status_reason) == (
        ProgressKind.ADVANCED,
        "send_window_opened",
        "send_window_opened",
    )
    assert [d.step_key for d in opened.deliveries] == ["push"]
    assert trace(store, run.id)[2:] == [
        ("send_window_opened", "waiting", "active", step.id, None,
         {"rule_kind": "window", "step_key": "push"}),
        ("step_activated", "active", "active", step.id, None,
         {"source": "progression", "step_key": "push"}),
    ]  # fmt: skip
    assert opened.run.status_context == {"rule_kind": "window", "step_key": "push"}
    assert store.verify() == []


def test_a_recipient_without_a_time_zone_is_in_utc(store: Store, clock: FakeClock) -> None:
    assert _opening(store, clock, utc(2026, 1, 5, 7, 59, 59), timezone="UTC") == utc(2026, 1, 5, 8)
    assert _opening(store, clock, utc(2026, 1, 5, 20, 59)) is None
    assert _opening(store, clock, utc(2026, 1, 5, 22)) == utc(2026, 1, 6, 8)


@pytest.mark.parametrize(
    ("zone", "at", "opens"),
    [
        # Europe/Paris, spring: the night of 29 March 2026 loses 02:00-03:00 (CET -> CEST)
        ("Europe/Paris", utc(2026, 3, 28, 22), utc(2026, 3, 29, 6)),  # 08:00 CEST
        ("Europe/Paris", utc(2026, 3, 27, 22), utc(2026, 3, 28, 7)),  # 08:00 CET, the day before
        # Europe/Paris, autumn: 25 October 2026 repeats 02:00-03:00 (CEST -> CET)
        ("Europe/Paris", utc(2026, 10, 24, 20), utc(2026, 10, 25, 7)),  # 08:00 CET
        ("Europe/Paris", utc(2026, 10, 23, 20), utc(2026, 10, 24, 6)),  # 08:00 CEST
        # America/New_York, spring: 8 March 2026 loses 02:00-03:00 (EST -> EDT)
        ("America/New_York", utc(2026, 3, 8, 4), utc(2026, 3, 8, 12)),  # 08:00 EDT
        ("America/New_York", utc(2026, 3, 7, 4), utc(2026, 3, 7, 13)),  # 08:00 EST
        # America/New_York, autumn: 1 November 2026 repeats 01:00-02:00 (EDT -> EST)
        ("America/New_York", utc(2026, 11, 1, 3), utc(2026, 11, 1, 13)),  # 08:00 EST
        ("America/New_York", utc(2026, 10, 31, 3), utc(2026, 10, 31, 12)),  # 08:00 EDT
    ],
)
def test_the_opening_follows_the_recipients_clock_across_a_dst_change(
    store: Store, clock: FakeClock, zone: str, at: datetime, opens: datetime
) -> None:
    assert _opening(store, clock, at, timezone=zone) == opens
    assert store.verify() == []


@pytest.mark.parametrize(
    ("zone", "start", "at", "opens"),
    [
        # 02:30 does not exist in Paris on 29 March: the first instant after the gap, 03:00 CEST
        ("Europe/Paris", "02:30", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1)),
        # 02:15 does not exist in New York on 8 March: 03:00 EDT
        ("America/New_York", "02:15", utc(2026, 3, 8, 6), utc(2026, 3, 8, 7)),
        # 02:30 happens twice in Paris on 25 October: the first occurrence (CEST) counts
        ("Europe/Paris", "02:30", utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30)),
        # 01:30 happens twice in New York on 1 November: the first (EDT) counts
        ("America/New_York", "01:30", utc(2026, 11, 1, 5), utc(2026, 11, 1, 5, 30)),
    ],
)
def test_an_opening_in_a_gap_moves_after_it_and_in_a_fold_the_first_occurrence_counts(
    store: Store,
    clock: FakeClock,
    zone: str,
    start: str,
    at: datetime,
    opens: datetime,
) -> None:
    window = push(SendWindow(start, "05:00"))
    assert _opening(store, clock, at, workflow=window, timezone=zone) == opens


def test_right_after_a_gap_the_moved_opening_has_come(store: Store, clock: FakeClock) -> None:
    window = push(SendWindow("02:30", "05:00"))
    # 01:00 UTC is 03:00 CEST, the first instant after the gap: inside the window
    at = utc(2026, 3, 29, 1)
    assert _opening(store, clock, at, workflow=window, timezone="Europe/Paris") is None


def test_a_window_across_midnight(store: Store, clock: FakeClock) -> None:
    night = push(SendWindow("22:00", "06:00"))
    assert _opening(store, clock, utc(2026, 1, 5, 23), workflow=night) is None
    assert _opening(store, clock, utc(2026, 1, 6, 5, 59, 59), workflow=night) is None  # Monday's
    assert _opening(store, clock, utc(2026, 1, 6, 6), workflow=night) == utc(2026, 1, 6, 22)
    assert _opening(store, clock, utc(2026, 1, 6, 21, 59), workflow=night) == utc(2026, 1, 6, 22)
    assert _opening(store, clock, utc(2026, 1, 6, 22), workflow=night) is None


def test_days_are_the_weekdays_on_which_a_window_opens(store: Store, clock: FakeClock) -> None:
    office = push(SendWindow("08:00", "18:00", days=[4, 3, 2, 1, 0, 0]))
    assert office.steps[0].window == SendWindow("08:00", "18:00", (0, 1, 2, 3, 4))
    # quiet weekends: Friday 18:00 in Paris waits for Monday 08:00 (07:00 UTC)
    monday = utc(2026, 1, 12, 7)
    assert _opening(
        store, clock, utc(2026, 1, 9, 17), workflow=office, timezone="Europe/Paris"
    ) == (monday)
    fridays = push(SendWindow("22:00", "06:00", days=(4,)), version=2)
    # Saturday 03:00: inside the window that opened on Friday 22:00
    assert _opening(store, clock, utc(2026, 1, 10, 3), workflow=fridays) is None
    # Saturday 22:00: no window opens on Saturday; the next is Friday 16 January
    assert _opening(store, clock, utc(2026, 1, 10, 22), workflow=fridays) == utc(2026, 1, 16, 22)


def test_the_signal_mark_of_a_step_held_by_its_window_counts_from_the_progression(
    store: Store, clock: FakeClock
) -> None:
    """CONTRACT §13.1: a signal routed while the step waited for its window counts for the
    wait that step begins once it is sent."""
    workflow = Workflow(
        "reminder",
        1,
        [
            Step("inapp", 1, "in", window=DAYTIME, progress=[WaitUntil(3600, "email", ["read"])]),
            Step("email", 2, "email"),
        ],
    )
    result = _fire(store, clock, utc(2026, 1, 5, 22), workflow)
    clock.set(utc(2026, 1, 6, 6))
    store.route_signal(Signal("acme", "read", "ada"))  # read on another device, say
    clock.set(utc(2026, 1, 6, 8))
    (opened,) = store.progress_due_runs()
    done = store.record_outcome(opened.deliveries[0].id, "succeeded")
    assert done is not None
    assert (done.kind, done.run.terminal_reason) == (ProgressKind.COMPLETED, "cancelled_by_signal")
    assert done.run.status_context["signalled_at"] == "2026-01-06T06:00:00.000000+00:00"
    assert store.get_run(result.run.id).state is RunState.COMPLETED


# -- with the other step options -----------------------------------------------------------------


def test_the_throttle_comes_before_the_window(store: Store, clock: FakeClock) -> None:
    workflow = push(throttle=Throttle(1, 86_400))
    assert _opening(store, clock, utc(2026, 1, 5, 12), workflow=workflow) is None
    late = _fire(store, clock, utc(2026, 1, 5, 23), workflow)  # outside, and throttled
    assert (late.run.state, late.run.status_reason) == (RunState.STOPPED, "workflow_throttled")


def test_the_digest_comes_after_the_window_runs_released_together_share_a_batch(
    store: Store, clock: FakeClock
) -> None:
    workflow = push(digest=Digest(600))
    first = _fire(store, clock, utc(2026, 1, 5, 22), workflow)
    second = _fire(store, clock, utc(2026, 1, 5, 23), workflow)
    clock.set(utc(2026, 1, 6, 8))
    released = store.progress_due_runs()
    assert [(p.run.id, p.kind, p.reason) for p in released] == [
        (first.run.id, ProgressKind.WAITING, "waiting_for_digest"),
        (second.run.id, ProgressKind.WAITING, "waiting_for_digest"),
    ]
    clock.advance(minutes=10)
    sent, merged = store.progress_due_runs()
    assert (sent.run.id, sent.deliveries[0].digest_size) == (first.run.id, 2)
    assert merged.run.terminal_reason == "merged_into_digest"
    assert [r[0] for r in trace(store, first.run.id)] == [
        "workflow_started",
        "waiting_for_send_window",
        "send_window_opened",
        "waiting_for_digest",
        "digest_closed",
        "step_activated",
    ]
    assert store.verify() == []


# -- explain -------------------------------------------------------------------------------------


def test_explain_says_when_the_window_opens_in_the_recipients_zone(
    store: Store, clock: FakeClock
) -> None:
    result = _fire(store, clock, utc(2026, 1, 5, 22), timezone="Europe/Paris")
    explanation = store.explain("acme", result.run.id)
    assert explanation.why == (
        "Waiting for the send window: 08:00 Europe/Paris on Tue 2026-01-06 "
        "(2026-01-06T07:00:00+00:00); step 'push' is held until then."
    )
    assert explanation.next_move == (
        "At 2026-01-06T07:00:00+00:00 (in 9 h) the due sweep opens the send window and "
        "activates step 'push'; no signal ends this wait."
    )
    clock.set(utc(2026, 1, 5, 23, 30))  # 00:30 in Paris: the opening is later today
    assert store.explain("acme", result.run.id).why.startswith(
        "Waiting for the send window: 08:00 Europe/Paris ("
    )
    clock.set(utc(2026, 1, 6, 7))
    store.progress_due_runs()
    assert store.explain("acme", result.run.id).why == (
        "The send window of step 'push' opened at 08:00 Europe/Paris; the step was activated."
    )


def test_explain_of_an_active_run_says_the_next_step_waits_for_its_window(
    store: Store, clock: FakeClock
) -> None:
    workflow = Workflow(
        "two",
        1,
        [
            Step("inapp", 1, "in_app", progress=[OnOutcome(Outcome.DELIVERED, "push")]),
            Step("push", 2, "push", window=DAYTIME),
        ],
    )
    result = _fire(store, clock, utc(2026, 1, 5, 20, 59), workflow)
    # converged but not progressed yet: an operator's tool marked it in the outbox
    sql(store).execute(
        "UPDATE deliveries SET status = 'succeeded' WHERE id = ?", (result.deliveries[0].id,)
    )
    clock.set(utc(2026, 1, 5, 21, 30))
    explanation = store.explain("acme", result.run.id)
    assert explanation.next_move == (
        "The next progression starts a wait until 2026-01-06T08:00:00+00:00 for step 'push' "
        "(waiting_for_send_window)."
    )
    assert store.get_run(result.run.id).state is RunState.ACTIVE  # explain wrote nothing


# -- the time zone of a trigger ------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "europe/paris ", "../../etc/passwd", 5, ""])
def test_an_unknown_time_zone_is_refused_and_nothing_is_written(store: Store, zone: Any) -> None:
    before = table_dump(store)
    with pytest.raises(InvalidArgument) as caught:
        trigger(store, workflow=push(), timezone=zone)
    assert caught.value.name == "timezone"
    assert table_dump(store) == before


def test_the_time_zone_is_kept_on_the_notification(location: str, clock: FakeClock) -> None:
    with Store(location, clock=clock) as store:
        result = trigger(store, timezone="America/New_York", key="ny")
        plain = trigger(store, key="plain")
    with Store(location) as store:
        rows = dict(sql(store).execute("SELECT idempotency_key, timezone FROM notifications"))
        assert rows == {"ny": "America/New_York", "plain": None}
        assert store.digest_members(result.deliveries[0].id)[0].timezone == "America/New_York"
        assert store.digest_members(plain.deliveries[0].id)[0].timezone is None


# -- the pure machine's arithmetic -----------------------------------------------------------------


def test_instant_of_a_wall_time_in_a_gap_a_fold_and_a_plain_hour() -> None:
    assert instant_of(date(2026, 3, 29), time(2, 30), PARIS) == utc(2026, 3, 29, 1)
    assert instant_of(date(2026, 3, 29), time(2, 0), PARIS) == utc(2026, 3, 29, 1)
    assert instant_of(date(2026, 3, 29), time(3, 0), PARIS) == utc(2026, 3, 29, 1)
    assert instant_of(date(2026, 10, 25), time(2, 30), PARIS) == utc(2026, 10, 25, 0, 30)
    assert instant_of(date(2026, 10, 25), time(3, 0), PARIS) == utc(2026, 10, 25, 2)
    assert instant_of(date(2026, 1, 5), time(8, 0), NEW_YORK) == utc(2026, 1, 5, 13)
    assert instant_of(date(2026, 1, 5), time(8, 0), UTC) == utc(2026, 1, 5, 8)


def test_next_opening_is_none_inside_and_never_more_than_a_week_away() -> None:
    sunday_only = SendWindow("09:00", "10:00", days=(6,))
    now = utc(2026, 1, 11, 10)  # Sunday 10:00 UTC: the window just closed
    assert next_opening(sunday_only, now, UTC) == utc(2026, 1, 18, 9)
    assert next_opening(sunday_only, now - timedelta(microseconds=1), UTC) is None
    assert next_opening(sunday_only, utc(2026, 1, 11, 9), UTC) is None  # start inclusive


# -- declaration ---------------------------------------------------------------------------------


def test_the_dict_form_round_trips_through_the_store(store: Store) -> None:
    workflow = push(SendWindow(" 08:00", "21:00 ", days=[0, 1, 2, 3, 4]))
    as_dict = workflow_to_dict(workflow)
    assert as_dict["steps"][0]["config"] == {
        "window": {"start": "08:00", "end": "21:00", "days": [0, 1, 2, 3, 4]}
    }
    definition = store.upsert_definition("n", as_dict)
    assert store.persisted_workflow(definition.id) == workflow
    every_day = {"start": "08:00", "end": "21:00"}  # days default to every day
    from_dict = coerce_workflow(declared(every_day))
    assert from_dict.steps[0].window == SendWindow("08:00", "21:00", (0, 1, 2, 3, 4, 5, 6))


BAD: list[tuple[Any, str]] = [
    (SendWindow("8:00", "21:00"), "steps[0](push).window.start"),
    (SendWindow("24:00", "21:00"), "steps[0](push).window.start"),
    (SendWindow("08:00", "21:60"), "steps[0](push).window.end"),
    (SendWindow(800, "21:00"), "steps[0](push).window.start"),  # type: ignore[arg-type]
    (SendWindow("08:00", "08:00"), "steps[0](push).window.end"),
    (SendWindow("08:00", "21:00", days=()), "steps[0](push).window.days"),
    (SendWindow("08:00", "21:00", days=(7,)), "steps[0](push).window.days[0]"),
    (SendWindow("08:00", "21:00", days=(1, True)), "steps[0](push).window.days[1]"),
    (SendWindow("08:00", "21:00", days="mon"), "steps[0](push).window.days"),  # type: ignore[arg-type]
    ({"start": "08:00"}, "steps[0](push).window"),
]


@pytest.mark.parametrize(("window", "path"), BAD, ids=[f"{p[1]}-{i}" for i, p in enumerate(BAD)])
def test_a_bad_window_is_refused_with_its_path_and_nothing_is_written(
    store: Store, window: Any, path: str
) -> None:
    before = table_dump(store)
    with pytest.raises(InvalidWorkflow) as caught:
        trigger(store, workflow=push(window))
    assert (caught.value.path, caught.value.step) == (path, "push")
    assert table_dump(store) == before


def test_the_dict_form_refuses_unknown_and_missing_keys() -> None:
    for window, problem in (
        ({"start": "08:00", "end": "09:00", "tz": "UTC"}, "unknown keys tz"),
        ({"start": "08:00"}, "missing keys end"),
    ):
        with pytest.raises(InvalidWorkflow) as caught:
            coerce_workflow(declared(window))
        assert caught.value.path == "steps[0].config.window"
        assert problem in str(caught.value)


# -- cancel, and a machine without time zone data ------------------------------------------------


def test_a_run_waiting_for_its_window_can_be_cancelled(store: Store, clock: FakeClock) -> None:
    result = _fire(store, clock, utc(2026, 1, 5, 22), correlation_key="order-1")
    (stopped,) = store.cancel("acme", correlation_key="order-1")
    assert (stopped.state, stopped.terminal_reason) == (RunState.STOPPED, "cancelled")
    assert trace(store, result.run.id)[-1][:3] == ("workflow_cancelled", "waiting", "stopped")
    assert store.next_due_at() is None
    assert store.verify() == []


def test_without_time_zone_data_only_utc_is_known(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a machine with neither the system's tz database nor the ``tzdata`` package,
    zoneinfo knows no zone: a trigger naming one is refused with a message that says how to
    install them, and None and "UTC" still work."""
    from zoneinfo import ZoneInfoNotFoundError

    from chimeway_lite.engine import gates

    def no_data(name: str) -> Any:
        raise ZoneInfoNotFoundError(f"No time zone found with key {name}")

    monkeypatch.setattr(gates, "ZoneInfo", no_data)
    monkeypatch.setattr(gates, "available_timezones", set)
    clock.set(utc(2026, 1, 5, 22))
    with pytest.raises(InvalidArgument) as caught:
        trigger(store, workflow=push(), timezone="Europe/Paris")
    assert "install the tzdata package" in str(caught.value)
    assert trigger(store, workflow=push(), timezone="UTC").run.suspended_until == utc(2026, 1, 6, 8)
    assert trigger(store, workflow=push()).run.suspended_until == utc(2026, 1, 6, 8)


def test_a_zone_this_machine_lost_since_the_trigger_is_explained_in_utc(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _fire(store, clock, utc(2026, 1, 5, 22), timezone="Europe/Paris")
    from zoneinfo import ZoneInfoNotFoundError

    from chimeway_lite.engine import gates

    def no_data(name: str) -> Any:
        raise ZoneInfoNotFoundError(name)

    monkeypatch.setattr(gates, "ZoneInfo", no_data)
    monkeypatch.setattr(gates, "available_timezones", set)
    assert store.explain("acme", result.run.id).why.startswith(
        "Waiting for the send window: 07:00 UTC on Tue 2026-01-06"
    )
    clock.set(utc(2026, 1, 6, 7))
    (opened,) = store.progress_due_runs()  # opening a window needs no zone
    assert opened.reason == "send_window_opened"


def test_a_batch_of_triggers_takes_each_ones_time_zone(store: Store, clock: FakeClock) -> None:
    clock.set(utc(2026, 1, 5, 22))  # 23:00 in Paris, 17:00 in New York
    paris, new_york = store.trigger_many(
        [
            {
                "tenant_id": "acme",
                "notification_key": "n",
                "recipient": who,
                "workflow": push(),
                "idempotency_key": f"k-{who}",
                "timezone": zone,
            }
            for who, zone in (("ada", "Europe/Paris"), ("bob", "America/New_York"))
        ]
    )
    assert paris.run.suspended_until == utc(2026, 1, 6, 7)
    assert new_york.deliveries and new_york.notification.timezone == "America/New_York"
