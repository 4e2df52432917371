"""The operator's spans of an ended execution (tracing.py), into OpenTelemetry's in-memory exporter."""

from __future__ import annotations

import pytest
from flux_api import tracecontext
from flux_api.tracecontext import TRACEPARENT_ANNOTATION, traces_url
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flux_operator import builders
from flux_operator.tracing import Tracing

pytestmark = pytest.mark.unit


def ended(phase="Cancelled", annotations=None, cancellation=True) -> dict:
    status = {"phase": phase, "finishedAt": "2026-12-04T10:00:09.000Z"}
    if cancellation:
        status["cancellation"] = {"reason": "stop", "source": "spec", "outcome": "Graceful",
                                  "requestedAt": "2026-12-04T10:00:05.000Z", "signalledAt": "2026-12-04T10:00:05.200Z",
                                  "acknowledgedAt": "2026-12-04T10:00:07.000Z", "completedAt": "2026-12-04T10:00:08.000Z"}
    return {"metadata": {"name": "etl", "namespace": "team-a", "uid": "uid-1", "annotations": annotations or {},
                         "creationTimestamp": "2026-12-04T10:00:00Z"},
            "spec": {"workflow": "etl:main"}, "status": status}


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing = Tracing("http://unused:4318", 1.0, exporter=exporter)

    def export(raw):
        tracing.concluded(raw)
        tracing.provider.force_flush()
        return {s.name: s for s in exporter.get_finished_spans()}
    yield export
    tracing.shutdown()


def test_a_cancelled_execution_is_a_span_with_the_cancel_sequence_under_it(spans):
    found = spans(ended())
    own, _ = tracecontext.of_execution({}, "uid-1", 1.0)
    execution, cancel = found["execution team-a/etl"], found["cancel"]
    assert execution.context.trace_id == own.trace_id and execution.context.span_id == own.span_id
    assert execution.parent is None
    assert (execution.end_time - execution.start_time) == 9_000_000_000
    assert cancel.parent.span_id == own.span_id
    assert cancel.attributes["flux.cancel.source"] == "spec" and cancel.attributes["flux.cancel.outcome"] == "Graceful"
    assert [e.name for e in cancel.events] == ["requested", "signalled", "acknowledged", "completed"]
    assert found["cancel.signal"].parent.span_id == cancel.context.span_id
    assert found["cancel.cleanup"].end_time - found["cancel.cleanup"].start_time == 1_800_000_000


def test_an_incoming_context_is_honoured_and_an_unsampled_tree_exports_nothing(spans):
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    found = spans(ended("Succeeded", {TRACEPARENT_ANNOTATION: incoming}, cancellation=False))
    assert set(found) == {"execution team-a/etl"}
    span = found["execution team-a/etl"]
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C and span.parent.span_id == 0xB7AD6B7169203331
    assert spans(ended(annotations={TRACEPARENT_ANNOTATION: incoming[:-2] + "00"})) == found, "nothing new"


def test_runners_and_children_are_told_the_executions_own_span():
    settings = builders.RunnerSettings(tracing_endpoint="http://collector:4318", tracing_ratio=1.0)
    from flux_api import Execution
    ex = Execution.model_validate({**ended(), "spec": {"workflow": "etl:main"}, "status": {}})
    pod = builders.runner_pod(ex, settings)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    own = tracecontext.of_execution({}, "uid-1", 1.0)[0]
    assert env["TRACEPARENT"] == own.traceparent and env["FLUX_TRACING_ENDPOINT"] == "http://collector:4318"
    child = builders.child_execution(ex, "etl-child-1", "etl:part", {}, "tok", builders.execution_traceparent(ex, settings))
    assert child["metadata"]["annotations"][TRACEPARENT_ANNOTATION] == own.traceparent
    plain = builders.runner_pod(ex, builders.RunnerSettings())
    assert "TRACEPARENT" not in {e["name"] for e in plain["spec"]["containers"][0]["env"]}


def test_the_traces_path_is_added_once():
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_an_executions_log_lines_name_its_trace_and_span_and_its_latency_exemplar_its_trace():
    tracing = Tracing("http://unused:4318", 1.0, exporter=InMemorySpanExporter())
    try:
        own = tracecontext.of_execution({}, "uid-1", 1.0)[0]
        assert tracing.log_ids(ended()) == {"trace_id": own.trace_hex, "span_id": f"{own.span_id:016x}"}
        assert tracing.trace_id(ended()) == own.trace_hex
        unsampled = ended(annotations={TRACEPARENT_ANNOTATION: own.traceparent[:-2] + "00"})
        assert tracing.trace_id(unsampled) is None, "no exemplar points at a trace nobody kept"
    finally:
        tracing.shutdown()
