"""Hypothesis strategies for journeys and events, and a small in-memory model of the engine.

The model re-states CONTRACT §4/§5/§7 in the plainest terms it can (strings, dicts, lists), with
no code shared with :mod:`chimeway_lite.machine`, so that comparing the two checks the machine
against the text of the spec rather than against itself. Tests drive it in two ways:

* pure: :func:`expect_progress` predicts what one progression of one run does
  (``test_machine``);
* with a store: :class:`ModelStore` follows a :class:`~chimeway_lite.Store` call by call
  (``test_engine_stateful``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from backends import sql
from hypothesis import strategies as st

from chimeway_lite import (
    Delivery,
    DeliveryStatus,
    Digest,
    FakeClock,
    InvalidArgument,
    InvalidTransition,
    OnOutcome,
    OnSignal,
    Outcome,
    RunState,
    SendWindow,
    Step,
    Stop,
    Store,
    Throttle,
    WaitUntil,
    Workflow,
    WorkflowDefinition,
    WorkflowRun,
    WorkflowStep,
)
from chimeway_lite.core.records import SignalMark
from chimeway_lite.declarations import step_config

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

TENANTS = ("acme", "globex", "initech")
# The same recipient names and event names in every tenant, on purpose: isolation must come
# from the tenant filter, not from names that happen to differ.
RECIPIENTS = ("alice", "bob", "carol")
EVENTS = ("notification_read", "clicked", "dismissed")
CHANNELS = ("in_app", "email", "sms")
GHOST_STEP = "ghost"  # a to_step naming no step (only pure machine tests may use it)

CATALOGUE = (
    "source",
    "step_key",
    "rule_kind",
    "workflow_outcome",
    "anchor",
    "anchor_delivery_id",
    "anchor_delivery_status",
    "anchor_timestamp",
    "due_at",
    "to_step",
    "from_step",
    "reactivated_at",
    "delivery_status",
    "suppression_reason",
    "event_name",
    "signalled_at",
)

SUPPRESSION_REASONS = (None, "retries_exhausted", "permanent_failure", "bounced", "quota")

# -- strategies: journeys --------------------------------------------------------------------


@st.composite
def rules(draw: st.DrawFn, targets: Sequence[str]) -> WaitUntil | OnOutcome | Stop | OnSignal:
    """One progress rule whose to_step is drawn from ``targets``."""
    kind = draw(st.sampled_from(("wait_until", "on_outcome", "stop")))
    if kind == "wait_until":
        return WaitUntil(
            draw(st.integers(1, 10_000)),
            draw(st.sampled_from(targets)),
            draw(st.lists(st.sampled_from(EVENTS), max_size=2, unique=True)),
        )
    outcome = draw(st.sampled_from(list(Outcome))).value
    if kind == "on_outcome":
        return OnOutcome(outcome, draw(st.sampled_from(targets)))
    return Stop(outcome)


#: The recipients' time zones the model knows (None: UTC).
ZONES = (None, "Europe/Paris", "America/New_York")
# Window edges on the half hour: every opening is then on the half hour in UTC too (the zones
# above change by whole hours), which the model's own clock arithmetic relies on.
_CLOCKS = tuple(f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30))


@st.composite
def gate_options(draw: st.DrawFn) -> dict[str, Any]:
    """The step options of CONTRACT §14 for one step: each one in four steps has each."""
    options: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        options["throttle"] = Throttle(
            draw(st.integers(1, 2)),
            draw(st.sampled_from((600, 3600, 7200))),
            key=draw(st.sampled_from((None, "thread"))),
        )
    if draw(st.integers(0, 3)) == 0:
        start, end = draw(st.lists(st.sampled_from(_CLOCKS), min_size=2, max_size=2, unique=True))
        days = draw(st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True))
        options["window"] = SendWindow(start, end, days)
    if draw(st.integers(0, 3)) == 0:
        options["digest"] = Digest(
            draw(st.sampled_from((60, 600, 3600))),
            key=draw(st.sampled_from((None, "thread"))),
            max_items=draw(st.sampled_from((None, 2, 3))),
        )
    return options


@st.composite
def workflows(
    draw: st.DrawFn,
    *,
    key: str = "journey",
    version: int = 1,
    ghost_targets: bool = False,
    gates: bool = False,
) -> Workflow:
    """A valid workflow of 1-4 steps (cycles allowed); with ``ghost_targets`` some to_step
    may name no step, which only the pure machine may see (registration refuses it); with
    ``gates`` some steps have a throttle, a send window or a digest."""
    count = draw(st.integers(1, 4))
    keys = [f"s{i}" for i in range(1, count + 1)]
    targets = [*keys, GHOST_STEP] if ghost_targets else keys
    steps = []
    for i, k in enumerate(keys, start=1):
        progress = draw(st.lists(rules(targets), max_size=3))
        if any(isinstance(r, WaitUntil) for r in progress):
            # on_signal rules ride on a wait: at most one per event
            events = draw(st.lists(st.sampled_from(EVENTS), max_size=2, unique=True))
            progress += [OnSignal(e, draw(st.sampled_from(targets))) for e in events]
        options = draw(gate_options()) if gates else {}
        steps.append(Step(k, i, draw(st.sampled_from(CHANNELS)), progress=progress, **options))
    return Workflow(key, version, steps)


def definition_of(workflow: Workflow, definition_id: str = "def-1") -> WorkflowDefinition:
    """The stored form of a declaration, built without a store (and without validation)."""
    return WorkflowDefinition(
        id=definition_id,
        workflow_key=workflow.key,
        workflow_version=workflow.version,
        notification_key="notice",
        steps=tuple(
            WorkflowStep(
                id=f"{definition_id}:{s.key}",
                workflow_definition_id=definition_id,
                step_key=s.key,
                step_order=s.order,
                channel=s.channel,
                config=step_config(s),
                inserted_at=T0,
                updated_at=T0,
            )
            for s in workflow.steps
        ),
        inserted_at=T0,
        updated_at=T0,
    )


def step_id(definition: WorkflowDefinition, step_key: str) -> str:
    """The id of a step of a definition built by :func:`definition_of`."""
    return f"{definition.id}:{step_key}"


# -- strategies: one run as the machine sees it ----------------------------------------------


@attrs.frozen
class Case:
    """One input of :func:`chimeway_lite.machine.progress`, drawn at random."""

    workflow: Workflow
    definition: WorkflowDefinition
    run: WorkflowRun
    anchor: Delivery | None
    now: datetime
    early: SignalMark | None = None
    facts: Facts = attrs.field(factory=lambda: Facts())


def wait_context(
    anchor_id: str, status: str, at: datetime, delay: int, to_step: str
) -> dict[str, Any]:
    """The status context of a run waiting on a wait_until rule (CONTRACT §4 item 3)."""
    return {
        "rule_kind": "wait_until",
        "anchor": "prior_delivery_terminal_at",
        "anchor_delivery_id": anchor_id,
        "anchor_delivery_status": status,
        "anchor_timestamp": stamp(at),
        "due_at": stamp(at + timedelta(seconds=delay)),
        "to_step": to_step,
    }


def stamp(at: datetime) -> str:
    """Six-digit ISO text, written independently of the package's own formatter."""
    at = at.astimezone(UTC)
    return (
        f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:"
        f"{at.second:02d}.{at.microsecond:06d}+00:00"
    )


# Mostly the morning of T0; now and then the evenings before the DST changes of 2026 in the
# zones of ZONES, so that send windows open across them.
_BASES = (
    T0,
    T0,
    T0,
    datetime(2026, 3, 28, 20, tzinfo=UTC),
    datetime(2026, 10, 24, 20, tzinfo=UTC),
    datetime(2026, 3, 7, 22, tzinfo=UTC),
    datetime(2026, 10, 31, 22, tzinfo=UTC),
)
_moments = st.builds(
    lambda base, s, us: base + timedelta(seconds=s, microseconds=us),
    st.sampled_from(_BASES),
    st.integers(0, 20_000),
    st.sampled_from((0, 0, 1, 999_999, 123_456)),
)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A run in any state on any step, with or without an anchor delivery, at any time."""
    workflow = draw(workflows(ghost_targets=True, gates=True))
    definition = definition_of(workflow)
    keys = [s.key for s in workflow.steps]
    current = draw(st.sampled_from(keys))
    state = draw(st.sampled_from(list(RunState)))
    context: dict[str, Any] = {"source": "trigger"}
    suspended = None
    pending: tuple[str, ...] = ()
    terminal = None
    wait: dict[str, Any] = {}
    gate_wait = draw(st.sampled_from((None, None, "window", "digest")))
    if state is RunState.WAITING and gate_wait is not None:
        # held by a step option of its own step (which may not have it: unknown_to_step)
        reason = "waiting_for_send_window" if gate_wait == "window" else "waiting_for_digest"
        due = draw(_moments)
        context = {"rule_kind": gate_wait, "step_key": current, "due_at": stamp(due)}
        suspended = draw(st.one_of(st.just(due), st.none()))
        wait = {"wait_kind": gate_wait, "wait_target": current}
    elif state is RunState.WAITING:
        reason = "waiting_for_step_progression"
        settled = draw(_moments)
        delay = draw(st.integers(1, 10_000))
        to_step = draw(st.sampled_from([*keys, GHOST_STEP]))
        context = wait_context("d-anchor", "succeeded", settled, delay, to_step)
        suspended = draw(st.one_of(st.just(settled + timedelta(seconds=delay)), st.none()))
        pending = tuple(draw(st.lists(st.sampled_from(EVENTS), max_size=2, unique=True)))
        wait = {"wait_kind": "wait_until", "wait_target": to_step}
    elif state is RunState.ACTIVE:
        reason = draw(
            st.sampled_from(
                ("workflow_started", "progressed_on_delivery_outcome", "signal_received")
            )
        )
        if reason == "signal_received":
            context = draw(
                st.sampled_from(
                    (
                        wait_context("d-anchor", "succeeded", T0, 60, keys[-1]),
                        {"rule_kind": "wait_until"},
                    )
                )
            )
            wait = {"resumed_by": draw(st.sampled_from(EVENTS))}
    else:
        reason = "workflow_completed" if state is RunState.COMPLETED else "workflow_stopped"
        terminal = draw(st.sampled_from((reason, "cancelled_by_signal")))
    run = WorkflowRun(
        id="run-1",
        tenant_id="acme",
        notification_id="n-1",
        workflow_definition_id=definition.id,
        current_step_id=step_id(definition, current),
        state=state,
        status_reason=reason,
        status_context=context,
        started_at=T0,
        last_transition_at=T0,
        suspended_until=suspended,
        pending_signals=pending,
        terminal_reason=terminal,
        **wait,
    )
    anchor = None
    if draw(st.integers(0, 5)):
        anchor = Delivery(
            id="d-anchor",
            tenant_id="acme",
            notification_id="n-1",
            channel="in_app",
            status=draw(st.sampled_from(list(DeliveryStatus))),
            suppression_reason=draw(st.sampled_from(SUPPRESSION_REASONS)),
            workflow_run_id=run.id,
            workflow_step_id=run.current_step_id,
            inserted_at=T0,
            updated_at=draw(_moments),
        )
    early = None
    if draw(st.booleans()):  # a signal routed since the run entered its step
        early = SignalMark("acme", draw(st.sampled_from(EVENTS)), None, None, T0, seq=1)
    now = draw(_moments)
    batch = None
    if draw(st.booleans()):  # the group's newest batch that has not closed: (closes, runs)
        batch = (now + timedelta(seconds=draw(st.integers(-600, 600))), draw(st.integers(0, 3)))
    facts = Facts(
        activations=draw(st.integers(0, 3)),
        batch=batch,
        zone=draw(st.sampled_from(ZONES)),
        closing=draw(
            st.none()
            | st.builds(
                lambda place, others: (min(place, others), others),
                st.integers(-1, 2),
                st.integers(0, 2),
            )
        ),
    )
    return Case(
        workflow=workflow,
        definition=definition,
        run=attrs.evolve(run, entered_step_at=T0),
        anchor=anchor,
        now=now,
        early=early,
        facts=facts,
    )


# -- strategies: payloads ----------------------------------------------------------------------

MARK = "sekret-"  # every payload text leaf starts with it, so a leaf is never legit trace text
# Integers of 13+ digits: longer than any digit run of a timestamp, a seq or a UUID group.
_numbers = st.one_of(
    st.integers(10**12, 10**15),
    st.integers(-(10**15), -(10**12)),
    st.floats(1e12, 1e15, allow_nan=False, allow_infinity=False).filter(
        lambda f: not f.is_integer()
    ),
)
_texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12
).map(lambda t: MARK + t)
_leaves = st.one_of(_texts, _numbers, st.booleans(), st.none())
_keys = st.one_of(
    st.sampled_from(CATALOGUE),
    st.sampled_from(("secret", "api_key", "password", "token")),
    _texts,
)


def payloads() -> st.SearchStrategy[dict[str, Any]]:
    """Signal payloads: catalogue-looking keys, secrets, nested values, unicode."""
    values = st.recursive(
        _leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)
        ),
        max_leaves=8,
    )
    return st.dictionaries(_keys, values, max_size=5)


def leaves(value: Any) -> Iterator[str]:
    """The text of every string/number leaf (and non-catalogue key) of a payload, as it
    would appear if copied raw or JSON-escaped into a column."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k not in CATALOGUE:
                yield from _forms(k)
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (str, int, float)):
        yield from _forms(value)


def _forms(value: str | int | float) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        yield json.dumps(value)[1:-1]  # ASCII-escaped form
    else:
        yield json.dumps(value)
        yield repr(value)


# -- the model ---------------------------------------------------------------------------------

_TERMINAL = ("completed", "stopped")
_SIMPLE_OUTCOMES = {
    "succeeded": "delivered",
    "suppressed": "suppressed",
    "failed": "temporary_failure",
}
_CANCEL_OUTCOMES = ("retries_exhausted", "permanent_failure", "bounced")
_OUTCOME_STATUSES = ("succeeded", "failed", "suppressed", "cancelled")
_CANCEL_REASONS = (*_CANCEL_OUTCOMES, "workflow_cancelled")


def expected_outcome(status: str, suppression_reason: str | None) -> str | None:
    """CONTRACT §4's mapping from a delivery status (+ reason) to a branchable outcome."""
    if status in _SIMPLE_OUTCOMES:
        return _SIMPLE_OUTCOMES[status]
    if status == "cancelled" and suppression_reason in _CANCEL_OUTCOMES:
        return suppression_reason
    return None


@attrs.define
class ModelDelivery:
    """A delivery as the model sees it."""

    id: str
    run_id: str
    step_key: str
    channel: str
    updated_at: datetime  # when its current status was recorded
    status: str = "pending"
    suppression_reason: str | None = None
    inserted_at: datetime | None = None
    lease_expires_at: datetime | None = None
    digest_size: int = 1


@attrs.define
class ModelRun:
    """A run as the model sees it."""

    id: str
    tenant_id: str
    recipient: str
    workflow: Workflow
    step_key: str
    last_transition_at: datetime
    state: str = "active"
    status_reason: str = "workflow_started"
    suspended_until: datetime | None = None
    pending_signals: tuple[str, ...] = ()
    terminal_reason: str | None = None
    wait_to_step: str | None = None
    trace_rows: int = 2
    entered_at: datetime | None = None  # when the run entered its current step
    resumed_by: str | None = None  # the event that ended its wait
    wait_kind: str | None = None  # what holds a waiting run: wait_until, window, digest
    timezone: str | None = None  # the trigger's


@attrs.frozen
class Facts:
    """What the step options of CONTRACT §14 see, as the model is told it: the activations
    of the throttle's group in its window, the digest group's newest batch that has not
    closed (its closing time and how many runs wait in it), the recipient's zone, and for a
    digest that closes the run's place among the waiting runs of its batch (-1: it is in
    none) and how many others wait there."""

    activations: int = 0
    batch: tuple[datetime, int] | None = None
    zone: str | None = None
    closing: tuple[int, int] | None = None


#: Facts for a (run, step): a constant in the pure tests, the store model's own state in
#: the stateful one.
FactsOf = Callable[[ModelRun, Step], Facts]


@attrs.frozen
class Expected:
    """What one progression must do: its kind and reason, the step (if any) for which it
    plans a new delivery and that delivery's digest size, and what the run did to a digest
    batch (``open``, ``join``, or ``fill``: a join that brings it to max_items)."""

    kind: str
    reason: str
    planned_step: str | None = None
    digest_size: int = 1
    held: str | None = None


def _step(workflow: Workflow, key: str) -> Step | None:
    return next((s for s in workflow.steps if s.key == key), None)


def _no_facts(run: ModelRun, step: Step) -> Facts:
    return Facts()


# -- send windows, by the text of CONTRACT §14.3 -------------------------------------------------

_HALF_HOUR = timedelta(minutes=30)


def _zone(name: str | None) -> tzinfo:
    return UTC if name is None else ZoneInfo(name)


def _wall_instant(day: date, clock: str, zone: tzinfo) -> datetime:
    """The first instant whose local time is at or after wall time ``clock`` of ``day``:
    in a DST gap the first instant after it, in a fold the first occurrence. Found by
    walking the UTC half hours (the model's zones change by whole hours)."""
    hours, minutes = (int(p) for p in clock.split(":"))
    wall = datetime(day.year, day.month, day.day, hours, minutes)
    probe = wall.replace(tzinfo=UTC) - timedelta(hours=15)
    while probe.astimezone(zone).replace(tzinfo=None) < wall:
        probe += _HALF_HOUR
    return probe


def window_opening(window: SendWindow, now: datetime, zone_name: str | None) -> datetime | None:
    """None when ``now`` is inside ``window`` in the zone; else its next opening."""
    zone = _zone(zone_name)
    overnight = window.start > window.end  # "HH:MM" text orders as the clock does
    today = now.astimezone(zone).date()
    openings = []
    for offset in range(-1, 9):
        day = today + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        opens = _wall_instant(day, window.start, zone)
        closes = _wall_instant(day + timedelta(days=int(overnight)), window.end, zone)
        if opens <= now < closes:
            return None
        openings.append(opens)
    return min(o for o in openings if o > now)


# -- one progression ----------------------------------------------------------------------------


def expect_progress(
    run: ModelRun,
    anchor: ModelDelivery | None,
    now: datetime,
    marks: Sequence[tuple[str, str, str | None, datetime]] = (),
    facts: FactsOf = _no_facts,
) -> Expected:
    """Predict one progression of ``run`` at ``now`` and apply it to ``run`` (CONTRACT §4).

    ``marks`` are the routed signals (tenant, event, actor, when), oldest first: a wait
    that would begin for an event one of them names, of the run's tenant and recipient (or
    no actor), routed since the run entered its step, does not begin (CONTRACT §13.1).
    ``facts`` tells what the step options of a step the run would activate see (§14)."""
    if run.state in _TERMINAL:
        return Expected("noop", "run_not_active")
    if run.state == "waiting":
        if run.suspended_until is None or now < run.suspended_until:
            return Expected("noop", "wait_not_due")
        current = _step(run.workflow, run.step_key)
        assert current is not None
        if run.wait_kind in ("window", "digest"):
            if getattr(current, run.wait_kind) is None:
                return Expected("noop", "unknown_to_step")
            if run.wait_kind == "window":
                _move(run, now, rows=2, state="active", reason="send_window_opened")
                opened = Expected("advanced", "send_window_opened", current.key)
                return _held(run, current, now, opened, facts, ("throttle", "window"))
            return _close_alone(run, current, now, facts(run, current).closing)
        target = _step(run.workflow, run.wait_to_step or "")
        if target is None:
            return Expected("noop", "unknown_to_step")
        _move(run, now, rows=2, state="active", reason="progressed_on_delivery_outcome")
        run.step_key, run.entered_at = target.key, now
        moved = Expected("advanced", "progressed_on_delivery_outcome", target.key)
        return _held(run, target, now, moved, facts)
    if run.resumed_by is not None:
        return _signalled(run, run.resumed_by, now, facts)
    if anchor is None:
        return Expected("noop", "no_active_step_delivery")
    step = _step(run.workflow, run.step_key)
    assert step is not None
    outcome = expected_outcome(anchor.status, anchor.suppression_reason)
    waits = [r for r in step.progress if isinstance(r, WaitUntil)]
    if outcome is None:
        if not step.progress:
            return Expected("noop", "no_progress_rules")
        if waits:
            return Expected("noop", "prior_delivery_not_converged")
        return Expected("noop", "no_matching_progress_rule")
    for rule in step.progress:
        if isinstance(rule, Stop) and rule.outcome == outcome:
            _move(run, now, rows=1, state="stopped", reason="workflow_stopped")
            run.terminal_reason = "workflow_stopped"
            return Expected("stopped", "workflow_stopped")
        if isinstance(rule, OnOutcome) and rule.outcome == outcome:
            target = _step(run.workflow, rule.to_step)
            if target is None:
                return Expected("noop", "unknown_to_step")
            _move(run, now, rows=2, state="active", reason="progressed_on_delivery_outcome")
            run.step_key, run.entered_at = target.key, now
            moved = Expected("advanced", "progressed_on_delivery_outcome", target.key)
            return _held(run, target, now, moved, facts)
    if waits:
        wait = waits[0]
        if _step(run.workflow, wait.to_step) is None:
            return Expected("noop", "unknown_to_step")
        branches = [r.event_name for r in step.progress if isinstance(r, OnSignal)]
        pending = tuple(dict.fromkeys([*wait.cancel_signals, *branches]))
        early = [
            m
            for m in marks
            if m[0] == run.tenant_id
            and m[1] in pending
            and m[2] in (None, run.recipient)
            and run.entered_at is not None
            and m[3] >= run.entered_at
        ]
        if early:  # the signal came before the wait: the run does not wait at all
            first = min(early, key=lambda m: m[3])  # min keeps the first stored of a tie
            return _signalled(run, first[1], now, facts)
        _move(run, now, rows=1, state="waiting", reason="waiting_for_step_progression")
        run.suspended_until = anchor.updated_at + timedelta(seconds=wait.delay_seconds)
        run.pending_signals = pending
        run.wait_to_step = wait.to_step
        run.wait_kind = "wait_until"
        return Expected("waiting", "waiting_for_step_progression")
    _move(run, now, rows=1, state="completed", reason="workflow_completed")
    run.terminal_reason = "workflow_completed"
    return Expected("completed", "workflow_completed")


def expect_start(run: ModelRun, now: datetime, facts: FactsOf = _no_facts) -> Expected:
    """What a trigger does to a fresh ``run`` on its first step (CONTRACT §4 item 1, §14)."""
    first = _step(run.workflow, run.step_key)
    assert first is not None
    return _held(run, first, now, Expected("advanced", "workflow_started", first.key), facts)


def _held(
    run: ModelRun,
    step: Step,
    now: datetime,
    activated: Expected,
    facts: FactsOf,
    passed: tuple[str, ...] = (),
) -> Expected:
    """``activated`` unless a step option of ``step`` holds the run back (CONTRACT §14: the
    throttle, then the window, then the digest), each row standing in for step_activated."""
    seen = facts(run, step)
    throttle = step.throttle
    if throttle is not None and "throttle" not in passed and seen.activations >= throttle.limit:
        run.state, run.status_reason = "stopped", "workflow_throttled"
        run.terminal_reason = "throttled"
        return Expected("stopped", "workflow_throttled")
    if step.window is not None and "window" not in passed:
        opening = window_opening(step.window, now, seen.zone)
        if opening is not None:
            _hold(run, "waiting_for_send_window", "window", opening)
            return Expected("waiting", "waiting_for_send_window")
    if step.digest is not None:
        batch, limit = seen.batch, step.digest.max_items
        if batch is not None and batch[0] > now and batch[1] > 0:
            closes, held = batch[0], "fill" if limit and batch[1] + 1 >= limit else "join"
        else:
            closes, held = now + timedelta(seconds=step.digest.window_seconds), "open"
        _hold(run, "waiting_for_digest", "digest", closes)
        return Expected("waiting", "waiting_for_digest", held=held)
    return activated


def _hold(run: ModelRun, reason: str, kind: str, until: datetime) -> None:
    run.state, run.status_reason, run.wait_kind = "waiting", reason, kind
    run.suspended_until, run.pending_signals, run.wait_to_step = until, (), run.step_key


def _close_alone(
    run: ModelRun, step: Step, now: datetime, closing: tuple[int, int] | None
) -> Expected:
    """The run's digest closes (CONTRACT §14.2): the oldest run still waiting sends for the
    batch, the others merge. ``closing`` is the run's place and the others' count."""
    place, others = (-1, 0) if closing is None else closing
    if place <= 0:  # the oldest, or in no batch at all: it sends, for itself and the rest
        size = 1 if place < 0 else others + 1
        _move(run, now, rows=2, state="active", reason="digest_closed")
        return Expected("advanced", "digest_closed", step.key, digest_size=size)
    _move(run, now, rows=1, state="completed", reason="workflow_completed")
    run.terminal_reason = "merged_into_digest"
    return Expected("completed", "workflow_completed")


def _signalled(run: ModelRun, event: str, now: datetime, facts: FactsOf = _no_facts) -> Expected:
    """Signal ``event`` ended (or pre-empted) the run's wait: it goes where the step's
    on_signal rule for the event leads, else it completes (CONTRACT §4 item 6, §13)."""
    step = _step(run.workflow, run.step_key)
    assert step is not None
    rule = next(
        (r for r in step.progress if isinstance(r, OnSignal) and r.event_name == event), None
    )
    if rule is not None:
        target = _step(run.workflow, rule.to_step)
        if target is None:
            return Expected("noop", "unknown_to_step")
        _move(run, now, rows=2, state="active", reason="progressed_on_signal")
        run.step_key, run.entered_at = target.key, now
        moved = Expected("advanced", "progressed_on_signal", target.key)
        return _held(run, target, now, moved, facts)
    _move(run, now, rows=1, state="completed", reason="workflow_completed")
    run.terminal_reason = "cancelled_by_signal"
    return Expected("completed", "workflow_completed")


def _move(run: ModelRun, now: datetime, *, rows: int, state: str, reason: str) -> None:
    run.state = state
    run.status_reason = reason
    run.last_transition_at = now
    run.suspended_until = None
    run.pending_signals = ()
    run.resumed_by = None
    run.wait_kind = None
    run.trace_rows += rows


def expect_resume(run: ModelRun, event_name: str, now: datetime) -> bool:
    """Apply a signal to one run of the right tenant/actor; True when it resumes (CONTRACT §5)."""
    if run.state != "waiting" or event_name not in run.pending_signals:
        return False
    _move(run, now, rows=1, state="active", reason="signal_received")
    run.resumed_by = event_name
    return True


@attrs.define
class ModelBatch:
    """A digest batch as the model sees it: its group, closing time and runs (join order)."""

    group: tuple[Any, ...]
    closes_at: datetime
    members: list[str]
    closed: bool = False


Moved = list[tuple[str, Expected]]


@attrs.define
class ModelStore:
    """The store as the model sees it: runs, deliveries in insertion order, trigger keys,
    signal marks, and the activations and digest batches of the step options (§14)."""

    runs: dict[str, ModelRun] = attrs.field(factory=dict)
    deliveries: list[ModelDelivery] = attrs.field(factory=list)
    keys: dict[tuple[str, str], str] = attrs.field(factory=dict)
    marks: list[tuple[str, str, str | None, datetime]] = attrs.field(factory=list)
    activations: list[tuple[tuple[Any, ...], datetime]] = attrs.field(factory=list)
    batches: list[ModelBatch] = attrs.field(factory=list)

    def trigger(
        self,
        run_id: str,
        tenant_id: str,
        recipient: str,
        workflow: Workflow,
        key: str,
        now: datetime,
        timezone: str | None = None,
    ) -> Moved:
        """Start a run on the first step (unless its step options hold it back); what the
        trigger did to each run, the new one first. Deliveries are added with :meth:`plan`."""
        first = min(workflow.steps, key=lambda s: s.order)
        run = ModelRun(
            run_id,
            tenant_id,
            recipient,
            workflow,
            first.key,
            now,
            entered_at=now,
            timezone=timezone,
        )
        self.runs[run_id] = run
        self.keys[(tenant_id, key)] = run_id
        return self._effects(run, expect_start(run, now, self._facts(now)), now)

    def plan(
        self, run_id: str, step_key: str, delivery_id: str, now: datetime, digest_size: int = 1
    ) -> None:
        """Add the delivery a move planned, under the id the store gave it."""
        run = self.runs[run_id]
        step = _step(run.workflow, step_key)
        assert step is not None
        self.deliveries.append(
            ModelDelivery(
                delivery_id,
                run_id,
                step_key,
                step.channel,
                now,
                inserted_at=now,
                digest_size=digest_size,
            )
        )

    def delivery(self, delivery_id: str) -> ModelDelivery:
        """One delivery by id."""
        return next(d for d in self.deliveries if d.id == delivery_id)

    def anchor(self, run: ModelRun) -> ModelDelivery | None:
        """The latest delivery planned for the run's current step."""
        found = [d for d in self.deliveries if d.run_id == run.id and d.step_key == run.step_key]
        return found[-1] if found else None

    def claim(self, limit: int, channel: str | None, now: datetime) -> list[str]:
        """Ids of the oldest claimable deliveries (of ``channel``) — pending, or dispatched
        with a lease run out — now dispatched with a lease of 300 s (CONTRACT §12.1). The
        list is in planning order, which is (inserted_at, id) order: ids are time-ordered."""
        claimable = [
            d
            for d in self.deliveries
            if (channel is None or d.channel == channel)
            and (
                d.status == "pending"
                or (
                    d.status == "dispatched"
                    and d.lease_expires_at is not None
                    and d.lease_expires_at <= now
                )
            )
        ]
        claimed = sorted(claimable, key=lambda d: d.inserted_at or now)[:limit]
        for d in claimed:
            d.status, d.updated_at = "dispatched", now
            d.lease_expires_at = now + timedelta(seconds=300)
        return [d.id for d in claimed]

    def record_outcome(
        self, delivery_id: str, status: str, reason: str | None, now: datetime
    ) -> Moved | type[Exception] | None:
        """Record a delivery's outcome and progress its run (CONTRACT §12): the error a bad
        report raises, None for a report a final delivery has already, else what the
        progression did to each run (its run first).
        (The model's workflows have no retry policy: a failure is final.)"""
        if status not in _OUTCOME_STATUSES:
            return InvalidArgument
        if status == "cancelled" and reason not in _CANCEL_REASONS:
            return InvalidArgument
        delivery = self.delivery(delivery_id)
        if delivery.status in _OUTCOME_STATUSES:
            if (delivery.status, delivery.suppression_reason) == (status, reason):
                return None
            return InvalidTransition
        delivery.status, delivery.suppression_reason, delivery.updated_at = status, reason, now
        delivery.lease_expires_at = None
        return self.progress(delivery.run_id, now)

    def progress(self, run_id: str, now: datetime) -> Moved:
        """One progression of one run: what it did to each run, that run first (a digest
        batch it closes moves the batch's other runs too)."""
        run = self.runs[run_id]
        step = _step(run.workflow, run.step_key)
        due = run.suspended_until is not None and run.suspended_until <= now
        digest = step is not None and step.digest is not None
        if run.state == "waiting" and run.wait_kind == "digest" and due and digest:
            assert step is not None
            batch = self._batch_of(run.id)
            if batch is None:  # in no batch: it sends alone
                return self._effects(run, _close_alone(run, step, now, None), now)
            return self._close(batch, run.id, now)
        expected = expect_progress(run, self.anchor(run), now, self.marks, self._facts(now))
        return self._effects(run, expected, now)

    def sweep(self, now: datetime) -> Moved:
        """What the due sweep does at ``now``: each due run progressed in due order, the
        runs each one moved right after it; noops left out."""
        moved: Moved = []
        for run_id in self.due(now):
            moved += [(r, e) for r, e in self.progress(run_id, now) if e.kind != "noop"]
        return moved

    # -- the step options' state ----------------------------------------------------------------

    def _group(self, kind: str, run: ModelRun, step: Step, key: str | None) -> tuple[Any, ...]:
        # the model's triggers carry no data: a keyed option groups them all as "missing"
        return (kind, run.tenant_id, run.recipient, run.workflow.key, step.key, key)

    def _facts(self, now: datetime) -> FactsOf:
        def facts(run: ModelRun, step: Step) -> Facts:
            activations, batch = 0, None
            if step.throttle is not None:
                group = self._group("throttle", run, step, step.throttle.key)
                since = now - timedelta(seconds=step.throttle.window_seconds)
                activations = sum(1 for g, at in self.activations if g == group and at > since)
            if step.digest is not None:
                found = self._open(self._group("digest", run, step, step.digest.key))
                if found is not None:
                    batch = (found.closes_at, len(found.members))
            return Facts(activations=activations, batch=batch, zone=run.timezone)

        return facts

    def _open(self, group: tuple[Any, ...]) -> ModelBatch | None:
        """The group's newest batch that has not closed (the latest opened of the latest
        closing time)."""
        found = None
        for batch in self.batches:
            newer = found is None or batch.closes_at >= found.closes_at
            if batch.group == group and not batch.closed and newer:
                found = batch
        return found

    def _batch_of(self, run_id: str) -> ModelBatch | None:
        return next((b for b in self.batches if not b.closed and run_id in b.members), None)

    def _effects(self, run: ModelRun, expected: Expected, now: datetime) -> Moved:
        """Record what a progression did to the step options' state: an activation of a
        throttled step, a batch opened or joined — and closed, when the join fills it."""
        moved: Moved = [(run.id, expected)]
        self._count(run, expected, now)
        if expected.held is None:
            return moved
        step = _step(run.workflow, run.step_key)
        assert step is not None and step.digest is not None
        group = self._group("digest", run, step, step.digest.key)
        if expected.held == "open":
            assert run.suspended_until is not None
            self.batches.append(ModelBatch(group, run.suspended_until, [run.id]))
            return moved
        batch = self._open(group)
        assert batch is not None
        batch.members.append(run.id)
        return self._close(batch, run.id, now) if expected.held == "fill" else moved

    def _count(self, run: ModelRun, expected: Expected, now: datetime) -> None:
        step = _step(run.workflow, expected.planned_step or "")
        if step is not None and step.throttle is not None:
            self.activations.append((self._group("throttle", run, step, step.throttle.key), now))

    def _close(self, batch: ModelBatch, asked: str, now: datetime) -> Moved:
        """Close a batch: its oldest waiting run sends, the others merge; the asked run's
        result first, then the rest in the order they joined."""
        batch.closed = True
        waiting = [self.runs[m] for m in batch.members if self.runs[m].state == "waiting"]
        results: dict[str, Expected] = {}
        for place, member in enumerate(waiting):
            step = _step(member.workflow, member.step_key)
            assert step is not None
            results[member.id] = _close_alone(member, step, now, (place, len(waiting) - 1))
            self._count(member, results[member.id], now)
        order = [asked, *(m.id for m in waiting if m.id != asked)]
        return [(run_id, results[run_id]) for run_id in order if run_id in results]

    def due(self, now: datetime) -> list[str]:
        """Run ids the due sweep has work for, in (due time, id) order."""
        due: list[tuple[datetime, str]] = []
        for run in self.runs.values():
            if run.state == "waiting" and run.suspended_until and run.suspended_until <= now:
                due.append((run.suspended_until, run.id))
            elif (
                run.state == "active"
                and run.resumed_by is not None
                and run.last_transition_at <= now
            ):
                due.append((run.last_transition_at, run.id))
        return [run_id for _, run_id in sorted(due)]

    def next_due_at(self) -> datetime | None:
        """The earliest time the due sweep has work."""
        times = [
            r.suspended_until
            for r in self.runs.values()
            if r.state == "waiting" and r.suspended_until is not None
        ] + [
            r.last_transition_at
            for r in self.runs.values()
            if r.state == "active" and r.resumed_by is not None
        ]
        return min(times) if times else None

    def signal(
        self, tenant_id: str, event_name: str, actor_id: str | None, now: datetime
    ) -> list[str]:
        """Resume the tenant's runs waiting for the event (of the actor); their ids, sorted.
        Every signal leaves its mark."""
        self.marks.append((tenant_id, event_name, actor_id, now))
        resumed = [
            run.id
            for run in self.runs.values()
            if run.tenant_id == tenant_id
            and (actor_id is None or run.recipient == actor_id)
            and expect_resume(run, event_name, now)
        ]
        return sorted(resumed)


# -- store helpers -------------------------------------------------------------------------------


def tenant_rows(store: Store, tenant_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """A tenant's runs, trace rows, deliveries, notifications and signals, raw."""
    conn = sql(store)
    queries = {
        "workflow_runs": "SELECT * FROM workflow_runs WHERE tenant_id = ? ORDER BY id",
        "workflow_transitions": (
            "SELECT t.* FROM workflow_transitions AS t JOIN workflow_runs AS r "
            "ON r.id = t.workflow_run_id WHERE r.tenant_id = ? ORDER BY t.seq"
        ),
        "deliveries": "SELECT * FROM deliveries WHERE tenant_id = ? ORDER BY id",
        "notifications": "SELECT * FROM notifications WHERE tenant_id = ? ORDER BY id",
        "signals": "SELECT * FROM signals WHERE tenant_id = ? ORDER BY id",
        "signal_marks": "SELECT * FROM signal_marks WHERE tenant_id = ? ORDER BY seq",
        "delivery_events": "SELECT * FROM delivery_events WHERE tenant_id = ? ORDER BY seq",
        "step_activations": "SELECT * FROM step_activations WHERE tenant_id = ? ORDER BY seq",
        "digest_batches": "SELECT * FROM digest_batches WHERE tenant_id = ? ORDER BY id",
        "digest_members": (
            "SELECT m.* FROM digest_members AS m JOIN workflow_runs AS r "
            "ON r.id = m.workflow_run_id WHERE r.tenant_id = ? ORDER BY m.seq"
        ),
    }
    return {
        name: [tuple(r) for r in conn.execute(sql, (tenant_id,))] for name, sql in queries.items()
    }


def trace(store: Store, run_id: str) -> list[tuple[Any, ...]]:
    """A run's trace as (reason, from_state, to_state, step id, delivery id, context) rows."""
    run = store.get_run(run_id)
    return [
        (
            t.reason,
            t.from_state and t.from_state.value,
            t.to_state.value,
            t.workflow_step_id,
            t.delivery_id,
            t.context,
        )
        for t in store.list_traces(run.tenant_id, run_id)
    ]


def race(db_path: str, clock: FakeClock, work: Any, count: int = 10) -> list[Any]:
    """Run ``work(store)`` in ``count`` threads at once, each with its own Store."""
    stores = [Store(db_path, clock=clock) for _ in range(count)]
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def go(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(stores[i])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    return results
