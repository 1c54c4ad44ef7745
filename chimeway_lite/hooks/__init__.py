"""What the host can observe (CONTRACT §17): payload-free events of every transition and
delivery attempt, handed to ``Store(..., on_event=...)``, to the ``chimeway_lite`` loggers
and to OpenTelemetry spans (:mod:`.tracing`), after the unit of work that made them
committed (:mod:`.observation`, :mod:`.dispatch`)."""

from .events import EventKind, StoreEvent

__all__ = ["EventKind", "StoreEvent"]
