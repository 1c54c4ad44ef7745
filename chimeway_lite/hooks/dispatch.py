"""Handing committed events to the host: its ``on_event`` hook, the ``chimeway_lite``
loggers and the current span (CONTRACT §17).

Loggers (standard :mod:`logging`; the package adds no handler, so until the host
configures logging its warnings reach stderr through :data:`logging.lastResort` and its
DEBUG lines go nowhere):

* ``chimeway_lite.events`` — one DEBUG line per transition and delivery attempt, after its
  unit of work committed (:meth:`~chimeway_lite.hooks.events.StoreEvent.describe`; the
  record also carries the event itself as ``record.chimeway_event``);
* ``chimeway_lite`` — WARNING when a hook raised (the store carries on); the engine warns
  there too, e.g. when the due sweep skips a damaged run to progress the others.

Every line is payload-free: ids, states, reason codes, times and error types, never a
trigger's data, a signal's payload, a step's config or a trace context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from . import tracing
from .events import StoreEvent

log = logging.getLogger("chimeway_lite")
events_log = logging.getLogger("chimeway_lite.events")

#: What ``Store(..., on_event=...)`` takes: any callable of one StoreEvent.
EventHook = Callable[[StoreEvent], object]


class Hooks:
    """Who listens to one store: its ``on_event`` callable, the loggers, the tracer."""

    __slots__ = ("on_event",)

    def __init__(self, on_event: EventHook | None) -> None:
        self.on_event = on_event

    def listening(self) -> bool:
        """Whether a unit of work should be observed: a hook is set, the events logger
        logs DEBUG, or the current span records."""
        return (
            self.on_event is not None
            or events_log.isEnabledFor(logging.DEBUG)
            or tracing.recording()
        )

    def emit(self, events: Sequence[StoreEvent]) -> None:
        """Report events of a unit of work that committed, in the order they were written.

        The hook runs on the thread that made the call (an AsyncStore's worker thread); an
        exception it raises is logged with its traceback and goes no further, so a hook can
        never undo, fail or repeat the work it hears about.
        """
        if not events:
            return
        tracing.add_events(events)
        debug = events_log.isEnabledFor(logging.DEBUG)
        hook = self.on_event
        for event in events:
            if debug:
                events_log.debug("%s", event.describe(), extra={"chimeway_event": event})
            if hook is None:
                continue
            try:
                hook(event)
            except Exception as exc:
                log.warning(
                    "the on_event hook %r raised %s on a %s event of run %s; the store "
                    "carries on (the work it reports is committed)",
                    hook,
                    type(exc).__qualname__,
                    event.kind.value,
                    event.run_id,
                    exc_info=True,
                )
