"""Starting a runner, decided purely: the objects it made and only those, refused creates that end clearly
or wait visibly, and retries that send only what is missing (execution/runner.py, ownership.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flux_api import Execution
from flux_api.errors import Failure, classify
from flux_operator.execution.machine import EmitEvent, EnsureRunner, PodView, decide
from flux_operator.ownership import Memory, refusal, token_hash
from tests.operator.builders import NOW, apply, of, status_patch, tokens

pytestmark = pytest.mark.unit

POD = "job-runner"
ACCOUNT = ("serviceAccount", "role", "roleBinding")


def job(**status: Any) -> Execution:
    return Execution.model_validate({
        "metadata": {"name": "job", "namespace": "ns", "uid": "uid-job", "generation": 1,
                     "creationTimestamp": "2026-11-21T11:58:00Z"},
        "spec": {"workflow": "pkg.mod:main", "gracePeriodSeconds": 30}, "status": status})


def started(memory: Memory) -> Execution:
    """A new execution after its first decision: Pending, its tokens' hashes recorded, creates sent."""
    ex = job()
    return apply(ex, decide(ex, None, [], NOW, memory))


def made_everything(memory: Memory) -> None:
    memory.made.update({k: f"uid-{k}" for k in (*ACCOUNT, "pod")})


# --- what is asked for, and in what order ------------------------------------------------------------------

def test_a_new_execution_records_a_token_hash_for_each_object_then_asks_for_them():
    actions = decide(job(), None, [], NOW, tokens())
    record = status_patch(actions)["runnerObjects"]
    ensure = of(actions, EnsureRunner)[0]
    assert [m.key for m in ensure.makes] == [*ACCOUNT, "pod"]
    for make in ensure.makes:
        assert record[make.key]["tokens"] == [token_hash(make.token)] == list(make.proofs)
    assert record["pod"]["name"] == POD
    assert isinstance(actions[-1], EnsureRunner), "created only after the record is written"


def test_waiting_for_a_start_time_records_nothing_to_make_but_marks_the_record():
    ex = Execution.model_validate({**job().model_dump(mode="json"),
                                   "spec": {"workflow": "pkg.mod:main", "startAt": "2026-11-21T13:00:00Z"}})
    actions = decide(ex, None, [], NOW, tokens())
    assert not of(actions, EnsureRunner)
    assert status_patch(actions)["runnerObjects"] == {}


def test_objects_already_made_are_never_asked_for_again():
    memory = tokens()
    ex = started(memory)
    memory.made.update({k: f"uid-{k}" for k in ACCOUNT})
    again = of(decide(ex, None, [], NOW, memory), EnsureRunner)[0]
    assert [m.key for m in again.makes] == ["pod"]
    recorded = job(phase="Pending", podName=POD, runnerObjects={k: {"uid": f"u-{k}"} for k in ACCOUNT})
    assert [m.key for m in of(decide(recorded, None, [], NOW, tokens()), EnsureRunner)[0].makes] == ["pod"]


# --- which pod is the execution's ----------------------------------------------------------------------------

def test_the_pod_made_is_recognised_by_its_token_even_after_a_restart():
    memory = tokens()
    ex = started(memory)
    pod_token = of(decide(job(), None, [], NOW, tokens()), EnsureRunner)[0].makes[-1].token
    assert pod_token == "t4"
    ours = PodView(POD, phase="Running", started=True, uid="p1", token="t4")
    actions = decide(ex, ours, [], NOW, Memory(new_token=lambda: "fresh"))
    assert status_patch(actions)["phase"] == "Running"
    assert status_patch(actions)["runnerObjects"]["pod"] == {"name": POD, "uid": "p1"}, "its UID recorded on the way"


def test_the_pods_uid_is_written_once_its_container_runs_even_with_nothing_else_to_write():
    """The API server takes the runner's writes only from the pod recorded (flux_api.policy): a pod that runs
    while nothing else is written (a resumed run already Running, say) must not leave its runner refused."""
    memory = tokens()
    made_everything(memory)
    ex = job(phase="Running", podName=POD, startedAt="2026-11-21T11:59:00Z", observedGeneration=1,
             conditions=[{"type": "Started", "status": "True", "reason": "RunnerStarted",
                          "message": f"runner pod {POD} started", "lastTransitionTime": "2026-11-21T11:59:00Z",
                          "observedGeneration": 1}],
             runnerObjects={**{k: {"uid": f"uid-{k}"} for k in ACCOUNT}, "pod": {"name": POD, "tokens": []}})
    waiting = PodView(POD, uid="uid-pod")  # made, not running: the runner cannot write yet, nor is it asked to
    assert "runnerObjects" not in status_patch(decide(ex, waiting, [], NOW, memory))
    running = PodView(POD, phase="Running", started=True, uid="uid-pod")
    assert status_patch(decide(ex, running, [], NOW, memory)) == {
        "runnerObjects": {**{k: {"uid": f"uid-{k}"} for k in ACCOUNT}, "pod": {"name": POD, "uid": "uid-pod"}},
        "observedGeneration": 1}


def test_a_pod_that_is_not_proven_the_operators_is_never_recorded_whatever_else_is_written():
    """A namesake's pod left by --cascade=orphan has the runner pod's name: recording its UID would hand its token
    the runner's writes (flux_api.policy)."""
    ex = started(tokens())
    squatter = PodView(POD, phase="Running", started=True, uid="orphan", token="an-older-executions-token")
    patch = status_patch(decide(ex, squatter, [], NOW, tokens()))
    assert (patch.get("runnerObjects") or {}).get("pod", {}).get("uid") is None


@pytest.mark.parametrize("forged", [
    PodView(POD, phase="Running", started=True, uid="p9"),  # a controlling ownerReference and nothing else
    PodView(POD, phase="Running", started=True, uid="p9", token="guessed"),
])
def test_a_pod_the_operator_did_not_make_is_never_taken_for_the_runner(forged):
    ex = started(tokens())
    actions = decide(ex, forged, [], NOW, tokens())
    assert "phase" not in status_patch(actions), "not Running: it is not the runner"
    assert of(actions, EnsureRunner), "the operator makes its own (and meets the forged one's name)"


def test_a_recorded_pod_uid_is_the_only_pod_of_that_record():
    ex = job(phase="Running", podName=POD, startedAt="2026-11-21T11:59:00Z", observedGeneration=1,
             runnerObjects={"pod": {"name": POD, "uid": "p1"}})
    assert decide(ex, PodView(POD, phase="Running", started=True, uid="p1"), [], NOW, tokens()) == []
    other = decide(ex, PodView(POD, phase="Running", started=True, uid="p2", token="t"), [], NOW, tokens())
    assert status_patch(other)["resumes"] == 1, "the recorded pod is gone: the other one is no runner"


def test_an_execution_an_older_operator_started_keeps_its_pod():
    ex = job(phase="Running", podName=POD, startedAt="2026-11-21T11:59:00Z", observedGeneration=1)
    assert decide(ex, PodView(POD, phase="Running", started=True, uid="p1"), [], NOW, tokens()) == []


# --- refused creates -----------------------------------------------------------------------------------------

def test_a_refusal_that_cannot_heal_fails_the_execution_with_the_api_servers_words():
    memory = tokens()
    ex = started(memory)
    said = 'Pod "job-runner" is invalid: spec.tolerations[0].operator: Unsupported value: "Bogus"'
    memory.refusals["pod"] = refusal(f"Pod {POD}", Failure.INVALID, said, NOW, None)
    actions = decide(ex, None, [], NOW, memory)
    status = status_patch(actions)
    assert status["phase"] == "Failed" and said in status["message"]
    assert status["message"].startswith("RunnerRefused: the API server refused the runner's Pod job-runner")
    finished = next(c for c in status["conditions"] if c["type"] == "Finished")
    assert finished["reason"] == "RunnerRefused"
    assert ("RunnerRefused", "Warning") in [(e.reason, e.type) for e in of(actions, EmitEvent)]
    assert not of(actions, EnsureRunner)


def test_an_object_that_is_not_the_operators_fails_the_execution_naming_it():
    memory = tokens()
    ex = started(memory)
    memory.refusals["serviceAccount"] = refusal(
        "ServiceAccount flux-runner-job", Failure.CONFLICT,
        "ServiceAccount flux-runner-job exists and was not made by the operator for this execution", NOW, None,
        permanent=True)
    status = status_patch(decide(ex, None, [], NOW, memory))
    assert status["phase"] == "Failed"
    assert status["message"] == ("RunnerRefused: ServiceAccount flux-runner-job exists and was not made by the "
                                 "operator for this execution")


def test_a_full_quota_waits_visibly_and_retries_only_the_pod_after_its_backoff():
    memory = tokens()
    ex = started(memory)
    memory.made.update({k: f"uid-{k}" for k in ACCOUNT})
    memory.refusals["pod"] = refusal(f"Pod {POD}", Failure.QUOTA, "exceeded quota: pods, limited: pods=1", NOW, None)
    actions = decide(ex, None, [], NOW, memory)
    status = status_patch(actions)
    assert "phase" not in status and not of(actions, EnsureRunner)
    assert status["message"].startswith("waiting: could not create the runner's Pod job-runner (QuotaExceeded")
    assert next(c for c in status["conditions"] if c["type"] == "Started")["reason"] == "QuotaExceeded"
    assert status["runnerObjects"]["serviceAccount"]["uid"] == "uid-serviceAccount", "what was made is recorded"
    ex = apply(ex, actions)
    assert status_patch(decide(ex, None, [], NOW, memory)) == {}, "said once"
    later = decide(ex, None, [], NOW + timedelta(seconds=1), memory)
    assert [m.key for m in of(later, EnsureRunner)[0].makes] == ["pod"]


def test_the_operators_own_role_lacking_a_right_waits_instead_of_failing_the_execution():
    """An RBAC 403 is the operator's role (mid-upgrade, or a chart value missing a verb), not the tenant's doing:
    the execution waits, saying so, and starts once the role is right. Admission's 403 ends it."""
    memory = tokens()
    ex = started(memory)
    memory.made.update({k: f"uid-{k}" for k in ACCOUNT})
    said = ('pods "job-runner" is forbidden: User "system:serviceaccount:flux:flux-operator" cannot create '
            'resource "pods" in API group "" in the namespace "ns"')
    memory.refusals["pod"] = refusal(f"Pod {POD}", classify(403, said), said, NOW, None)
    actions = decide(ex, None, [], NOW, memory)
    status = status_patch(actions)
    assert "phase" not in status and not of(actions, EnsureRunner)
    assert status["message"].startswith("waiting: could not create the runner's Pod job-runner (Forbidden: ")
    assert next(c for c in status["conditions"] if c["type"] == "Started")["reason"] == "RunnerDelayed"
    later = decide(apply(ex, actions), None, [], NOW + timedelta(seconds=1), memory)
    assert [m.key for m in of(later, EnsureRunner)[0].makes] == ["pod"]
    denied = "ValidatingAdmissionPolicy 'flux-tenant-images' with binding 'x' denied request: image not allowed"
    memory.refusals["pod"] = refusal(f"Pod {POD}", classify(403, denied), denied, NOW, None)
    assert status_patch(decide(ex, None, [], NOW, memory))["phase"] == "Failed"


def test_the_backoff_of_a_refusal_for_now_is_bounded():
    first = refusal("Pod x", Failure.SERVER, "etcd timeout", NOW, None)
    delays, current = [], first
    for _ in range(10):
        delays.append((current.retry_at - NOW).total_seconds())
        current = refusal("Pod x", Failure.SERVER, "etcd timeout", NOW, current)
    assert delays[:6] == [1, 2, 4, 8, 16, 30] and max(delays) == 30


def test_the_waiting_message_goes_once_the_runner_starts():
    memory = tokens()
    ex = started(memory)
    memory.refusals["pod"] = refusal(f"Pod {POD}", Failure.QUOTA, "exceeded quota", NOW, None)
    ex = apply(ex, decide(ex, None, [], NOW, memory))
    del memory.refusals["pod"]
    memory.made["pod"] = "p1"
    status = status_patch(decide(ex, PodView(POD, phase="Running", started=True, uid="p1"), [], NOW, memory))
    assert status["phase"] == "Running" and status["message"] is None


# --- retries and resumes get a pod of their own --------------------------------------------------------------

def test_a_pod_not_made_yet_is_no_lost_pod_and_no_resume():
    memory = tokens()
    ex = apply(started(memory), {})
    ex = Execution.model_validate({**ex.model_dump(mode="json"),
                                   "status": {**ex.status.model_dump(mode="json"), "phase": "Running"}})
    actions = decide(ex, None, [], NOW, Memory(new_token=lambda: "fresh"))
    assert "resumes" not in status_patch(actions)
    assert of(actions, EnsureRunner)


def test_a_lost_pod_is_replaced_under_a_new_token():
    memory = tokens()
    ex = job(phase="Running", podName=POD, startedAt="2026-11-21T11:59:00Z",
             runnerObjects={**{k: {"uid": f"u-{k}"} for k in ACCOUNT}, "pod": {"name": POD, "uid": "p1"}})
    actions = decide(ex, None, [], NOW, memory)
    assert status_patch(actions)["resumes"] == 1
    # uid None: the merge patch removes the lost pod's, whose token the API server would otherwise take
    assert status_patch(actions)["runnerObjects"]["pod"] == {"name": POD, "tokens": [token_hash("t1")], "uid": None}
    from flux_api.mergepatch import merge_patch
    stored = merge_patch(ex.status.model_dump(mode="json", exclude_none=True), status_patch(actions))
    assert "uid" not in stored["runnerObjects"]["pod"] and stored["runnerObjects"]["pod"]["name"] == POD
    assert [(m.key, m.uids) for m in of(actions, EnsureRunner)[0].makes] == [("pod", ("p1",))]


# --- a runner pod no node fits -------------------------------------------------------------------------------

def test_a_pod_no_node_fits_leaves_it_pending_saying_why_once_and_starting_clears_it() -> None:
    memory = tokens()
    ex = started(memory)
    made_everything(memory)
    waiting = PodView(POD, uid="uid-pod", unschedulable="0/1 nodes are available: 1 Insufficient cpu.")
    actions = decide(ex, waiting, [], NOW, memory)
    patch = status_patch(actions)
    assert patch["message"] == (f"waiting: runner pod {POD} is not scheduled: "
                                "0/1 nodes are available: 1 Insufficient cpu.")
    [condition] = [c for c in patch["conditions"] if c["type"] == "Started"]
    assert (condition["status"], condition["reason"]) == ("False", "RunnerUnschedulable")
    assert [(e.reason, e.type) for e in of(actions, EmitEvent)] == [("RunnerUnschedulable", "Warning")]
    ex = apply(ex, actions)
    assert decide(ex, waiting, [], NOW + timedelta(seconds=5), memory) == [], "said once, not per pod event"
    running = PodView(POD, uid="uid-pod", phase="Running", started=True)
    patch = status_patch(decide(ex, running, [], NOW + timedelta(seconds=9), memory))
    assert patch["phase"] == "Running" and patch["message"] is None


def test_an_image_the_kubelet_cannot_pull_is_said_once_though_its_reason_flips() -> None:
    """ErrImagePull and ImagePullBackOff alternate with the kubelet's back-off: one write, one Event."""
    memory = tokens()
    ex = started(memory)
    made_everything(memory)
    pulling = PodView(POD, uid="uid-pod", waiting="ErrImagePull", waiting_message="pull access denied for mine")
    actions = decide(ex, pulling, [], NOW, memory)
    patch = status_patch(actions)
    assert patch["message"] == f"waiting: runner pod {POD}: its image cannot be pulled (see the pod's events)"
    [condition] = [c for c in patch["conditions"] if c["type"] == "Started"]
    assert (condition["status"], condition["reason"]) == ("False", "RunnerImageNotPulled")
    assert [(e.reason, e.type) for e in of(actions, EmitEvent)] == [("RunnerNotCreated", "Warning")]
    ex = apply(ex, actions)
    backoff = PodView(POD, uid="uid-pod", waiting="ImagePullBackOff", waiting_message="Back-off pulling image mine")
    assert decide(ex, backoff, [], NOW + timedelta(seconds=20), memory) == [], "said once, not per back-off"
    running = PodView(POD, uid="uid-pod", phase="Running", started=True)
    assert status_patch(decide(ex, running, [], NOW + timedelta(seconds=60), memory))["phase"] == "Running"


def test_a_missing_secret_the_template_names_is_said_in_the_kubelets_words() -> None:
    memory = tokens()
    ex = started(memory)
    made_everything(memory)
    missing = PodView(POD, uid="uid-pod", waiting="CreateContainerConfigError",
                      waiting_message='secret "db-password" not found')
    patch = status_patch(decide(ex, missing, [], NOW, memory))
    assert patch["message"] == f'waiting: runner pod {POD}: secret "db-password" not found'
    assert [c["reason"] for c in patch["conditions"] if c["type"] == "Started"] == ["RunnerConfigMissing"]


def test_a_pod_the_scheduler_has_not_looked_at_yet_says_nothing() -> None:
    memory = tokens()
    ex = started(memory)
    made_everything(memory)
    assert status_patch(decide(ex, PodView(POD, uid="uid-pod"), [], NOW, memory)).get("message") is None


def test_a_pod_whose_pending_write_did_not_land_is_recorded_as_no_legacy_execution():
    """Phase None with a pod the operator made (its Memory says so): the write marks the record, so the next
    decision never reads the execution as one from before records (runner.legacy: objects trusted by owner)."""
    memory = tokens()
    made_everything(memory)
    pod = PodView(name=POD, uid="uid-pod", phase="Pending")
    patch = status_patch(decide(job(), pod, [], NOW, memory))
    assert patch["phase"] == "Pending" and patch["podName"] == POD
    assert patch["runnerObjects"] == {}
