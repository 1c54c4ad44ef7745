"""OpenTelemetry spans (CONTRACT §17): one span per public operation, payload-free, when
``opentelemetry-api`` is installed and a tracer provider is set; nothing otherwise, and the
store works without the package."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends import is_postgres
from factories import trigger
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from chimeway_lite import FakeClock, InvalidArgument, RunNotFound, Signal, Store
from chimeway_lite.hooks import tracing

MARKER = "PAYLOAD-MARKER-7f3a"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans of this test, in memory (the provider is the test's, not the global one)."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(tracing, "_provider", provider)
    yield exported
    provider.shutdown()


def _names(exporter: InMemorySpanExporter) -> list[str]:
    return [span.name for span in exporter.get_finished_spans()]


def test_one_span_per_public_operation(store: Store, exporter: InMemorySpanExporter) -> None:
    started = trigger(store)
    store.explain("acme", started.run.id)
    store.upsert_definition("welcome", started_workflow(store, started.run.workflow_definition_id))
    (delivery,) = store.claim_deliveries()
    progress = store.record_outcome(delivery.id, "succeeded")

    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == [
        "chimeway_lite.trigger",
        "chimeway_lite.explain",
        "chimeway_lite.persisted_workflow",
        "chimeway_lite.upsert_definition",
        "chimeway_lite.claim_deliveries",
        "chimeway_lite.record_outcome",
    ]
    trigger_span, explain_span = spans[0], spans[1]
    assert trigger_span.attributes is not None and explain_span.attributes is not None
    assert trigger_span.attributes["chimeway.operation"] == "trigger"
    assert trigger_span.attributes["chimeway.write"] is True
    assert trigger_span.attributes["db.system"] == (
        "postgresql" if is_postgres(store) else "sqlite"
    )
    assert trigger_span.attributes["chimeway.run_id"] == started.run.id
    assert trigger_span.attributes["chimeway.duplicate"] is False
    assert explain_span.attributes["chimeway.write"] is False
    outcome = spans[-1]
    assert outcome.attributes is not None and progress is not None
    assert outcome.attributes["chimeway.progress.kind"] == "waiting"
    assert outcome.attributes["chimeway.progress.reason"] == progress.reason
    # The committed events ride along as span events.
    assert [e.name for e in outcome.events] == ["delivery_outcome", "transition"]
    assert outcome.events[1].attributes is not None
    assert outcome.events[1].attributes["chimeway.reason"] == "waiting_for_step_progression"
    assert spans[-2].attributes is not None
    assert spans[-2].attributes["chimeway.result.count"] == 1


def started_workflow(store: Store, definition_id: str) -> object:
    workflow = store.persisted_workflow(definition_id)
    assert workflow is not None
    return workflow


def test_calls_inside_a_transaction_are_children_of_its_span(
    store: Store, exporter: InMemorySpanExporter
) -> None:
    with store.transaction() as tx:
        trigger(store)
        tx.now()  # tx's own helpers are part of the transaction's span
    spans = {s.name: s for s in exporter.get_finished_spans()}
    outer, inner = spans["chimeway_lite.transaction"], spans["chimeway_lite.trigger"]
    assert inner.parent is not None and outer.context is not None
    assert inner.parent.span_id == outer.context.span_id
    # The events are reported when the outer unit commits, on its span.
    assert [e.name for e in outer.events] == ["transition", "transition"]
    assert inner.events == ()


def test_the_due_sweep_is_a_span_with_one_child_per_run(
    store: Store, clock: FakeClock, exporter: InMemorySpanExporter
) -> None:
    for who in ("ada", "bob"):
        trigger(store, recipient=who)
    for delivery in store.claim_deliveries():
        store.record_outcome(delivery.id, "succeeded")
    clock.advance(hours=2)
    exporter.clear()

    store.progress_due_runs()

    names = _names(exporter)
    assert names.count("chimeway_lite.progress_run") == 2
    sweep = exporter.get_finished_spans()[-1]
    assert sweep.name == "chimeway_lite.progress_due_runs"
    assert sweep.attributes is not None and sweep.attributes["chimeway.result.count"] == 2


def test_an_error_sets_the_status_to_its_type_only(
    store: Store, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(RunNotFound):
        store.explain("acme", "01a23425-1106-7000-ab78-bb1c9bf89059")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RunNotFound"
    assert span.attributes is not None and span.attributes["error.type"] == "RunNotFound"
    assert span.events == ()  # no exception event: its message is not exported


def test_spans_are_payload_free(store: Store, exporter: InMemorySpanExporter) -> None:
    trigger(store, data={"secret": MARKER})
    (delivery,) = store.claim_deliveries()
    store.record_outcome(delivery.id, "succeeded")
    store.track_signal(Signal("acme", "notification_read", payload={"why": MARKER}))
    with pytest.raises(InvalidArgument, match="data"):
        trigger(store, data={"big": MARKER * 5000})  # over 64 KiB: refused

    spans = exporter.get_finished_spans()
    assert len(spans) == 5
    for span in spans:
        assert MARKER not in span.to_json()


def test_no_tracer_provider_means_no_spans_and_no_work(store: Store) -> None:
    """With only the API installed (its default proxy provider), nothing is traced."""
    assert tracing.AVAILABLE
    assert tracing.tracer() is None
    assert not tracing.recording()
    trigger(store)  # and nothing breaks


def _run(code: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT / "tests"), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_store_works_without_opentelemetry_installed(tmp_path: Path) -> None:
    out = _run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # what an environment without it looks like
        from factories import trigger
        from chimeway_lite import Store
        from chimeway_lite.hooks import tracing
        events = []
        with Store("t.db", on_event=events.append) as store:
            started = trigger(store)
            store.record_outcome(store.claim_deliveries()[0].id, "succeeded")
            with store.transaction() as tx:
                tx.explain("acme", started.run.id)
            print(tracing.AVAILABLE, tracing.tracer(), len(events), store.verify())
        """,
        tmp_path,
    )
    assert out.split() == ["False", "None", "5", "[]"]


def test_the_global_tracer_provider_is_used_when_the_host_sets_one(tmp_path: Path) -> None:
    out = _run(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
        from factories import trigger
        from chimeway_lite import Store

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with Store(":memory:") as store:
            trigger(store)  # before the host configures tracing: no span
            trace.set_tracer_provider(provider)
            tracer = trace.get_tracer("host")
            with tracer.start_as_current_span("request"):
                trigger(store)
        for span in exporter.get_finished_spans():
            parent = span.parent.span_id if span.parent else None
            print(span.name, span.instrumentation_scope.name, parent is not None)
        """,
        tmp_path,
    )
    assert out.splitlines() == ["chimeway_lite.trigger chimeway_lite True", "request host False"]
