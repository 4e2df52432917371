"""Delayed start, retries from the checkpoint, TTL deletion and ctx.unschedule, decided with no cluster."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flux_api import Execution
from flux_api.timefmt import format_time
from flux_operator.execution import timing
from flux_operator.execution.actions import Observe
from flux_operator.execution.machine import DeleteExecution, DeletePod, EnsureRunner, PodView, decide

from tests.operator.builders import NOW, apply, of, status_patch
from tests.operator.test_decide import events, execution, running_pod

pytestmark = pytest.mark.unit


def with_spec(ex: Execution, **spec) -> Execution:
    return ex.model_copy(update={"spec": ex.spec.model_copy(update=spec)})


def spec_of(ex: Execution, **spec) -> Execution:
    """Re-validated, so nested models (retry) are parsed."""
    data = ex.model_dump(mode="json")
    data["spec"].update(spec)
    return Execution.model_validate(data)


LATER = format_time(NOW + timedelta(minutes=5))
EARLIER = format_time(NOW - timedelta(seconds=1))


# --- delayed start ------------------------------------------------------------------------------

def test_before_start_at_it_stays_pending_saying_when_and_makes_no_pod():
    ex = spec_of(execution(), startAt=LATER)
    actions = decide(ex, None, [], NOW)
    assert not of(actions, EnsureRunner)
    patch = status_patch(actions)
    assert patch["phase"] == "Pending"
    assert patch["message"] == f"waiting: starts at {LATER}"
    started = [c for c in patch["conditions"] if c["type"] == "Started"][0]
    assert started["status"] == "False" and started["reason"] == "StartAtNotReached"
    assert timing.next_wakeup(ex, NOW, None) == 300


def test_waiting_twice_writes_nothing_new():
    ex = spec_of(execution(), startAt=LATER)
    ex = apply(ex, decide(ex, None, [], NOW))
    assert decide(ex, None, [], NOW + timedelta(seconds=10)) == []


def test_at_start_at_the_runner_is_created():
    ex = spec_of(execution(), startAt=EARLIER)
    assert of(decide(ex, None, [], NOW), EnsureRunner)


def test_start_at_in_another_offset_is_compared_as_an_instant():
    ex = spec_of(execution(), startAt="2026-11-21T13:00:30+01:00")  # 12:00:30Z, 30 s after NOW
    assert not of(decide(ex, None, [], NOW), EnsureRunner)
    assert of(decide(ex, None, [], NOW + timedelta(seconds=31)), EnsureRunner)


def test_cancel_before_start_at_ends_not_started_without_a_pod():
    ex = spec_of(execution(), startAt=LATER)
    ex = apply(ex, decide(ex, None, [], NOW))
    ex = spec_of(ex, cancel={"reason": "not needed"})
    actions = decide(ex, None, [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Cancelled"
    assert patch["cancellation"]["outcome"] == "NotStarted"
    assert not of(actions, EnsureRunner)


# --- retries --------------------------------------------------------------------------------------

def failed_run(retries: int | None = None, limit: int = 2, backoff: int = 10) -> Execution:
    status = {"retries": retries} if retries else {}
    ex = execution("Running", checkpoint={"state": "Failed", "error": "boom",
                                          "steps": [{"name": "a", "result": 1}]}, status=status)
    return spec_of(ex, retry={"limit": limit, "backoffSeconds": backoff})


def finished_pod() -> PodView:
    return PodView(name="job-runner", phase="Succeeded", started=True, uid="pod-1")


def test_a_failed_run_is_retried_after_the_backoff_from_its_checkpoint():
    ex = failed_run()
    actions = decide(ex, finished_pod(), [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Pending"
    assert patch["retries"] == 1
    assert patch["nextRetryAt"] == format_time(NOW + timedelta(seconds=10))
    assert patch["podName"] == "job-runner-1"
    # Only the verdict is taken back: the steps stay, so the new runner skips them.
    assert patch["checkpoint"] == {"state": "Running", "error": None, "result": None}
    assert "boom" in patch["message"] and "run 1 of 3 failed" in patch["message"]
    assert of(actions, DeletePod) == [DeletePod("job-runner", 0, "pod-1")]
    assert "RetryScheduled" in events(actions)


def test_during_the_backoff_no_pod_then_a_new_one():
    ex = apply(failed_run(), decide(failed_run(), finished_pod(), [], NOW))
    assert not of(decide(ex, None, [], NOW + timedelta(seconds=5)), EnsureRunner)
    assert timing.next_wakeup(ex, NOW + timedelta(seconds=5), None) == 5
    assert of(decide(ex, None, [], NOW + timedelta(seconds=10)), EnsureRunner)


def test_a_suspend_and_resume_during_the_backoff_does_not_cut_it_short():
    waiting = apply(failed_run(), decide(failed_run(), finished_pod(), [], NOW))
    suspended = apply(spec_of(waiting, suspend=True), decide(spec_of(waiting, suspend=True), None, [], NOW))
    assert suspended.phase == "Suspended"
    resumed = spec_of(suspended, suspend=False)
    actions = decide(resumed, None, [], NOW + timedelta(seconds=2))
    assert not of(actions, EnsureRunner) and status_patch(actions)["phase"] == "Pending"
    assert of(decide(apply(resumed, actions), None, [], NOW + timedelta(seconds=10)), EnsureRunner)


def test_the_retry_pod_starting_makes_it_running_again_keeping_the_first_start():
    ex = apply(failed_run(), decide(failed_run(), finished_pod(), [], NOW))
    later = NOW + timedelta(seconds=12)
    patch = status_patch(decide(ex, PodView(name="job-runner-1", phase="Running", started=True), [], later))
    assert patch["phase"] == "Running"
    assert patch["startedAt"] == format_time(ex.status.startedAt)
    assert patch["nextRetryAt"] is None


def test_backoff_doubles_per_retry():
    patch = status_patch(decide(failed_run(retries=1, backoff=10), finished_pod(), [], NOW))
    assert patch["nextRetryAt"] == format_time(NOW + timedelta(seconds=20))
    assert patch["retries"] == 2


def test_when_retries_are_used_up_it_fails():
    patch = status_patch(decide(failed_run(retries=2, limit=2), finished_pod(), [], NOW))
    assert patch["phase"] == "Failed" and patch["message"] == "boom"


def test_without_a_retry_policy_a_failure_is_final():
    ex = execution("Running", checkpoint={"state": "Failed", "error": "boom"})
    assert status_patch(decide(ex, finished_pod(), [], NOW))["phase"] == "Failed"


def test_a_crashed_pod_is_retried_too():
    ex = spec_of(execution("Running"), retry={"limit": 1, "backoffSeconds": 0})
    pod = PodView(name="job-runner", phase="Failed", started=True, exit_message="OOMKilled", uid="u")
    patch = status_patch(decide(ex, pod, [], NOW))
    assert patch["phase"] == "Pending" and "OOMKilled" in patch["message"]


def test_a_cancelled_execution_is_never_retried():
    ex = spec_of(failed_run(), cancel={"reason": "stop"})
    patch = status_patch(decide(ex, finished_pod(), [], NOW))
    assert patch["phase"] == "Failed"
    assert patch["cancellation"]["outcome"] == "TooLate"
    assert "retries" not in patch
    # A run that ends Cancelled concludes Cancelled, retry policy or not.
    cancelling = spec_of(execution("Cancelling", cancel={"reason": "stop"}, checkpoint={"state": "Cancelled"},
                                   status={"cancellation": {"reason": "stop", "source": "spec"}}),
                         retry={"limit": 3, "backoffSeconds": 1})
    assert status_patch(decide(cancelling, None, [], NOW))["phase"] == "Cancelled"


def test_cancel_during_the_backoff_ends_at_once():
    ex = apply(failed_run(), decide(failed_run(), finished_pod(), [], NOW))
    ex = spec_of(ex, cancel={"reason": "enough"})
    actions = decide(ex, None, [], NOW + timedelta(seconds=2))
    patch = status_patch(actions)
    assert patch["phase"] == "Cancelled"
    assert patch["cancellation"]["outcome"] == "NotStarted"
    assert patch["message"] == "cancelled during the retry backoff: enough"
    assert not of(actions, EnsureRunner) and not of(actions, DeletePod)


# --- TTL ----------------------------------------------------------------------------------------

def finished(ttl: int | None) -> Execution:
    ex = execution("Succeeded", status={"finishedAt": format_time(NOW - timedelta(seconds=60)), "observedGeneration": 1})
    return spec_of(ex, ttlSecondsAfterFinished=ttl) if ttl is not None else ex


def test_ttl_not_yet_passed_keeps_it_and_wakes_up_in_time():
    assert decide(finished(120), None, [], NOW) == []
    assert timing.next_wakeup(finished(120), NOW, None) == 60


def test_ttl_passed_deletes_it_and_nothing_else():
    assert decide(finished(60), None, [], NOW) == [DeleteExecution("job", "uid-job")]
    assert decide(finished(0), None, [], NOW) == [DeleteExecution("job", "uid-job")]


def test_without_ttl_a_finished_execution_stays():
    assert decide(finished(None), None, [], NOW + timedelta(days=365)) == []
    assert timing.next_wakeup(finished(None), NOW, None) is None


def test_ttl_does_not_touch_running_executions():
    ex = spec_of(execution("Running"), ttlSecondsAfterFinished=0)
    assert not of(decide(ex, running_pod(), [], NOW), DeleteExecution)


# --- ctx.unschedule ---------------------------------------------------------------------------------

def test_an_unschedule_request_cancels_the_run_with_its_reason():
    ex = execution("Running", status={"unscheduleRequest": {"reason": "quota reached",
                                                            "requestedAt": format_time(NOW)}})
    actions = decide(ex, running_pod(uid="p"), [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Cancelling"
    assert patch["cancellation"]["reason"] == "quota reached"
    assert patch["cancellation"]["source"] == "unschedule"
    assert of(actions, DeletePod)


def test_a_runner_that_takes_its_unschedule_request_back_mid_cancel_still_ends_cancelled():
    ex = execution("Running", status={"unscheduleRequest": {"reason": "quota reached",
                                                            "requestedAt": format_time(NOW)}})
    cancelling = apply(ex, decide(ex, running_pod(uid="p"), [], NOW))
    assert cancelling.phase == "Cancelling"
    taken_back = Execution.model_validate({**cancelling.model_dump(mode="json"), "status": {
        **cancelling.status.model_dump(mode="json", exclude_none=True), "unscheduleRequest": None}})
    later = NOW + timedelta(seconds=5)
    patch = status_patch(decide(taken_back, None, [], later))  # its pod gone
    assert patch["phase"] == "Cancelled" and patch["cancellation"]["source"] == "unschedule"
    assert patch["cancellation"]["requestedAt"] == cancelling.status.cancellation.requestedAt.isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize("said", ["1000-01-01T00:00:00.000Z", "2999-01-01T00:00:00.000Z"])
def test_an_unschedule_dated_before_the_run_or_in_the_future_counts_from_now(said):
    """The runner dates its request: a date out of its run must not reach every tenant's latency metrics."""
    ex = execution("Running", status={"unscheduleRequest": {"reason": "quota reached", "requestedAt": said}})
    observed = {o.name: o.value for o in of(decide(ex, running_pod(uid="p"), [], NOW), Observe)}
    assert observed["signal_seconds"] == 0.0


def test_a_forged_time_paused_past_a_century_counts_as_a_century_and_overflows_nothing():
    """Anyone who may write executions/status (not a runner) could set queuedSeconds to 2**62: the deadline
    counts at most a century of pauses, and decisions go on (they once raised OverflowError on every pass)."""
    from flux_api.types import MAX_PAUSED_SECONDS
    from flux_operator.execution import timing

    ex = execution("Running", deadline=60)
    data = ex.model_dump(mode="json")
    data["status"]["queuedSeconds"] = 2 ** 62
    forged = Execution.model_validate(data)
    assert timing.deadline_at(forged) == ex.status.startedAt + timedelta(seconds=60 + MAX_PAUSED_SECONDS)
    decide(forged, running_pod(), [], NOW)
