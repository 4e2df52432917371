"""The state machine, phase by phase and event by event, with no cluster."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flux_api import CANCEL_ANNOTATION, PARENT_LABEL, Execution
from flux_api.names import CANCELLED_BY_ANNOTATION
from flux_operator.execution.machine import (
    CancelChild,
    CreateChild,
    DeletePod,
    EmitEvent,
    EnsureRunner,
    MakeProgress,
    Observe,
    PatchStatus,
    PodView,
    decide,
    requested_at,
)
from flux_operator.execution.cancel import TOLD_AFTER_SECONDS
from flux_operator.ownership import PROGRESS, Memory, token_hash
from tests.operator.builders import NOW, apply, of, status_patch, tokens

pytestmark = pytest.mark.unit

POD = "job-runner"


def execution(phase: str | None = None, cancel: dict | None = None, annotations: dict | None = None,
              checkpoint: dict | None = None, status: dict | None = None, grace: int = 30,
              deadline: int | None = None, name: str = "job", labels: dict | None = None) -> Execution:
    st: dict[str, Any] = dict(status or {})
    if phase:
        st.setdefault("phase", phase)
        if phase != "Pending":
            st.setdefault("startedAt", "2026-11-21T11:59:00.000Z")
            st.setdefault("podName", POD)
    if checkpoint:
        st["checkpoint"] = {"sequence": 3, "updatedAt": "2026-11-21T11:59:59.500Z", **checkpoint}
    spec: dict[str, Any] = {"workflow": "pkg.mod:main", "gracePeriodSeconds": grace}
    if cancel:
        spec["cancel"] = {"cascade": True, "force": False, **cancel}
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    return Execution.model_validate({
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1,
                     "creationTimestamp": "2026-11-21T11:58:00Z", "annotations": annotations or {},
                     "labels": labels or {}},
        "spec": spec, "status": st,
    })


def child(name: str, phase: str, cancel: dict | None = None) -> Execution:
    """A child the operator made for `job`: controlled by it (and recorded by `parent`)."""
    kid = execution(phase=phase, cancel=cancel, name=name, labels={PARENT_LABEL: "job"})
    kid.metadata["ownerReferences"] = [{"uid": "uid-job", "controller": True, "kind": "Execution", "name": "job"}]
    return kid


def parent(ex: Execution, *kids: Execution) -> Execution:
    """`ex` with its record of having made `kids` (status.children with their UIDs)."""
    entries = [{"name": k.name, "uid": k.metadata["uid"], "phase": k.phase.value} for k in kids]
    return Execution.model_validate({**ex.model_dump(mode="json"),
                                     "status": {**ex.status.model_dump(mode="json"), "children": entries}})


def running_pod(**kw) -> PodView:
    return PodView(name=POD, phase="Running", started=True, **kw)


def exited_pod(**kw) -> PodView:
    """The runner's pod once its runner exited 0 (it does right after its final checkpoint)."""
    return PodView(name=POD, phase="Succeeded", started=True, **kw)


def events(actions) -> list[str]:
    return [a.reason for a in of(actions, EmitEvent)]


# --- starting and running ---------------------------------------------------------------------------

def test_new_execution_gets_a_runner_and_is_pending():
    actions = decide(execution(), None, [], NOW)
    assert of(actions, EnsureRunner)
    assert status_patch(actions)["phase"] == "Pending"
    assert status_patch(actions)["podName"] == POD
    assert isinstance(actions[-2], PatchStatus) and isinstance(actions[-1], EnsureRunner), \
        "the status write records the creation tokens before anything is created"


def test_pending_with_unstarted_pod_waits():
    assert decide(execution("Pending", status={"observedGeneration": 1}), PodView(POD), [], NOW) == []


def test_started_pod_moves_to_running_once():
    ex = execution("Pending")
    actions = decide(ex, running_pod(), [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Running" and patch["startedAt"].startswith("2026-11-21T12:00:00")
    assert [c["type"] for c in patch["conditions"]] == ["Started"]
    assert events(actions) == ["Started"]
    assert decide(apply(ex, actions), running_pod(), [], NOW) == []


@pytest.mark.parametrize("state,phase", [("Succeeded", "Succeeded"), ("Failed", "Failed")])
def test_final_checkpoint_finishes_the_execution(state, phase):
    ex = execution("Running", checkpoint={"state": state, "error": "boom" if state == "Failed" else None,
                                          "result": {"n": 1} if state == "Succeeded" else None})
    patch = status_patch(decide(ex, exited_pod(), [], NOW))
    assert patch["phase"] == phase and "finishedAt" in patch
    assert any(c["type"] == "Finished" and c["reason"] == phase for c in patch["conditions"])
    assert status_patch(decide(ex, None, [], NOW))["phase"] == phase, "its pod gone: the same"
    if state == "Failed":
        assert patch["message"] == "boom"


@pytest.mark.parametrize("state,phase", [("Succeeded", "Succeeded"), ("Failed", "Failed")])
def test_a_verdict_before_the_kubelet_reports_the_start_still_records_the_start(state, phase):
    # The runner finished before the node said its container was running: the execution must not
    # end with no startedAt and no Started condition, as if it had never run.
    ex = execution("Pending", status={"podName": POD},
                   checkpoint={"state": state, "error": "boom" if state == "Failed" else None})
    actions = decide(ex, PodView(name=POD, phase=phase, started=False), [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == phase and patch["startedAt"] and patch["finishedAt"]
    assert {c["type"]: c["status"] for c in patch["conditions"]} == {"Started": "True", "Finished": "True"}
    assert events(actions)[0] == "Started"


def test_pod_failure_without_checkpoint_fails_with_the_exit_message():
    pod = PodView(POD, phase="Failed", started=True, exit_message="runner exited with code 137")
    patch = status_patch(decide(execution("Running"), pod, [], NOW))
    assert patch["phase"] == "Failed" and "137" in patch["message"]


def test_vanished_pod_resumes_in_a_new_pod_from_the_checkpoint():
    """A drain or an eviction deleted the pod: not the workflow's fault, and no cancel was asked for."""
    actions = decide(execution("Running", checkpoint={"state": "Running"}), None, [], NOW)
    assert of(actions, EnsureRunner)
    patch = status_patch(actions)
    assert patch["resumes"] == 1 and patch["runnerObjects"]["pod"]["name"] == POD
    assert [(e.reason, e.key) for e in of(actions, EmitEvent)] == [("Resumed", "1")]


def test_resumes_are_bounded():
    actions = decide(execution("Running", status={"resumes": 5}), None, [], NOW)
    assert status_patch(actions)["phase"] == "Failed"
    assert "given up after 5 resumes" in status_patch(actions)["message"]
    assert not of(actions, EnsureRunner)


def test_an_evicted_pod_is_cleared_away_for_its_successor():
    evicted = PodView(POD, phase="Failed", started=True, reason="Evicted", uid="p1")
    actions = decide(execution("Running"), evicted, [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 0, "p1")]
    assert "phase" not in status_patch(actions), "not Failed: it resumes"


def test_a_cancelled_execution_whose_pod_vanished_is_not_resumed():
    actions = decide(execution("Running", cancel={"reason": "r"}, checkpoint={"state": "Running"}), None, [], NOW)
    assert not of(actions, EnsureRunner)
    assert status_patch(actions)["phase"] == "Cancelled"


def test_pod_succeeded_without_final_checkpoint_is_a_failure():
    pod = PodView(POD, phase="Succeeded", started=True)
    assert status_patch(decide(execution("Running"), pod, [], NOW))["phase"] == "Failed"


# --- cancel while pending -------------------------------------------------------------------------

def test_cancel_before_any_pod_never_runs():
    actions = decide(execution(cancel={"reason": "no"}), None, [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Cancelled"
    assert patch["cancellation"]["outcome"] == "NotStarted"
    assert patch["cancellation"]["source"] == "spec"
    assert not of(actions, EnsureRunner), "a pending execution never runs"
    (told,) = of(actions, EmitEvent)
    assert told.reason == "Cancelled", "requested and concluded in one reconcile: one Event tells both"
    assert told.message == "cancel requested (spec): no; cancelled before it started (NotStarted)"
    assert ("outcome", "NotStarted") in [(o.name, o.value) for o in of(actions, Observe)]


def test_cancel_pending_with_a_scheduled_pod_stops_it_and_reports_not_started():
    ex = execution("Pending", cancel={"reason": "no"})
    actions = decide(ex, PodView(POD), [], NOW)
    assert status_patch(actions)["phase"] == "Cancelling"
    assert of(actions, DeletePod) == [DeletePod(POD, 30)]
    done = decide(apply(ex, actions), None, [], NOW)
    assert status_patch(done)["phase"] == "Cancelled"
    assert status_patch(done)["cancellation"]["outcome"] == "NotStarted"


# --- cancel while running ---------------------------------------------------------------------------

def test_cancel_running_moves_to_cancelling_and_signals_with_grace():
    ex = execution("Running", cancel={"reason": "stop"}, grace=12)
    actions = decide(ex, running_pod(), [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Cancelling"
    c = patch["cancellation"]
    assert c["reason"] == "stop" and c["source"] == "spec"
    assert c["requestedAt"] == c["signalledAt"] == "2026-11-21T12:00:00.000Z"
    assert of(actions, DeletePod) == [DeletePod(POD, 12)]
    assert events(actions) == [], "told when it concludes, or TOLD_AFTER_SECONDS on if it has not by then"
    assert not of(actions, PatchStatus)[0].fenced, "a runner's final checkpoint cannot make this record stale"
    assert any(co["type"] == "CancelRequested" and co["status"] == "True" for co in patch["conditions"])


def test_force_means_grace_zero():
    actions = decide(execution("Running", cancel={"reason": "now", "force": True}), running_pod(), [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 0)]


def test_annotation_behaves_like_spec_with_its_own_source():
    actions = decide(execution("Running", annotations={CANCEL_ANNOTATION: "via annotation"}), running_pod(), [],
                     NOW)
    c = status_patch(actions)["cancellation"]
    assert (c["source"], c["reason"]) == ("annotation", "via annotation")
    assert of(actions, DeletePod)


def test_empty_annotation_is_not_a_cancel():
    assert not of(decide(execution("Running", annotations={CANCEL_ANNOTATION: " "}), running_pod(), [], NOW),
                  DeletePod)


def test_spec_wins_over_annotation():
    ex = execution("Running", cancel={"reason": "spec"}, annotations={CANCEL_ANNOTATION: "ann"})
    assert status_patch(decide(ex, running_pod(), [], NOW))["cancellation"]["source"] == "spec"


def test_parent_cancel_reports_source_parent():
    ex = execution("Running", cancel={"reason": "parent p cancelled: x"}, annotations={CANCELLED_BY_ANNOTATION: "p"})
    assert status_patch(decide(ex, running_pod(), [], NOW))["cancellation"]["source"] == "parent"


def test_active_deadline_cancels_with_source_deadline():
    ex = execution("Running", deadline=30)  # started 11:59:00, so the deadline was 11:59:30
    c = status_patch(decide(ex, running_pod(), [], NOW))["cancellation"]
    assert (c["source"], c["reason"]) == ("deadline", "DeadlineExceeded")


def test_deadline_not_yet_reached_does_nothing():
    ex = execution("Running", deadline=3600, status={"observedGeneration": 1})
    assert decide(ex, running_pod(), [], NOW) == []


def test_cascade_cancels_live_children_only():
    kids = [child("job-a", "Running"), child("job-b", "Succeeded"), child("job-c", "Running", cancel={"reason": "x"}),
            child("job-d", "Pending")]
    actions = decide(parent(execution("Running", cancel={"reason": "stop"}), *kids), running_pod(), kids, NOW)
    assert of(actions, CancelChild) == [CancelChild("job-a", "parent job cancelled: stop", False, "job"),
                                        CancelChild("job-d", "parent job cancelled: stop", False, "job")]
    assert status_patch(actions)["cancellation"]["children"] == [
        {"name": n, "phase": p} for n, p in [("job-a", "Running"), ("job-b", "Succeeded"), ("job-c", "Running"),
                                             ("job-d", "Pending")]]


def test_no_cascade_leaves_children_alone():
    kid = child("job-a", "Running")
    actions = decide(parent(execution("Running", cancel={"reason": "stop", "cascade": False}), kid), running_pod(),
                     [kid], NOW)
    assert not of(actions, CancelChild)
    assert of(actions, DeletePod)


def test_force_cascades_force():
    kid = child("job-a", "Running")
    actions = decide(parent(execution("Running", cancel={"reason": "x", "force": True}), kid), running_pod(),
                     [kid], NOW)
    assert of(actions, CancelChild)[0].force is True


# --- cancelling -------------------------------------------------------------------------------------

def cancelling(checkpoint: dict | None = None) -> Execution:
    """An execution the operator already moved to Cancelling; the runner may write afterwards."""
    ex = execution("Running", cancel={"reason": "stop"})
    ex = apply(ex, decide(ex, running_pod(), [], NOW - timedelta(seconds=2)))
    if checkpoint:
        cp = {"sequence": 3, "updatedAt": "2026-11-21T11:59:59.500Z", **checkpoint}
        ex = Execution.model_validate({**ex.model_dump(mode="json"),
                                       "status": {**ex.status.model_dump(mode="json"), "checkpoint": cp}})
    return ex


def test_a_cancel_that_concludes_soon_is_told_by_one_event_with_the_request_and_the_signal():
    ex = cancelling(checkpoint={"state": "Cancelled", "updatedAt": "2026-11-21T11:59:59.900Z"})
    (told,) = of(decide(ex, None, [], NOW), EmitEvent)
    assert told.reason == "Cancelled"
    assert told.message == ("cancel requested (spec): stop; runner pod job-runner deleted with grace period 30s "
                            "(SIGTERM); Cancelled: outcome Graceful")


def test_a_slow_cancel_has_its_request_told_once_told_after_seconds_passed():
    ex = cancelling()  # requested 2 s before NOW
    stopping = running_pod(terminating=True)
    stopping.deletion_at = NOW + timedelta(seconds=28)
    assert decide(ex, stopping, [], NOW + timedelta(seconds=TOLD_AFTER_SECONDS - 2.1)) == []
    (told,) = of(decide(ex, stopping, [], NOW + timedelta(seconds=TOLD_AFTER_SECONDS - 2)), EmitEvent)
    assert (told.reason, told.message, told.signalled) == (
        "CancelRequested", "cancel requested (spec): stop", "runner pod job-runner deleted with grace period 30s "
                                                             "(SIGTERM)")
    assert not of(decide(ex, stopping, [], NOW + timedelta(seconds=9)), PatchStatus), "an Event, not a write"


def test_cancelling_waits_for_the_pod_without_signalling_twice():
    ex = cancelling()
    assert ex.phase == "Cancelling"
    assert decide(ex, running_pod(terminating=True), [], NOW) == []


def test_cancelling_after_operator_restart_signals_again_if_the_delete_was_lost():
    actions = decide(cancelling(), running_pod(), [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 30)]
    assert not of(actions, PatchStatus), "requestedAt and signalledAt are kept, not rewritten"


def test_graceful_outcome_when_the_runner_acknowledged():
    ex = cancelling(checkpoint={"state": "Cancelled", "updatedAt": "2026-11-21T11:59:59.900Z"})
    actions = decide(ex, None, [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Cancelled"
    c = patch["cancellation"]
    assert c["outcome"] == "Graceful"
    assert c["acknowledgedAt"] == "2026-11-21T11:59:59.900Z"
    assert c["completedAt"] == "2026-11-21T12:00:00.000Z"
    assert "Cancelled" in events(actions)
    assert [o.name for o in of(actions, Observe)] == ["outcome", "complete_seconds"]


def test_acknowledgement_costs_no_write_of_its_own_while_the_pod_is_still_stopping():
    ex = cancelling(checkpoint={"state": "Cancelled", "updatedAt": "2026-11-21T11:59:59.900Z"})
    assert not of(decide(ex, running_pod(terminating=True), [], NOW), PatchStatus), "it goes with the final write"


def test_acknowledgement_goes_with_a_write_made_anyway():
    ex = cancelling(checkpoint={"state": "Cancelled", "updatedAt": "2026-11-21T11:59:59.900Z"})
    overdue = running_pod(terminating=True)
    overdue.deletion_at = NOW - timedelta(seconds=60)  # past its grace period: escalated, a write anyway
    patch = status_patch(decide(ex, overdue, [], NOW))
    assert patch["cancellation"]["acknowledgedAt"] == "2026-11-21T11:59:59.900Z"
    assert patch["cancellation"]["forcedAt"] == "2026-11-21T12:00:00.000Z" and "phase" not in patch


def test_killed_outcome_without_a_final_checkpoint():
    patch = status_patch(decide(cancelling(checkpoint={"state": "Running"}), None, [], NOW))
    assert (patch["phase"], patch["cancellation"]["outcome"]) == ("Cancelled", "Killed")


def cancelling_parent(*names: str) -> Execution:
    """A parent the operator moved to Cancelling while its children (`names`) were Running."""
    kids = [child(name, "Running") for name in names]
    ex = parent(execution("Running", cancel={"reason": "stop"}), *kids)
    return apply(ex, decide(ex, running_pod(), kids, NOW - timedelta(seconds=2)))


def test_cancelled_only_once_children_are_terminal():
    ex = cancelling_parent("job-a")
    actions = decide(ex, None, [child("job-a", "Cancelling", cancel={"reason": "r"})], NOW)
    assert "phase" not in status_patch(actions) and "cancellation" not in status_patch(actions), \
        "a child still going, Running -> Cancelling: no write of its own"
    done = decide(ex, None, [child("job-a", "Cancelled", cancel={"reason": "r"})], NOW)
    assert status_patch(done)["phase"] == "Cancelled"
    assert status_patch(done)["cancellation"]["children"] == [{"name": "job-a", "phase": "Cancelled"}]


def test_a_cancelling_parent_writes_its_childrens_phases_when_one_ends_or_with_another_write():
    ex = cancelling_parent("job-a", "job-b")
    one_ended = [child("job-a", "Cancelled", cancel={"reason": "r"}),
                 child("job-b", "Cancelling", cancel={"reason": "r"})]
    patch = status_patch(decide(ex, None, one_ended, NOW))
    assert "phase" not in patch
    assert patch["cancellation"]["children"] == [{"name": "job-a", "phase": "Cancelled"},
                                                 {"name": "job-b", "phase": "Cancelling"}], "b's step goes with it"
    overdue = running_pod(terminating=True)
    overdue.deletion_at = NOW - timedelta(seconds=60)  # past its grace period: escalated, a write anyway
    still_going = [child("job-a", "Cancelling", cancel={"reason": "r"}), child("job-b", "Running")]
    forced = status_patch(decide(ex, overdue, still_going, NOW))["cancellation"]
    assert forced["forcedAt"] and forced["children"][0] == {"name": "job-a", "phase": "Cancelling"}


def test_without_cascade_the_parent_does_not_wait_for_children():
    ex = parent(execution("Running", cancel={"reason": "stop", "cascade": False}), child("job-a", "Running"))
    ex = apply(ex, decide(ex, running_pod(), [child("job-a", "Running")], NOW))
    patch = status_patch(decide(ex, None, [child("job-a", "Running")], NOW))
    assert patch["phase"] == "Cancelled"


def test_workflow_finishing_during_grace_is_too_late():
    patch = status_patch(decide(cancelling(checkpoint={"state": "Succeeded", "result": 1}), None, [], NOW))
    assert (patch["phase"], patch["cancellation"]["outcome"]) == ("Succeeded", "TooLate")


def test_cancel_racing_completion_gives_exactly_one_terminal_phase():
    ex = execution("Running", cancel={"reason": "late"}, checkpoint={"state": "Succeeded", "result": 3})
    actions = decide(ex, exited_pod(), [], NOW)
    patch = status_patch(actions)
    assert (patch["phase"], patch["cancellation"]["outcome"]) == ("Succeeded", "TooLate")
    assert not of(actions, DeletePod)
    assert decide(apply(ex, actions), exited_pod(), [], NOW) == []


def test_a_verdict_stands_only_once_its_pod_has_ended():
    """A runner that writes Succeeded and runs on keeps its deadline, its slot and its cancel until its pod ends."""
    lying = execution("Running", checkpoint={"state": "Succeeded", "result": 3})
    waiting = decide(lying, running_pod(), [], NOW)
    assert "phase" not in status_patch(waiting) and not of(waiting, DeletePod), "still running: not decided yet"
    cancelled = execution("Running", cancel={"reason": "stop"}, checkpoint={"state": "Succeeded", "result": 3})
    actions = decide(cancelled, running_pod(uid="p"), [], NOW)
    assert status_patch(actions)["phase"] == "Cancelling" and of(actions, DeletePod)
    ended = decide(apply(cancelled, actions), None, [], NOW)
    assert (status_patch(ended)["phase"], status_patch(ended)["cancellation"]["outcome"]) == ("Succeeded", "TooLate")
    overdue = execution("Running", deadline=30, checkpoint={"state": "Succeeded", "result": 3})
    assert status_patch(decide(overdue, running_pod(uid="p"), [], NOW))["phase"] == "Cancelling"


# --- already finished -------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
def test_cancel_of_a_finished_execution_is_answered_once(phase):
    ex = execution(phase, annotations={CANCEL_ANNOTATION: "too late"}, status={"observedGeneration": 1})
    actions = decide(ex, None, [], NOW)
    patch = status_patch(actions)
    assert "phase" not in patch, "a finished execution keeps its phase"
    assert events(actions) == ["CancelIgnored"]
    assert phase in of(actions, EmitEvent)[0].message
    assert decide(apply(ex, actions), None, [], NOW) == []


def test_finished_execution_without_cancel_is_left_alone():
    assert decide(execution("Succeeded", status={"observedGeneration": 1}), None, [], NOW) == []


# --- children -------------------------------------------------------------------------------------

def test_spawn_requests_become_children_and_are_mirrored():
    done = child("job-a", "Succeeded")
    done = Execution.model_validate({**done.model_dump(mode="json"),
                                     "status": {**done.status.model_dump(mode="json"),
                                                "checkpoint": {"state": "Succeeded", "result": 42}}})
    ex = parent(execution("Running", status={"spawnRequests": [
        {"name": "job-a", "workflow": "p.m:f", "input": {"x": 1}}, {"name": "job-b", "workflow": "p.m:f"}]}), done)
    actions = decide(ex, running_pod(), [done], NOW, tokens())
    assert of(actions, CreateChild) == [CreateChild("job-b", "p.m:f", {}, "t1")]
    assert status_patch(actions)["children"] == [
        {"name": "job-a", "uid": "uid-job-a", "phase": "Succeeded", "result": 42},
        {"name": "job-b", "phase": "Pending", "tokens": [token_hash("t1")]}]


def test_no_children_are_created_while_cancelling():
    ex = cancelling()
    ex = Execution.model_validate({**ex.model_dump(mode="json"),
                                   "status": {**ex.status.model_dump(mode="json"),
                                              "spawnRequests": [{"name": "job-z", "workflow": "p.m:f"}]}})
    assert not of(decide(ex, running_pod(terminating=True), [], NOW), CreateChild)


# --- bookkeeping ------------------------------------------------------------------------------------

def test_observed_generation_follows_the_spec():
    ex = execution("Running", status={"observedGeneration": 0})
    assert status_patch(decide(ex, running_pod(), [], NOW)) == {"observedGeneration": 1}


def test_request_time_comes_from_managed_fields():
    ex = execution("Running", cancel={"reason": "x"})
    ex.metadata["managedFields"] = [
        {"manager": "kubectl-create", "time": "2026-11-21T11:00:00Z", "fieldsV1": {"f:spec": {"f:workflow": {}}}},
        {"manager": "kubectl-patch", "time": "2026-11-21T11:59:58Z", "fieldsV1": {"f:spec": {"f:cancel": {}}}},
    ]
    from flux_operator.execution.machine import cancel_intent
    assert requested_at(ex, cancel_intent(ex, NOW), NOW) == datetime(2026, 11, 21, 11, 59, 58, tzinfo=timezone.utc)
    signal = [o for o in of(decide(ex, running_pod(), [], NOW), Observe) if o.name == "signal_seconds"]
    assert signal[0].value == pytest.approx(2.0)


SCENARIOS = [
    (execution(), None, []),
    (execution("Pending"), running_pod(), []),
    (parent(execution("Running", cancel={"reason": "r"}), child("job-a", "Running")), running_pod(),
     [child("job-a", "Running")]),
    (execution("Running", annotations={CANCEL_ANNOTATION: "r"}), None, []),
    (execution("Running", checkpoint={"state": "Succeeded"}), running_pod(), []),
    (execution("Succeeded", cancel={"reason": "r"}), None, []),
]


@pytest.mark.parametrize("ex,pod,kids", SCENARIOS)
def test_deciding_again_on_the_result_changes_no_status(ex, pod, kids):
    """Level-triggered: once the status is written, the same observation asks for no new status."""
    memory = tokens()
    after = apply(ex, decide(ex, pod, kids, NOW, memory))
    assert status_patch(decide(after, pod, kids, NOW, memory)) == {}


# --- hardening: outcomes that tell the truth, nothing stuck, caps ------------------------------------

def test_a_cleanup_that_raised_is_its_own_outcome():
    ex = cancelling({"state": "Cancelled", "error": "cleanup failed: OSError: disk full"})
    patch = status_patch(decide(ex, None, [], NOW))
    assert patch["cancellation"]["outcome"] == "CleanupFailed"
    assert "cleanup raised: cleanup failed: OSError: disk full" in patch["message"]


def test_clean_stop_cut_cleanup_and_failed_cleanup_read_differently():
    messages = {
        "Graceful": status_patch(decide(cancelling({"state": "Cancelled"}), None, [], NOW))["message"],
        "CleanupFailed": status_patch(decide(cancelling({"state": "Cancelled", "error": "x"}), None, [], NOW))["message"],
        "Killed": status_patch(decide(cancelling({"state": "Running"}), None, [], NOW))["message"],
    }
    assert messages["Graceful"] == "cancelled (Graceful): stop"
    assert "(CleanupFailed)" in messages["CleanupFailed"] and "raised" in messages["CleanupFailed"]
    assert "(Killed)" in messages["Killed"] and "grace period ran out" in messages["Killed"]


def overdue_pod(seconds_past_grace: float) -> PodView:
    deadline = NOW - timedelta(seconds=seconds_past_grace)
    return running_pod(terminating=True, deletion_at=deadline, uid="p1")


def test_a_pod_that_will_not_go_is_force_deleted_after_the_margin():
    ex = cancelling({"state": "Running"})
    assert not of(decide(ex, overdue_pod(14), [], NOW), DeletePod), "inside the margin: wait"
    actions = decide(ex, overdue_pod(16), [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 0, "p1")]
    assert [e.reason for e in of(actions, EmitEvent)] == ["ForceDeleted"]
    forced = apply(ex, actions)
    assert forced.status.cancellation.forcedAt
    patch = status_patch(decide(forced, None, [], NOW))
    assert (patch["phase"], patch["cancellation"]["outcome"]) == ("Cancelled", "ForceDeleted")
    assert "not confirmed by the node" in patch["message"]


def test_cancelling_without_its_block_still_finishes():
    ex = execution("Cancelling")
    patch = status_patch(decide(ex, None, [], NOW))
    assert patch["phase"] == "Cancelled"
    assert patch["cancellation"]["reason"].startswith("unknown")


def test_a_spawn_past_the_depth_limit_is_refused_with_a_clear_error():
    deep = execution("Running", labels={"workflows.flux.dev/depth": "5"},
                     status={"spawnRequests": [{"name": "job-kid", "workflow": "a.b:c"}]})
    actions = decide(deep, running_pod(), [], NOW)
    assert not of(actions, CreateChild)
    assert status_patch(actions)["children"] == [
        {"name": "job-kid", "phase": "Failed", "reason": "TooDeep",
         "error": "refused: a tree of executions is at most 5 levels deep"}]
    assert [(e.reason, e.type, e.key) for e in of(actions, EmitEvent)] == [("SpawnRefused", "Warning", "job-kid")]


def test_a_spawn_within_the_depth_limit_goes_ahead():
    ok = execution("Running", labels={"workflows.flux.dev/depth": "4"},
                   status={"spawnRequests": [{"name": "job-kid", "workflow": "a.b:c"}]})
    assert of(decide(ok, running_pod(), [], NOW), CreateChild)


def test_the_signal_is_reported_once_even_if_the_operator_died_right_after_the_delete():
    """Restarted: a cancel requested, the runner ran, its pod is already gone, nothing recorded yet."""
    ex = execution("Running", cancel={"reason": "r"}, checkpoint={"state": "Cancelled"})
    actions = decide(ex, None, [], NOW)
    (told,) = of(actions, EmitEvent)
    assert told.reason == "Cancelled" and not told.signalled
    assert told.message.startswith("cancel requested (spec): r; runner pod job-runner was already gone"), told.message
    assert told.message.endswith("Cancelled: outcome Graceful"), told.message
    assert status_patch(actions)["cancellation"]["outcome"] == "Graceful"
    assert of(actions, PatchStatus)[0].fenced, "a conclusion reads the runner's checkpoint: it is fenced"


def test_a_named_runner_error_becomes_the_finished_reason():
    ex = execution("Running", checkpoint={"state": "Failed", "error": "CheckpointTooLarge: 300000 bytes"})
    patch = status_patch(decide(ex, exited_pod(), [], NOW))
    finished = next(c for c in patch["conditions"] if c["type"] == "Finished")
    assert (patch["phase"], finished["reason"]) == ("Failed", "CheckpointTooLarge")
    plain = execution("Running", checkpoint={"state": "Failed", "error": "ValueError: bad"})
    finished = next(c for c in status_patch(decide(plain, exited_pod(), [], NOW))["conditions"]
                    if c["type"] == "Finished")
    assert finished["reason"] == "ValueError"


@pytest.mark.parametrize("error", ["LimitExceeded: spec.podTemplate.resources.limits.memory: 9Gi is more than 1Gi",
                                   "RunnerRefused: quota", "Cancelled: by the platform"])
def test_a_runner_error_cannot_pass_for_the_operators_reason(error):
    """A workflow may raise an exception of any name: one named as the platform's refusal reads as its own."""
    ex = execution("Running", checkpoint={"state": "Failed", "error": error})
    patch = status_patch(decide(ex, exited_pod(), [], NOW))
    finished = next(c for c in patch["conditions"] if c["type"] == "Finished")
    assert finished["reason"] == "Failed" and patch["message"] == f"workflow error {error}"


def test_a_pod_held_by_finalizers_is_force_deleted_once_and_concludes_once_its_containers_ended():
    """A tenant's finalizer on its runner pod: the force delete goes out once (no delete removes a finalizer),
    and the cancel concludes when the kubelet says every container ended, though the object stays."""
    ex = cancelling({"state": "Running"})
    forced = apply(ex, decide(ex, overdue_pod(16), [], NOW))
    assert forced.status.cancellation.forcedAt
    again = decide(forced, overdue_pod(60), [], NOW)
    assert not of(again, DeletePod) and "phase" not in (status_patch(again) or {}), "still running: wait"
    ended = dataclasses.replace(overdue_pod(60), phase="Failed")
    assert "phase" not in (status_patch(decide(forced, ended, [], NOW)) or {}), "no finalizer: the kubelet removes it"
    patch = status_patch(decide(forced, dataclasses.replace(ended, held=True), [], NOW))
    assert patch["phase"] == "Cancelled"


def test_a_runner_stopped_without_a_cancel_resumes_instead_of_failing():
    """An eviction's SIGTERM: the runner cleaned up and wrote Cancelled, but nobody asked for a cancel."""
    exited = PodView(POD, phase="Succeeded", started=True, uid="p1")
    ex = execution("Running", checkpoint={"state": "Cancelled"})
    actions = decide(ex, exited, [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 0, "p1")]
    assert "phase" not in status_patch(actions), "not Failed"
    actions = decide(ex, None, [], NOW)
    assert of(actions, EnsureRunner)
    patch = status_patch(actions)
    assert patch["resumes"] == 1
    assert patch["checkpoint"] == {"state": "Running", "error": None, "result": None}, "steps kept, verdict gone"


def test_acknowledged_at_cannot_be_moved_by_the_runners_clock():
    forged = cancelling({"state": "Cancelled", "updatedAt": "2000-01-01T00:00:00.000Z"})
    ack = status_patch(decide(forged, None, [], NOW))["cancellation"]["acknowledgedAt"]
    assert ack == "2026-11-21T12:00:00.000Z"
    future = cancelling({"state": "Cancelled", "updatedAt": "2099-01-01T00:00:00.000Z"})
    assert status_patch(decide(future, None, [], NOW))["cancellation"]["acknowledgedAt"] == ack
    honest = cancelling({"state": "Cancelled", "updatedAt": "2026-11-21T11:59:59.500Z"})
    assert status_patch(decide(honest, None, [], NOW))["cancellation"]["acknowledgedAt"] == "2026-11-21T11:59:59.500Z"


def test_a_checkpoint_state_this_version_does_not_know_is_no_verdict() -> None:
    # A runner owns its checkpoint: an unknown state must neither crash nor end the run; a pod that then
    # exits without a known final state fails the execution.
    ex = execution("Running", checkpoint={"state": "Paused"})
    running = decide(ex, PodView(POD, phase="Running", started=True), [], NOW)
    assert "phase" not in next((a.patch for a in running if isinstance(a, PatchStatus)), {})
    actions = decide(ex, PodView(POD, phase="Succeeded", started=True), [], NOW)
    patch = next(a.patch for a in actions if isinstance(a, PatchStatus))
    assert patch["phase"] == "Failed" and "without a final checkpoint" in patch["message"]


# --- the runner's ExecutionProgress ------------------------------------------------------------------------


@pytest.mark.parametrize(("phase", "checkpoint", "pod", "made", "asked"), [
    ("Running", {"state": "Running"}, True, False, True),  # its runner checkpoints: now
    ("Running", {"state": "Running"}, True, True, False),  # asked for already (made or refused)
    ("Running", None, True, False, False),  # nothing written yet: a run too short to checkpoint gets none
    ("Pending", None, False, False, False),  # a start costs no request more
    ("Running", {"state": "Succeeded"}, True, False, False),  # it has ended: nothing more to write
    ("Running", {"state": "Waiting", "wakeAt": "2026-11-21T13:00:00.000Z"}, True, False, False),
])
def test_the_progress_object_is_asked_for_once_its_runner_checkpoints(phase, checkpoint, pod, made, asked):
    memory = Memory()
    if made:
        memory.made[PROGRESS] = ""
    actions = decide(execution(phase=phase, checkpoint=checkpoint), running_pod() if pod else None, [], NOW,
                     memory)
    assert bool(of(actions, MakeProgress)) is asked


def test_a_cancelled_execution_asks_for_no_progress_object():
    actions = decide(execution(phase="Running", checkpoint={"state": "Running"}, cancel={"reason": "stop"}),
                     running_pod(), [], NOW)
    assert of(actions, MakeProgress) == [], "its runner's next write is its last"
