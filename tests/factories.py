"""The shared scaffolding of the tests: the start instant, the escalation workflow of the
README, and one way to trigger a journey.

Import with ``from factories import ...`` (pytest puts ``tests/`` on ``sys.path``);
``conftest`` re-exports :data:`START` and :func:`escalation_workflow`. The real processes of
``proc_worker`` import this module too, so it imports nothing but the package.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from chimeway_lite import (
    OnOutcome,
    Outcome,
    RunState,
    Step,
    Store,
    TriggerResult,
    WaitUntil,
    Workflow,
)

#: The instant of every fake clock: 2026-01-05 09:30 UTC.
START = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

_keys = itertools.count(1)


def escalation_workflow(version: int = 1) -> Workflow:
    """In-app now; email at once if it bounces; email after 2 h unless read."""
    return Workflow(
        "escalation",
        version,
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


def fresh_key() -> str:
    """An idempotency key no other call of this process has used."""
    return f"fresh-{next(_keys)}"


def trigger(
    store: Store,
    *,
    tenant: str = "acme",
    recipient: str = "ada",
    workflow: Any = None,
    key: str | None = None,
    notification_key: str = "welcome",
    **overrides: Any,
) -> TriggerResult:
    """``store.trigger`` of ``workflow`` (the escalation workflow when None) for ``recipient``
    of ``tenant``, under ``key`` (a fresh key when None). ``overrides`` are passed as they
    are and win over everything above, so a test can hand any argument of
    :meth:`~chimeway_lite.Store.trigger`, even a bad one, by its real name. ``store`` may
    also be the ``tx`` of ``store.transaction()``, which triggers the same way."""
    arguments: dict[str, Any] = {
        "tenant_id": tenant,
        "notification_key": notification_key,
        "recipient": recipient,
        "workflow": escalation_workflow() if workflow is None else workflow,
        "idempotency_key": fresh_key() if key is None else key,
    }
    arguments.update(overrides)
    return store.trigger(**arguments)


def waiting(store: Store, **arguments: Any) -> TriggerResult:
    """:func:`trigger`, then record the first delivery as succeeded: with the escalation
    workflow the run waits for its 2 h (or for a signal)."""
    result = trigger(store, **arguments)
    store.record_outcome(result.deliveries[0].id, "succeeded")
    assert store.get_run(result.run.id).state is RunState.WAITING
    return result
