"""``window``: send a step only inside local hours, in the recipient's time zone.

Declared ``Step(..., window=SendWindow(start="08:00", end="21:00", days=(0, 1, 2, 3, 4)))``
and stored as ``config["window"] = {"start": "08:00", "end": "21:00", "days": [0, 1, 2, 3,
4]}``; the zone is the trigger's (``trigger(..., timezone="Europe/Paris")``, UTC when none).
``start`` is inclusive and ``end`` exclusive; a start after the end is a window across
midnight; ``days`` are the weekdays (0 = Monday) on which a window *opens*. A run that would
activate the step outside the window waits until the next opening —
``waiting_for_send_window`` — and the due sweep then writes ``send_window_opened`` and
activates the step (CONTRACT §14.3). Quiet hours are a window that leaves them out.

Local times become instants here, from the zone the engine passes in (no tz database is
read in the machine): an opening inside a DST gap moves to the first instant after the gap;
in a fold the first occurrence counts (:func:`instant_of`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import attrs

from ...core.names import is_int
from ...core.records import ProgressKind, RunState, WorkflowStep
from ...core.timestamps import to_text
from ..decision import (
    Decision,
    DeliveryPlan,
    TransitionPlan,
    activated,
    cleared,
    held_waiting,
)
from ..vocabulary import SEND_WINDOW_OPENED, WAITING_FOR_SEND_WINDOW, Move, Variant
from .base import Arrival, Gate, Reading, Situation, Where

NAME = KEY = "window"
EVERY_DAY = (0, 1, 2, 3, 4, 5, 6)
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Gates an activation has passed once its window opened: they are not asked again.
PASSED = frozenset({"throttle", NAME})


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _days(value: Any) -> Any:
    # A set of weekdays: given in any order, with repeats, it is the same window.
    if isinstance(value, (list, tuple)) and all(is_int(d) for d in value):
        return tuple(sorted(set(value)))
    return tuple(value) if isinstance(value, (list, tuple)) else value


@attrs.frozen
class SendWindow:
    """Send only from ``start`` (inclusive) to ``end`` (exclusive), local "HH:MM" times of
    the recipient, on windows opening on ``days`` (0 = Monday … 6 = Sunday)."""

    start: str = attrs.field(converter=_trim)
    end: str = attrs.field(converter=_trim)
    days: tuple[int, ...] = attrs.field(default=EVERY_DAY, converter=_days)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def instant_of(day: date, at: time, zone: tzinfo) -> datetime:
    """The instant (UTC) that local wall time ``at`` on ``day`` names in ``zone``: in a fold
    the first occurrence; in a DST gap, where the wall time does not exist, the first
    instant after the gap."""
    wall = datetime.combine(day, at)
    instant = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first occurrence
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In a gap, fold=0 reads the wall time with the offset before the change and fold=1
    # with the one after (PEP 495): the change lies between the two readings. Find its
    # first microsecond, whose offset is already the later one.
    early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    late, after = instant, instant.astimezone(zone).utcoffset()
    while late - early > timedelta(microseconds=1):
        middle = early + (late - early) / 2
        if middle.astimezone(zone).utcoffset() == after:
            late = middle
        else:
            early = middle
    return late


def next_opening(window: SendWindow, now: datetime, zone: tzinfo) -> datetime | None:
    """None when ``now`` is inside the window; else the instant it next opens."""
    start, end = _clock(window.start), _clock(window.end)
    overnight = start > end
    today = now.astimezone(zone).date()
    # Yesterday's window may still be open (across midnight); a window opens within a week.
    for offset in range(-1, 9):
        day = today + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        opens = instant_of(day, start, zone)
        closes = instant_of(day + timedelta(days=1) if overnight else day, end, zone)
        if opens <= now < closes:
            return None
        if opens > now:
            return opens
    return None  # unreachable for a valid window (days is never empty)


def local_text(at: datetime | None, zone: tzinfo, zone_name: str, now: datetime) -> str:
    """``08:00 Europe/Paris``, with `` on Tue 2026-01-06`` when that is another local day
    than ``now``'s."""
    if at is None:
        return "an unknown time"
    local = at.astimezone(zone)
    text = f"{local:%H:%M} {zone_name}"
    if local.date() != now.astimezone(zone).date():
        text += f" on {_WEEKDAYS[local.weekday()]} {local:%Y-%m-%d}"
    return text


class SendWindowGate(Gate[SendWindow]):
    """The ``window`` step option."""

    key = KEY
    name = NAME
    option_type = SendWindow
    required_keys = frozenset({"start", "end"})
    optional_keys = frozenset({"days"})
    moves = (
        Move(
            WAITING_FOR_SEND_WINDOW,
            RunState.ACTIVE,
            RunState.WAITING,
            (
                Variant(
                    NAME,
                    why=(
                        "Waiting for the send window: {opens} ({due_at:time}); step "
                        "{step_key!r} is held until then."
                    ),
                    label="send window",
                    detail="opens {due_at:stamp}",
                    path="{step_key!r} was held until its send window opened",
                    next=(
                        "At {due} the due sweep opens the send window and activates step "
                        "{step_key!r}; no signal ends this wait."
                    ),
                ),
            ),
            on_current_step=False,
            enters_step=True,
        ),
        Move(
            SEND_WINDOW_OPENED,
            RunState.WAITING,
            RunState.ACTIVE,
            (
                Variant(
                    NAME,
                    why=(
                        "The send window of step {step_key!r} opened at {opened}; the step "
                        "was activated."
                    ),
                    label="window opened",
                    detail="{step_key}",
                    path="{step_key!r} ran when its send window opened",
                ),
            ),
            opens_step=True,
        ),
    )

    def from_dict(self, data: Mapping[str, Any]) -> SendWindow:
        """A SendWindow from ``config["window"]``."""
        return SendWindow(data["start"], data["end"], data.get("days", EVERY_DAY))

    def to_dict(self, option: SendWindow) -> dict[str, Any]:
        """The stored form, days always written."""
        return {"start": option.start, "end": option.end, "days": list(option.days)}

    def validate(self, option: SendWindow, where: Where) -> None:
        """ "HH:MM" start and end (24 h) that differ; days a non-empty set of 0..6."""
        for field in ("start", "end"):
            value = getattr(option, field)
            if not isinstance(value, str) or not _CLOCK.fullmatch(value):
                raise where.error(field, f'must be a local time "HH:MM" (24 h), got {value!r}')
        if option.start == option.end:
            raise where.error("end", f"must differ from start ({option.start!r})")
        days = option.days
        if not isinstance(days, tuple) or not days:
            raise where.error("days", f"must be a non-empty list of weekdays 0..6, got {days!r}")
        for i, day in enumerate(days):
            if not is_int(day) or not 0 <= day <= 6:
                raise where.error(f"days[{i}]", f"must be a weekday 0..6 (0 = Monday), got {day!r}")

    def describe(self, option: SendWindow) -> str:
        """``sent 08:00-21:00 local, Mon-Fri`` (or the days listed)."""
        if option.days == EVERY_DAY:
            days = "every day"
        elif option.days == (0, 1, 2, 3, 4):
            days = "Mon-Fri"
        else:
            days = ", ".join(_WEEKDAYS[d] for d in option.days)
        return f"sent {option.start}-{option.end} local time, {days}"

    def admit(
        self,
        option: SendWindow,
        decision: Decision,
        step: WorkflowStep,
        arrival: Arrival,
        now: datetime,
    ) -> Decision | None:
        """Hold the run until the next opening when ``now`` is outside the window."""
        opens = next_opening(option, now, arrival.zone)
        if opens is None:
            return None
        context = {"rule_kind": NAME, "step_key": step.step_key, "due_at": to_text(opens)}
        return held_waiting(decision, step, WAITING_FOR_SEND_WINDOW, context, now, opens, kind=NAME)

    def wake(self, situation: Situation) -> Decision:
        """The window opened: ``send_window_opened``, then the step is activated (the
        gates after the window are asked next, CONTRACT §14)."""
        run, step, now = situation.run, situation.current, situation.now
        context = {"rule_kind": NAME, "step_key": step.step_key}
        opened = cleared(
            run,
            state=RunState.ACTIVE,
            status_reason=SEND_WINDOW_OPENED,
            status_context=context,
            last_transition_at=now,
        )
        row = TransitionPlan(
            RunState.WAITING, RunState.ACTIVE, SEND_WINDOW_OPENED, step.id, None, dict(context)
        )
        return Decision(
            ProgressKind.ADVANCED,
            SEND_WINDOW_OPENED,
            opened,
            (row, activated(step, "progression")),
            (DeliveryPlan(step.id, step.channel),),
            passed=PASSED,
        )

    def names(self, option: SendWindow, reading: Reading) -> dict[str, Any]:
        """``opens`` (the due time, local) and ``opened`` (the row's time, local)."""
        zone, name, now = reading.zone, reading.zone_name, reading.now
        return {
            "opens": local_text(reading.due, zone, name, now),
            "opened": local_text(reading.at, zone, name, now),
        }


OPTION = SendWindowGate()
