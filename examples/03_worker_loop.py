"""A delivery worker: claim deliveries, "send" them, record outcomes, sleep until next due.

The loop a host runs beside its application. Here the clock is a FakeClock, so "sleeping
until next_due_at()" is a jump of the clock and the script finishes at once; with the system
clock the same loop sleeps for real (``chimeway-lite tick --watch`` is this loop's sweep
half).

    python examples/03_worker_loop.py [DB_PATH]     # default: a temporary file
"""

import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from chimeway_lite import (
    FakeClock,
    OnOutcome,
    Outcome,
    Signal,
    Step,
    Store,
    WaitUntil,
    Workflow,
)

escalation = Workflow(
    "escalation_worker",
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


def send(channel: str, recipient: str) -> tuple[str, str | None]:
    """Pretend to send; cy's in-app inbox is gone (a bounce), everything else arrives."""
    if channel == "in_app" and recipient == "cy":
        return "cancelled", "bounced"
    return "succeeded", None


def main(path: str) -> None:
    clock = FakeClock(datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    batch = uuid.uuid4().hex[:8]
    with Store(path, clock=clock) as store:
        recipients = {}
        for user in ("ada", "bob", "cy"):
            started = store.trigger(
                tenant_id="acme",
                notification_key="welcome",
                recipient=user,
                workflow=escalation,
                idempotency_key=f"welcome-{user}-{batch}",
            )
            recipients[started.notification.id] = user
        print("09:30  triggered welcome journeys for ada, bob and cy")
        # What the users do meanwhile: ada reads her in-app message at 09:50.
        reads = [(datetime(2026, 1, 5, 9, 50, tzinfo=UTC), "ada")]

        sent = 0
        while True:
            now = clock.now().strftime("%H:%M")
            # 1. Claim what is pending (atomically: two workers never get the same one),
            #    "send" it, record the outcome: that progresses the delivery's run.
            claimed = store.claim_deliveries(limit=10)
            for delivery in claimed:
                user = recipients.get(delivery.notification_id, "someone else")
                status, reason = send(delivery.channel, user)
                progress = store.record_outcome(delivery.id, status, reason)
                sent += 1
                outcome = status + (f" ({reason})" if reason else "")
                after = progress.kind if progress is not None else "no run"
                print(f"{now}  sent {delivery.channel} to {user}: {outcome} -> run {after}")

            # 2. Progress what is due: elapsed waits, and runs a signal resumed.
            swept = store.progress_due_runs()
            for progress in swept:
                print(f"{now}  due sweep: run {progress.kind} ({progress.reason})")
            if claimed or swept:
                continue  # that may have planned new deliveries: look again at once

            # 3. Sleep until the next due time (or the next thing a user does).
            next_due = store.next_due_at()
            candidates = [t for t in (next_due, reads[0][0] if reads else None) if t]
            if not candidates:
                break  # a real worker would sleep a while and poll again
            wake = min(candidates)
            print(
                f"{now}  sleeping until {wake:%H:%M}"
                + (" (next_due_at)" if wake == next_due else "")
            )
            clock.set(max(wake, clock.now()))
            while reads and reads[0][0] <= clock.now():
                _, user = reads.pop(0)
                resumed = store.route_signal(Signal("acme", "notification_read", actor_id=user))
                print(f"{clock.now():%H:%M}  {user} read it: {len(resumed)} run resumed")
        print(f"done: {sent} deliveries sent, nothing pending, nothing waiting")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(str(Path(folder) / "chimeway.db"))
