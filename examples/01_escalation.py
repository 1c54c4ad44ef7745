"""The escalation journey: show an in-app notification; if it is not read within 2 hours,
send an email; if the in-app message bounces, send the email at once.

    python examples/01_escalation.py [DB_PATH]     # default: a temporary file
"""

import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from chimeway_lite import FakeClock, OnOutcome, Outcome, Step, Store, WaitUntil, Workflow

escalation = Workflow(
    "escalation",
    1,
    [
        Step(
            "inapp",
            1,
            "in_app",
            progress=[
                OnOutcome(Outcome.BOUNCED, "email"),  # bounced: email at once
                WaitUntil(7200, "email", ["notification_read"]),  # else in 2 h, unless read
            ],
        ),
        Step("email", 2, "email"),
    ],
)


def main(path: str) -> None:
    clock = FakeClock(datetime(2026, 1, 5, 9, 30, tzinfo=UTC))  # time moves when told to
    with Store(path, clock=clock) as store:
        started = store.trigger(
            tenant_id="acme",
            notification_key="welcome",
            recipient="ada",
            workflow=escalation,
            idempotency_key=f"welcome-ada-{uuid.uuid4()}",  # the same key again: no new run
        )
        run_id = started.run.id
        print(f"triggered run {run_id}: {started.run.state} on step 'inapp'")

        # The trigger planned the in-app delivery; a worker sends it and records that it
        # arrived (examples/03_worker_loop.py shows the worker's loop).
        (inapp,) = started.deliveries
        store.record_outcome(inapp.id, "succeeded", tenant_id="acme")
        explanation = store.explain("acme", run_id)
        print(f"in-app delivered -> {explanation.state}, due {explanation.due_at}")
        print(f"  next: {explanation.next_move}")

        # Two hours pass and nobody reads it: the due sweep moves the run to the email step.
        clock.advance(hours=2)
        (progress,) = store.progress_due_runs()
        print(f"2 h later, due sweep: {progress.kind} ({progress.reason})")
        (email,) = progress.deliveries  # the email step's delivery
        print(f"  planned a delivery on channel {email.channel!r}")
        store.record_outcome(email.id, "succeeded", tenant_id="acme")

        explanation = store.explain("acme", run_id)
        print(f"email delivered -> {explanation.state} ({explanation.terminal_reason})")
        print(f"  why: {explanation.why}")
        print("trace:")
        for row in store.list_traces("acme", run_id):
            print(f"  #{row.seq} {row.from_state or '-'} -> {row.to_state}: {row.reason}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(str(Path(folder) / "chimeway.db"))
