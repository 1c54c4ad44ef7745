"""The ready worker (SPEC §12.5): what a sender's answer records, retries and leases through
the worker, claims only on its channels, exact sleeps, stop() and SIGINT/SIGTERM, and logs
that carry no data. Every test drives a FakeClock; the few that wait for real wait < 0.5 s."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from backends import sql
from factories import START, escalation_workflow, trigger
from strategies import table_dump

from chimeway_lite import (
    Delivery,
    DeliveryStatus,
    FakeClock,
    InvalidArgument,
    OnOutcome,
    Outcome,
    Retry,
    Signal,
    Step,
    Store,
    StoreBusy,
    Worker,
    Workflow,
)
from chimeway_lite.tools.worker import MIN_BACKOFF, Handled, outcome_of, pause_until

#: One email, nothing after it: the run completes on any outcome.
EMAIL = Workflow("email_only", 1, [Step("email", 1, "email")])
#: One in-app message, nothing after it.
IN_APP = Workflow("in_app_only", 1, [Step("inapp", 1, "in_app")])
#: An email retried 3 times (60 s, then 120 s), then an SMS when the retries are exhausted.
RETRYING = Workflow(
    "retrying",
    1,
    [
        Step(
            "email",
            1,
            "email",
            progress=[OnOutcome(Outcome.RETRIES_EXHAUSTED, "sms")],
            retry=Retry(3, 60),
        ),
        Step("sms", 2, "sms"),
    ],
)
LOGGER = "chimeway_lite.worker"


class Sender:
    """A sender that remembers what it was handed and answers ``answer`` (or raises it)."""

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer
        self.sent: list[Delivery] = []

    def __call__(self, delivery: Delivery) -> Any:
        self.sent.append(delivery)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


class Waits:
    """A ``wait=`` for run() on a FakeClock: records each pause and moves the clock by it;
    stops the worker after ``stop_after`` pauses, or at a pause of ``max_sleep``."""

    def __init__(
        self, clock: FakeClock, *, stop_after: int = 20, stop_at: float | None = None
    ) -> None:
        self.clock = clock
        self.pauses: list[float] = []
        self.stop_after = stop_after
        self.stop_at = stop_at
        self.worker: Worker | None = None

    def __call__(self, seconds: float) -> None:
        assert self.worker is not None
        self.pauses.append(seconds)
        if len(self.pauses) >= self.stop_after or seconds == self.stop_at:
            self.worker.stop()
            return
        self.clock.advance(seconds=seconds)


def _run(worker: Worker, waits: Waits) -> tuple[Handled, list[Handled]]:
    passes: list[Handled] = []
    waits.worker = worker
    total = worker.run(wait=waits, on_pass=lambda handled, pause: passes.append(handled))
    return total, passes


def _delivery(store: Store, delivery_id: str, tenant: str = "acme") -> Delivery:
    return store.explain_delivery(tenant, delivery_id).delivery


def _statuses(store: Store, tenant: str, run_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (d.channel, d.status.value, d.suppression_reason)
        for d in store.list_deliveries(tenant, run_id)
    ]


# -- what a sender's answer records ------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (None, "succeeded", None),
        ("succeeded", "succeeded", None),
        (DeliveryStatus.FAILED, "failed", None),
        ("suppressed", "suppressed", None),
        (("suppressed", "opted_out"), "suppressed", "opted_out"),
        ((DeliveryStatus.SUPPRESSED, None), "suppressed", None),
        (("cancelled", "bounced"), "cancelled", "bounced"),
        (("cancelled", "permanent_failure"), "cancelled", "permanent_failure"),
    ],
)
def test_what_the_sender_returns_is_recorded(
    store: Store, answer: Any, status: str, reason: str | None
) -> None:
    started = trigger(store, workflow=EMAIL)
    sender = Sender(answer)

    handled = Worker(store, {"email": sender}).run_once()

    assert handled == Handled(deliveries=1, runs=0)
    (sent,) = sender.sent
    assert (sent.id, sent.status, sent.attempt) == (started.deliveries[0].id, "dispatched", 1)
    delivery = _delivery(store, sent.id)
    assert (delivery.status.value, delivery.suppression_reason) == (status, reason)
    assert store.get_run(started.run.id).state == "completed"


def test_the_sender_is_handed_whom_to_send_what(store: Store) -> None:
    workflow = Workflow("welcome", 1, [Step("email", 1, "email", config={"template": "hi"})])
    trigger(store, workflow=workflow, recipient="ada", data={"name": "Ada"})
    sender = Sender()
    Worker(store, {"email": sender}).run_once()
    (sent,) = sender.sent
    assert (sent.recipient, sent.notification_key, sent.step_key) == ("ada", "welcome", "email")
    assert (sent.data, sent.config) == ({"name": "Ada"}, {"template": "hi"})
    assert sent.lease_expires_at == START + timedelta(seconds=300)


def test_a_bounce_moves_the_run_to_the_next_channel_in_the_same_pass(store: Store) -> None:
    started = trigger(store)  # the escalation journey: a bounce sends the email at once
    inapp, email = Sender(("cancelled", "bounced")), Sender()

    handled = Worker(store, {"in_app": inapp, "email": email}).run_once()

    assert handled == Handled(2, 0)
    assert len(inapp.sent) == len(email.sent) == 1
    assert _statuses(store, "acme", started.run.id) == [
        ("in_app", "cancelled", "bounced"),
        ("email", "succeeded", None),
    ]
    assert store.get_run(started.run.id).terminal_reason == "workflow_completed"


def test_a_sender_that_raises_records_failed_and_its_text_goes_nowhere(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    started = trigger(store, workflow=EMAIL)
    secret = "SMTP said: mailbox ada@example.org is full"

    Worker(store, {"email": Sender(ValueError(secret))}).run_once()

    delivery = _delivery(store, started.deliveries[0].id)
    assert delivery.status == "failed"
    assert "mailbox" not in repr(table_dump(store))
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.name == LOGGER and record.levelno == logging.WARNING
    assert "ValueError" in record.getMessage() and delivery.id in record.getMessage()
    assert record.exc_info is None
    assert all("mailbox" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "answer",
    [
        42,
        ["succeeded"],
        ("succeeded",),
        ("succeeded", None, None),
        ("suppressed", 7),
        (None, None),
        "sucess",
        "SUCCEEDED",
        "pending",
        "dispatched",
        "cancelled",
        ("cancelled", "opted_out"),
        ("suppressed", " "),
        ("suppressed", "x" * 201),
    ],
    ids=repr,
)
def test_an_answer_that_is_no_outcome_records_failed_and_logs_an_error(
    store: Store, caplog: pytest.LogCaptureFixture, answer: Any
) -> None:
    """Chosen: a sender's bug records ``failed`` (the step's retry policy decides what
    follows) instead of raising, which would leave the delivery in flight until its lease
    ran out — and then hand it to the same bug again."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    started = trigger(store, workflow=EMAIL)
    after = trigger(store, workflow=EMAIL)  # the worker goes on with the next one

    handled = Worker(store, {"email": Sender(answer)}).run_once()

    assert handled == Handled(2, 0)
    for result in (started, after):
        delivery = _delivery(store, result.deliveries[0].id)
        assert (delivery.status, delivery.suppression_reason) == ("failed", None)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 2 and {r.levelno for r in errors} == {logging.ERROR}
    assert started.deliveries[0].id in errors[0].getMessage()
    if isinstance(answer, str) and answer.strip():
        assert all(answer not in r.getMessage() for r in caplog.records)  # nor the value


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), SystemExit(3)], ids=repr)
def test_a_base_exception_is_not_swallowed_and_the_lease_keeps_the_delivery(
    store: Store, clock: FakeClock, interrupt: BaseException
) -> None:
    started = trigger(store, workflow=EMAIL)
    delivery_id = started.deliveries[0].id

    with pytest.raises(type(interrupt)):
        Worker(store, {"email": Sender(interrupt)}, lease_seconds=60).run_once()

    held = _delivery(store, delivery_id)
    assert (held.status, held.attempt) == ("dispatched", 1)
    assert store.next_claimable_at(channel="email") == START + timedelta(seconds=60)
    clock.advance(seconds=60)
    assert Worker(store, {"email": Sender()}).run_once() == Handled(1, 0)
    attempts = store.explain_delivery("acme", delivery_id).attempts
    assert [(a.attempt, a.status) for a in attempts] == [(1, "lease_expired"), (2, "succeeded")]


def test_outcome_of() -> None:
    assert outcome_of(None) == ("succeeded", None)
    assert outcome_of("failed") == ("failed", None)
    assert outcome_of(("cancelled", "bounced")) == ("cancelled", "bounced")
    assert outcome_of(("suppressed", None)) == ("suppressed", None)
    for bad in (1, b"succeeded", ["failed"], ("failed",), ("failed", 1), (1, None), {}):
        assert outcome_of(bad) is None


# -- the store's answers -------------------------------------------------------------------------


def test_the_outcome_is_recorded_in_the_deliverys_tenant(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = trigger(store, tenant="acme", workflow=EMAIL).deliveries[0]
    bob = trigger(store, tenant="globex", workflow=EMAIL).deliveries[0]
    calls: list[tuple[Any, ...]] = []
    record = store.record_outcome

    def spy(delivery_id: str, *args: Any, **kwargs: Any) -> Any:
        calls.append((delivery_id, *args, kwargs))
        return record(delivery_id, *args, **kwargs)

    monkeypatch.setattr(store, "record_outcome", spy)

    Worker(store, {"email": Sender()}).run_once()

    assert sorted(calls) == sorted(
        [
            (ada.id, "succeeded", None, {"tenant_id": "acme"}),
            (bob.id, "succeeded", None, {"tenant_id": "globex"}),
        ]
    )


def test_a_delivery_someone_else_finished_is_logged_and_the_worker_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    # (a recipient no id can spell: ids are hexadecimal, and "ada" once matched one)
    first = trigger(store, workflow=EMAIL, recipient="ada.lovelace", data={"code": "SECRET"})
    second = trigger(store, workflow=EMAIL, recipient="bob")

    def send(delivery: Delivery) -> None:
        if delivery.recipient == "ada.lovelace":  # a webhook records the bounce meanwhile
            store.record_outcome(delivery.id, "cancelled", "bounced")

    handled = Worker(store, {"email": send}).run_once()

    assert handled == Handled(2, 0)
    assert _delivery(store, first.deliveries[0].id).status == "cancelled"  # kept
    assert _delivery(store, second.deliveries[0].id).status == "succeeded"
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert first.deliveries[0].id in message and "someone else finished it" in message
    assert "lovelace" not in message and "SECRET" not in message


def test_a_delivery_that_is_gone_is_logged_and_the_worker_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    gone = trigger(store, tenant="leaving", workflow=EMAIL)
    kept = trigger(store, tenant="staying", workflow=EMAIL)

    def send(delivery: Delivery) -> None:
        if delivery.tenant_id == "leaving":
            store.forget("leaving")  # the tenant is erased while its delivery is in flight

    assert Worker(store, {"email": send}).run_once() == Handled(2, 0)
    assert _delivery(store, kept.deliveries[0].id, "staying").status == "succeeded"
    (warning,) = caplog.records
    assert gone.deliveries[0].id in warning.getMessage()
    assert "the delivery is gone" in warning.getMessage()


# -- claims ----------------------------------------------------------------------------------------


def test_the_worker_claims_only_the_channels_it_can_send(store: Store, clock: FakeClock) -> None:
    inapp = trigger(store)  # escalation: an in-app delivery
    email = trigger(store, workflow=EMAIL)
    sender = Sender()
    worker = Worker(store, {"email": sender}, max_sleep=30)

    assert worker.run_once() == Handled(1, 0)

    assert [d.id for d in sender.sent] == [email.deliveries[0].id]
    untouched = _delivery(store, inapp.deliveries[0].id)
    assert (untouched.status, untouched.attempt) == ("pending", 0)
    # ...and the pending in-app delivery, claimable since START, does not keep it awake.
    waits = Waits(clock, stop_after=3)
    total, _ = _run(worker, waits)
    assert waits.pauses == [30.0, 30.0, 30.0]
    assert total == Handled(0, 0)


def test_channels_take_turns_one_claim_at_a_time_up_to_the_batch(
    store: Store, clock: FakeClock
) -> None:
    for i in range(3):
        trigger(store, workflow=EMAIL, recipient=f"e{i}")
        trigger(store, workflow=IN_APP, recipient=f"i{i}")
    order: list[str] = []

    def send(delivery: Delivery) -> None:
        # Claimed one at a time: when a delivery is sent, it is the only one in flight.
        in_flight = (
            sql(store)
            .execute("SELECT count(*) FROM deliveries WHERE status = 'dispatched'")
            .fetchone()[0]
        )
        assert in_flight == 1
        order.append(delivery.recipient)

    worker = Worker(store, {"email": send, "in_app": send}, batch_size=4, max_sleep=30)
    assert worker.run_once() == Handled(4, 0)
    assert order == ["e0", "i0", "e1", "i1"]

    waits = Waits(clock, stop_at=30.0)
    total, passes = _run(worker, waits)
    assert passes == [Handled(2, 0)]
    assert order[4:] == ["e2", "i2"]
    assert waits.pauses == [30.0]
    assert total == Handled(2, 0)


def test_after_a_full_batch_the_worker_goes_again_at_once(store: Store, clock: FakeClock) -> None:
    for i in range(5):
        trigger(store, workflow=EMAIL, recipient=f"r{i}")
    worker = Worker(store, {"email": Sender()}, batch_size=2, max_sleep=30)
    waits = Waits(clock, stop_at=30.0)

    total, passes = _run(worker, waits)

    assert passes == [Handled(2, 0), Handled(2, 0), Handled(1, 0)]
    assert waits.pauses == [0.0, 0.0, 30.0]
    assert total == Handled(5, 0)


# -- retries, leases and due runs through the worker, with exact sleeps ----------------------------


def test_retries_flow_through_the_worker_at_their_exact_times(
    store: Store, clock: FakeClock
) -> None:
    started = trigger(store, workflow=RETRYING)
    email, sms = Sender("failed"), Sender()
    worker = Worker(store, {"email": email, "sms": sms}, max_sleep=10_000)
    waits = Waits(clock, stop_at=10_000.0)

    total, passes = _run(worker, waits)

    # Attempt 1 fails at START: retried 60 s later; attempt 2 fails: 120 s later; attempt 3
    # exhausts the policy, and the run's SMS goes out in that same pass.
    assert waits.pauses == [60.0, 120.0, 10_000.0]
    assert passes == [Handled(1, 0), Handled(1, 0), Handled(2, 0)]
    assert total == Handled(4, 0)
    assert [d.attempt for d in email.sent] == [1, 2, 3]
    assert len(sms.sent) == 1
    attempts = store.explain_delivery("acme", started.deliveries[0].id).attempts
    assert [(a.attempt, a.claimed_at, a.status) for a in attempts] == [
        (1, START, "failed"),
        (2, START + timedelta(seconds=60), "failed"),
        (3, START + timedelta(seconds=180), "failed"),
    ]
    assert _statuses(store, "acme", started.run.id) == [
        ("email", "cancelled", "retries_exhausted"),
        ("sms", "succeeded", None),
    ]
    assert store.get_run(started.run.id).state == "completed"


def test_the_worker_sleeps_until_a_lease_runs_out_and_sends_the_delivery_again(
    store: Store, clock: FakeClock
) -> None:
    started = trigger(store, workflow=EMAIL)
    store.claim_deliveries(channel="email", lease_seconds=90)  # a worker that died with it
    clock.advance(seconds=30)
    sender = Sender()
    waits = Waits(clock, stop_at=3600.0)

    total, passes = _run(Worker(store, {"email": sender}, max_sleep=3600), waits)

    assert waits.pauses == [60.0, 3600.0]  # exactly until the lease ran out
    assert passes == [Handled(0, 0), Handled(1, 0)]
    assert total == Handled(1, 0)
    attempts = store.explain_delivery("acme", started.deliveries[0].id).attempts
    assert [(a.attempt, a.status) for a in attempts] == [(1, "lease_expired"), (2, "succeeded")]


def test_the_worker_sleeps_until_the_next_due_run_and_sweeps_it(
    store: Store, clock: FakeClock
) -> None:
    ada = trigger(store, recipient="ada")
    bob = trigger(store, recipient="bob")
    sent: list[tuple[str, str]] = []

    def send(delivery: Delivery) -> None:
        sent.append((delivery.channel, delivery.recipient))
        if delivery.channel == "in_app" and delivery.recipient == "ada":
            # ada reads it at once: the signal resumes her run, due at once (to settle)
            store.record_outcome(delivery.id, "succeeded")
            store.route_signal(Signal("acme", "notification_read", actor_id="ada"))

    waits = Waits(clock, stop_at=10_000.0)
    worker = Worker(store, {"in_app": send, "email": send}, max_sleep=10_000)

    total, passes = _run(worker, waits)

    # Pass 1 sends both in-app messages (ada's record is refused: she read it first) and
    # leaves ada's run due at once; pass 2 settles it; pass 3, at bob's due time, sweeps his
    # run to the email step and sends the email.
    assert waits.pauses == [0.0, 7200.0, 10_000.0]
    assert passes == [Handled(2, 0), Handled(0, 1), Handled(1, 1)]
    assert total == Handled(3, 2)
    assert sent == [("in_app", "ada"), ("in_app", "bob"), ("email", "bob")]
    assert store.get_run(ada.run.id).terminal_reason == "cancelled_by_signal"
    assert store.get_run(bob.run.id).terminal_reason == "workflow_completed"


def test_a_wait_is_capped_by_max_sleep(store: Store, clock: FakeClock) -> None:
    trigger(store)
    waits = Waits(clock, stop_after=3)
    total, _ = _run(Worker(store, {"in_app": Sender()}, max_sleep=2500), waits)
    assert waits.pauses == [2500.0, 2500.0, 2200.0]  # the wait ends at START + 7200 s
    assert total == Handled(1, 0)


def test_a_run_the_sweep_cannot_move_makes_the_worker_back_off(
    store: Store, clock: FakeClock
) -> None:
    started = trigger(store, workflow=EMAIL)
    with store.transaction() as tx:
        # A host made the run wait with no wait rule: it is due, but leads nowhere
        # (the sweep's noop unknown_to_step), so it stays due after every sweep.
        tx.update_run(started.run.id, state="waiting", suspended_until=START)
    trigger(store, workflow=RETRYING)  # an email retried in 60 s and then 120 s
    waits = Waits(clock, stop_after=8)

    _, passes = _run(Worker(store, {"email": Sender("failed")}, max_sleep=10), waits)

    # Both sends fail (one the stuck run's delivery, one RETRYING's); then nothing moves:
    # 1, 2, 4, 8, 10 … s. Attempt 2 of RETRYING's email is due at 60 s: a pass that sends
    # it starts the backoff over.
    assert passes[0] == Handled(2, 0)
    assert waits.pauses[:7] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert sum(waits.pauses[:7]) == 35.0


def test_pause_until() -> None:
    now = START
    later = [now + timedelta(seconds=s) for s in (30, 10, 90)]
    assert pause_until(now, [], busy=False, backoff=4, max_sleep=60) == (60, MIN_BACKOFF)
    assert pause_until(now, [None, None], busy=True, backoff=4, max_sleep=60) == (
        60,
        MIN_BACKOFF,
    )
    assert pause_until(now, later, busy=True, backoff=4, max_sleep=60) == (10, MIN_BACKOFF)
    assert pause_until(now, later, busy=False, backoff=4, max_sleep=5) == (5, MIN_BACKOFF)
    half = now + timedelta(milliseconds=500)
    assert pause_until(now, [half], busy=False, backoff=4, max_sleep=60) == (0.5, MIN_BACKOFF)
    # work waiting already: at once after a busy pass, else back off (doubling, capped)
    assert pause_until(now, [now, *later], busy=True, backoff=4, max_sleep=60) == (0, 1)
    assert pause_until(now, [now, *later], busy=False, backoff=4, max_sleep=60) == (4, 8)
    assert pause_until(now, [now, *later], busy=False, backoff=40, max_sleep=60) == (10, 60)
    assert pause_until(now, [now], busy=False, backoff=40, max_sleep=60) == (40, 60)


# -- the loop: stop(), signals, errors -------------------------------------------------------------


def test_stop_from_another_thread_wakes_a_sleeping_run_at_once(store: Store) -> None:
    worker = Worker(store, {"email": Sender()}, max_sleep=30)  # nothing to do: sleeps 30 s
    timer = threading.Timer(0.05, worker.stop)
    started = time.monotonic()
    timer.start()
    try:
        total = worker.run()
    finally:
        timer.cancel()
    assert time.monotonic() - started < 1.0
    assert total == Handled(0, 0)


def test_a_stop_finishes_the_delivery_in_hand_and_claims_no_other(store: Store) -> None:
    first = trigger(store, workflow=EMAIL, recipient="ada")
    second = trigger(store, workflow=EMAIL, recipient="bob")
    in_hand, release = threading.Event(), threading.Event()

    def send(delivery: Delivery) -> None:
        in_hand.set()
        assert release.wait(5)

    worker = Worker(store, {"email": send}, max_sleep=30)
    totals: list[Handled] = []
    thread = threading.Thread(target=lambda: totals.append(worker.run()))
    thread.start()
    try:
        assert in_hand.wait(5)
        worker.stop()
        time.sleep(0.05)
        assert thread.is_alive()  # not mid-send: the send goes on
    finally:
        release.set()
        thread.join(5)
    assert not thread.is_alive()
    assert totals == [Handled(1, 0)]
    assert _delivery(store, first.deliveries[0].id).status == "succeeded"
    unclaimed = _delivery(store, second.deliveries[0].id)
    assert (unclaimed.status, unclaimed.attempt) == ("pending", 0)


def test_a_stop_before_run_is_kept_for_it_and_the_worker_runs_again(
    store: Store, clock: FakeClock
) -> None:
    trigger(store, workflow=EMAIL)
    worker = Worker(store, {"email": Sender()}, max_sleep=30)
    passes: list[Handled] = []
    worker.stop()
    assert worker.run(on_pass=lambda h, p: passes.append(h)) == Handled(0, 0)
    assert passes == []
    total, _ = _run(worker, Waits(clock, stop_after=1))
    assert total == Handled(1, 0)


def test_on_pass_hears_of_every_pass_and_of_a_stop_in_it(store: Store) -> None:
    trigger(store, workflow=EMAIL, recipient="ada")
    seen: list[tuple[Handled, float | None]] = []
    worker = Worker(store, {"email": Sender()}, max_sleep=0.01)

    def on_pass(handled: Handled, pause: float | None) -> None:
        seen.append((handled, pause))
        if len(seen) == 2:
            trigger(store, workflow=EMAIL, recipient="bob")
            trigger(store, workflow=EMAIL, recipient="cy")

    def send(delivery: Delivery) -> None:
        if delivery.recipient == "bob":
            worker.stop()  # during the pass: it ends after this delivery, with no pause

    worker.senders["email"] = send
    assert worker.run(on_pass=on_pass) == Handled(2, 0)
    assert seen == [(Handled(1, 0), 0.01), (Handled(0, 0), 0.01), (Handled(1, 0), None)]
    assert store.claim_deliveries(channel="email")[0].recipient == "cy"  # never claimed


@pytest.fixture
def sentinel_handlers() -> Iterator[Callable[[int, Any], None]]:
    """A handler of our own on SIGINT and SIGTERM, put back afterwards whatever happens."""

    def sentinel(signum: int, frame: Any) -> None:
        raise AssertionError(f"the worker's handler should have taken signal {signum}")

    previous = {s: signal.signal(s, sentinel) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield sentinel
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_stops_run_in_the_main_thread_and_the_handlers_are_restored(
    store: Store, signum: signal.Signals, sentinel_handlers: Callable[[int, Any], None]
) -> None:
    assert threading.current_thread() is threading.main_thread()
    trigger(store, workflow=EMAIL)
    worker = Worker(store, {"email": Sender()}, max_sleep=0.02)
    installed: list[Any] = []
    passes: list[Handled] = []

    def on_pass(handled: Handled, pause: float | None) -> None:
        passes.append(handled)
        installed.append(signal.getsignal(signum))
        if len(passes) == 3:  # looping: now the signal comes, from another thread
            threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()

    safety = threading.Timer(3, worker.stop)  # never hang the suite
    safety.start()
    started = time.monotonic()
    try:
        total = worker.run(on_pass=on_pass)
    finally:
        safety.cancel()
    assert time.monotonic() - started < 1.5  # the signal stopped it, not the safety timer
    assert total == Handled(1, 0)
    assert len(passes) >= 3
    assert installed and all(h is not sentinel_handlers for h in installed)
    assert signal.getsignal(signal.SIGINT) is sentinel_handlers
    assert signal.getsignal(signal.SIGTERM) is sentinel_handlers


def test_a_second_signal_abandons_the_delivery_in_hand(
    store: Store, sentinel_handlers: Callable[[int, Any], None]
) -> None:
    started = trigger(store, workflow=EMAIL)
    gate = threading.Event()

    def hang(delivery: Delivery) -> None:
        for delay in (0.02, 0.1):
            threading.Timer(delay, os.kill, (os.getpid(), signal.SIGTERM)).start()
        gate.wait(3)  # a sender that hangs; the first SIGTERM only asks for a stop

    with pytest.raises(KeyboardInterrupt):
        Worker(store, {"email": hang}).run()

    assert not gate.is_set()
    assert _delivery(store, started.deliveries[0].id).status == "dispatched"  # to its lease
    assert signal.getsignal(signal.SIGTERM) is sentinel_handlers


def test_run_in_another_thread_leaves_the_signal_handlers_alone(store: Store) -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[Any] = []
    worker = Worker(store, {"email": Sender()}, max_sleep=0.01)

    def on_pass(handled: Handled, pause: float | None) -> None:
        seen.append(signal.getsignal(signal.SIGTERM))
        worker.stop()

    thread = threading.Thread(target=worker.run, kwargs={"on_pass": on_pass})
    thread.start()
    thread.join(5)
    assert seen == [before]


def test_a_busy_store_is_logged_and_tried_again_after_a_backoff(
    store: Store,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    trigger(store, workflow=EMAIL)
    claim = store.claim_deliveries
    busy = [StoreBusy("chimeway.db", 5.0)] * 2

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if busy:
            raise busy.pop()
        return claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim_deliveries", flaky)
    waits = Waits(clock, stop_at=30.0)

    total, passes = _run(Worker(store, {"email": Sender()}, max_sleep=30), waits)

    assert waits.pauses == [1.0, 2.0, 30.0]
    assert passes == [Handled(0, 0), Handled(0, 0), Handled(1, 0)]
    assert total == Handled(1, 0)
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 2
    assert "is busy" in caplog.records[0].getMessage()


def test_another_error_ends_the_run(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(store, "progress_due_runs", broken)
    with pytest.raises(RuntimeError):
        Worker(store, {"email": Sender()}).run()


# -- logs and arguments ----------------------------------------------------------------------------


def test_the_logs_carry_no_data(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    secrets = ("ada@example.org", "SECRET-DATA", "SECRET-CONFIG", "SECRET-EXCEPTION")
    workflow = Workflow(
        "secretive", 1, [Step("email", 1, "email", config={"template": "SECRET-CONFIG"})]
    )
    for _ in range(4):
        trigger(store, workflow=workflow, recipient="ada@example.org", data={"x": "SECRET-DATA"})
    answers: list[Any] = [
        ValueError("SECRET-EXCEPTION for ada@example.org"),
        "SECRET-DATA",  # not a status
        ("suppressed", None),
        None,
    ]

    def send(delivery: Delivery) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    worker = Worker(store, {"email": send}, max_sleep=0.01)
    worker.run(on_pass=lambda h, p: worker.stop())

    assert caplog.records, "the worker logs what it does"
    for record in caplog.records:
        assert record.name == LOGGER
        text = record.getMessage() + repr(record.args)
        assert not any(secret in text for secret in secrets), text
        assert record.exc_info is None and record.stack_info is None


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"senders": {}}, "senders"),
        ({"senders": [("email", print)]}, "senders"),
        ({"senders": {"email": "not callable"}}, "senders"),
        ({"senders": {" ": print}}, "senders"),
        ({"senders": {1: print}}, "senders"),
        ({"lease_seconds": 0}, "lease_seconds"),
        ({"lease_seconds": 1.5}, "lease_seconds"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"max_sleep": 0}, "max_sleep"),
        ({"max_sleep": float("inf")}, "max_sleep"),
        ({"max_sleep": "60"}, "max_sleep"),
    ],
)
def test_bad_arguments_are_refused(
    memory_store: Store, arguments: dict[str, Any], name: str
) -> None:
    arguments = {"senders": {"email": print}, **arguments}
    with pytest.raises(InvalidArgument) as caught:
        Worker(memory_store, **arguments)
    assert caught.value.name == name


def test_a_memory_store_and_a_fake_clock_run_a_whole_journey(
    memory_store: Store, clock: FakeClock
) -> None:
    started = trigger(memory_store, workflow=escalation_workflow())
    worker = Worker(memory_store, {"in_app": Sender(), "email": Sender()})
    assert worker.run_once() == Handled(1, 0)
    assert worker.run_once() == Handled(0, 0)
    clock.advance(hours=2)
    assert worker.run_once() == Handled(1, 1)  # swept to the email step, which is sent
    assert memory_store.get_run(started.run.id).state == "completed"
    assert memory_store.verify() == []
