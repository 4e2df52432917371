"""spec.podTemplate, spec.startAt, spec.retry and spec.ttlSecondsAfterFinished on a real cluster."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from flux_api.timefmt import format_time
from fluxtest import REPO, Executions, gone, manifest, wait_for
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


def rejected(fx: Executions, body: dict) -> str:
    with pytest.raises(ApiException) as caught:
        fx.create(body)
    assert caught.value.status == 422
    assert not fx.exists(body["metadata"]["name"])  # refused whole: nothing half-created
    return caught.value.body


# --- podTemplate ------------------------------------------------------------------------------------

def test_pod_template_reaches_the_runner(fx, core, namespace):
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"MODE": "fast"}})
    template = {
        "metadata": {"labels": {"team": "data"}, "annotations": {"example.com/owner": "data"}},
        "env": [{"name": "GREETING", "value": "hello"}],
        "envFrom": [{"configMapRef": {"name": "settings"}}],
        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "300Mi"}},
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "serviceAccountAnnotations": {"iam.gke.io/gcp-service-account": "runner@p.iam.gserviceaccount.com"},
    }
    fx.create(manifest("env", "flux_examples.environment:main",
                       {"names": ["GREETING", "MODE"], "paths": ["/scratch"]}, podTemplate=template))
    status = fx.wait_phase("env", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["checkpoint"]["result"] == {"env": {"GREETING": "hello", "MODE": "fast"},
                                              "paths": {"/scratch": True}}
    pod = fx.pod("env")
    assert pod.metadata.labels["team"] == "data" and pod.metadata.labels["workflows.flux.dev/execution"] == "env"
    assert pod.metadata.annotations["example.com/owner"] == "data"
    assert pod.spec.containers[0].resources.limits == {"memory": "300Mi"}
    account = core.read_namespaced_service_account("flux-runner-env", namespace)
    assert account.metadata.annotations["iam.gke.io/gcp-service-account"] == "runner@p.iam.gserviceaccount.com"


@pytest.mark.parametrize("template, message", [
    ({"env": [{"name": "FLUX_EXECUTION_NAME", "value": "x"}]}, "cannot set FLUX_* variables"),
    ({"metadata": {"labels": {"workflows.flux.dev/execution": "other"}}}, "the operator selects runner pods"),
    ({"volumeMounts": [{"name": "t", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]},
     "cannot cover /tmp or the service account token"),
    ({"volumes": [{"name": "tmp", "emptyDir": {}}]}, "cannot use the name tmp"),
    ({"env": [{"name": "PYTHONNOUSERSITE", "value": ""}]}, "PYTHONNOUSERSITE: the operator sets them"),
    ({"volumeMounts": [{"name": "t", "mountPath": "/data/../usr/lib"}]}, "must be a clean absolute path"),
    ({"volumeMounts": [{"name": "t", "mountPath": "//usr"}]}, "must be a clean absolute path"),
    ({"volumeMounts": [{"name": "t", "mountPath": "usr/lib"}]}, "must be a clean absolute path"),
])
def test_owned_fields_are_refused_by_the_api_server(fx, template, message):
    assert message in rejected(fx, manifest("bad", "flux_examples.quick:main", podTemplate=template))


def test_a_runner_pod_no_node_fits_says_so_in_the_schedulers_words_and_can_be_cancelled(fx):
    fx.create(manifest("huge", "flux_examples.quick:main",
                       podTemplate={"resources": {"requests": {"cpu": "500", "memory": "32Mi"}}}))
    status = wait_for(lambda: "not scheduled" in (s := fx.status("huge")).get("message", "") and s,
                      timeout=60, what="huge to say its pod is not scheduled")
    assert status["phase"] == "Pending"
    assert status["message"].startswith("waiting: runner pod huge-runner is not scheduled: 0/1 nodes are available")
    assert "Insufficient cpu" in status["message"]
    started = next(c for c in status["conditions"] if c["type"] == "Started")
    assert (started["status"], started["reason"]) == ("False", "RunnerUnschedulable")
    assert "RunnerUnschedulable" in fx.events("huge")
    fx.cancel("huge", "never fits")
    assert fx.wait_phase("huge", "Cancelled")["cancellation"]["reason"] == "never fits"


def test_unknown_pod_fields_are_refused_by_kubectl(kubectl, namespace, operator):
    body = ('{"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution", "metadata": {"name": "bad"},'
            ' "spec": {"workflow": "a.b:c", "podTemplate": {"command": ["sh"]}}}')
    result = kubectl("apply", "-n", namespace, "-f", "-", input=body, check=False)
    assert result.returncode != 0 and 'unknown field "spec.podTemplate.command"' in result.stderr


# --- startAt ----------------------------------------------------------------------------------------

def test_delayed_start_waits_pending_then_runs(fx):
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=8)
    fx.create(manifest("later", "flux_examples.quick:main", startAt=start.strftime("%Y-%m-%dT%H:%M:%SZ")))
    status = wait_for(lambda: (s := fx.status("later")).get("message", "").startswith("waiting") and s,
                      timeout=30, what="later to say when it starts")
    assert status["phase"] == "Pending"
    assert status["message"] == f"waiting: starts at {format_time(start)}"
    assert fx.pod("later") is None
    status = fx.wait_phase("later", "Succeeded", timeout=60)
    assert datetime.fromisoformat(status["startedAt"].replace("Z", "+00:00")) >= start


def test_cancel_before_start_ends_not_started_and_no_pod_ever(fx):
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    fx.create(manifest("never", "flux_examples.quick:main", startAt=start.strftime("%Y-%m-%dT%H:%M:%SZ")))
    wait_for(lambda: fx.status("never").get("message", "").startswith("waiting"), timeout=30, what="waiting")
    fx.cancel("never", "not needed after all")
    status = fx.wait_phase("never", "Cancelled")
    assert status["cancellation"]["outcome"] == "NotStarted"
    assert fx.pod("never") is None
    assert "Started" not in fx.events("never")


def test_a_start_time_in_the_wrong_format_is_refused(fx):
    assert "spec.startAt must be an RFC 3339 time" in rejected(
        fx, manifest("bad", "flux_examples.quick:main", startAt="tomorrow 9am"))


# --- retry ------------------------------------------------------------------------------------------

def test_a_failed_run_is_retried_from_its_checkpoint_in_a_new_pod(fx):
    fx.create(manifest("flaky", "flux_examples.flaky:main", {"failures": 1},
                       retry={"limit": 2, "backoffSeconds": 1}))
    status = fx.wait_phase("flaky", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["retries"] == 1
    assert status["podName"] == "flaky-runner-1"
    steps = [s["name"] for s in status["checkpoint"]["steps"]]
    assert steps.count("prepare") == 1  # the finished step was not run again
    assert steps == ["run-1", "prepare", "run-2"]
    assert status["checkpoint"]["result"]["runs"] == 2
    assert "RetryScheduled" in fx.events("flaky")


def test_retries_run_out_and_it_fails(fx):
    fx.create(manifest("hopeless", "flux_examples.flaky:main", {"failures": 5},
                       retry={"limit": 1, "backoffSeconds": 0}))
    status = fx.wait_phase("hopeless", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Failed" and status["retries"] == 1
    assert "transient failure in run 2" in status["message"]


def test_cancel_during_backoff_ends_at_once_and_is_never_retried(fx):
    fx.create(manifest("backoff", "flux_examples.flaky:main", {"failures": 5},
                       retry={"limit": 3, "backoffSeconds": 600}))
    wait_for(lambda: fx.status("backoff").get("nextRetryAt"), timeout=60, what="a retry to be scheduled")
    fx.cancel("backoff", "give up")
    status = fx.wait_phase("backoff", "Cancelled", timeout=15)
    assert status["cancellation"]["outcome"] == "NotStarted"
    assert status["retries"] == 1 and fx.pod("backoff") is None


def test_a_negative_retry_limit_is_refused(fx):
    assert "spec.retry.limit" in rejected(fx, manifest("bad", "flux_examples.quick:main", retry={"limit": -1}))


# --- ttlSecondsAfterFinished ------------------------------------------------------------------------

def test_ttl_deletes_the_execution_and_what_it_owns(fx, core, namespace):
    fx.create(manifest("short", "flux_examples.quick:main", ttlSecondsAfterFinished=3))
    fx.wait_phase("short", "Succeeded")
    wait_for(lambda: not fx.exists("short"), timeout=30, what="short to be deleted after its TTL")
    wait_for(lambda: fx.pod("short") is None, timeout=60, what="the runner pod to be garbage collected")
    wait_for(lambda: gone(core.read_namespaced_service_account, "flux-runner-short", namespace), timeout=60,
             what="the runner ServiceAccount to be garbage collected")


def test_without_ttl_a_finished_execution_stays(fx):
    fx.create(manifest("kept", "flux_examples.quick:main"))
    fx.wait_phase("kept", "Succeeded")
    time.sleep(3)
    assert fx.exists("kept")


def test_example_manifests_are_valid(kubectl, namespace, operator):
    for name in ("delayed-retry.yaml", "pod-template.yaml", "schedule.yaml", "unschedule.yaml"):
        text = (REPO / "examples" / "manifests" / name).read_text().replace("START_AT", "2030-01-01T00:00:00Z")
        kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=text)


def test_the_delayed_retry_and_pod_template_examples_run_end_to_end(fx, kubectl, namespace):
    start = (datetime.now(timezone.utc) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = (REPO / "examples" / "manifests" / "delayed-retry.yaml").read_text().replace("START_AT", start)
    kubectl("apply", "-n", namespace, "-f", "-", input=text)
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "manifests" / "pod-template.yaml"))
    assert fx.wait_phase("quick-template", "Succeeded", "Failed")["phase"] == "Succeeded"
    status = fx.wait_phase("delayed-retry", "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded" and status["retries"] == 1, status.get("message")
    assert status["startedAt"] >= start.replace("Z", "")
