"""An asyncio host: request handlers and a worker coroutine share one AsyncStore.

Every call is ``await``-ed and runs on the store's own worker thread, so the event loop
keeps serving while a unit of work waits for the write lock (another process, a
``chimeway-lite tick``, a second worker). The clock is a FakeClock, so "two hours later" is
a jump and the script ends at once; an ``on_event`` hook counts what the store reports.

    python examples/06_asyncio.py [DB_PATH]     # default: a temporary file
"""

import asyncio
import sys
import tempfile
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from chimeway_lite import (
    AsyncStore,
    FakeClock,
    OnOutcome,
    Outcome,
    Signal,
    Step,
    StoreEvent,
    WaitUntil,
    Workflow,
)

WELCOME = Workflow(
    "welcome_async",
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


async def signup(store: AsyncStore, user: str, batch: str) -> str:
    """A request handler: start the user's welcome journey; return its run id."""
    started = await store.trigger(
        tenant_id="acme",
        notification_key="welcome",
        recipient=user,
        workflow=WELCOME,
        idempotency_key=f"welcome-{user}-{batch}",
        data={"first_name": user.title()},
    )
    return started.run.id


async def send_pending(store: AsyncStore, clock: FakeClock) -> int:
    """The worker coroutine's one pass: claim, "send" (cy's inbox bounces), record."""
    sent = 0
    for delivery in await store.claim_deliveries(limit=10):
        await asyncio.sleep(0)  # a real provider call would be awaited here
        if delivery.channel == "in_app" and delivery.recipient == "cy":
            status, reason = "cancelled", "bounced"
        else:
            status, reason = "succeeded", None
        progress = await store.record_outcome(delivery.id, status, reason)
        outcome = status + (f" ({reason})" if reason else "")
        after = progress.kind if progress is not None else "no run"
        print(
            f"{clock.now():%H:%M}  sent {delivery.channel} to {delivery.recipient}: "
            f"{outcome} -> run {after}"
        )
        sent += 1
    return sent


async def main(path: str) -> None:
    clock = FakeClock(datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    heard: Counter[str] = Counter()

    def on_event(event: StoreEvent) -> None:
        heard[event.kind.value] += 1  # called after each unit of work commits

    batch = uuid.uuid4().hex[:8]
    async with AsyncStore(path, clock=clock, on_event=on_event) as store:
        users = ("ada", "bob", "cy")
        started = await asyncio.gather(*(signup(store, user, batch) for user in users))
        runs = dict(zip(users, started, strict=True))
        print(f"09:30  {len(runs)} signups handled concurrently: {len(runs)} journeys started")

        await send_pending(store, clock)
        await send_pending(store, clock)  # cy's bounce planned an email at once

        clock.advance(minutes=20)
        resumed = await store.route_signal(Signal("acme", "notification_read", actor_id="ada"))
        print(f"{clock.now():%H:%M}  ada read it: {len(resumed)} run resumed")

        # bob unsubscribes: cancel his journey and note why, all or nothing.
        async with store.transaction() as tx:
            (stopped,) = await tx.cancel("acme", recipient="bob")
            await tx.append_transition(stopped.id, "stopped", "host_unsubscribed")
        print(f"{clock.now():%H:%M}  bob unsubscribed: his run is {stopped.state.value}")

        clock.advance(hours=2)
        swept = await store.progress_due_runs()
        print(f"{clock.now():%H:%M}  due sweep: {len(swept)} run moved")
        await send_pending(store, clock)

        for user, run_id in runs.items():
            explanation = await store.explain("acme", run_id)
            print(f"{user}: {explanation.state} ({explanation.terminal_reason})")
        print(
            f"the hook heard {heard['transition']} transitions, "
            f"{heard['delivery_claimed']} claims and {heard['delivery_outcome']} outcomes"
        )
        print(f"done: verify() finds {len(await store.verify())} problems")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(main(str(Path(folder) / "chimeway.db")))
