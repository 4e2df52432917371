"""Runner pods under a real Kueue (its plain-Pod integration, sigs.k8s.io/kueue pinned in hack/kueue): admission
by a ClusterQueue's quota, a cancel while Kueue's gate holds the pod, and a preemption that resumes from the
checkpoint. Kueue runs beside the local cluster (localcluster.kueue); only this module's namespaces are
managed by it."""

from __future__ import annotations

import time
import uuid

import pytest
from flux_api.names import KUEUE_QUEUE_LABEL
from fluxtest import Executions, manifest, wait_for
from fluxtest.limits import started
from fluxtest.namespaces import TEST_LABELS, fresh_namespace
from kubernetes.client.rest import ApiException
from localcluster.kueue import NAMESPACE_LABEL, running

pytestmark = pytest.mark.cluster

KUEUE = ("kueue.x-k8s.io", "v1beta2")
FLAVOR = "flux-test-default"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
# A runner pod asks for 50m of CPU and 64Mi (the operator's defaults): this quota admits two at a time.
QUOTA = {"cpu": "100m", "memory": "128Mi"}


@pytest.fixture(scope="module")
def kueue(cluster, crd_installed, custom, tmp_path_factory):
    with running(cluster, tmp_path_factory.mktemp("kueue")) as proc:
        _ensure(custom, "resourceflavors", {"metadata": {"name": FLAVOR}, "spec": {}})
        for name, value in (("low", 1), ("high", 1000)):
            _ensure(custom, "workloadpriorityclasses", {"metadata": {"name": f"flux-test-{name}"}, "value": value})
        yield proc


def _ensure(custom, plural: str, body: dict) -> None:
    kind = {"resourceflavors": "ResourceFlavor", "workloadpriorityclasses": "WorkloadPriorityClass",
            "clusterqueues": "ClusterQueue"}[plural]
    try:
        custom.create_cluster_custom_object(*KUEUE, plural, {"apiVersion": "/".join(KUEUE), "kind": kind, **body})
    except ApiException as err:
        if err.status != 409:
            raise


@pytest.fixture
def fx(kueue, custom, core, operator):
    """A namespace Kueue manages, with a LocalQueue `lq` of its own ClusterQueue (QUOTA, preemption of lower
    priorities within it)."""
    with fresh_namespace(core, labels={**TEST_LABELS, NAMESPACE_LABEL: "true"}) as ns:
        queue = f"flux-test-{uuid.uuid4().hex[:8]}"
        _ensure(custom, "clusterqueues", {"metadata": {"name": queue}, "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "resourceGroups": [{"coveredResources": list(QUOTA), "flavors": [{"name": FLAVOR, "resources": [
                {"name": r, "nominalQuota": q} for r, q in QUOTA.items()]}]}],
            "preemption": {"withinClusterQueue": "LowerPriority"}}})
        custom.create_namespaced_custom_object(*KUEUE, ns, "localqueues", {
            "apiVersion": "/".join(KUEUE), "kind": "LocalQueue", "metadata": {"name": "lq"},
            "spec": {"clusterQueue": queue}})
        try:
            yield Executions(custom, core, ns)
        finally:
            custom.delete_cluster_custom_object(*KUEUE, "clusterqueues", queue)


def queued_run(name: str, steps: int, seconds: float, priority: str | None = None) -> dict:
    labels = {KUEUE_QUEUE_LABEL: "lq", **({PRIORITY_LABEL: f"flux-test-{priority}"} if priority else {})}
    return manifest(name, "flux_examples.longrun:main", {"steps": steps, "stepSeconds": seconds},
                    podTemplate={"metadata": {"labels": labels}})


def assert_gated(fx: Executions, name: str) -> None:
    wait_for(lambda: started(fx, name).get("reason") == "Queued", timeout=30, what=f"{name} queued by Kueue")
    status = fx.status(name)
    assert status["phase"] == "Pending" and status["message"] == "waiting: admission by Kueue (LocalQueue lq)", status
    pod = fx.pod(name)
    assert pod is not None and "kueue.x-k8s.io/admission" in [g.name for g in pod.spec.scheduling_gates or []]


def test_ten_executions_against_a_quota_of_two_run_two_at_a_time(fx):
    names = [f"batch-{i}" for i in range(10)]
    for name in names:
        fx.create(queued_run(name, steps=3, seconds=0.5))
    assert_gated(fx, "batch-9")
    most, deadline = 0, time.monotonic() + 240
    while time.monotonic() < deadline:
        phases = [fx.phase(n) for n in names]
        most = max(most, phases.count("Running"))
        if all(p == "Succeeded" for p in phases):
            break
        time.sleep(0.2)
    assert [fx.phase(n) for n in names] == ["Succeeded"] * 10
    assert most == 2, f"at most {most} ran at once under a quota of two"


def test_a_cancel_while_kueue_holds_the_pod_ends_not_started_and_it_is_never_admitted(fx):
    for name in ("hold-0", "hold-1"):
        fx.create(queued_run(name, steps=600, seconds=0.5))
        fx.wait_phase(name, "Running")
    fx.create(queued_run("gated", steps=3, seconds=0.5))
    assert_gated(fx, "gated")
    fx.cancel("gated", "no longer needed")
    status = fx.wait_phase("gated", "Cancelled", timeout=30)
    assert status["cancellation"]["outcome"] == "NotStarted", status["cancellation"]
    wait_for(lambda: fx.pod("gated") is None, timeout=60, what="the gated pod to be removed")
    fx.cancel("hold-0", "make room")
    fx.wait_phase("hold-0", "Cancelled")
    time.sleep(5)  # room for an admission that must not happen
    assert fx.pod("gated") is None and "startedAt" not in fx.status("gated")


def test_a_preempted_execution_resumes_from_its_checkpoint_never_failed(fx):
    for name in ("low-0", "low-1"):
        fx.create(queued_run(name, steps=600, seconds=0.5, priority="low"))
    for name in ("low-0", "low-1"):
        fx.wait_step(name, steps=3)
    fx.create(queued_run("urgent", steps=600, seconds=0.5, priority="high"))
    fx.wait_phase("urgent", "Running", timeout=90)
    preempted = wait_for(lambda: next((n for n in ("low-0", "low-1") if fx.status(n).get("resumes")), None),
                         timeout=60, what="a low-priority execution resumed after its preemption")
    done_before = len(fx.live_status(preempted)["checkpoint"]["steps"])
    assert fx.status(preempted)["resumes"] == 1
    # Its new pod waits for Kueue while the urgent one runs: still Running, Started=False Queued, deadline paused.
    wait_for(lambda: started(fx, preempted).get("reason") == "Queued", timeout=30,
             what=f"{preempted} to say its new pod waits for Kueue")
    assert fx.status(preempted)["phase"] == "Running"
    time.sleep(2)  # a wait long enough to be counted in whole seconds
    fx.cancel("urgent", "done with it")
    wait_for(lambda: len(fx.live_status(preempted)["checkpoint"]["steps"]) > done_before + 2, timeout=90,
             what=f"{preempted} going on in its new pod")
    status = fx.status(preempted)
    assert status["phase"] == "Running" and status["resumes"] == 1, status
    assert started(fx, preempted).get("status") == "True" and status.get("queuedSeconds", 0) >= 2, \
        "the wait for re-admission was not left out of the deadline"
    steps = [s["name"] for s in status["checkpoint"]["steps"]]
    assert len(steps) == len(set(steps)), "a finished step ran again after the preemption"
