"""A host application's unit tests, with chimeway_lite as the fake notification engine.

``WelcomeService`` is the host's code: it starts the escalation journey when a user signs
up and signals ``notification_read`` when the user opens the message. Its tests use the
pytest fixtures chimeway-lite installs (``chimeway_store``, ``chimeway_clock``,
``chimeway_outbox``) — no conftest, no import of the plugin — and a fake clock, so "two hours
later" takes no time.

    python examples/04_host_unit_test.py [DB_DIR]    # runs the tests below with pytest
    pytest examples/04_host_unit_test.py              # the same, in memory

With a DB_DIR (pytest's ``--chimeway-db DIR``) each test gets a fresh store file there,
named after the test and kept afterwards: ``chimeway-lite --db DB_DIR/<file> runs``.
"""

import sys
import tempfile
import uuid
from pathlib import Path

try:
    import pytest
except ImportError:  # this example is a pytest test file
    sys.exit("04_host_unit_test.py needs pytest: pip install pytest (or 'chimeway-lite[test]')")

from chimeway_lite import OnOutcome, Outcome, Signal, Step, Store, WaitUntil, Workflow

ESCALATION = Workflow(
    "welcome_escalation",
    1,
    [
        Step(
            "inapp",
            1,
            "in_app",
            progress=[
                OnOutcome(Outcome.BOUNCED, "email"),
                WaitUntil(7200, "email", ["notification_read"]),
            ],
        ),
        Step("email", 2, "email"),
    ],
)


class WelcomeService:
    """The host's code under test."""

    def __init__(self, store: Store, tenant_id: str = "acme") -> None:
        self.store = store
        self.tenant_id = tenant_id

    def user_signed_up(self, user_id: str, signup_id: str) -> str:
        """Start the welcome journey (once per signup) and return its run id."""
        started = self.store.trigger(
            tenant_id=self.tenant_id,
            notification_key="welcome",
            recipient=user_id,
            workflow=ESCALATION,
            idempotency_key=f"welcome:{signup_id}",
        )
        return started.run.id

    def user_opened_notification(self, user_id: str) -> None:
        """Tell the engine the user read it: their waiting journeys stop escalating."""
        self.store.track_signal(Signal(self.tenant_id, "notification_read", actor_id=user_id))


def new_signup() -> str:
    return uuid.uuid4().hex


def test_read_within_two_hours_sends_no_email(chimeway_store, chimeway_clock, chimeway_outbox):
    app = WelcomeService(chimeway_store)
    run_id = app.user_signed_up("ada", new_signup())
    assert [d.channel for d in chimeway_outbox.deliver()] == ["in_app"]

    chimeway_clock.advance(minutes=45)
    app.user_opened_notification("ada")
    chimeway_clock.advance(hours=2)
    chimeway_store.progress_due_runs()

    assert chimeway_outbox.deliver(channel="email") == []  # no email
    explanation = chimeway_store.explain("acme", run_id)
    assert (explanation.state, explanation.terminal_reason) == (
        "completed",
        "cancelled_by_signal",
    )


def test_unread_after_two_hours_sends_the_email(chimeway_store, chimeway_clock, chimeway_outbox):
    app = WelcomeService(chimeway_store)
    run_id = app.user_signed_up("bob", new_signup())
    chimeway_outbox.deliver()

    chimeway_clock.advance(hours=1, minutes=59)
    chimeway_store.progress_due_runs()
    assert chimeway_outbox.deliver(channel="email") == []  # not yet

    chimeway_clock.advance(minutes=1)
    chimeway_store.progress_due_runs()
    assert [d.workflow_run_id for d in chimeway_outbox.deliver(channel="email")] == [run_id]


def test_bounce_sends_the_email_at_once(chimeway_store, chimeway_outbox):
    app = WelcomeService(chimeway_store)
    app.user_signed_up("cy", new_signup())
    chimeway_outbox.deliver("cancelled", suppression_reason="bounced")
    assert [d.channel for d in chimeway_outbox.deliver()] == ["email"]


if __name__ == "__main__":
    # Run this file's tests with pytest: a store file per test in DB_DIR if given, else in a
    # temporary directory.
    sys.dont_write_bytecode = True  # leave no __pycache__ beside the example
    # chimeway_lite was imported above, before pytest could rewrite its asserts: harmless.
    options = [
        __file__,
        "-v",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    ]
    if len(sys.argv) > 1:
        sys.exit(pytest.main([*options, "--chimeway-db", sys.argv[1]]))
    with tempfile.TemporaryDirectory() as folder:
        code = pytest.main([*options, "--chimeway-db", str(Path(folder) / "stores")])
    sys.exit(code)
