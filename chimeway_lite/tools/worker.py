"""The ready worker: claim deliveries on the channels it can send, hand each to its sender,
record what the sender says, sweep the due runs, and sleep exactly until there is work again.

::

    def send_email(delivery: Delivery) -> None:
        mailer.send(to=delivery.recipient, template=delivery.config["template"],
                    data=delivery.data)          # returns None: recorded 'succeeded'

    worker = Worker(store, {"email": send_email, "in_app": show_in_app})
    worker.run()     # until worker.stop(), SIGINT or SIGTERM

What a sender returns is recorded with ``store.record_outcome(delivery.id, status,
suppression_reason, tenant_id=delivery.tenant_id)``:

* returns None: ``succeeded``;
* returns a status (the member or its value): that status (``succeeded``, ``failed``,
  ``suppressed``);
* returns ``(status, suppression_reason)``: that, e.g. ``("cancelled", "bounced")``;
* raises an ``Exception``: ``failed`` — the exception's text is neither stored nor logged
  (it may quote the message or its recipient);
* returns anything else, or an outcome the store refuses (a typo, ``"pending"``, a cancel
  with a reason the rules do not know): ``failed``, and an ERROR in the log — a sender's bug
  does not leave the delivery in flight until its lease runs out;
* raises a ``BaseException`` that is not an ``Exception`` (KeyboardInterrupt, SystemExit):
  nothing is recorded, it propagates, and the delivery is left to its lease.

A ``failed`` on a step with a retry policy comes back after its backoff, through the same
worker. When the store refuses the outcome because the delivery was finished by someone else
(InvalidTransition) or is gone (DeliveryNotFound), the worker logs a WARNING and goes on.

Claims
------
The worker claims only on the channels of ``senders``, one delivery at a time: claim, send,
record, then the next (round-robin over its channels), at most ``batch_size`` deliveries per
pass. A stop, a crash or a slow sender therefore holds at most the one delivery in hand, and
the lease has to cover one send, not a batch of them. The price is one more (small) write
per delivery than claiming a batch at once.

Sleeping
--------
After a pass, :meth:`Worker.run` sleeps until the earliest of ``store.next_due_at()`` (the
next due run), ``store.next_claimable_at(channel=...)`` of each of its channels (the next
retry, lease expiry or new delivery) and ``max_sleep`` — not at all after a full batch. If
work is due at once after a pass that handled nothing (a run the due sweep cannot move, say),
it backs off (1 s, 2 s, 4 s … up to ``max_sleep``) rather than spin. It sleeps on the
backend's listener (:mod:`chimeway_lite.backends.wakeups`): :meth:`Worker.stop` from another
thread ends the sleep at once, and on PostgreSQL so does a commit of new work by any other
process or host (``LISTEN``/``NOTIFY``), so a trigger there is sent at once rather than after
``max_sleep``. On SQLite work that other processes create is found at the latest after
``max_sleep``.

Logging goes to the ``chimeway_lite.worker`` logger and names deliveries by id, channel and
attempt only: never a recipient, data, config or an exception's text.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import FrameType
from typing import Any

import attrs

from ..backends.wakeups import WorkListener
from ..core.arguments import MAX_LIMIT, require_seconds
from ..core.errors import (
    ConstraintFailed,
    DamagedRow,
    DeliveryNotFound,
    InvalidArgument,
    InvalidTransition,
    StoreBusy,
)
from ..core.records import Delivery, DeliveryStatus
from ..store import Store

__all__ = [
    "MIN_BACKOFF",
    "Handled",
    "SendResult",
    "Sender",
    "Worker",
    "outcome_of",
    "pause_until",
]

#: The logger of the worker (deliveries are named by id, channel and attempt only).
logger = logging.getLogger("chimeway_lite.worker")

#: What a sender may return: None (succeeded), a status, or (status, suppression_reason).
SendResult = None | DeliveryStatus | str | tuple[DeliveryStatus | str, str | None]
#: A sender: takes the claimed delivery (recipient, keys, data, config), sends it.
Sender = Callable[[Delivery], SendResult]

#: The first pause when work stays due after a pass that moved nothing; it doubles up to
#: ``max_sleep``, so that a run the sweep cannot move is no busy loop.
MIN_BACKOFF = 1.0

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@attrs.frozen
class Handled:
    """What the worker did — in one pass (:meth:`Worker.run_once`, ``on_pass``) or in all of
    a :meth:`Worker.run`: ``deliveries`` handed to their senders (each with its outcome
    recorded, or refused by the store and logged) and ``runs`` the due sweep moved. Handleds
    add up with ``+``."""

    deliveries: int = 0
    runs: int = 0

    def __add__(self, other: Handled) -> Handled:
        return Handled(self.deliveries + other.deliveries, self.runs + other.runs)


@attrs.define
class _Tally:
    # Counted as the pass goes, so that a pass cut short (StoreBusy) still counts its work.
    deliveries: int = 0
    runs: int = 0

    def handled(self) -> Handled:
        return Handled(self.deliveries, self.runs)


def outcome_of(answer: object) -> tuple[DeliveryStatus | str, str | None] | None:
    """The (status, suppression_reason) a sender's return value reports, or None when it is
    not one of None, a status, or a 2-tuple of a status and a reason (or None). Whether the
    store takes the status and reason is the store's to say (``record_outcome``)."""
    if answer is None:
        return DeliveryStatus.SUCCEEDED, None
    if isinstance(answer, str):  # DeliveryStatus members are strings too
        return answer, None
    if isinstance(answer, tuple) and len(answer) == 2:
        status, reason = answer
        if isinstance(status, str) and (reason is None or isinstance(reason, str)):
            return status, reason
    return None


def pause_until(
    now: datetime,
    wake_times: Iterable[datetime | None],
    *,
    busy: bool,
    backoff: float,
    max_sleep: float,
) -> tuple[float, float]:
    """How long to sleep after a pass that did not fill its batch, and the next backoff.

    Until the earliest of ``wake_times`` still ahead of ``now`` (None: nothing scheduled),
    at most ``max_sleep``. A time at or before ``now`` is work waiting already: after a pass
    that handled something (``busy``: it may have planned that work), go again at once;
    after one that handled nothing, the work is something a pass cannot move, so sleep
    ``backoff`` (if nothing comes sooner) and double it for next time.
    """
    pause = max_sleep
    overdue = False
    for at in wake_times:
        if at is None:
            continue
        seconds = (at - now).total_seconds()
        if seconds <= 0:
            overdue = True
        else:
            pause = min(pause, seconds)
    if not overdue:
        return pause, MIN_BACKOFF
    if busy:
        return 0.0, MIN_BACKOFF
    return min(pause, backoff), min(backoff * 2, max_sleep)


def _senders(value: object) -> dict[str, Sender]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            "senders", f"must map channels to senders, got {type(value).__name__}"
        )
    if not value:
        raise InvalidArgument("senders", "must map at least one channel to a sender")
    checked: dict[str, Sender] = {}
    for channel, sender in value.items():
        if not isinstance(channel, str) or not channel.strip():
            raise InvalidArgument("senders", f"a channel must be a non-blank string: {channel!r}")
        if not callable(sender):
            raise InvalidArgument(
                "senders",
                f"the sender of channel {channel!r} is not callable (got {type(sender).__name__})",
            )
        checked[channel] = sender
    return checked


def _positive(value: object, name: str, *, whole: bool) -> Any:
    kinds = int if whole else (int, float)
    if (
        not isinstance(value, kinds)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        what = "an int >= 1" if whole else "a number of seconds > 0"
        raise InvalidArgument(name, f"must be {what}, got {value!r}")
    return value


class Worker:
    """Sends the deliveries of ``store`` on the channels of ``senders`` and sweeps its due
    runs (see the module docstring for what a sender returns and what gets recorded).

    ``senders`` maps a channel to a callable taking a :class:`~chimeway_lite.Delivery`.
    Each claim is leased for ``lease_seconds`` (it must outlast one send: a delivery whose
    lease ran out may be claimed and sent by another worker); a pass handles at most
    ``batch_size`` deliveries and ``batch_size`` due runs; :meth:`run` never sleeps longer
    than ``max_sleep`` seconds, so that work other processes create is found. One thread
    runs a worker at a time; :meth:`stop` may be called from any thread.
    """

    def __init__(
        self,
        store: Store,
        senders: Mapping[str, Sender],
        *,
        lease_seconds: int = 300,
        batch_size: int = 100,
        max_sleep: float = 60.0,
    ) -> None:
        self.store = store
        self.senders: dict[str, Sender] = _senders(senders)
        self.channels: tuple[str, ...] = tuple(self.senders)
        self.lease_seconds: int = require_seconds(lease_seconds, "lease_seconds")
        self.batch_size: int = min(_positive(batch_size, "batch_size", whole=True), MAX_LIMIT)
        self.max_sleep: float = float(_positive(max_sleep, "max_sleep", whole=False))
        self._stop_requested = False
        self._listener: WorkListener | None = None

    def __repr__(self) -> str:
        return f"Worker({self.store!r}, channels={list(self.channels)!r})"

    # -- one pass ---------------------------------------------------------------------------

    def run_once(self) -> Handled:
        """One pass: sweep the due runs, then claim and send what is claimable on the
        worker's channels (each recorded before the next is claimed), up to ``batch_size``
        of each. Returns how many deliveries and runs it handled.

        The sweep comes first, so that the deliveries it plans (a wait that elapsed) go out
        in the same pass.
        """
        tally = _Tally()
        self._pass(tally, lambda: False)
        return tally.handled()

    def _pass(self, tally: _Tally, stopping: Callable[[], bool]) -> None:
        tally.runs += len(self.store.progress_due_runs(limit=self.batch_size))
        open_channels = list(self.channels)
        while open_channels:
            for channel in list(open_channels):
                if tally.deliveries >= self.batch_size or stopping():
                    return
                claimed = self.store.claim_deliveries(
                    1, channel=channel, lease_seconds=self.lease_seconds
                )
                if not claimed:
                    open_channels.remove(channel)
                    continue
                self._send(claimed[0])
                tally.deliveries += 1

    def _send(self, delivery: Delivery) -> None:
        sender = self.senders[delivery.channel]
        try:
            answer = sender(delivery)
        except Exception as exc:
            # Only the type: an exception's text may quote the message or its recipient.
            logger.warning(
                "delivery %s (channel %s, attempt %d): the sender raised %s; recording failed",
                delivery.id,
                delivery.channel,
                delivery.attempt,
                type(exc).__name__,
            )
            self._record(delivery, DeliveryStatus.FAILED, None, from_sender=False)
            return
        report = outcome_of(answer)
        if report is None:
            logger.error(
                "delivery %s (channel %s, attempt %d): the sender returned a %s, not None, a "
                "status or (status, suppression_reason); recording failed",
                delivery.id,
                delivery.channel,
                delivery.attempt,
                type(answer).__name__,
            )
            self._record(delivery, DeliveryStatus.FAILED, None, from_sender=False)
            return
        self._record(delivery, report[0], report[1], from_sender=True)

    def _record(
        self,
        delivery: Delivery,
        status: DeliveryStatus | str,
        reason: str | None,
        *,
        from_sender: bool,
    ) -> None:
        try:
            self.store.record_outcome(delivery.id, status, reason, tenant_id=delivery.tenant_id)
        except InvalidArgument as exc:
            if not from_sender:
                raise
            # The sender's status or reason is not an outcome (a typo, 'pending', a cancel
            # with a reason the rules do not know): a bug of the sender's, so record the
            # delivery failed rather than leave it in flight until its lease runs out.
            logger.error(
                "delivery %s (channel %s, attempt %d): the sender's outcome is refused "
                "(invalid %s); recording failed",
                delivery.id,
                delivery.channel,
                delivery.attempt,
                exc.name,
            )
            self._record(delivery, DeliveryStatus.FAILED, None, from_sender=False)
        except InvalidTransition as exc:
            logger.warning(
                "delivery %s (channel %s, attempt %d): its outcome was not recorded: someone "
                "else finished it first (it is %s)",
                delivery.id,
                delivery.channel,
                delivery.attempt,
                exc.from_state,
            )
        except DeliveryNotFound:
            logger.warning(
                "delivery %s (channel %s, attempt %d): its outcome was not recorded: the "
                "delivery is gone (pruned or forgotten)",
                delivery.id,
                delivery.channel,
                delivery.attempt,
            )
        except (DamagedRow, ConstraintFailed) as exc:
            # One damaged run never stops the worker (CONTRACT §16): the error names the row,
            # never a payload; verify() lists it.
            logger.warning(
                "delivery %s (channel %s, attempt %d): its outcome was not recorded: %s",
                delivery.id,
                delivery.channel,
                delivery.attempt,
                exc,
            )

    # -- the loop ---------------------------------------------------------------------------

    def run(
        self,
        *,
        wait: Callable[[float], object] | None = None,
        on_pass: Callable[[Handled, float | None], object] | None = None,
    ) -> Handled:
        """Repeat passes (:meth:`run_once`), sleeping between them until there is work (see
        the module docstring), until :meth:`stop` — or SIGINT/SIGTERM, when called from the
        main thread. Returns what all the passes handled.

        A stop finishes the delivery in hand (its send and its record) and claims no other.
        A second SIGINT/SIGTERM while stopping raises KeyboardInterrupt at once (for a
        sender that hangs): that delivery is left to its lease. The handlers that were
        installed before are restored when run returns. A StoreBusy is logged and retried
        after a backoff; any other error ends the run.

        ``wait(seconds)`` replaces the sleep (with a FakeClock:
        ``wait=lambda s: clock.advance(seconds=s)``); :meth:`stop` is then seen when it
        returns. ``on_pass(handled, pause)`` is called after every pass with what it did
        and the pause that follows (None: run returns now).
        """
        listener: WorkListener | None = None
        if wait is None:
            listener = self.store.backend.listener()
            sleep: Callable[[float], object] = listener.wait
        else:
            sleep = wait
        self._listener = listener
        total = Handled()
        backoff = MIN_BACKOFF
        restore = self._handle_signals()
        try:
            while not self._stop_requested:
                tally = _Tally()
                pause: float | None = None
                try:
                    self._pass(tally, self._stopping)
                    if not self._stop_requested:
                        pause, backoff = self._pause(tally.handled(), backoff)
                except StoreBusy as exc:
                    pause, backoff = min(backoff, self.max_sleep), min(backoff * 2, self.max_sleep)
                    logger.warning("%s; trying again in %.3g s", exc, pause)
                handled = tally.handled()
                total += handled
                if self._stop_requested:
                    pause = None
                logger.debug(
                    "pass: %d deliveries, %d runs; pause %s",
                    handled.deliveries,
                    handled.runs,
                    pause,
                )
                if on_pass is not None:
                    on_pass(handled, pause)
                if pause is None or self._stop_requested:
                    break
                sleep(pause)
        finally:
            self._listener = None
            if listener is not None:
                listener.close()
            restore()
            self._stop_requested = False
        return total

    def stop(self) -> None:
        """Ask :meth:`run` to return after the delivery in hand; it wakes a sleeping run at
        once. Called when no run is going, the next :meth:`run` returns at once."""
        self._stop_requested = True
        self._interrupt()

    def _interrupt(self) -> None:
        listener = self._listener
        if listener is not None:
            listener.interrupt()

    def _stopping(self) -> bool:
        return self._stop_requested

    def _pause(self, handled: Handled, backoff: float) -> tuple[float, float]:
        if handled.deliveries >= self.batch_size or handled.runs >= self.batch_size:
            return 0.0, MIN_BACKOFF  # a full batch: there may be more right now
        wake_times = [self.store.next_due_at()]
        wake_times += [self.store.next_claimable_at(channel=c) for c in self.channels]
        return pause_until(
            self.store.clock.now(),
            wake_times,
            busy=bool(handled.deliveries or handled.runs),
            backoff=backoff,
            max_sleep=self.max_sleep,
        )

    def _handle_signals(self) -> Callable[[], None]:
        """Install the SIGINT/SIGTERM handlers of :meth:`run` (only the main thread may);
        return what restores the previous ones."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: FrameType | None) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt  # asked twice: do not wait for the delivery in hand
            self._stop_requested = True
            # SQLite's listener is an Event: Event.set() takes the lock that Event.wait holds
            # for a moment on this very thread, so set it from another thread, or the handler
            # could deadlock.
            threading.Thread(target=self._interrupt, name="chimeway-worker-stop").start()

        previous = {signum: signal.signal(signum, handler) for signum in _SIGNALS}

        def restore() -> None:
            for signum, old in previous.items():
                # None: a handler not installed from Python, which cannot be put back.
                signal.signal(signum, signal.SIG_DFL if old is None else old)

        return restore
