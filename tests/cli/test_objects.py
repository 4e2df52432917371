"""Objects read through the flux_api models, leniently: odd fields read as absent, a non-object is one error."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from flux_api import Checkpoint, ExecutionStatus, Phase
from flux_api.conditions import WAITING_REASONS, StartedReason
from flux_cli import objects
from flux_cli.errors import BadObjectError
from flux_cli.kube import KubeError, _items

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_a_field_that_does_not_validate_reads_as_absent_and_the_others_stay() -> None:
    status = objects.lenient(ExecutionStatus, {"phase": "Running", "retries": "many", "podName": 7,
                                                "nextRetryAt": "2026-11-21T12:00:00Z", "fromTheFuture": {"x": 1}})
    assert status.phase is Phase.RUNNING and status.nextRetryAt == datetime(2026, 11, 21, 12, tzinfo=timezone.utc)
    assert status.retries is None and status.podName is None
    assert objects.lenient(ExecutionStatus, "not a map").phase is None


def test_a_list_keeps_the_items_that_validate() -> None:
    good = {"type": "Finished", "status": "True", "reason": "Done", "lastTransitionTime": "2026-11-21T12:00:00Z"}
    status = objects.lenient(ExecutionStatus, {"conditions": [good, {"type": "Finished"}, "junk"]})
    assert [c.reason for c in status.conditions] == ["Done"]


def test_a_required_field_missing_reads_as_none() -> None:
    assert objects.lenient(Checkpoint, {"sequence": 3}).state is None


def test_an_unknown_phase_is_shown_as_it_is_and_no_status_is_pending() -> None:
    assert objects.phase_of({"status": {"phase": "Paused"}}) == "Paused"
    assert objects.phase_of({"metadata": {"name": "x"}}) is Phase.PENDING


def test_a_non_object_is_a_clear_error_not_a_crash() -> None:
    with pytest.raises(BadObjectError, match="where an object was expected"):
        objects.name_of(["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(KubeError, match="not all objects"):
        _items({"items": [{"metadata": {}}, "junk"]})


def test_the_operator_gives_the_started_condition_only_reasons_of_the_api_enum() -> None:
    # The plugin decides "waiting" by these reasons: the operator names them through StartedReason, never as text.
    source = "\n".join(path.read_text() for path in (REPO / "operator" / "flux_operator").rglob("*.py"))
    calls = re.findall(r"STARTED, (?:True|False), ([^,]+),", source)
    assert calls, "the operator sets the Started condition"
    assert all(arg.startswith("StartedReason.") or arg == "reason" for arg in calls), calls
    assert "StartedReason.START_AT_NOT_REACHED" in source and WAITING_REASONS <= set(StartedReason)



def test_a_listed_object_keeps_what_listings_read_and_drops_the_bulk():
    from flux_cli.objects import listed

    big = "x" * 100_000
    obj = {"metadata": {"name": "a"},
           "spec": {"workflow": "m:f", "input": big, "seed": {"data": big}, "podTemplate": {"env": [big]},
                    "cancel": {"reason": "r"}},
           "status": {"phase": "Running", "checkpoint": {"state": "Running", "updatedAt": "t", "data": big,
                                                          "results": {"s": big}, "stepCount": 3}}}
    kept = listed(obj)
    assert kept["spec"] == {"workflow": "m:f", "cancel": {"reason": "r"}}
    assert kept["status"]["checkpoint"] == {"state": "Running", "updatedAt": "t", "stepCount": 3}
    assert listed({"metadata": {}}) == {"metadata": {}}
