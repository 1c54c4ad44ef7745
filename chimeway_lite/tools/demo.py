"""The demo journey behind ``chimeway-lite demo``: the escalation journey, told step by step.

*Show an in-app notification; if it is not read within 2 hours, send an email; if the in-app
message bounces, send the email at once.* Two recipients go through it on a fake clock: ada
reads the in-app message after 45 minutes (no email), bob never does (email after 2 h).
Nothing here sleeps; the clock jumps.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import attrs

from ..core.clock import FakeClock
from ..core.records import DeliveryStatus, Outcome, Progress, ProgressKind, Signal
from ..declarations import OnOutcome, Step, WaitUntil, Workflow
from ..store import Store

#: Where the demo's fake clock starts.
START = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
TENANT = "demo"
NOTIFICATION_KEY = "welcome"


def escalation_workflow() -> Workflow:
    """In-app now; email at once if it bounces; email after 2 h unless read."""
    return Workflow(
        "demo_escalation",
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


@attrs.frozen
class DemoRun:
    """One recipient's journey in the demo."""

    recipient: str
    run_id: str
    idempotency_key: str


@attrs.frozen
class DemoResult:
    """What the demo did: its runs and a narration, one (time, sentence) pair per event."""

    tenant_id: str
    runs: tuple[DemoRun, ...]
    narration: tuple[tuple[datetime, str], ...]


def run_demo(store: Store, clock: FakeClock, *, tag: str | None = None) -> DemoResult:
    """Run the escalation journey for ada and bob on ``store``, moving ``clock`` along.

    Each call uses fresh idempotency keys (``demo-<tag>-ada``, ``demo-<tag>-bob``; ``tag``
    defaults to a random one) and addresses its signal with the correlation key
    ``demo-<tag>``, so it can run again on the same file.
    """
    tag = uuid.uuid4().hex[:8] if tag is None else tag
    story: list[tuple[datetime, str]] = []

    def say(text: str) -> None:
        story.append((clock.now(), text))

    runs = []
    for recipient in ("ada", "bob"):
        key = f"demo-{tag}-{recipient}"
        result = store.trigger(
            tenant_id=TENANT,
            notification_key=NOTIFICATION_KEY,
            recipient=recipient,
            workflow=escalation_workflow(),
            idempotency_key=key,
            correlation_key=f"demo-{tag}",
        )
        runs.append(DemoRun(recipient, result.run.id, key))
    say("triggered 'welcome' for ada and bob: one in-app delivery each, pending")

    clock.advance(minutes=1)
    sent = store.claim_deliveries(channel="in_app")
    for delivery in sent:
        store.record_outcome(delivery.id, DeliveryStatus.SUCCEEDED, tenant_id=delivery.tenant_id)
    say(
        f"the worker sent {len(sent)} in-app messages (succeeded): "
        "each run waits 2 h for 'notification_read'"
    )

    clock.advance(minutes=44)
    # Addressed to this demo's notifications (its correlation key): a demo run again on the
    # same file, on the same fake clock, is not touched by this one's read.
    _, resumed = store.track_signal(
        Signal(TENANT, "notification_read", actor_id="ada", correlation_key=f"demo-{tag}")
    )
    say(f"ada read hers: signal 'notification_read' (actor ada) resumed {len(resumed)} run")

    clock.advance(minutes=1)
    say(f"the due sweep ran: {_moves(store, runs, store.progress_due_runs())}")

    due = store.next_due_at()
    if due is not None:
        clock.set(due)
    say(f"the due sweep ran at bob's due time: {_moves(store, runs, store.progress_due_runs())}")

    clock.advance(minutes=1)
    emails = store.claim_deliveries(channel="email")
    for delivery in emails:
        store.record_outcome(delivery.id, DeliveryStatus.SUCCEEDED, tenant_id=delivery.tenant_id)
    say(f"the worker sent {len(emails)} email (succeeded): bob's run completed")
    return DemoResult(TENANT, tuple(runs), tuple(story))


def _moves(store: Store, runs: list[DemoRun], moved: list[Progress]) -> str:
    if not moved:
        return "nothing was due"
    texts = []
    for progress in moved:
        who = next((r.recipient for r in runs if r.run_id == progress.run.id), progress.run.id)
        text = f"{who}'s run {progress.kind.value}"
        if progress.kind is ProgressKind.ADVANCED:
            text += f" to step {store.get_current_step(progress.run).step_key!r}"
        text += f" ({progress.reason}"
        if progress.run.terminal_reason:
            text += f", {progress.run.terminal_reason}"
        texts.append(text + ")")
    return "; ".join(texts)
