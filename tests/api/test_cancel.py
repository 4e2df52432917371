"""The one cancel-request reader that the operator, the runner and the plugin share."""

from __future__ import annotations

import pytest
from flux_api import CANCEL_ANNOTATION, CancelSource
from flux_api.cancel import CancelIntent, recorded_or_requested, requested_cancel
from flux_api.names import CANCELLED_BY_ANNOTATION

pytestmark = pytest.mark.unit


def obj(cancel=None, annotations=None, cancellation=None) -> dict:
    return {"metadata": {"name": "x", "annotations": annotations or {}},
            "spec": {"workflow": "a:b", **({"cancel": cancel} if cancel is not None else {})},
            "status": {"cancellation": cancellation} if cancellation else {}}


def test_nobody_asked() -> None:
    assert requested_cancel(obj()) is None
    assert recorded_or_requested(obj()) is None


def test_spec_cancel_with_its_flags() -> None:
    found = requested_cancel(obj(cancel={"reason": "stop", "cascade": False, "force": True}))
    assert found == CancelIntent("stop", CancelSource.SPEC, cascade=False, force=True)


def test_spec_defaults_match_the_crd() -> None:
    assert requested_cancel(obj(cancel={"reason": "stop"})) == CancelIntent("stop", CancelSource.SPEC, True, False)


def test_a_parent_cancel_is_reported_as_parent() -> None:
    found = requested_cancel(obj(cancel={"reason": "p"}, annotations={CANCELLED_BY_ANNOTATION: "parent"}))
    assert found.source is CancelSource.PARENT


def test_annotation_is_trimmed_and_blank_is_no_request() -> None:
    assert requested_cancel(obj(annotations={CANCEL_ANNOTATION: "  late  "})) == \
        CancelIntent("late", CancelSource.ANNOTATION)
    assert requested_cancel(obj(annotations={CANCEL_ANNOTATION: "   "})) is None


def test_spec_wins_over_the_annotation() -> None:
    found = requested_cancel(obj(cancel={"reason": "spec"}, annotations={CANCEL_ANNOTATION: "ann"}))
    assert (found.reason, found.source) == ("spec", CancelSource.SPEC)


def test_long_annotation_is_cut_to_the_spec_limit() -> None:
    assert len(requested_cancel(obj(annotations={CANCEL_ANNOTATION: "r" * 5000})).reason) == 1024


def test_recorded_cancellation_wins_but_keeps_the_spec_flags() -> None:
    found = recorded_or_requested(obj(cancel={"reason": "new", "force": True},
                                      cancellation={"reason": "first", "source": "deadline"}))
    assert found == CancelIntent("first", CancelSource.DEADLINE, cascade=True, force=True)


def test_malformed_objects_read_as_no_request() -> None:
    assert requested_cancel({"spec": "not a map", "metadata": None}) is None
    assert recorded_or_requested({"status": {"cancellation": {"reason": "r", "source": "bogus"}}}) is None


def test_roles_agree_on_one_object() -> None:
    """The runner's and the plugin's readings are this reader's, so all three give one reason."""
    from flux_cli.objects import reason_of
    from flux_runner.cancel import cancel_reason

    for o in (obj(cancel={"reason": "a"}), obj(annotations={CANCEL_ANNOTATION: "b"}), obj()):
        expected = requested_cancel(o)
        assert cancel_reason(o) == (expected.reason if expected else None)
        assert reason_of(o) == (expected.reason if expected else None)


def test_the_model_reading_is_the_raw_one() -> None:
    from flux_api import Execution
    from flux_api.cancel import cancel_of

    recorded = {"cancellation": {"reason": "first", "source": "annotation"}}
    for o in (obj(cancel={"reason": "a", "force": True}), obj(annotations={CANCEL_ANNOTATION: "b"}), obj(),
              obj(cancel={"reason": "p"}, annotations={CANCELLED_BY_ANNOTATION: "parent"}),
              {**obj(cancel={"reason": "late", "cascade": False}), "status": recorded}):
        ex = Execution.model_validate({**o, "spec": {"workflow": "m:f", **o.get("spec", {})}})
        assert cancel_of(ex) == recorded_or_requested(o)
