"""Event reasons are an interface (dashboards select by them); phases a runner writes are read leniently."""

from __future__ import annotations

import pytest
from flux_api import Checkpoint, ChildRef, ChildStatus, EventReason, ExecutionStatus, Phase
from flux_api.writes import status_patch

pytestmark = pytest.mark.unit


def test_event_reasons_keep_their_strings() -> None:
    assert {r.value for r in EventReason} == {
        "CancelRequested", "Signalled", "SignalFailed", "ForceDeleted", "Cancelled", "CancelIgnored", "Started",
        "RetryStarted", "RetryScheduled", "Resumed", "SuspendRequested", "Suspended", "Waiting", "Woken", "SignalReceived", "RunnerDelayed", "RunnerUnschedulable", "RunnerRefused",
        "RunnerNotCreated", "LimitExceeded",
        "ReconcileFailed", "NamespaceNotEnabled", "SpawnRefused", "SpawnConflict", "RunStarted", "RunNameTaken",
        "Unscheduled", "InvalidSchedule", "InvalidTemplate", "MissedSchedule", "SkippedForbid", "TooManyRuns",
        "RunRefused"}
    assert EventReason.SIGNALLED == "Signalled" and f"{EventReason.SIGNALLED}" == "Signalled"


def test_known_phases_parse_as_the_enum() -> None:
    assert Checkpoint.model_validate({"state": "Cancelled"}).state is Phase.CANCELLED
    assert ChildStatus.model_validate({"name": "c", "phase": "Running"}).phase is Phase.RUNNING
    assert ChildRef.model_validate({"name": "c", "phase": "Failed"}).phase is Phase.FAILED


def test_an_unknown_phase_a_runner_wrote_reads_as_none() -> None:
    status = ExecutionStatus.model_validate({"checkpoint": {"state": "Paused"},
                                             "children": [{"name": "c", "phase": "Sleeping"}]})
    assert status.checkpoint.state is None and status.children[0].phase is None


def test_a_phase_is_written_as_its_string() -> None:
    assert status_patch({"checkpoint": {"state": Phase.RUNNING}}) == {"checkpoint": {"state": "Running"}}
