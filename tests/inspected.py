"""A store for the web inspector's tests: a few tenants' runs in every shape a person looks
at, secrets that must never show, and names that try to break the page.

``build(path)`` writes the store on a fake clock and returns :class:`Inspected`: the run and
delivery ids by name and the clock at the end (11:40 on 2026-01-05). What is in it:

acme    ada   escalation: in-app succeeded, 2 h later the email, succeeded: completed
        bob   cancelled (stopped, ``cancelled``) before anything was sent
        cy    the in-app message failed for good: stopped (``workflow_stopped``)
        dee   in-app succeeded at 10:20: waiting, due 12:20 (40 min after the end)
globex  ada   waiting, due 13:35 (not within the next hour)
        frank email failed once: retry at 11:36 (attempt 1 of 3)
        gus   in-app claimed at 11:35 for 10 min: dispatched, lease until 11:45
HOSTILE ...   a tenant, recipient, workflow and step named to inject markup; in-app pending
eu/acme%2F?#  hal: a tenant id with the characters a URL treats specially; in-app pending

Every trigger carries ``data`` holding :data:`DATA_SECRET`, every step's config holds
:data:`CONFIG_SECRET`, and a signal was tracked with :data:`PAYLOAD_SECRET` in its payload:
none of them may appear on any page.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import attrs
from factories import START

from chimeway_lite import (
    FakeClock,
    OnOutcome,
    Outcome,
    Retry,
    Signal,
    Step,
    Stop,
    Store,
    WaitUntil,
    Workflow,
)

DATA_SECRET = "d4ta-s3cret-of-the-trigger"
CONFIG_SECRET = "c0nfig-s3cret-of-the-step"
PAYLOAD_SECRET = "pay1oad-s3cret-of-the-signal"
SECRETS = (DATA_SECRET, CONFIG_SECRET, PAYLOAD_SECRET)

HOSTILE_TENANT = '<script>alert("tenant")</script>'
HOSTILE_RECIPIENT = '"><img src=x onerror=alert(1)>'
HOSTILE_WORKFLOW = "</td><script>alert('workflow')</script>"
HOSTILE_STEP = "<b onmouseover=alert(2)>step</b>"
HOSTILE_NOTIFICATION = "&amp;<i>welcome</i>"
HOSTILE = (HOSTILE_TENANT, HOSTILE_RECIPIENT, HOSTILE_WORKFLOW, HOSTILE_STEP, HOSTILE_NOTIFICATION)
SLASHED_TENANT = "eu/acme%2F?#"

_CONFIG = {"template": CONFIG_SECRET}


def escalation() -> Workflow:
    """In-app now; email at once if it bounces; email after 2 h unless read."""
    return Workflow(
        "escalation",
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
                config=_CONFIG,
            ),
            Step("email", 2, "email", config=_CONFIG),
        ],
    )


def reminder() -> Workflow:
    """In-app only; stops when the message fails for good."""
    return Workflow(
        "reminder",
        1,
        [Step("inapp", 1, "in_app", progress=[Stop(Outcome.PERMANENT_FAILURE)], config=_CONFIG)],
    )


def receipt() -> Workflow:
    """One email, retried up to 3 times a minute apart."""
    return Workflow("receipt", 1, [Step("email", 1, "email", retry=Retry(3, 60), config=_CONFIG)])


@attrs.frozen
class Inspected:
    """What :func:`build` wrote: run ids, delivery ids (by recipient) and the final time."""

    runs: dict[str, str]
    deliveries: dict[str, str]
    now: datetime

    def tenant_of(self, name: str) -> str:
        """The tenant of a run of :attr:`runs` (its key is ``tenant/recipient``)."""
        return name.rsplit("/", 1)[0]


def build(path: str | Path) -> Inspected:
    """Write the store described in the module docstring at ``path``."""
    clock = FakeClock(START)
    runs: dict[str, str] = {}
    deliveries: dict[str, str] = {}
    keys = iter(range(1, 1000))

    with Store(path, clock=clock) as store:

        def start(tenant: str, recipient: str, workflow: Workflow, notification: str = "welcome"):
            result = store.trigger(
                tenant_id=tenant,
                notification_key=notification,
                recipient=recipient,
                workflow=workflow,
                idempotency_key=f"k{next(keys)}",
                data={"secret": DATA_SECRET, "name": recipient},
            )
            runs[f"{tenant}/{recipient}"] = result.run.id
            deliveries[f"{tenant}/{recipient}"] = result.deliveries[0].id
            return result

        ada = start("acme", "ada", escalation())
        store.claim_deliveries(channel="in_app")
        store.record_outcome(ada.deliveries[0].id, "succeeded")
        start("acme", "bob", escalation())
        store.cancel("acme", recipient="bob")
        cy = start("acme", "cy", reminder())
        store.record_outcome(cy.deliveries[0].id, "cancelled", "permanent_failure")

        clock.advance(minutes=50)  # 10:20
        dee = start("acme", "dee", escalation())
        store.record_outcome(dee.deliveries[0].id, "succeeded")
        store.track_signal(Signal("acme", "profile_viewed", payload={"secret": PAYLOAD_SECRET}))

        clock.advance(hours=1, minutes=11)  # 11:31: ada's wait is over
        (moved,) = store.progress_due_runs()
        deliveries["acme/ada/email"] = moved.deliveries[0].id
        clock.advance(minutes=1)
        store.claim_deliveries(channel="email")
        store.record_outcome(moved.deliveries[0].id, "succeeded")

        clock.advance(minutes=3)  # 11:35
        other = start("globex", "ada", escalation())
        store.record_outcome(other.deliveries[0].id, "succeeded")
        frank = start("globex", "frank", receipt())
        store.claim_deliveries(channel="email")
        store.record_outcome(frank.deliveries[0].id, "failed")
        start("globex", "gus", escalation())
        store.claim_deliveries(channel="in_app", lease_seconds=600)

        hostile = Workflow(
            HOSTILE_WORKFLOW,
            1,
            [Step(HOSTILE_STEP, 1, "in_app", progress=[WaitUntil(600, HOSTILE_STEP)])],
        )
        start(HOSTILE_TENANT, HOSTILE_RECIPIENT, hostile, notification=HOSTILE_NOTIFICATION)
        start(SLASHED_TENANT, "hal", escalation())

        clock.advance(minutes=5)  # 11:40
        return Inspected(runs, deliveries, clock.now())
