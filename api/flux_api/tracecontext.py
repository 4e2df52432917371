"""The W3C trace context of an Execution, shared by the operator (its spans, its children) and the runner
(TRACEPARENT: its step spans).

One trace per tree. An Execution created with the annotation `workflows.flux.dev/traceparent` joins that
trace as a child of the span it names (a CI job's, a parent execution's); one created without it starts a
trace whose id is derived from its UID. Its own span's id is derived from its UID too, so its runner and its
children can name it as their parent before the operator has exported it, and any replica, after any
restart, names the same span. Sampling is decided by the trace id (as OpenTelemetry's TraceIdRatioBased does),
so every execution of a tree decides alike, and carried in the flags; an incoming context's flag can only narrow
it. That bounds what honest callers cost, not a tenant who picks trace ids the ratio keeps: the collector's own
limits are the bound for those."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from flux_api.names import GROUP

TRACEPARENT_ANNOTATION = f"{GROUP}/traceparent"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_LOW_64 = (1 << 64) - 1


@dataclass(frozen=True)
class SpanContext:
    trace_id: int
    span_id: int
    sampled: bool

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"

    @property
    def trace_hex(self) -> str:
        return f"{self.trace_id:032x}"


def parse(text: Any) -> SpanContext | None:
    """A version-00 traceparent; None for anything else (an all-zero id is invalid, as the spec says)."""
    if not isinstance(text, str):
        return None
    match = _TRACEPARENT.match(text.strip())
    if match is None:
        return None
    trace_id, span_id = int(match.group(1), 16), int(match.group(2), 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, bool(int(match.group(3), 16) & 1))


def _derived(kind: str, uid: str, size: int) -> int:
    value = int.from_bytes(hashlib.sha256(f"{kind}:{uid}".encode()).digest()[:size], "big")
    return value or 1


def span_id_for(uid: str, part: str = "execution") -> int:
    """The id of an execution's span (or of one of its parts: `cancel`, `cancel.signal`, ...)."""
    return _derived(f"span:{part}", uid, 8)


def sampled_by_ratio(trace_id: int, ratio: float) -> bool:
    return (trace_id & _LOW_64) < ratio * (1 << 64)


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP's traces path under a collector's base URL (an endpoint given with the path is kept)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def of_execution(annotations: dict[str, Any] | None, uid: str, ratio: float) -> tuple[SpanContext, SpanContext | None]:
    """(the execution's own span context, the parent it joins or None)."""
    incoming = parse((annotations or {}).get(TRACEPARENT_ANNOTATION))
    if incoming is not None:
        sampled = incoming.sampled and sampled_by_ratio(incoming.trace_id, ratio)
        return SpanContext(incoming.trace_id, span_id_for(uid), sampled), incoming
    trace_id = _derived("trace", uid, 16)
    return SpanContext(trace_id, span_id_for(uid), sampled_by_ratio(trace_id, ratio)), None
