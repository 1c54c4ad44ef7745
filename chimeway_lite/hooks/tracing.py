"""OpenTelemetry spans around the store's operations, when ``opentelemetry-api`` is installed.

One span per public operation (``chimeway_lite.trigger``, ``chimeway_lite.transaction`` …),
child of whatever span is current, with payload-free attributes only: the operation, the
database system, whether it writes, a few facts of its result (a progression's kind and
reason, how many records came back, a trigger's run id), and one span event per
:class:`~chimeway_lite.hooks.events.StoreEvent` the operation committed. An error sets the
span's status with the error's type; its message is not recorded (messages are the
store's own and payload-free, but a span exporter is not the place to find out).

Nothing is done, at no cost beyond one check per call, while no tracer provider is set
(the API's default proxy) or when the package is not installed at all
(``pip install 'chimeway-lite[otel]'`` adds it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from ..core.records import Progress, TriggerResult
from ..core.timestamps import to_text
from .events import StoreEvent

try:  # the optional extra: chimeway-lite[otel]
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    _trace = None  # type: ignore[assignment]

#: Whether ``opentelemetry-api`` could be imported.
AVAILABLE = _trace is not None

SCOPE = "chimeway_lite"

# A provider given explicitly (tests), else the global one; the tracer made for it.
_provider: Any = None
_cached: tuple[Any, Any] | None = None


def tracer() -> Any:
    """The tracer spans are made with, or None while tracing is off (no package, or no
    tracer provider configured)."""
    global _cached
    if _trace is None:
        return None
    provider = _provider if _provider is not None else _trace.get_tracer_provider()
    if isinstance(provider, (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)):
        return None
    if _cached is None or _cached[0] is not provider:
        _cached = (provider, provider.get_tracer(SCOPE))
    return _cached[1]


def recording() -> bool:
    """Whether the current span records (span events are worth making)."""
    if _trace is None:
        return False
    return bool(_trace.get_current_span().is_recording())


class Span:
    """The span of one operation, with the few things the store tells it."""

    __slots__ = ("span",)

    def __init__(self, span: Any) -> None:
        self.span = span

    def result(self, value: object) -> None:
        """Describe an operation's result by shape, never by content."""
        if isinstance(value, Progress):
            self.span.set_attribute("chimeway.progress.kind", str(value.kind))
            self.span.set_attribute("chimeway.progress.reason", value.reason or "")
            self.span.set_attribute("chimeway.run_id", value.run.id)
        elif isinstance(value, TriggerResult):
            self.span.set_attribute("chimeway.run_id", value.run.id)
            self.span.set_attribute("chimeway.tenant_id", value.run.tenant_id)
            self.span.set_attribute("chimeway.duplicate", value.duplicate)
        elif isinstance(value, (list, tuple, dict)):
            self.span.set_attribute("chimeway.result.count", len(value))


@contextmanager
def span(operation: str, *, system: str, write: bool) -> Iterator[Span | None]:
    """A span around one operation (None when tracing is off)."""
    made = tracer()
    if made is None:
        yield None
        return
    with made.start_as_current_span(
        f"{SCOPE}.{operation}",
        kind=_trace.SpanKind.INTERNAL,
        attributes={
            "chimeway.operation": operation,
            "chimeway.write": write,
            "db.system": system,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield Span(current)
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__qualname__)
            current.set_status(_trace.Status(_trace.StatusCode.ERROR, type(exc).__qualname__))
            raise


P = ParamSpec("P")
R = TypeVar("R")


def traced(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A Store method written by hand (not made from an engine operation) as one span."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if tracer() is None:
                return method(*args, **kwargs)
            store = args[0]
            system = getattr(store, "_system", "sqlite")
            with span(operation, system=system, write=True) as current:
                result = method(*args, **kwargs)
                if current is not None:
                    current.result(result)
                return result

        return call

    return decorate


def add_events(events: Sequence[StoreEvent]) -> None:
    """One span event per store event on the current span (when it records)."""
    if _trace is None or not events:
        return
    current = _trace.get_current_span()
    if not current.is_recording():
        return
    current.set_attribute("chimeway.events", len(events))
    for event in events:
        attributes: dict[str, str | int] = {
            "chimeway.tenant_id": event.tenant_id,
            "chimeway.reason": event.reason,
            "chimeway.at": to_text(event.at),
        }
        for name, value in (
            ("chimeway.run_id", event.run_id),
            ("chimeway.from_state", event.from_state),
            ("chimeway.to_state", event.to_state),
            ("chimeway.step_key", event.step_key),
            ("chimeway.delivery_id", event.delivery_id),
            ("chimeway.attempt", event.attempt),
            ("chimeway.seq", event.seq),
            ("chimeway.suppression_reason", event.suppression_reason),
        ):
            if value is not None:
                attributes[name] = value
        current.add_event(event.kind.value, attributes=attributes)
