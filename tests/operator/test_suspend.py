"""Suspend and resume (spec.suspend) in the state machine, phase by phase, with no cluster."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flux_api import Execution
from flux_api.names import PARENT_LABEL, SUSPEND_REASON_ANNOTATION, SUSPENDED_BY_ANNOTATION
from flux_operator.execution import timing
from flux_operator.execution.machine import (
    CancelChild,
    DeletePod,
    EmitEvent,
    EnsureRunner,
    Observe,
    PatchStatus,
    PodView,
    SuspendChild,
    decide,
)
from tests.operator.builders import NOW, apply, of, status_patch
from tests.operator.test_decide import POD, child, events, execution, parent, running_pod

pytestmark = pytest.mark.unit


def with_spec(ex: Execution, **spec: Any) -> Execution:
    data = ex.model_dump(mode="json")
    return Execution.model_validate({**data, "spec": {**data["spec"], **spec}})


def suspending(checkpoint: dict | None = None, **kw: Any) -> Execution:
    """A running execution the operator already moved to Suspending."""
    ex = with_spec(execution("Running", annotations={SUSPEND_REASON_ANNOTATION: "maintenance"}, **kw), suspend=True)
    ex = apply(ex, decide(ex, running_pod(), [], NOW - timedelta(seconds=2)))
    if checkpoint:
        data = ex.model_dump(mode="json")
        data["status"]["checkpoint"] = {"sequence": 3, "updatedAt": "2026-11-21T11:59:59.500Z", **checkpoint}
        ex = Execution.model_validate(data)
    return ex


def suspended(**kw: Any) -> Execution:
    ex = suspending(checkpoint={"state": "Cancelled", "stepCount": 4}, **kw)
    return apply(ex, decide(ex, None, [], NOW - timedelta(seconds=1)))


# --- suspending --------------------------------------------------------------------------------------

def test_a_running_execution_is_signalled_like_a_cancel_and_records_the_suspend():
    ex = with_spec(execution("Running", annotations={SUSPEND_REASON_ANNOTATION: "maintenance"}), suspend=True)
    actions = decide(ex, running_pod(uid="p1"), [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 30, "p1")]
    assert actions.index(of(actions, DeletePod)[0]) < actions.index(of(actions, PatchStatus)[0]), "signal first"
    patch = status_patch(actions)
    assert patch["phase"] == "Suspending"
    assert patch["suspension"]["reason"] == "maintenance" and patch["suspension"]["count"] == 1
    assert patch["suspension"]["requestedAt"].startswith("2026-11-21T12:00:00")
    assert of(actions, PatchStatus)[0].fenced is False, "the runner's final checkpoint must not make it conflict"
    assert events(actions) == ["SuspendRequested"]
    assert "grace period 30s (SIGTERM)" in of(actions, EmitEvent)[0].message


def test_without_a_reason_the_suspend_says_suspended():
    ex = with_spec(execution("Running"), suspend=True)
    assert status_patch(decide(ex, running_pod(), [], NOW))["suspension"]["reason"] == "suspended"


def test_suspending_waits_for_the_pod_without_signalling_twice():
    ex = suspending()
    assert ex.phase == "Suspending"
    assert decide(ex, running_pod(terminating=True), [], NOW) == []


def test_suspending_after_a_restart_signals_again_if_the_delete_was_lost():
    actions = decide(suspending(), running_pod(), [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 30)]


@pytest.mark.parametrize(("checkpoint", "outcome"), [
    ({"state": "Cancelled"}, "Graceful"),
    ({"state": "Cancelled", "error": "cleanup raised"}, "CleanupFailed"),
    ({"state": "Running"}, "Killed"),
])
def test_the_pod_gone_concludes_suspended_with_a_cancels_outcome(checkpoint, outcome):
    actions = decide(suspending(checkpoint=checkpoint), None, [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Suspended"
    assert patch["suspension"]["outcome"] == outcome
    assert patch["suspension"]["suspendedAt"].startswith("2026-11-21T12:00:00")
    assert patch["message"] == f"suspended ({outcome}): maintenance"
    assert events(actions) == ["Suspended"]
    assert "finishedAt" not in patch, "a suspend is no end"


def test_an_overdue_pod_is_force_deleted_and_the_outcome_says_so():
    ex = suspending()
    pod = running_pod(terminating=True, deletion_at=NOW - timedelta(seconds=60))
    actions = decide(ex, pod, [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 0)]
    forced = apply(ex, actions)
    assert forced.status.suspension.forcedAt is not None
    assert status_patch(decide(forced, None, [], NOW))["suspension"]["outcome"] == "ForceDeleted"


def test_a_workflow_finishing_before_the_signal_lands_wins():
    actions = decide(suspending(checkpoint={"state": "Succeeded", "result": 1}), None, [], NOW)
    assert status_patch(actions)["phase"] == "Succeeded"


def test_a_pending_execution_without_a_pod_is_suspended_at_once_and_never_starts():
    ex = with_spec(execution(), suspend=True)
    actions = decide(ex, None, [], NOW)
    assert not of(actions, EnsureRunner)
    patch = status_patch(actions)
    assert patch["phase"] == "Suspended" and patch["suspension"]["outcome"] == "NotStarted"
    assert patch["runnerObjects"] == {} and patch["podName"] == "job-runner", "a resume starts it like a new one"
    assert events(actions) == ["Suspended"], "one Event tells the request and the conclusion"
    again = apply(ex, actions)
    assert decide(again, None, [], NOW + timedelta(hours=1)) == []


def test_a_pending_execution_with_a_pod_not_yet_started_stops_it():
    ex = with_spec(execution("Pending"), suspend=True)
    actions = decide(ex, PodView(POD, uid="p1"), [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 30, "p1")]
    assert status_patch(actions)["phase"] == "Suspending"
    done = decide(apply(ex, actions), None, [], NOW)
    assert status_patch(done)["suspension"]["outcome"] == "NotStarted"


# --- children -----------------------------------------------------------------------------------------

def test_live_children_are_suspended_with_the_parent_and_waited_for():
    kids = [child("job-a", "Running"), child("job-b", "Succeeded"), child("job-c", "Running", cancel={"reason": "x"})]
    ex = parent(with_spec(execution("Running"), suspend=True), *kids)
    actions = decide(ex, running_pod(), kids, NOW)
    assert of(actions, SuspendChild) == [SuspendChild("job-a", True, "parent job suspended: suspended", "job")]
    waiting = apply(ex, actions)
    assert "phase" not in (status_patch(decide(waiting, None, kids, NOW)) or {}), "job-a still runs"
    stopped = [with_spec(child("job-a", "Suspended"), suspend=True), kids[1], child("job-c", "Cancelled")]
    assert status_patch(decide(waiting, None, stopped, NOW))["phase"] == "Suspended"


def test_resuming_resumes_only_the_children_this_parent_suspended():
    mine = with_spec(child("job-a", "Suspended"), suspend=True)
    mine.metadata["annotations"] = {SUSPENDED_BY_ANNOTATION: "job"}
    theirs = with_spec(child("job-b", "Suspended"), suspend=True)  # a person suspended it: not ours to resume
    ex = with_spec(parent(suspended(), mine, theirs), suspend=False)
    actions = decide(ex, None, [mine, theirs], NOW)
    assert of(actions, SuspendChild) == [SuspendChild("job-a", False)]


def resumed_by_hand(kid: Execution) -> Execution:
    """Suspended once (its own status says so), then resumed with `kubectl flux resume`, which drops the
    suspended-by annotation."""
    data = kid.model_dump(mode="json")
    data["status"]["suspension"] = {"reason": "parent job suspended", "count": 1, "resumedAt": "2026-11-21T11:59:00Z"}
    return Execution.model_validate(data)


def test_a_child_made_as_the_suspend_came_is_suspended_once_seen_and_one_resumed_by_hand_is_not():
    """The last Running pass spawned it; the watch showed it only after the parent concluded Suspended."""
    late, older = child("job-late", "Pending"), resumed_by_hand(child("job-older", "Running"))
    ex = parent(suspended(), late, older)
    actions = decide(ex, None, [late, older], NOW)
    assert of(actions, SuspendChild) == [SuspendChild("job-late", True, "parent job suspended: maintenance", "job")]
    assert "phase" not in (status_patch(actions) or {}), "the parent stays Suspended"
    late = resumed_by_hand(late)
    assert of(decide(parent(suspended(), late, older), None, [late, older], NOW), SuspendChild) == [], "once"


# --- suspended, resumed, cancelled -------------------------------------------------------------------

def test_suspended_stays_without_a_pod_until_resumed():
    ex = suspended()
    assert ex.phase == "Suspended"
    assert decide(ex, None, [], NOW + timedelta(hours=5)) == []


def test_resume_starts_a_new_pod_from_the_checkpoint_and_adds_up_the_time():
    ex = with_spec(suspended(), suspend=False)
    later = NOW + timedelta(seconds=90)
    actions = decide(ex, None, [], later)
    patch = status_patch(actions)
    assert patch["phase"] == "Pending"
    assert patch["checkpoint"] == {"state": "Running", "error": None, "result": None}, "steps kept, verdict gone"
    assert patch["suspension"]["resumedAt"].startswith("2026-11-21T12:01:30")
    assert patch["suspension"]["suspendedSeconds"] == 91
    assert patch["message"] is None
    assert of(actions, EnsureRunner), "the new runner is asked for in the same decision"
    assert events(actions) == ["Resumed"]
    new_pod = running_pod(token=of(actions, EnsureRunner)[0].makes[-1].token)
    started = decide(apply(ex, actions), new_pod, [], later)
    assert status_patch(started)["phase"] == "Running"


def test_a_second_suspend_counts_on_and_keeps_the_time_suspended():
    ex = with_spec(suspended(), suspend=False)
    resumed = apply(ex, decide(ex, None, [], NOW + timedelta(seconds=10)))
    again = with_spec(apply(resumed, decide(resumed, running_pod(), [], NOW + timedelta(seconds=11))), suspend=True)
    patch = status_patch(decide(again, running_pod(), [], NOW + timedelta(seconds=20)))
    assert patch["suspension"]["count"] == 2 and patch["suspension"]["suspendedSeconds"] == 11


def test_a_cancel_of_a_suspended_execution_ends_it_at_once():
    ex = with_spec(suspended(), cancel={"reason": "no longer needed", "cascade": True, "force": False})
    actions = decide(ex, None, [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Cancelled"
    assert patch["cancellation"]["outcome"] == "WhileSuspended"
    assert patch["message"] == "cancelled while suspended: no longer needed"
    assert events(actions) == ["Cancelled"], "the request is told inside the conclusion's Event"
    assert [a.value for a in of(actions, Observe)] == ["WhileSuspended"]
    assert not of(actions, DeletePod) and not of(actions, EnsureRunner)


def test_a_cancel_of_a_suspended_parent_cancels_its_suspended_children_too():
    kid = with_spec(child("job-a", "Suspended"), suspend=True)
    ex = with_spec(parent(suspended(), kid), cancel={"reason": "stop", "cascade": True, "force": False})
    actions = decide(ex, None, [kid], NOW)
    assert of(actions, CancelChild) == [CancelChild("job-a", "parent job cancelled: stop", False, "job")]
    assert status_patch(actions)["phase"] == "Cancelled"


def test_a_grandchild_resumed_by_hand_keeps_its_suspended_ancestors_from_ending_at_once():
    """P and its child C are Suspended, but G (C's child) was resumed and runs: P goes Cancelling (its cancel
    reaches G) and is not Cancelled while G runs; once every descendant is Suspended it ends at once again."""
    grandchild = execution("Running", name="job-a-x", labels={PARENT_LABEL: "job-a"})
    grandchild.metadata["ownerReferences"] = [{"uid": "uid-job-a", "controller": True, "kind": "Execution",
                                               "name": "job-a"}]
    kid = parent(with_spec(child("job-a", "Suspended"), suspend=True), grandchild)
    ex = with_spec(parent(suspended(), kid), cancel={"reason": "stop", "cascade": True, "force": False})
    actions = decide(ex, None, [kid], NOW, family={"job-a": [grandchild]})
    assert status_patch(actions)["phase"] == "Cancelling"
    assert [c.name for c in of(actions, CancelChild)] == ["job-a", "job-a-x"]
    still = with_spec(grandchild, suspend=True)
    still = Execution.model_validate({**still.model_dump(mode="json"), "status": {"phase": "Suspended"}})
    assert status_patch(decide(ex, None, [kid], NOW, family={"job-a": [still]}))["phase"] == "Cancelled"


def test_a_cancel_while_suspending_takes_over_without_a_second_signal():
    ex = with_spec(suspending(), cancel={"reason": "stop", "cascade": True, "force": False})
    actions = decide(ex, running_pod(terminating=True), [], NOW)
    assert not [a for a in of(actions, DeletePod) if a.grace_seconds], "the pod is already going"
    assert status_patch(actions)["phase"] == "Cancelling"


def test_time_suspended_does_not_count_toward_the_deadline():
    ex = suspended(deadline=120)
    assert timing.deadline_at(ex) is None, "no deadline falls while suspended"
    resumed = apply(with_spec(ex, suspend=False), decide(with_spec(ex, suspend=False), None, [],
                                                         NOW + timedelta(seconds=600)))
    started = resumed.status.startedAt
    assert timing.deadline_at(resumed) == started + timedelta(seconds=120 + 601)
