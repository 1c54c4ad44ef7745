"""Digests, quiet hours and a throttle: "3 new comments", not three emails, never at night.

Comment notifications go by email, collected for 10 minutes per thread into one digest, and
only between 08:00 and 22:00 in the recipient's own time zone. Password resets go out at
most once per 10 minutes per recipient. Everything runs on a fake clock, so it finishes at
once; each explanation is the store's own sentence.

    python examples/05_digest_and_quiet_hours.py [DB_PATH]     # default: a temporary file
"""

import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from chimeway_lite import Digest, FakeClock, SendWindow, Step, Store, Throttle, Workflow

comments = Workflow(
    "comment_digest",
    1,
    [
        Step(
            "email",
            1,
            "email",
            window=SendWindow("08:00", "22:00"),  # quiet hours: 22:00-08:00, the recipient's
            digest=Digest(600, key="thread_id", max_items=20),  # one email per thread
        )
    ],
)
password_reset = Workflow(
    "password_reset", 1, [Step("email", 1, "email", throttle=Throttle(1, 600))]
)


def main(path: str) -> None:
    clock = FakeClock(datetime(2026, 1, 5, 21, 50, tzinfo=UTC))
    batch = uuid.uuid4().hex[:8]  # fresh idempotency keys, so the script can run again
    count = 0

    def at() -> str:
        return clock.now().strftime("%H:%M")

    def notify(store: Store, user: str, zone: str, thread: str) -> str:
        nonlocal count
        count += 1
        started = store.trigger(
            tenant_id="acme",
            notification_key="new_comment",
            recipient=user,
            workflow=comments,
            idempotency_key=f"comment-{count}-{batch}",
            data={"thread_id": thread, "comment": count},
            timezone=zone,
        )
        return started.run.id

    def send(store: Store) -> None:
        for delivery in store.claim_deliveries():
            what = "a password reset"
            if delivery.digest_size > 1:  # one email for the runs of a digest: its members
                numbers = [m.data["comment"] for m in store.digest_members(delivery.id)]
                what = f"a digest of {delivery.digest_size} comments {numbers}"
            print(f"  {at()}  sent 1 {delivery.channel} to {delivery.recipient}: {what}")
            store.record_outcome(delivery.id, "succeeded")

    with Store(path, clock=clock) as store:
        print(f"{at()} UTC: it is 22:50 in Paris (quiet hours) and 16:50 in New York")
        ada = [notify(store, "ada", "Europe/Paris", "t-1") for _ in range(3)]
        print(f"{at()}  3 comments for ada: {store.explain('acme', ada[0]).why}")
        bob = [notify(store, "bob", "America/New_York", "t-2")]
        clock.advance(minutes=4)
        bob += [notify(store, "bob", "America/New_York", "t-2") for _ in range(2)]
        print(f"{at()}  3 comments for bob: {store.explain('acme', bob[0]).why}")

        clock.advance(minutes=6)  # bob's batch closes 10 minutes after its first comment
        swept = store.progress_due_runs()
        merged = sum(1 for p in swept if p.run.terminal_reason == "merged_into_digest")
        print(f"{at()}  due sweep: bob's digest closed; {merged} runs merged into it")
        send(store)

        clock.set(datetime(2026, 1, 6, 7, 0, tzinfo=UTC))  # 08:00 in Paris
        released = store.progress_due_runs()
        print(f"{at()}  due sweep: ada's send window opened for {len(released)} runs")
        print(f"        {store.explain('acme', ada[0]).why}")
        clock.advance(minutes=10)
        store.progress_due_runs()
        send(store)
        print(f"        {store.explain('acme', ada[2]).why}")

        for attempt in (1, 2):
            reset = store.trigger(
                tenant_id="acme",
                notification_key="password_reset",
                recipient="cy",
                workflow=password_reset,
                idempotency_key=f"reset-{attempt}-{batch}",
            )
            state = reset.run.terminal_reason or reset.run.state
            print(f"{at()}  password reset {attempt} for cy: {state}")
            clock.advance(minutes=2)
        print(f"        {store.explain('acme', reset.run.id).why}")
        send(store)

        waiting = store.connection.execute(
            "SELECT count(*) FROM workflow_runs WHERE state = 'waiting'"
        ).fetchone()[0]
        print(f"done: nothing waiting ({waiting}); store healthy: {store.verify() == []}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(str(Path(folder) / "chimeway.db"))
