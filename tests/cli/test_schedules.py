"""Plugin logic for Schedules and the scheduling fields of executions: patches, rows, reasons, rendering."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flux_cli import objects
from flux_cli.executions import render
from flux_cli.rendering import to_text
from flux_cli.schedules import actions as schedules
from flux_cli.schedules import render as render_schedules
from flux_cli.executions.actions import StatusView
from flux_cli.errors import ArgumentError

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, 30, tzinfo=UTC)


def sched(name: str = "nightly", suspend: bool = False, annotations: dict | None = None, **status) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-11-21T11:00:00Z",
                         "annotations": annotations or {}},
            "spec": {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin", "suspend": suspend},
            "status": status}


def test_suspend_and_resume_patches_are_what_kubectl_patch_would_send():
    assert schedules.suspend_patch("maintenance") == {
        "metadata": {"annotations": {"workflows.flux.dev/unschedule-reason": "maintenance"}},
        "spec": {"suspend": True}}
    assert schedules.resume_patch() == {"metadata": {"annotations": {"workflows.flux.dev/unschedule-reason": None}},
                                        "spec": {"suspend": False}}
    for bad in (" ", "x" * 1025):
        with pytest.raises(ArgumentError):
            schedules.suspend_patch(bad)


def test_rows_show_cron_zone_active_last_next_and_why_suspended():
    [row] = schedules.rows([sched(suspend=True, annotations={"workflows.flux.dev/unschedule-reason": "done"},
                                  lastScheduleTime="2026-11-21T11:00:00Z", active=[{"name": "nightly-1"}])], NOW)
    assert row["schedule"] == "0 2 * * *" and row["timeZone"] == "Europe/Berlin"
    assert row["suspend"] is True and row["reason"] == "done"
    assert row["active"] == ["nightly-1"] and row["lastAgo"] == "60m"
    [running] = schedules.rows([sched(nextScheduleTime="2026-11-22T01:00:00.000Z")], NOW)
    assert running["reason"] is None and running["nextScheduleTime"] == "2026-11-22T01:00:00.000Z"
    table = to_text(render_schedules.schedule_table(schedules.rows([sched()], NOW), False))
    assert "NAME" in table and "nightly" in table and "Europe/Berlin" in table


def test_an_unschedule_by_the_workflow_is_the_reason_when_no_annotation_says_otherwise():
    [row] = schedules.rows([sched(suspend=True, lastUnschedule={"execution": "nightly-1", "reason": "quota"})], NOW)
    assert row["reason"] == "quota"


def execution(phase: str = "Pending", spec: dict | None = None, **status) -> dict:
    return {"metadata": {"name": "job", "namespace": "ns", "labels": {"workflows.flux.dev/schedule": "nightly"},
                         "annotations": {"workflows.flux.dev/scheduled-at": "2026-11-21T12:00:00.000Z"}},
            "spec": {"workflow": "a.b:c", **(spec or {})}, "status": {"phase": phase, **status}}


def started(reason: str, message: str, status: str = "False") -> dict:
    """The Started condition as the operator writes it next to status.message."""
    return {"type": "Started", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-11-21T12:00:00.000Z"}


def waiting(reason: str, message: str, phase: str = "Pending") -> dict:
    return execution(phase, message=message, conditions=[started(reason, message)])


def test_list_and_tree_say_when_a_pending_execution_starts_or_retries():
    assert objects.reason_of(waiting("StartAtNotReached", "waiting: starts at 2026-11-21T13:00:00.000Z")) == \
        "starts at 2026-11-21T13:00:00.000Z"
    assert objects.reason_of(execution(retries=2, nextRetryAt="2026-11-21T12:01:00.000Z")) == \
        "retry 2 at 2026-11-21T12:01:00.000Z"
    assert objects.reason_of(waiting("StartAtNotReached", "waiting: x", phase="Running")) is None


def test_waiting_is_read_from_the_started_condition_not_from_the_message_wording():
    quota = "waiting: could not create the runner's pod (Quota: exceeded quota); retrying with backoff"
    assert objects.reason_of(waiting("QuotaExceeded", quota)).startswith("could not create the runner's pod")
    # Other wording, same condition: still waiting; the message alone, or a started runner: not waiting.
    assert objects.reason_of(waiting("RunnerDelayed", "the create was refused")) == "the create was refused"
    assert objects.reason_of(waiting("RunnerUnschedulable", "waiting: runner pod x-runner is not scheduled: 0/1 "
                                     "nodes are available")) == "runner pod x-runner is not scheduled: 0/1 nodes are available"
    assert objects.reason_of(execution(message="waiting: starts at 2026-11-21T13:00:00.000Z")) is None
    assert objects.reason_of(execution(conditions=[started("RunnerStarted", "waiting: no", "True")])) is None
    # A condition the model refuses is ignored, not a crash.
    assert objects.reason_of(execution(conditions=[{"type": "Started", "status": "Maybe"}, "junk"])) is None


def test_status_shows_schedule_start_retry_ttl_and_unschedule():
    obj = execution("Running", spec={"startAt": "2026-11-21T11:00:00Z", "retry": {"limit": 3, "backoffSeconds": 5},
                                     "ttlSecondsAfterFinished": 600},
                    retries=1, unscheduleRequest={"reason": "quota reached"})
    data = render.status_json(StatusView(obj, []))
    assert data["scheduling"]["schedule"] == "nightly"
    assert data["scheduling"]["retries"] == 1
    text = to_text(render.status_text(StatusView(obj, []), NOW))
    assert "Scheduling:" in text
    for shown in ("nightly", "limit 3, backoff 5s", "600s after finishing", "quota reached"):
        assert shown in text
    plain = to_text(render.status_text(StatusView({"metadata": {"name": "x"}, "spec": {}}, []), NOW))
    assert "Scheduling:" in plain


def test_cancel_running_counts_only_the_schedules_own_runs():
    schedule = {"metadata": {"name": "nightly", "uid": "s1"}, "status": {"runs": ["r1"]}}

    def run(uid: str, owner: str = "s1", controller: bool = True) -> dict:
        return {"metadata": {"name": f"run-{uid}", "uid": uid,
                             "ownerReferences": [{"uid": owner, "controller": controller}]}}

    labelled = [run("r1"), run("forged"), run("r1-copy", controller=False), run("other", owner="s2")]
    assert [r["metadata"]["uid"] for r in schedules.own_runs(schedule, labelled)] == ["r1"]
    # A Schedule written by an operator from before the record: its controlled runs.
    legacy = {"metadata": {"name": "nightly", "uid": "s1"}, "status": {}}
    assert [r["metadata"]["uid"] for r in schedules.own_runs(legacy, labelled)] == ["r1", "forged"]
