"""An Execution's trace context (flux_api.tracecontext): W3C traceparent, ids derived from the UID, sampling."""

from __future__ import annotations

import hashlib

import pytest
from flux_api import tracecontext
from flux_api.tracecontext import TRACEPARENT_ANNOTATION, SpanContext

pytestmark = pytest.mark.unit

INCOMING = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_traceparent_reads_back_as_written():
    ctx = tracecontext.parse(INCOMING)
    assert ctx == SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True)
    assert ctx.traceparent == INCOMING


@pytest.mark.parametrize("text", [None, 7, "", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                  "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                                  "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                                  "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", "00-xyz-abc-01"])
def test_anything_else_is_no_context(text):
    assert tracecontext.parse(text) is None


def test_an_execution_created_with_a_context_joins_it_under_the_span_it_names():
    own, parent = tracecontext.of_execution({TRACEPARENT_ANNOTATION: INCOMING}, "uid-1", ratio=1.0)
    assert parent == tracecontext.parse(INCOMING)
    assert own.trace_id == parent.trace_id and own.span_id == tracecontext.span_id_for("uid-1")
    assert own.sampled, "the incoming decision is carried"


def test_an_incoming_sampled_flag_cannot_make_the_operator_export_past_its_ratio():
    """A tenant's flag is not the platform's sampling budget: the flag narrows, the ratio (over trace ids) bounds."""
    assert not tracecontext.of_execution({TRACEPARENT_ANNOTATION: INCOMING}, "uid-1", ratio=0.0)[0].sampled
    ids = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(4000)]
    flagged = sum(tracecontext.of_execution({TRACEPARENT_ANNOTATION: f"00-{trace}-b7ad6b7169203331-01"}, "u",
                                            ratio=0.25)[0].sampled for trace in ids)
    assert 800 < flagged < 1200, flagged


def test_a_root_gets_a_trace_of_its_own_the_same_on_every_replica_and_restart():
    first, parent = tracecontext.of_execution({}, "uid-1", ratio=1.0)
    again, _ = tracecontext.of_execution(None, "uid-1", ratio=1.0)
    other, _ = tracecontext.of_execution({}, "uid-2", ratio=1.0)
    assert parent is None and first == again and first.trace_id != other.trace_id
    assert first.span_id != tracecontext.span_id_for("uid-1", "cancel")


def test_sampling_by_ratio_is_decided_by_the_trace_id():
    assert not tracecontext.of_execution({}, "uid-1", ratio=0.0)[0].sampled
    assert tracecontext.of_execution({}, "uid-1", ratio=1.0)[0].sampled
    sampled = sum(tracecontext.of_execution({}, f"uid-{i}", ratio=0.25)[0].sampled for i in range(4000))
    assert 800 < sampled < 1200


def test_a_childs_annotation_carries_an_unsampled_decision():
    unsampled = tracecontext.of_execution({}, "root", ratio=0.0)[0]
    child, _ = tracecontext.of_execution({TRACEPARENT_ANNOTATION: unsampled.traceparent}, "kid", ratio=1.0)
    assert not child.sampled and child.trace_id == unsampled.trace_id
