"""The facts behind throttles, digests and send windows (CONTRACT §14), gathered for the one
step a decision activates, and the recipient's time zone.

When a decision would activate a step that has a gate (:func:`~chimeway_lite.machine.decide.
entering`), :func:`admit` reads what the machine needs for that step only — the activations
of the throttle's group in its window, the digest group's open batch, the recipient's zone —
and asks :func:`~chimeway_lite.machine.decide.enter`. A group (the runs a throttle counts
together, or that share a digest batch) is named by :func:`group_key`: a digest of the
tenant, recipient, workflow key, step key and the value of the option's key field, so no
row that names a group holds the trigger's data.

Concurrency: the group is locked (:meth:`~chimeway_lite.backends.base.Unit.lock_group`)
before its facts are read, so two units never both pass a throttle of ``limit=1`` or open
two batches for one group (SQLite: the unit's write lock already; PostgreSQL: an advisory
lock on the key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ..core.arguments import require_id
from ..core.errors import InvalidArgument
from ..core.records import Notification, WorkflowRun, WorkflowStep
from ..core.text import canonical_json
from ..machine import decide
from ..machine.decision import Decision
from ..machine.kinds import Arrival, Closing, send_window
from ..machine.kinds import digest as digest_kind
from ..machine.kinds import throttle as throttle_kind

if TYPE_CHECKING:
    from .work import Work

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_UTC_NAMES = frozenset({"UTC"})


def zone_of(name: str | None) -> tzinfo:
    """The time zone called ``name`` (None and ``"UTC"``: UTC, which needs no tz data);
    InvalidArgument when this machine does not know it."""
    if name is None or name in _UTC_NAMES:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    if not available_timezones():
        raise InvalidArgument(
            "timezone",
            "this machine has no time zone data (install the tzdata package), so only None "
            "and 'UTC' are known",
        )
    shown = name if len(name) <= 40 else name[:40] + "…"
    raise InvalidArgument("timezone", f"is not a known IANA time zone: {shown!r}")


def require_timezone(value: object) -> str | None:
    """None, or the IANA name of a time zone this machine knows (``"Europe/Paris"``)."""
    if value is None:
        return None
    name = require_id(value, "timezone")
    zone_of(name)
    return name


def group_key(
    kind: str,
    notification: Notification,
    workflow_key: str,
    step_key: str,
    key_field: str | None,
) -> str:
    """The name of the group a gate counts ``notification``'s run in: a SHA-256 digest of
    the gate, tenant, recipient, workflow key (any version), step key and — when the
    option has a ``key`` — the value of that trigger-data field, or its absence (a run
    whose data lacks the field is grouped under "missing")."""
    parts: list[Any] = [kind, notification.tenant_id, notification.recipient]
    parts += [workflow_key, step_key]
    if key_field is not None:
        data: Mapping[str, Any] = notification.data
        parts += [key_field, data[key_field]] if key_field in data else [key_field]
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()


def group_of(
    work: Work, kind: str, run: WorkflowRun, step: WorkflowStep, key_field: str | None
) -> tuple[str, Notification]:
    """The group of ``run`` on ``step`` for the gate ``kind``, and the run's notification."""
    notification = work.notification(run.notification_id)
    workflow_key, _ = work.definitions.key_of(run.workflow_definition_id)
    return group_key(kind, notification, workflow_key, step.step_key, key_field), notification


def admit(work: Work, decision: Decision, now: datetime, *, lock: bool = True) -> Decision:
    """``decision`` once the gates of the step it activates let it through, or what they
    decide instead; the facts are read for that step only. ``lock`` (the default) holds
    the groups read until the unit ends; a dry run (explain) reads without it."""
    if decision.activation is None:  # it activates no step: nothing to ask
        return decision
    run = decision.run
    journey = work.definitions.journey(run.workflow_definition_id)
    step = decide.entering(decision, journey)
    if step is None:
        return decision
    options = journey.options[step.id]
    passed = decision.passed
    activations, batch = 0, None
    zone: tzinfo = UTC
    throttle = options.get(throttle_kind.KEY)
    if isinstance(throttle, throttle_kind.Throttle) and throttle_kind.NAME not in passed:
        group, _ = group_of(work, throttle_kind.NAME, run, step, throttle.key)
        if lock:
            work.unit.lock_group(group)
        try:
            since = now - timedelta(seconds=throttle.window_seconds)
        except OverflowError:
            since = _EARLIEST
        activations = work.unit.recent_activations(group, since, throttle.limit)
    if send_window.KEY in options and send_window.NAME not in passed:
        zone = zone_of(work.notification(run.notification_id).timezone)
    digest = options.get(digest_kind.KEY)
    if isinstance(digest, digest_kind.Digest) and digest_kind.NAME not in passed:
        group, _ = group_of(work, digest_kind.NAME, run, step, digest.key)
        if lock:
            work.unit.lock_group(group)
        batch = work.unit.open_batch(group, digest.max_items or 1)
    return decide.enter(decision, journey, Arrival(activations, batch, zone), now=now)


def closing_of(work: Work, run: WorkflowRun) -> Closing:
    """The digest batch ``run`` waits in, with its runs still waiting (oldest first, each
    with its current step), locked for the unit; an empty closing when it is in none."""
    batch_id = work.unit.batch_of_run(run.id)
    return Closing(None) if batch_id is None else closing_of_batch(work, batch_id)


def closing_of_batch(work: Work, batch_id: str) -> Closing:
    """A digest batch with its runs still waiting (oldest first, each with its current
    step), locked for the unit."""
    members = []
    for member in work.unit.batch_members(batch_id):
        journey = work.definitions.journey(member.workflow_definition_id)
        members.append((member, journey.step(member.current_step_id)))
    return Closing(batch_id, tuple(members))
