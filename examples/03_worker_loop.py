"""A delivery worker: chimeway_lite's Worker claims the deliveries of the channels it has a
sender for, hands each to its sender, records what the sender returns (None: succeeded; a
status; or a status and a reason; an exception: failed), sweeps the due runs, and sleeps
until the next due run, retry or lease expiry.

Here the clock is a FakeClock and the worker's sleep is a jump of that clock (``wait=``), so
the script finishes at once. In production leave ``wait`` out: ``worker.run()`` sleeps for
real and returns on ``worker.stop()``, SIGINT or SIGTERM; ``chimeway-lite work --senders
module:attribute`` runs the same loop from the command line.

    python examples/03_worker_loop.py [DB_PATH]     # default: a temporary file
"""

import logging
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chimeway_lite import (
    Delivery,
    FakeClock,
    Handled,
    OnOutcome,
    Outcome,
    Retry,
    Signal,
    Step,
    Store,
    WaitUntil,
    Worker,
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
        Step("email", 2, "email", retry=Retry(3, 300)),  # a failed email: again in 5 min
    ],
)


def main(path: str) -> None:
    # The worker logs a sender's failure (without its text) to 'chimeway_lite.worker'.
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    clock = FakeClock(datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    batch = uuid.uuid4().hex[:8]

    def at() -> str:
        return clock.now().strftime("%H:%M")

    def show_in_app(delivery: Delivery) -> tuple[str, str] | None:
        """cy's in-app inbox is gone: the message bounces; everyone else sees it."""
        if delivery.recipient == "cy":
            print(f"{at()}  in_app to cy: bounced")
            return "cancelled", "bounced"
        print(f"{at()}  in_app to {delivery.recipient}: shown")
        return None

    def send_email(delivery: Delivery) -> None:
        """The mail server is down for bob's first try: recorded failed, retried 5 min later."""
        if delivery.recipient == "bob" and delivery.attempt == 1:
            print(f"{at()}  email to bob (attempt 1): the mail server is down")
            raise ConnectionError("mail server unreachable")
        print(f"{at()}  email to {delivery.recipient} (attempt {delivery.attempt}): sent")

    with Store(path, clock=clock) as store:
        runs = {}
        for user in ("ada", "bob", "cy"):
            started = store.trigger(
                tenant_id="acme",
                notification_key="welcome",
                recipient=user,
                workflow=escalation,
                idempotency_key=f"welcome-{user}-{batch}",
            )
            runs[user] = started.run.id
        print("09:30  triggered welcome journeys for ada, bob and cy")
        # What the users do meanwhile: ada reads her in-app message at 09:50.
        reads = [(datetime(2026, 1, 5, 9, 50, tzinfo=UTC), "ada")]
        worker = Worker(store, {"in_app": show_in_app, "email": send_email}, max_sleep=86400)

        def wait(seconds: float) -> None:
            """The worker's sleep, on the fake clock: jump to when it would wake."""
            if seconds == 0:
                return  # a pass planned more work: the worker goes again at once
            wake = clock.now() + timedelta(seconds=seconds)
            if reads and reads[0][0] <= wake:
                # ada reads it while the worker sleeps; the app routes the signal, and the
                # worker's next pass (here: at once) settles her run.
                when, user = reads.pop(0)
                clock.set(when)
                resumed = store.route_signal(Signal("acme", "notification_read", actor_id=user))
                print(f"{at()}  {user} read it: {len(resumed)} run resumed")
                return
            if store.next_due_at() is None and store.next_claimable_at() is None:
                worker.stop()  # nothing left: a real worker sleeps on (max_sleep), we stop
                return
            why = "the next due run" if wake == store.next_due_at() else "a retry"
            print(f"{at()}  sleeping until {wake:%H:%M} ({why})")
            clock.set(wake)

        def on_pass(handled: Handled, pause: float | None) -> None:
            """After every pass: what it did (deliveries sent, due runs swept)."""
            if handled.runs:
                runs = f"{handled.runs} due run" + ("s" if handled.runs > 1 else "")
                print(f"{at()}  the pass swept {runs}")

        total = worker.run(wait=wait, on_pass=on_pass)

        for user, run_id in runs.items():
            explained = store.explain("acme", run_id)
            print(f"{user}: {explained.state} ({explained.terminal_reason})")
        print(
            f"done: {total.deliveries} deliveries sent, {total.runs} runs swept; "
            "nothing pending, nothing waiting"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(str(Path(folder) / "chimeway.db"))
