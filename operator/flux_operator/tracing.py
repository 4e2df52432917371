"""The operator's spans (`--tracing-endpoint`, OTLP over HTTP; off by default): when an execution ends, its
span (creation to end) and, if it was cancelled, the cancel's (request to conclusion, with the signal and the
cleanup as child spans and each moment as an event), from the times in its status. Written after the fact,
so a span never depends on one replica living through the execution; ids come from flux_api.tracecontext,
so the runner's step spans and the children's spans (exported by whoever ends them) join the same tree.
OpenTelemetry is imported only when tracing is on: the operator's memory does not pay for it otherwise."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from flux_api import Phase, tracecontext
from flux_api.timefmt import parse_time, utcnow

log = logging.getLogger("flux_operator")
FLUSH_SECONDS = 5.0


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


class Tracing:
    def __init__(self, endpoint: str, ratio: float, service: str = "flux-operator", exporter: Any = None) -> None:
        """`exporter`: where spans go instead of the collector at `endpoint` (the tests' in-memory one)."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.ratio = ratio
        self._ids = _ChosenIds()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}), id_generator=self._ids)
        self.provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=tracecontext.traces_url(endpoint))))
        self._tracer = self.provider.get_tracer("flux_operator")

    def _context(self, raw: dict[str, Any]) -> tuple[tracecontext.SpanContext, tracecontext.SpanContext | None]:
        """An execution's own span context and the parent it joins (flux_api.tracecontext)."""
        meta = raw.get("metadata") or {}
        return tracecontext.of_execution(meta.get("annotations"), str(meta.get("uid") or ""), self.ratio)

    def trace_id(self, raw: dict[str, Any]) -> str | None:
        """The execution's trace id if its trace is sampled (an exemplar of its latencies), else None."""
        own, _ = self._context(raw)
        return own.trace_hex if own.sampled else None

    def log_ids(self, raw: dict[str, Any]) -> dict[str, str]:
        """trace_id and span_id (its own span's) for the execution's log lines."""
        own, _ = self._context(raw)
        return {"trace_id": own.trace_hex, "span_id": f"{own.span_id:016x}"}

    def concluded(self, raw: dict[str, Any]) -> None:
        """`raw` (as the status write that ended it returned it) as spans, if its trace is sampled."""
        meta, status = raw.get("metadata") or {}, raw.get("status") or {}
        uid = str(meta.get("uid") or "")
        own, parent = self._context(raw)
        if not own.sampled or not uid:
            return
        created = parse_time(meta.get("creationTimestamp")) or utcnow()
        ended = parse_time(status.get("finishedAt")) or utcnow()
        phase = status.get("phase")
        attributes = {"flux.namespace": meta.get("namespace", ""), "flux.execution": meta.get("name", ""),
                      "flux.uid": uid, "flux.phase": str(phase or ""),
                      "flux.workflow": str((raw.get("spec") or {}).get("workflow") or "")}
        self._span(f"execution {meta.get('namespace')}/{meta.get('name')}", own.trace_id, own.span_id,
                   parent.span_id if parent else None, created, ended, attributes, failed=phase == Phase.FAILED)
        cancellation = status.get("cancellation")
        if isinstance(cancellation, dict) and (asked := parse_time(cancellation.get("requestedAt"))) is not None:
            self._cancel(uid, own, cancellation, asked, ended)

    def _cancel(self, uid: str, own: tracecontext.SpanContext, cancellation: dict[str, Any], asked: datetime,
                ended: datetime) -> None:
        moments = {name: parse_time(cancellation.get(f"{name}At"))
                   for name in ("requested", "signalled", "acknowledged", "forced", "completed")}
        done = moments["completed"] or ended
        attributes = {"flux.cancel.source": str(cancellation.get("source") or ""),
                      "flux.cancel.outcome": str(cancellation.get("outcome") or ""),
                      "flux.cancel.reason": str(cancellation.get("reason") or "")}
        cancel_id = tracecontext.span_id_for(uid, "cancel")
        events = [(name, moment) for name, moment in moments.items() if moment is not None]
        self._span("cancel", own.trace_id, cancel_id, own.span_id, asked, done, attributes, events=events)
        if (signalled := moments["signalled"]) is not None:
            self._span("cancel.signal", own.trace_id, tracecontext.span_id_for(uid, "cancel.signal"), cancel_id,
                       asked, signalled, attributes)
            self._span("cancel.cleanup", own.trace_id, tracecontext.span_id_for(uid, "cancel.cleanup"), cancel_id,
                       signalled, moments["acknowledged"] or done, attributes)

    def _span(self, name: str, trace_id: int, span_id: int, parent_id: int | None, start: datetime, end: datetime,
              attributes: dict[str, str], failed: bool = False,
              events: list[tuple[str, datetime]] = ()) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

        context = None
        if parent_id is not None:
            remote = SpanContext(trace_id, parent_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        with self._ids.chosen(trace_id, span_id):
            span = self._tracer.start_span(name, context=context, start_time=_ns(start), attributes=attributes)
        for event, moment in events:
            span.add_event(event, timestamp=_ns(moment))
        if failed:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=_ns(max(end, start)))

    def shutdown(self) -> None:
        try:
            self.provider.force_flush(int(FLUSH_SECONDS * 1000))
            self.provider.shutdown()
        except Exception as err:  # noqa: BLE001 - a collector that is down must not stop a shutdown
            log.warning("tracing: could not flush the last spans: %s", err)


class _ChosenIds:
    """An OpenTelemetry IdGenerator that hands out the ids chosen for the span being started (this thread)."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def chosen(self, trace_id: int, span_id: int) -> Iterator[None]:
        self._local.trace_id, self._local.span_id = trace_id, span_id
        try:
            yield
        finally:
            self._local.trace_id = self._local.span_id = None

    def generate_trace_id(self) -> int:
        return getattr(self._local, "trace_id", None) or _random(128)

    def generate_span_id(self) -> int:
        return getattr(self._local, "span_id", None) or _random(64)

    def is_trace_id_random(self) -> bool:
        return False  # derived from UIDs (flux_api.tracecontext)


def _random(bits: int) -> int:
    return secrets.randbits(bits) or 1
