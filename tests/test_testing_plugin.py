"""chimeway_lite.testing, the pytest plugin: a host's test file gets the fixtures by name."""

from __future__ import annotations

from importlib.metadata import entry_points

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


def test_chimeway_db_runs_the_store_on_a_kept_file(pytester: pytest.Pytester) -> None:
    # With --chimeway-db every test shares one file, so the third test sees the first two
    # tests' runs; the file stays for `chimeway-lite --db PATH runs` afterwards.
    pytester.makepyfile(test_host=HOST_TESTS.replace("{expected_runs}", "2"))
    path = pytester.path / "kept.db"

    result = pytester.runpytest("-p", "no:cacheprovider", "--chimeway-db", str(path))

    result.assert_outcomes(passed=4)
    with Store(path) as store:
        assert store.connection.execute("SELECT count(*) FROM workflow_runs").fetchone()[0] == 2


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
