"""Signals stay inside their tenant: two tenants, the same journey, the same event name.

Each tenant's users get the escalation journey (in-app now, email after 2 h unless
``notification_read``). A signal resumes only waiting runs of its own tenant — and, when it
names an actor, only that recipient's runs. Another tenant's run cannot even be looked up.

    python examples/02_multi_tenant_signals.py [DB_PATH]     # default: a temporary file
"""

import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from chimeway_lite import FakeClock, RunNotFound, Signal, Step, Store, WaitUntil, Workflow

escalation = Workflow(
    "escalation_signals",
    1,
    [
        Step("inapp", 1, "in_app", progress=[WaitUntil(7200, "email", ["notification_read"])]),
        Step("email", 2, "email"),
    ],
)


def main(path: str) -> None:
    clock = FakeClock(datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    batch = uuid.uuid4().hex[:8]  # fresh idempotency keys, so the script can run again
    runs: dict[tuple[str, str], str] = {}
    with Store(path, clock=clock) as store:
        for tenant in ("acme", "globex"):
            for user in ("ada", "bob"):
                started = store.trigger(
                    tenant_id=tenant,
                    notification_key="welcome",
                    recipient=user,
                    workflow=escalation,
                    idempotency_key=f"welcome-{user}-{batch}",  # unique within a tenant
                )
                runs[tenant, user] = started.run.id
                (inapp,) = started.deliveries
                store.record_outcome(inapp.id, "succeeded", tenant_id=tenant)
        print("4 runs waiting for 'notification_read': acme and globex, ada and bob each")

        clock.advance(minutes=30)
        # A dry run first: which runs would acme's signal from ada resume? Nothing is written.
        read = Signal("acme", "notification_read", actor_id="ada")
        preview = store.preview_signal(read)
        print(
            f"preview of acme/ada's signal: {len(preview)} run, ada's of acme: "
            f"{preview == [runs['acme', 'ada']]}"
        )
        _, resumed = store.track_signal(read)  # recorded in the signals table, then routed
        print(
            f"acme/ada signal resumed {len(resumed)} run; globex's ada is untouched: "
            f"{runs['globex', 'ada'] not in resumed}"
        )

        # Without an actor, the signal is for every waiting run of the tenant.
        resumed = store.route_signal(Signal("globex", "notification_read"))
        print(f"globex signal without actor resumed {len(resumed)} runs (ada and bob of globex)")

        # The due sweep settles the resumed runs: they complete, cancelled by the signal.
        for progress in store.progress_due_runs():
            print(f"  settled {progress.run.tenant_id}: {progress.run.terminal_reason}")

        # Two hours after the in-app messages, acme's bob has not read his: he gets the email.
        clock.advance(hours=2)
        who = {run_id: f"{tenant}/{user}" for (tenant, user), run_id in runs.items()}
        for progress in store.progress_due_runs():
            (email,) = progress.deliveries
            print(f"2 h later: {who[progress.run.id]} moves to {email.channel!r}")
            store.record_outcome(email.id, "succeeded", tenant_id=progress.run.tenant_id)

        for (tenant, user), run_id in runs.items():
            explanation = store.explain(tenant, run_id)
            print(f"{tenant}/{user}: {explanation.state} ({explanation.terminal_reason})")

        # Tenant isolation: globex cannot see acme's run; the error is the same as for a
        # run that does not exist, so it does not even reveal that the run exists.
        try:
            store.explain("globex", runs["acme", "ada"])
        except RunNotFound as error:
            print(f"globex asking for acme's run: RunNotFound ({error})")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(str(Path(folder) / "chimeway.db"))
