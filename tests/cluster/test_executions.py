"""Executions run and are cancelled on a real cluster: every behaviour of the core issue."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import datetime

import pytest
from flux_api import CANCEL_ANNOTATION, EXECUTION_LABEL, GROUP, PARENT_LABEL
from fluxtest import TERMINAL, Executions, longrun, manifest, wait_for
from fluxtest.faults import POD_UID_HEADER
from fluxtest.hostprocs import container_pids
from fluxtest.podlogs import LogFollower
from fluxtest.tenancy import can_i
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# --- running to completion --------------------------------------------------------------------------

def test_workflow_runs_to_success_with_checkpoints(fx):
    fx.create(manifest("quick", "flux_examples.quick:main", {"name": "k8s"}))
    status = fx.wait_phase("quick", "Succeeded")
    checkpoint = status["checkpoint"]
    assert checkpoint["state"] == "Succeeded"
    assert checkpoint["result"] == {"greeting": "hello, k8s", "shout": "HELLO, K8S", "length": 10}
    assert [s["name"] for s in checkpoint["steps"]] == ["greet", "shout", "measure"]
    assert status["observedGeneration"] == 1 and status["startedAt"] and status["finishedAt"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Started"]["status"] == "True"
    assert conditions["Finished"]["reason"] == "Succeeded"
    assert "cancellation" not in status


def test_failing_workflow_fails_with_its_error(fx):
    fx.create(manifest("failing", "flux_examples.failing:main"))
    status = fx.wait_phase("failing", "Failed")
    assert status["checkpoint"]["state"] == "Failed"
    assert status["message"], "the error reaches status.message"


@pytest.mark.parametrize("workflow,expected", [
    ("flux_examples.nosuchmodule:main", "nosuchmodule"),
    ("flux_examples.quick:nosuchfunction", "nosuchfunction"),
])
def test_unimportable_workflow_fails_clearly_without_a_crash_loop(fx, workflow, expected):
    fx.create(manifest("broken", workflow))
    status = fx.wait_phase("broken", "Failed")
    assert expected in status["message"]
    pod = fx.pod("broken")
    assert pod is None or all(s.restart_count == 0 for s in pod.status.container_statuses or [])


# --- the runner's pod, identity and permissions ----------------------------------------------------

def test_runner_pod_is_locked_down_and_owned(fx, api):
    fx.create(longrun("locked", gracePeriodSeconds=7))
    fx.wait_step("locked")
    ex = fx.get("locked")
    pod = fx.pod("locked")
    assert pod.spec.termination_grace_period_seconds == 7
    assert pod.spec.security_context.run_as_non_root is True
    container = pod.spec.containers[0]
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    assert pod.metadata.labels[EXECUTION_LABEL] == "locked"
    rbac = client.RbacAuthorizationV1Api(api)
    core = client.CoreV1Api(api)
    owned = [pod, core.read_namespaced_service_account("flux-runner-locked", fx.ns),
             rbac.read_namespaced_role("flux-runner-locked", fx.ns),
             rbac.read_namespaced_role_binding("flux-runner-locked", fx.ns)]
    for obj in owned:
        assert obj.metadata.owner_references[0].uid == ex["metadata"]["uid"]


@pytest.mark.parametrize("verb,resource,name,allowed", [
    ("get", "executions", "locked", "yes"),
    ("watch", "executions", "locked", "yes"),
    ("patch", "executions/status", "locked", "yes"),
    ("get", "executions", "other", "no"),
    ("watch", "executions", "other", "no"),
    ("watch", "executions", "", "no"),
    ("list", "executions", "locked", "no"),
    ("patch", "executions/status", "other", "no"),
    ("patch", "executions", "locked", "no"),
    ("list", "executions", "", "no"),
    ("create", "executions", "", "no"),
    ("delete", "executions", "locked", "no"),
    ("get", "secrets", "", "no"),
    ("get", "executionprogresses", "locked", "yes"),
    ("patch", "executionprogresses/status", "locked", "yes"),
    ("patch", "executionprogresses/status", "other", "no"),
    ("patch", "executionprogresses", "locked", "no"),
    ("create", "executionprogresses", "", "no"),
    ("delete", "executionprogresses", "locked", "no"),
])
def test_runner_may_touch_only_its_own_execution(fx, kubectl, verb, resource, name, allowed):
    fx.create(longrun("locked"))
    wait_for(lambda: fx.pod("locked"), what="runner pod")
    base = resource.split("/")[0]
    target = (f"{base}.{GROUP}" if base in ("executions", "executionprogresses") else base) + \
        (f"/{name}" if name else "")
    assert can_i(kubectl, f"system:serviceaccount:{fx.ns}:flux-runner-locked", verb, target, "-n", fx.ns,
                 subresource=resource.partition("/")[2]) == allowed


def _watch_as_runner(api, fx, name: str, selector: str | None) -> list[str] | int:
    """Watches Executions as runner `name` (impersonated) for a second: the names of the objects sent, or the
    HTTP status of the refusal."""
    user = f"system:serviceaccount:{fx.ns}:flux-runner-{name}"
    runner = client.CustomObjectsApi(client.ApiClient(api.configuration, header_name="Impersonate-User",
                                                      header_value=user))
    try:
        answer = runner.list_namespaced_custom_object(GROUP, "v1alpha1", fx.ns, "executions", watch=True,
                                                      field_selector=selector, timeout_seconds=1,
                                                      _preload_content=False)
    except ApiException as err:
        return err.status
    return [json.loads(line)["object"]["metadata"]["name"] for line in answer.read().splitlines() if line.strip()]


def test_a_runners_token_watches_its_own_execution_and_no_other(fx, api):
    """What flux_runner.follow relies on, and all it gets: the watch is allowed by name, so the API server
    refuses one that names no Execution (the whole namespace) or another's."""
    fx.create(longrun("watcher"))
    fx.create(longrun("neighbour"))
    fx.wait_step("watcher")
    assert _watch_as_runner(api, fx, "watcher", "metadata.name=watcher") == ["watcher"]
    assert _watch_as_runner(api, fx, "watcher", None) == 403
    assert _watch_as_runner(api, fx, "watcher", "metadata.name=neighbour") == 403
    assert _watch_as_runner(api, fx, "watcher", "metadata.namespace=" + fx.ns) == 403


def _as_runner(api, fx, name: str, target: str, status: dict, pod_uid: str | None = None) -> str | None:
    """Merge-patches `target`'s status as runner `name` would with its own token (impersonated: its ServiceAccount
    and the pod its token is bound to, by default its recorded runner pod); the refusal, or None."""
    user = f"system:serviceaccount:{fx.ns}:flux-runner-{name}"
    runner_api = client.ApiClient(api.configuration, header_name="Impersonate-User", header_value=user)
    if pod_uid is None:
        pod_uid = fx.status(name)["runnerObjects"]["pod"]["uid"]
    if pod_uid:
        runner_api.set_default_header(POD_UID_HEADER, pod_uid)
    runner = client.CustomObjectsApi(runner_api)
    try:
        runner.patch_namespaced_custom_object_status(GROUP, "v1alpha1", fx.ns, "executions", target,
                                                     {"status": status})
    except ApiException as err:
        return f"{err.status} {err.body}"
    return None


@pytest.mark.parametrize("forged", [
    {"phase": "Succeeded"},
    {"startedAt": "2030-01-01T00:00:00.000Z"},
    {"cancellation": {"reason": "mine", "source": "spec"}},
    {"conditions": []},
    {"children": [{"name": "x", "phase": "Succeeded"}]},
    {"message": "all good"},
])
def test_a_runner_cannot_forge_what_the_operator_owns(fx, api, forged):
    """Enforced by the API server (a ValidatingAdmissionPolicy), not by the runner's good manners."""
    fx.create(longrun("forger"))
    fx.wait_step("forger")
    refused = _as_runner(api, fx, "forger", "forger", forged)
    field = next(iter(forged))
    assert refused is not None and f"not status.{field}" in refused, refused
    assert fx.phase("forger") == "Running"


def test_a_runner_may_write_its_checkpoint_but_not_anothers_status(fx, api):
    fx.create(longrun("honest"))
    fx.create(longrun("victim", steps=1, seconds=0.1))
    fx.wait_step("honest")
    checkpoint = fx.live_status("honest")["checkpoint"]
    assert _as_runner(api, fx, "honest", "honest", {"checkpoint": {**checkpoint, "sequence": 999}}) is None
    other = _as_runner(api, fx, "honest", "victim", {"checkpoint": {"state": "Succeeded", "sequence": 1}})
    assert other is not None and other.startswith("403")


# --- cancelling ------------------------------------------------------------------------------------

def test_only_the_runner_pod_the_operator_recorded_may_write_as_the_runner(fx, api):
    """The runner's name is not enough: a token of its ServiceAccount bound to any other pod (a namesake's left
    behind by `--cascade=orphan`, a pod a tenant ran as it) is refused by the API server, and so is one bound to
    no pod at all."""
    fx.create(longrun("bound"))
    fx.wait_step("bound")
    recorded = fx.status("bound")["runnerObjects"]["pod"]["uid"]
    assert recorded == fx.pod("bound").metadata.uid
    checkpoint = {"checkpoint": {**fx.live_status("bound")["checkpoint"], "sequence": 999}}
    for other in (str(uuid.uuid4()), ""):
        refused = _as_runner(api, fx, "bound", "bound", checkpoint, pod_uid=other)
        assert refused is not None and refused.startswith("403") and "does not come from it" in refused, refused
    assert _as_runner(api, fx, "bound", "bound", checkpoint, pod_uid=recorded) is None


def test_cancel_running_is_graceful_and_recorded(fx, core):
    # Steps of 5 s: the runner also reads spec.cancel at every step boundary, and the cancel below lands
    # just after one, so the SIGTERM (about a second away on the real node) comes first.
    fx.create(longrun("job", seconds=5))
    fx.wait_step("job")
    log = LogFollower(core, fx.ns, "job-runner", "runner")  # through the API: the log goes with the pod
    fx.cancel("job", "user asked")
    status = fx.wait_phase("job", "Cancelled")
    c = status["cancellation"]
    assert (c["reason"], c["source"], c["outcome"]) == ("user asked", "spec", "Graceful")
    assert at(c["requestedAt"]) <= at(c["signalledAt"]) <= at(c["completedAt"])
    assert c["acknowledgedAt"]
    assert status["checkpoint"]["state"] == "Cancelled"
    assert status["checkpoint"]["data"]["cleanedUp"] is True, "the workflow's except/finally ran"
    assert fx.pod("job") is None, "Cancelled only once the pod is gone"
    assert fx.cancel_told("job") == {"CancelRequested": 1, "Cancelled": 1}, fx.event_records("job")
    told = dict(fx.event_records("job"))
    assert "Signalled" not in told, "the request and its signal are one Event"
    assert "runner pod job-runner deleted with grace period 30s (SIGTERM)" in (
        told.get("CancelRequested") or told["Cancelled"]), told
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["CancelRequested"]["status"] == "True"
    assert conditions["Finished"]["reason"] == "Cancelled"
    assert "received SIGTERM" in log.finish()


def test_cancelling_is_observed_between_request_and_end(fx):
    fx.create(manifest("stubborn", "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=3))
    fx.wait_step("stubborn")
    fx.cancel("stubborn")
    fx.wait_phase("stubborn", "Cancelling", timeout=10)
    status = fx.wait_phase("stubborn", "Cancelled", timeout=30)
    assert status["cancellation"]["outcome"] == "Killed", "the grace period ran out"
    assert "acknowledgedAt" not in status["cancellation"]


def test_force_skips_the_grace_period(fx):
    # stubborn: no step boundary where the runner could notice the cancel by itself first.
    fx.create(manifest("forced", "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=600))
    fx.wait_step("forced")
    started = time.monotonic()
    fx.cancel("forced", force=True)
    status = fx.wait_phase("forced", "Cancelled", timeout=20)
    assert time.monotonic() - started < 10, "600 s of grace were skipped"
    assert status["cancellation"]["outcome"] == "Killed"


def test_annotation_cancels_like_the_spec(fx, kubectl):
    fx.create(longrun("annotated"))
    fx.wait_step("annotated")
    kubectl("annotate", "fx", "annotated", "-n", fx.ns, f"{CANCEL_ANNOTATION}=via annotation")
    c = fx.wait_phase("annotated", "Cancelled")["cancellation"]
    assert (c["reason"], c["source"], c["outcome"]) == ("via annotation", "annotation", "Graceful")


def test_pending_execution_never_runs(fx):
    fx.create(longrun("never", cancel={"reason": "changed my mind"}))
    status = fx.wait_phase("never", "Cancelled", timeout=20)
    assert status["cancellation"]["outcome"] == "NotStarted"
    assert "checkpoint" not in status
    time.sleep(1)
    assert fx.pod("never") is None, "no runner pod was ever made"


def test_finished_execution_gets_already_finished_answer(fx):
    fx.create(manifest("done", "flux_examples.quick:main"))
    fx.wait_phase("done", "Succeeded")
    fx.cancel("done", "too late")
    wait_for(lambda: "CancelIgnored" in fx.events("done"), timeout=20, what="CancelIgnored event")
    # The Event is posted before the status write that records the condition: wait for both.
    condition = wait_for(lambda: next((c for c in fx.status("done").get("conditions") or []
                                       if c["type"] == "CancelRequested"), None), timeout=20,
                         what="the CancelRequested condition")
    status = fx.status("done")
    assert status["phase"] == "Succeeded", "a finished execution keeps its phase"
    assert condition["reason"] == "AlreadyFinished" and "already finished (Succeeded)" in condition["message"]


def test_workflow_that_finishes_anyway_is_too_late(fx):
    fx.create(manifest("racer", "flux_examples.stubborn:main", {"onCancel": "finish"}))
    fx.wait_step("racer")
    fx.cancel("racer")
    status = fx.wait_phase("racer", *TERMINAL, timeout=30)
    assert status["phase"] == "Succeeded", "exactly one terminal phase: the workflow's"
    assert status["cancellation"]["outcome"] == "TooLate"
    time.sleep(2)
    assert fx.phase("racer") == "Succeeded"


def test_active_deadline_cancels_with_source_deadline(fx):
    fx.create(longrun("slow", activeDeadlineSeconds=3))
    status = fx.wait_phase("slow", "Cancelled", timeout=30)
    c = status["cancellation"]
    assert (c["source"], c["reason"], c["outcome"]) == ("deadline", "DeadlineExceeded", "Graceful")


# --- the API rejects bad input with clear messages --------------------------------------------------

def test_cancel_cannot_be_removed_or_changed(fx):
    fx.create(longrun("sticky", cancel={"reason": "first"}))
    for patch in ({"spec": {"cancel": None}}, {"spec": {"cancel": {"reason": "second"}}}):
        with pytest.raises(ApiException) as err:
            fx.patch("sticky", patch)
        assert err.value.status == 422
        assert "cannot be removed or changed once set" in err.value.body
    assert fx.get("sticky")["spec"]["cancel"]["reason"] == "first"


@pytest.mark.parametrize("spec,message", [
    ({"workflow": "not a reference"}, "spec.workflow"),
    ({"workflow": "a.b:c", "gracePeriodSeconds": 4000}, "spec.gracePeriodSeconds"),
    ({"workflow": "a.b:c", "cancel": {"reason": ""}}, "spec.cancel.reason"),
    ({"workflow": "a.b:c", "input": [1, 2]}, "spec.input"),
    ({}, "spec.workflow: Required value"),
])
def test_invalid_specs_are_rejected_with_the_field_named(fx, spec, message):
    with pytest.raises(ApiException) as err:
        fx.create({"apiVersion": f"{GROUP}/v1alpha1", "kind": "Execution", "metadata": {"name": "bad"},
                   "spec": spec})
    assert err.value.status == 422
    assert message in err.value.body


def test_crd_printer_columns_short_name_and_phase_selector(fx, kubectl):
    fx.create(longrun("listed", cancel={"reason": "shown in the table"}))
    fx.wait_phase("listed", "Cancelled")
    table = kubectl("get", "fx", "-n", fx.ns).stdout
    assert table.split("\n")[0].split() == ["NAME", "PHASE", "REASON", "AGE"]
    assert "shown in the table" in table
    selected = kubectl("get", "fx", "-n", fx.ns, "--field-selector=status.phase=Cancelled", "-o", "name").stdout
    assert selected.strip() == "execution.workflows.flux.dev/listed"
    assert kubectl("get", "fx", "-n", fx.ns, "--field-selector=status.phase=Running", "-o", "name").stdout == ""


# --- children -----------------------------------------------------------------------------------------

def test_spawned_children_carry_owner_and_parent_label_and_return_results(fx, core):
    fx.create(manifest("small", "flux_examples.tree:main", {"steps": 1, "stepSeconds": 0.1}))
    wait_for(lambda: fx.pod("small"), what="the parent's runner pod")
    log = LogFollower(core, fx.ns, "small-runner", "runner")
    status = fx.wait_phase("small", "Succeeded", timeout=90)
    # It waited for its children on a watch of its Execution (flux_runner.follow), not by polling.
    assert "following the execution with a watch" in log.finish()
    assert "no watch of the execution allowed" not in log.text and "watch of the execution:" not in log.text
    assert status["checkpoint"]["result"]["left"]["leaf"] == {"completedSteps": 1}
    parent_uid = fx.get("small")["metadata"]["uid"]
    for child in ("small-left", "small-right"):
        obj = fx.get(child)
        assert obj["metadata"]["labels"][PARENT_LABEL] == "small"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == parent_uid
        assert obj["status"]["phase"] == "Succeeded"


def test_cancel_cascades_to_every_descendant(fx):
    fx.spawn_tree()
    fx.cancel("tree", "stop the family")
    status = fx.wait_phase("tree", "Cancelled", timeout=90)
    assert status["cancellation"]["outcome"] == "Graceful"
    assert sorted(c["name"] for c in status["cancellation"]["children"]) == ["tree-left", "tree-right"]
    done_at = at(status["cancellation"]["completedAt"])
    for name in ("tree-left", "tree-right", "tree-left-leaf", "tree-right-leaf"):
        child = fx.status(name)
        assert child["phase"] == "Cancelled", name
        assert child["cancellation"]["source"] == "parent"
        assert at(child["cancellation"]["completedAt"]) <= done_at, "the parent ends after its children"
    assert fx.status("tree-left")["cancellation"]["reason"] == "parent tree cancelled: stop the family"
    assert fx.status("tree-left-leaf")["cancellation"]["reason"].startswith("parent tree-left cancelled: ")


def test_no_cascade_leaves_children_running(fx):
    fx.spawn_tree()
    fx.cancel("tree", "only the parent", cascade=False)
    fx.wait_phase("tree", "Cancelled", timeout=60)
    time.sleep(2)
    assert fx.phase("tree-left-leaf") == "Running"
    assert "cancel" not in fx.get("tree-left")["spec"]


# --- robustness ---------------------------------------------------------------------------------------

def test_restarted_runner_skips_completed_steps(fx, cluster):
    fx.create(longrun("resume", steps=8, seconds=0.5))
    before = fx.wait_step("resume", steps=3)["checkpoint"]["steps"]
    pids = container_pids(fx.pod("resume").status.container_statuses[0].container_id)
    assert pids, "the runner container's processes on this host"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # a crash, not a cancel
    status = fx.wait_phase("resume", "Succeeded", timeout=90)
    names = [s["name"] for s in status["checkpoint"]["steps"]]
    assert names == [f"step-{i}" for i in range(1, 9)], "no step twice, none lost"
    assert status["checkpoint"]["steps"][: len(before)] == before, "completed steps were reused, not rerun"
    assert fx.pod("resume").status.container_statuses[0].restart_count == 1


def test_operator_restart_mid_cancel_finishes_without_doing_anything_twice(fx, operator):
    fx.create(manifest("restart", "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=4))
    fx.wait_step("restart")
    fx.cancel("restart")
    fx.wait_phase("restart", "Cancelling", timeout=10)
    operator.stop(kill=True)  # the Cancelling write is the request's last (its Event waits for the conclusion)
    try:
        wait_for(lambda: fx.pod("restart") is None, timeout=30, what="the runner pod to go")
        assert fx.phase("restart") == "Cancelling", "nobody finished it while the operator was down"
    finally:
        operator.start()
    status = fx.wait_phase("restart", "Cancelled", timeout=30)
    assert status["cancellation"]["outcome"] == "Killed"
    assert fx.cancel_told("restart") == {"CancelRequested": 1, "Cancelled": 1}, fx.event_records("restart")
    assert "Signalled" not in fx.events("restart")


def test_metrics_count_cancellations(fx, operator):
    fx.create(longrun("measured"))
    fx.wait_step("measured")
    fx.cancel("measured")
    fx.wait_phase("measured", "Cancelled")
    def counted() -> str | None:
        text = operator.metrics()
        return text if 'outcome="Graceful"' in text else None

    text = wait_for(counted, timeout=10, what="the cancellation counter")
    assert 'flux_cancellations_total{outcome="Graceful",source="spec"}' in text
    assert 'flux_cancel_signal_seconds_count{source="spec"}' in text
    assert 'flux_cancel_complete_seconds_count{source="spec"}' in text
    wait_for(lambda: 'flux_executions{phase="Cancelled"}' in operator.metrics(), timeout=10, what="phase gauge")


def test_status_is_valid_json_for_tools(fx, kubectl):
    fx.create(manifest("jq", "flux_examples.quick:main"))
    fx.wait_phase("jq", "Succeeded")
    out = json.loads(kubectl("get", "fx", "jq", "-n", fx.ns, "-o", "json").stdout)
    assert out["status"]["phase"] == "Succeeded"


def test_runner_stops_by_itself_when_the_signal_is_lost(fx, operator):
    """With the operator down nobody signals; the runner sees spec.cancel at a step boundary."""
    fx.create(longrun("unsignalled", seconds=0.5))
    fx.wait_step("unsignalled")
    operator.stop(kill=True)
    try:
        fx.cancel("unsignalled", "noticed at a step boundary")
        wait_for(lambda: (fx.status("unsignalled").get("checkpoint") or {}).get("state") == "Cancelled",
                 timeout=20, what="the runner's own final checkpoint")
        assert fx.phase("unsignalled") == "Running", "the operator did nothing: it is down"
    finally:
        operator.start()
    status = fx.wait_phase("unsignalled", "Cancelled", timeout=30)
    assert status["cancellation"]["outcome"] == "Graceful"
    assert status["checkpoint"]["data"]["cleanedUp"] is True


def test_a_finished_phase_is_final_whoever_writes(fx):
    """A CEL transition rule on status: no stale operator write or forged one can revive it."""
    fx.create(manifest("final", "flux_examples.quick:main"))
    fx.wait_phase("final", "Succeeded")
    with pytest.raises(ApiException) as refused:
        fx.custom.patch_namespaced_custom_object_status(GROUP, "v1alpha1", fx.ns, "executions", "final",
                                                        {"status": {"phase": "Running"}})
    assert refused.value.status == 422
    assert "cannot change once the execution has finished" in refused.value.body
    assert fx.phase("final") == "Succeeded"


@pytest.mark.real_node_only
@pytest.mark.timeout(180)
def test_an_image_the_kubelet_cannot_pull_is_said_once_and_a_cancel_still_ends_it(fx):
    """A real kubelet: ErrImagePull and ImagePullBackOff alternate as its back-off grows. The execution says so
    once (a Started=False condition, one Warning Event) and stays Pending; a cancel ends it at once."""
    fx.create(manifest("unpulled", "flux_examples.quick:main", {"name": "x"}, image="localhost/flux-absent:1"))

    def said() -> list[dict]:
        return [c for c in fx.status("unpulled").get("conditions") or []
                if c.get("type") == "Started" and c.get("reason") == "RunnerImageNotPulled"]

    wait_for(said, timeout=120, what="the Started condition saying the image cannot be pulled")
    assert fx.phase("unpulled") == "Pending"
    assert "its image cannot be pulled" in fx.status("unpulled")["message"]
    time.sleep(20)  # the kubelet flips between its two reasons meanwhile
    assert fx.events("unpulled").count("RunnerNotCreated") == 1, fx.events("unpulled")
    fx.cancel("unpulled", "no such image")
    assert fx.wait_phase("unpulled", "Cancelled", timeout=90)["cancellation"]["reason"] == "no such image"
