"""`kubectl flux logs`, the pure part: which runner pod, read or wait or stop, and what it says."""

from __future__ import annotations

from typing import Any

import pytest
from flux_cli.logs import steps as logs
from flux_cli.logs.steps import Fail, Read, Run, Stop, Wait, next_step, reading_note, run_of, runner_pod_of

pytestmark = pytest.mark.unit


def execution(phase: str | None = "Running", **status: Any) -> dict[str, Any]:
    st = {"phase": phase, **status} if phase else dict(status)
    return {"metadata": {"name": "etl", "namespace": "ns"}, "spec": {"workflow": "m:f"}, "status": st}


def pod(name: str = "etl-runner", uid: str = "u1", restarts: int = 0, state: str = "running",
        node: str = "n1") -> dict[str, Any]:
    states = {"running": {"running": {}}, "terminated": {"terminated": {"exitCode": 0}},
              "creating": {"waiting": {"reason": "ContainerCreating"}},
              "backoff": {"waiting": {"reason": "CrashLoopBackOff"}}}
    statuses = [] if state == "none" else [{"name": "runner", "restartCount": restarts, "state": states[state]}]
    if state == "backoff":  # the run that crashed, waiting for its restart
        statuses[0]["lastState"] = {"terminated": {"exitCode": 1}}
    return {"metadata": {"name": name, "uid": uid}, "spec": {"nodeName": node},
            "status": {"containerStatuses": statuses}}


# --- which pod -------------------------------------------------------------------------------------

def test_the_runner_pod_is_the_one_status_names():
    assert runner_pod_of(execution(podName="etl-runner-2", retries=2)) == "etl-runner-2"


def test_without_a_pod_name_it_follows_the_retry_count():
    assert runner_pod_of(execution(None)) == "etl-runner"
    assert runner_pod_of(execution("Pending", retries=1)) == "etl-runner-1"


# --- runs ------------------------------------------------------------------------------------------

def test_a_run_is_a_pod_uid_and_a_restart_count():
    assert run_of(pod(restarts=2)) == Run("etl-runner", "u1", 2, True, None)
    assert run_of(None) is None


@pytest.mark.parametrize("state,restarts,started,waiting", [
    ("running", 0, True, None), ("terminated", 0, True, None), ("creating", 0, False, "ContainerCreating"),
    ("backoff", 0, True, "CrashLoopBackOff"), ("backoff", 1, True, "CrashLoopBackOff"),
    ("none", 0, False, "ContainerCreating")])
def test_a_run_has_a_log_once_its_container_started(state, restarts, started, waiting):
    run = run_of(pod(state=state, restarts=restarts))
    assert (run.started, run.waiting) == (started, waiting)


def test_an_unscheduled_pod_says_so():
    assert run_of(pod(state="none", node="")).waiting == "Unscheduled"


# --- the next step ---------------------------------------------------------------------------------

def test_a_running_runner_is_read_and_followed_with_f():
    assert next_step(execution(), pod(), follow=True, read=set()) == Read(run_of(pod()), True)
    assert next_step(execution(), pod(), follow=False, read=set()) == Read(run_of(pod()), False)


def test_without_f_one_read_is_all():
    assert next_step(execution(), pod(), follow=False, read={("u1", 0)}) == Stop()


def test_pending_without_a_pod_is_an_error_without_f_and_a_wait_with_it():
    ex = execution("Pending", retries=1, nextRetryAt="2030-01-01T00:00:00Z", podName="etl-runner-1")
    step = next_step(ex, None, follow=False, read=set())
    assert isinstance(step, Fail)
    assert "is Pending: no runner pod yet (retry 1 at 2030-01-01T00:00:00Z)" in step.message
    assert "use -f" in step.message
    waiting = next_step(ex, None, follow=True, read=set())
    assert isinstance(waiting, Wait) and "etl-runner-1" in waiting.note


def test_a_pod_not_started_yet_is_waited_for_with_f():
    step = next_step(execution("Pending"), pod(state="creating"), follow=True, read=set())
    assert step == Wait("waiting for runner pod etl-runner to start (ContainerCreating)")
    assert "has not started yet (ContainerCreating)" in next_step(
        execution("Pending"), pod(state="creating"), follow=False, read=set()).message


def test_after_a_run_ends_a_follow_waits_for_the_next_run():
    step = next_step(execution(), pod(state="backoff"), follow=True, read={("u1", 0)})
    assert isinstance(step, Wait) and "next run" in step.note


def test_a_restarted_container_is_a_new_run():
    assert next_step(execution(), pod(restarts=1), follow=True, read={("u1", 0)}) == Read(run_of(pod(restarts=1)), True)


def test_a_retry_pod_is_a_new_run():
    ex = execution(podName="etl-runner-1", retries=1)
    new = pod(name="etl-runner-1", uid="u2")
    assert next_step(ex, new, follow=True, read={("u1", 0)}) == Read(run_of(new), True)


def test_a_finished_execution_whose_pod_remains_is_still_read():
    done = pod(state="terminated")
    assert next_step(execution("Succeeded"), done, follow=True, read=set()) == Read(run_of(done), True)


def test_a_follow_stops_when_the_execution_is_terminal_and_its_runs_were_read():
    assert next_step(execution("Cancelled"), None, follow=True, read={("u1", 0)}) == \
        Stop("execution etl finished: Cancelled")


@pytest.mark.parametrize("follow", [True, False])
def test_a_finished_execution_without_its_pod_has_no_log_left(follow):
    ex = execution("Cancelled", message="stopped", startedAt="2030-01-01T00:00:00Z",
                   cancellation={"reason": "x", "source": "spec", "outcome": "Graceful"})
    step = next_step(ex, None, follow=follow, read=set())
    assert isinstance(step, Fail)
    assert "the log of execution etl is gone: its runner pod etl-runner no longer exists" in step.message
    assert "phase Cancelled; outcome Graceful; stopped" in step.message


# --- notes -----------------------------------------------------------------------------------------

def test_notes_name_what_a_follow_moved_to():
    first = Run("etl-runner", "u1", 0, True)
    assert reading_note(first, None) is None
    assert "new attempt" in reading_note(Run("etl-runner-1", "u2", 0, True), first)
    assert "replaced" in reading_note(Run("etl-runner", "u3", 0, True), first)
    assert "restart 1" in reading_note(Run("etl-runner", "u1", 1, True), first)


def test_not_found_mentions_the_ttl():
    assert "ttlSecondsAfterFinished" in logs.not_found_message("ns", "etl")


def test_an_execution_that_never_started_says_there_was_never_a_log():
    step = next_step(execution("Cancelled"), None, follow=False, read=set())
    assert step == Fail("execution etl finished (Cancelled) before a runner started: there is no log")


def test_a_namesakes_pod_left_behind_is_not_read_as_this_executions():
    """`kubectl delete --cascade=orphan` leaves a runner pod under the name the next Execution's runner takes."""
    ours = execution()
    ours["metadata"]["uid"] = "ex-2"
    orphan = pod()
    assert next_step(ours, orphan, follow=False, read=set()) == Fail(logs.pending_message(ours, None))
    orphan["metadata"]["ownerReferences"] = [{"uid": "ex-1", "controller": True}]
    assert isinstance(next_step(ours, orphan, follow=True, read=set()), Wait)
    own = pod()
    own["metadata"]["ownerReferences"] = [{"uid": "ex-2", "controller": True, "kind": "Execution"}]
    assert next_step(ours, own, follow=True, read=set()) == Read(run_of(own), True)

