"""chimeway_lite.testing, the pytest plugin: a host's test file gets the fixtures by name."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from factories import trigger

from chimeway_lite import FakeClock, Store
from chimeway_lite.testing import START, FakeOutbox

pytest_plugins = ["pytester"]

HOST_TESTS = """
from chimeway_lite import OnOutcome, Outcome, Signal, Step, Store, WaitUntil, Workflow

ESCALATION = Workflow("escalation", 1, [
    Step("inapp", 1, "in_app", progress=[
        OnOutcome(Outcome.BOUNCED, "email"),
        WaitUntil(7200, "email", ["notification_read"]),
    ]),
    Step("email", 2, "email"),
])


def welcome(store, user):
    return store.trigger(tenant_id="acme", notification_key="welcome", recipient=user,
                         workflow=ESCALATION, idempotency_key="welcome-" + user).run.id


def test_read_within_two_hours_sends_no_email(chimeway_store, chimeway_clock, chimeway_outbox):
    run_id = welcome(chimeway_store, "ada")
    assert [d.channel for d in chimeway_outbox.deliver()] == ["in_app"]
    chimeway_clock.advance(minutes=45)
    chimeway_store.route_signal(Signal("acme", "notification_read", actor_id="ada"))
    chimeway_clock.advance(hours=2)
    chimeway_store.progress_due_runs()
    assert chimeway_outbox.deliver(channel="email") == []
    assert chimeway_store.explain("acme", run_id).terminal_reason == "cancelled_by_signal"


def test_unread_sends_the_email(chimeway_store, chimeway_clock, chimeway_outbox):
    welcome(chimeway_store, "bob")
    chimeway_outbox.deliver()
    chimeway_clock.advance(hours=2)
    chimeway_store.progress_due_runs()
    assert [d.channel for d in chimeway_outbox.deliver(channel="email")] == ["email"]
    assert [d.channel for d in chimeway_outbox.sent_on("email")] == ["email"]


def test_each_test_starts_empty_at_the_same_time(chimeway_store, chimeway_clock):
    assert chimeway_clock.now().isoformat() == "2026-01-05T09:30:00+00:00"
    assert chimeway_store.clock is chimeway_clock
    runs = chimeway_store.connection.execute("SELECT count(*) FROM workflow_runs").fetchone()
    assert runs[0] == {expected_runs}


def test_file_store(chimeway_file_store, tmp_path):
    assert chimeway_file_store.path == str(tmp_path / "chimeway.db")
    with Store(chimeway_file_store.path) as other:
        assert other.next_due_at() is None
"""


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("chimeway_lite.testing") == "chimeway_lite.testing"


def test_a_host_test_file_uses_the_fixtures_without_any_setup(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_host=HOST_TESTS.replace("{expected_runs}", "0"))

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=4)


def _runs_in(path: Path) -> int:
    with Store(path) as store:
        return int(store.connection.execute("SELECT count(*) FROM workflow_runs").fetchone()[0])


def test_chimeway_db_gives_each_test_a_fresh_file_and_passes_twice_in_a_row(
    pytester: pytest.Pytester,
) -> None:
    # Every test triggers with fixed idempotency keys: on one shared file, the second run
    # would find the first run's journeys (duplicates, nothing to deliver) and fail.
    pytester.makepyfile(test_host=HOST_TESTS.replace("{expected_runs}", "0"))
    folder = pytester.path / "stores"

    for _ in range(2):
        result = pytester.runpytest("-p", "no:cacheprovider", "--chimeway-db", str(folder))
        result.assert_outcomes(passed=4)

    files = sorted(p.name for p in folder.glob("*.db"))
    assert len(files) == 3  # one per test that uses chimeway_store, kept afterwards
    assert all(name.startswith("test_host.py_test_") for name in files)
    by_test = {name.split("-")[0]: _runs_in(folder / name) for name in files}
    assert by_test == {
        "test_host.py_test_read_within_two_hours_sends_no_email": 1,
        "test_host.py_test_unread_sends_the_email": 1,
        "test_host.py_test_each_test_starts_empty_at_the_same_time": 0,
    }
    result.stdout.fnmatch_lines(["chimeway-lite: a fresh store file per test in *stores"])


def test_chimeway_db_says_so_in_its_help_and_refuses_a_file(pytester: pytest.Pytester) -> None:
    helped = pytester.runpytest("--help")
    helped.stdout.fnmatch_lines(["*--chimeway-db=DIR*fresh SQLite file per test under*"])

    (pytester.path / "one.db").write_bytes(b"")
    refused = pytester.runpytest("-p", "no:cacheprovider", "--chimeway-db", "one.db")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--chimeway-db takes a directory*is a file*"])


OUTBOX_TESTS = """
import pytest
from chimeway_lite import OnOutcome, Outcome, Step, Store, WaitUntil, Workflow

ESCALATION = Workflow("escalation", 1, [
    Step("inapp", 1, "in_app", progress=[
        OnOutcome(Outcome.BOUNCED, "email"),
        WaitUntil(7200, "email", ["notification_read"]),
    ]),
    Step("email", 2, "email"),
])


def welcome(store, user):
    return store.trigger(tenant_id="acme", notification_key="welcome", recipient=user,
                         workflow=ESCALATION, idempotency_key="welcome-" + user).run.id


@pytest.fixture
def app(chimeway_file_store):
    return chimeway_file_store  # the host's own fixture builds on the file store


def test_the_outbox_delivers_on_the_file_store(chimeway_file_store, chimeway_outbox):
    assert chimeway_outbox.store is chimeway_file_store
    welcome(chimeway_file_store, "ada")
    assert [d.channel for d in chimeway_outbox.deliver()] == ["in_app"]


def test_the_outbox_follows_a_fixture_that_uses_the_file_store(app, chimeway_outbox):
    welcome(app, "ada")
    assert [d.recipient for d in chimeway_outbox.deliver()] == ["ada"]


def test_the_outbox_defaults_to_chimeway_store(chimeway_outbox, chimeway_store):
    assert chimeway_outbox.store is chimeway_store


def test_both_stores_is_ambiguous(chimeway_store, chimeway_file_store, chimeway_outbox):
    pass
"""


def test_the_outbox_is_bound_to_the_store_the_test_uses(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_host_outbox=OUTBOX_TESTS)

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*uses both chimeway_store and chimeway_file_store*"])


CLOCK_TESTS = """
from datetime import datetime, timezone, timedelta
import pytest


@pytest.mark.chimeway_clock("2026-01-01T08:00:00Z")
def test_the_marker_sets_the_start(chimeway_clock, chimeway_store):
    assert chimeway_clock.now() == datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    assert chimeway_store.clock.now() == chimeway_clock.now()


@pytest.mark.chimeway_clock("2026-03-01T12:00:00+01:00")
class TestAClassOfTests:
    def test_it_applies_to_each(self, chimeway_clock):
        assert chimeway_clock.now() == datetime(2026, 3, 1, 11, tzinfo=timezone.utc)

    @pytest.mark.chimeway_clock(datetime(2027, 1, 1, tzinfo=timezone(timedelta(hours=-5))))
    def test_the_closest_marker_wins(self, chimeway_clock):
        assert chimeway_clock.now() == datetime(2027, 1, 1, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "chimeway_clock", ["2026-06-01T00:00:00Z", "2026-12-31T23:59:00Z"], indirect=True
)
def test_a_parameter_sets_the_start(chimeway_clock):
    assert chimeway_clock.now().year == 2026 and chimeway_clock.now().month in (6, 12)


def test_without_either_it_starts_at_the_default(chimeway_clock):
    assert chimeway_clock.now() == datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)


@pytest.mark.chimeway_clock("2026-01-01T08:00:00")
def test_a_naive_start_is_refused(chimeway_clock):
    pass
"""


def test_the_clock_start_is_set_by_a_marker_or_a_parameter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_host_clock=CLOCK_TESTS)

    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")

    result.assert_outcomes(passed=6, errors=1)
    result.stdout.fnmatch_lines(["*the start must be an aware instant*"])


def test_a_failing_host_assertion_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_wrong="""
        def test_expects_an_email_that_never_comes(chimeway_store, chimeway_outbox):
            assert chimeway_outbox.deliver(channel="email") != []
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)


def test_the_fake_outbox_records_outcomes_by_channel() -> None:
    clock = FakeClock(START)
    with Store(":memory:", clock=clock) as store:
        run = trigger(store).run
        outbox = FakeOutbox(store)

        assert outbox.deliver(channel="email") == []
        (bounced,) = outbox.deliver("cancelled", suppression_reason="bounced")
        (email,) = outbox.deliver()

        assert (bounced.channel, email.channel) == ("in_app", "email")
        assert outbox.sent == [bounced, email]
        assert outbox.sent_on("email") == [email]
        (in_app, planned_email) = store.list_deliveries("acme", run.id)
        assert (in_app.status, in_app.suppression_reason) == ("cancelled", "bounced")
        assert planned_email.status == "succeeded"
        assert store.explain("acme", run.id).state == "completed"


def _outbox_with(store: Store, *recipients: str, tenant: str = "acme") -> dict[str, str]:
    return {who: trigger(store, recipient=who, tenant=tenant).run.id for who in recipients}


def test_the_fake_outbox_filters_by_recipient_run_and_tenant() -> None:
    with Store(":memory:", clock=FakeClock(START)) as store:
        runs = _outbox_with(store, "ada", "bob", "cy")
        globex = trigger(store, recipient="ada", tenant="globex").run.id
        outbox = FakeOutbox(store)

        (ada,) = outbox.deliver("cancelled", suppression_reason="bounced", recipient="ada",
                                tenant_id="acme")  # fmt: skip
        (bob,) = outbox.deliver(run_id=runs["bob"])
        (other_ada,) = outbox.deliver(tenant_id="globex")

        assert (ada.recipient, ada.tenant_id, bob.recipient) == ("ada", "acme", "bob")
        assert other_ada.workflow_run_id == globex
        assert store.get_current_step(store.get_run(runs["ada"])).step_key == "email"
        assert store.get_run(runs["bob"]).state == "waiting"
        # cy's delivery was left as it was: pending, claimable, never leased.
        (cy,) = store.list_deliveries("acme", runs["cy"])
        assert (cy.status, cy.attempt, cy.lease_expires_at) == ("pending", 0, None)
        assert outbox.sent == [ada, bob, other_ada]
        assert outbox.sent_to("ada") == [ada, other_ada]


def test_a_filtered_delivery_is_handed_over_as_a_claim_would_but_recorded_without_one() -> None:
    with Store(":memory:", clock=FakeClock(START)) as store:
        run_id = trigger(store, recipient="ada", data={"order": "o-1"}).run.id
        trigger(store, recipient="bob")
        outbox = FakeOutbox(store)

        (sent,) = outbox.deliver(recipient="ada")
        (claimed,) = outbox.deliver()

        assert (sent.data, sent.status, sent.attempt) == ({"order": "o-1"}, "dispatched", 1)
        (filtered_attempt,) = store.explain_delivery("acme", sent.id).attempts
        (claimed_attempt,) = store.explain_delivery("acme", claimed.id).attempts
        assert filtered_attempt.claimed_at is None and filtered_attempt.status == "succeeded"
        assert claimed_attempt.claimed_at == START and claimed.recipient == "bob"
        assert store.get_run(run_id).state == "waiting"


def test_an_outcome_function_gives_each_delivery_its_own_outcome() -> None:
    with Store(":memory:", clock=FakeClock(START)) as store:
        runs = _outbox_with(store, "ada", "bob", "cy")
        outbox = FakeOutbox(store)
        answers = {"ada": ("cancelled", "bounced"), "bob": None, "cy": "suppressed"}

        sent = outbox.deliver(outcome=lambda d: answers[d.recipient])

        assert sorted(d.recipient for d in sent) == ["ada", "bob", "cy"]
        assert store.get_current_step(store.get_run(runs["ada"])).step_key == "email"
        assert store.get_run(runs["bob"]).state == "waiting"
        (cy,) = store.list_deliveries("acme", runs["cy"])
        assert cy.status == "suppressed"
        (email,) = outbox.deliver(channel="email", outcome=lambda d: "failed")
        assert email.recipient == "ada"


def test_a_failing_outcome_function_records_nothing() -> None:
    with Store(":memory:", clock=FakeClock(START)) as store:
        runs = _outbox_with(store, "ada", "bob")
        outbox = FakeOutbox(store)

        def flaky(delivery: object) -> str:
            if getattr(delivery, "recipient", None) == "bob":
                raise KeyError("bob")
            return "succeeded"

        with pytest.raises(KeyError):
            outbox.deliver(outcome=flaky)
        for run_id in runs.values():
            (delivery,) = store.list_deliveries("acme", run_id)
            assert (delivery.status, delivery.attempt) == ("pending", 0)
        assert outbox.sent == []
        with pytest.raises(ValueError, match="either status"):
            outbox.deliver("failed", outcome=flaky)
