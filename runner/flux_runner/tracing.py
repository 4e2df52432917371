"""A span per step the runner runs (not the ones a checkpoint lets it skip), children of the execution's span
(TRACEPARENT, from the operator), exported to FLUX_TRACING_ENDPOINT over OTLP/HTTP. Off unless the operator
turned tracing on; OpenTelemetry comes with `flux-runner[tracing]` (the runner image has it) and is imported
only then. The spans are flushed when the runner exits, a cancel's included, within a few seconds."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

from flux_api import logfields, tracecontext

log = logging.getLogger("flux.runner")
FLUSH_MILLIS = 3000

_tracer: Any = None
_provider: Any = None
_parent: Any = None


def configure(env: Mapping[str, str] = os.environ, exporter: Any = None) -> bool:
    """True when step spans will be exported (to `exporter` instead of the collector: the tests')."""
    global _tracer, _provider, _parent
    endpoint, parent = env.get("FLUX_TRACING_ENDPOINT"), tracecontext.parse(env.get("TRACEPARENT"))
    if not endpoint or parent is None or not parent.sampled:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
    except ImportError:
        log.warning("tracing is on but this image lacks OpenTelemetry (install flux-runner[tracing]): no step spans")
        return False
    _provider = TracerProvider(resource=Resource.create({
        "service.name": "flux-runner", "flux.namespace": env.get("FLUX_EXECUTION_NAMESPACE", ""),
        "flux.execution": env.get("FLUX_EXECUTION_NAME", ""), "flux.uid": env.get("FLUX_EXECUTION_UID", "")}))
    _provider.add_span_processor(BatchSpanProcessor(
        exporter or OTLPSpanExporter(endpoint=tracecontext.traces_url(endpoint))))
    _tracer = _provider.get_tracer("flux_runner")
    _parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(
        parent.trace_id, parent.span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
    return True


@contextmanager
def _span(name: str) -> Iterator[None]:
    with _tracer.start_as_current_span(f"step {name}", context=_parent, attributes={"flux.step": name}) as span, \
            logfields.about(span_id=f"{span.get_span_context().span_id:016x}"):  # the step's lines name its span
        try:
            yield
        except BaseException as err:  # a cancel (CancelledError) too: the span says how the step ended
            span.set_attribute("flux.step.ended", type(err).__name__)
            raise


def step(name: str):
    """A span around one step (a no-op without tracing)."""
    return _span(name) if _tracer is not None else nullcontext()


def shutdown() -> None:
    global _tracer, _provider, _parent
    if _provider is None:
        return
    try:
        _provider.force_flush(FLUSH_MILLIS)
        _provider.shutdown()
    except Exception as err:  # noqa: BLE001 - a collector that is down must not change the runner's exit
        log.warning("tracing: could not flush the step spans: %s", err)
    _tracer = _provider = _parent = None
