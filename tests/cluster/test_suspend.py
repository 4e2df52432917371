"""Suspend and resume on a real cluster: the cancel's graceful path, undone by spec.suspend false.

Every way in (a tenant's `kubectl patch`, the plugin, a GitOps apply) suspends a running execution
through Suspending to Suspended with no pod left, and resumes it in a new pod that runs no finished step
again. Trees suspend and resume together; a cancel of a suspended execution ends it at once.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml
from flux_api.names import SUSPEND_REASON_ANNOTATION, SUSPENDED_BY_ANNOTATION
from fluxtest import Executions, longrun, manifest, wait_for

pytestmark = pytest.mark.cluster

REASON = "node maintenance"
STEPS = [f"step-{i}" for i in range(1, 11)]


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


@pytest.fixture
def plugin(kube_env):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl-flux", *args], env=kube_env, capture_output=True, text=True, timeout=120)
    return run


def gitops(kubectl, fx: Executions, body: dict) -> None:
    """`kubectl apply --server-side` of the whole manifest, as a GitOps tool does on each commit."""
    kubectl("apply", "--server-side", "--field-manager=gitops", "-n", fx.ns, "-f", "-", input=yaml.safe_dump(body),
            check=True)


def assert_suspended_without_a_pod(fx: Executions, name: str, outcome: str = "Graceful") -> dict:
    status = fx.wait_phase(name, "Suspended", timeout=60)
    assert status["suspension"]["outcome"] == outcome, status["suspension"]
    assert status["suspension"]["suspendedAt"] and status["suspension"]["requestedAt"]
    assert "finishedAt" not in status, "a suspend is no end"
    wait_for(lambda: fx.pod(name) is None, timeout=30, what=f"{name}'s runner pod to be gone")
    return status


def assert_no_step_ran_twice(before: list[dict], status: dict) -> None:
    steps = status["checkpoint"]["steps"]
    assert [s["name"] for s in steps] == STEPS, "no step twice, none lost"
    assert steps[: len(before)] == before, "the steps finished before the suspend were kept, not run again"


@pytest.mark.parametrize("way", ["tenant-patch", "plugin", "gitops"])
def test_a_running_execution_suspends_and_resumes_without_running_a_step_twice(fx, tenant, plugin, kubectl, way):
    body = longrun("pause", steps=10, seconds=0.4)
    body["metadata"]["annotations"] = {}
    # A tenant may create and patch Executions, nothing more: that is all a suspend and a resume take.
    actor = tenant.fx if way == "tenant-patch" else fx
    if way == "gitops":
        gitops(kubectl, fx, body)  # the tool that creates it owns its fields, spec.suspend's default included
    else:
        actor.create(body)
    fx.wait_step("pause", steps=2)
    if way == "tenant-patch":
        actor.patch("pause", {"metadata": {"annotations": {SUSPEND_REASON_ANNOTATION: REASON}}, "spec": {"suspend": True}})
    elif way == "plugin":
        result = plugin("suspend", "pause", "-n", fx.ns, "--reason", REASON)
        assert result.returncode == 0 and "suspend requested" in result.stdout, result.stderr
    else:
        body["metadata"]["annotations"] = {SUSPEND_REASON_ANNOTATION: REASON}
        body["spec"]["suspend"] = True
        gitops(kubectl, fx, body)
    status = assert_suspended_without_a_pod(fx, "pause")
    assert status["suspension"]["reason"] == REASON and status["suspension"]["count"] == 1
    # The workflow's cleanup was told it is a suspend (ctx.stop_reason), not a cancel: nothing to undo.
    assert status["checkpoint"]["data"]["stoppedFor"] == "Suspend", status["checkpoint"].get("data")
    before = status["checkpoint"]["steps"]
    assert 2 <= len(before) < len(STEPS)
    time.sleep(2)
    assert fx.phase("pause") == "Suspended" and fx.pod("pause") is None, "nothing runs while suspended"
    if way == "tenant-patch":
        actor.patch("pause", {"spec": {"suspend": False}})
    elif way == "plugin":
        result = plugin("resume", "pause", "-n", fx.ns, "-o", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["changed"] is True
    else:
        body["spec"]["suspend"] = False
        gitops(kubectl, fx, body)
    status = fx.wait_phase("pause", "Succeeded", timeout=90)
    assert_no_step_ran_twice(before, status)
    assert status["suspension"]["resumedAt"] and status["suspension"]["suspendedSeconds"] >= 2
    reasons = fx.events("pause")
    assert reasons.count("SuspendRequested") == 1 and reasons.count("Suspended") == 1
    assert reasons.count("Resumed") == 1


def test_a_tree_suspends_and_resumes_together(fx):
    fx.create(manifest("family", "flux_examples.tree:main", {"steps": 10, "stepSeconds": 0.4}))
    leaves = ("family-left-leaf", "family-right-leaf")
    for leaf in leaves:
        wait_for(lambda leaf=leaf: fx.exists(leaf), timeout=60, what=f"{leaf} to be spawned")
        fx.wait_step(leaf, steps=2)
    fx.patch("family", {"spec": {"suspend": True}})
    assert_suspended_without_a_pod(fx, "family")
    before = {}
    for name in ("family-left", "family-right", *leaves):
        child = fx.get(name)
        assert child["status"]["phase"] == "Suspended", name
        # Graceful: the runner wrote its last checkpoint on SIGTERM (a waiting parent once lost the cancel
        # when the watch woke it in the same instant, and was killed at the end of its grace period).
        assert child["status"]["suspension"]["outcome"] == "Graceful", (name, child["status"]["suspension"])
        assert child["metadata"]["annotations"][SUSPENDED_BY_ANNOTATION] in ("family", "family-left", "family-right")
        assert fx.pod(name) is None, name
        before[name] = child["status"]["checkpoint"]["steps"]
    fx.patch("family", {"spec": {"suspend": False}})
    status = fx.wait_phase("family", "Succeeded", timeout=120)
    assert status["checkpoint"]["result"]["left"]["leaf"] == {"completedSteps": 10}
    for leaf in leaves:
        assert_no_step_ran_twice(before[leaf], fx.status(leaf))
        assert SUSPENDED_BY_ANNOTATION not in (fx.get(leaf)["metadata"].get("annotations") or {})


def test_a_cancel_of_a_suspended_tree_ends_it_at_once(fx):
    fx.create(manifest("idle", "flux_examples.tree:main", {"steps": 600, "stepSeconds": 0.5}))
    wait_for(lambda: fx.exists("idle-left-leaf"), timeout=60, what="the leaf to be spawned")
    fx.wait_step("idle-left-leaf")
    fx.patch("idle", {"spec": {"suspend": True}})
    fx.wait_phase("idle", "Suspended", timeout=60)
    fx.cancel("idle", "not needed any more")
    status = fx.wait_phase("idle", "Cancelled", timeout=30)
    assert status["cancellation"]["outcome"] == "WhileSuspended"
    assert status["message"] == "cancelled while suspended: not needed any more"
    for name in ("idle-left", "idle-left-leaf"):
        child = fx.wait_phase(name, "Cancelled", timeout=30)
        assert child["cancellation"]["outcome"] == "WhileSuspended", name


def test_an_execution_created_suspended_never_starts_until_resumed(fx, plugin):
    body = longrun("later", steps=2, seconds=0.1)
    body["spec"]["suspend"] = True
    fx.create(body)
    status = fx.wait_phase("later", "Suspended", timeout=30)
    assert status["suspension"]["outcome"] == "NotStarted"
    time.sleep(2)
    assert fx.pod("later") is None and "startedAt" not in fx.status("later")
    listed = plugin("list", "-n", fx.ns)
    assert "Suspended" in listed.stdout and "suspended (NotStarted)" in listed.stdout, listed.stdout
    assert plugin("resume", "later", "-n", fx.ns).returncode == 0
    fx.wait_phase("later", "Succeeded", timeout=60)
    finished = plugin("suspend", "later", "-n", fx.ns)
    assert finished.returncode == 3 and "already finished (Succeeded)" in finished.stdout, finished
