"""Signals on a real cluster: an approval waits without a pod and goes on with the data a signal carries, sent
by a tenant's `kubectl patch`, the plugin or a GitOps apply; a timeout raises in the workflow; the list is
append-only."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from fluxtest import Executions, manifest, wait_for
from fluxtest.identity import whoami
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

DECISION = {"approved": True, "by": "ada"}


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


@pytest.fixture
def plugin(kube_env):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl-flux", *args], env=kube_env, capture_output=True, text=True, timeout=120)
    return run


def gitops(kubectl, fx: Executions, body: dict) -> None:
    kubectl("apply", "--server-side", "--field-manager=gitops", "-n", fx.ns, "-f", "-", input=yaml.safe_dump(body),
            check=True)


@pytest.mark.parametrize(("way", "manager"), [("tenant-patch", "kubectl-patch"), ("plugin", "kubectl-flux"),
                                              ("gitops", "gitops")])
def test_an_approval_waits_without_a_pod_and_goes_on_with_the_signals_data(fx, api, tenant, plugin, kubectl, way,
                                                                           manager):
    body = manifest("approval", "flux_examples.approval:main")
    if way == "gitops":
        gitops(kubectl, fx, body)
    else:
        fx.create(body)
    status = fx.wait_phase("approval", "Waiting", timeout=60)
    assert status["message"] == "waiting for signal approve"
    before = status["checkpoint"]["steps"]
    wait_for(lambda: fx.pod("approval") is None, timeout=30, what="the runner pod to be gone while it waits")
    if way == "tenant-patch":  # a tenant may patch Executions, nothing more: that is all a signal takes
        entry = {"name": "approve", "data": json.dumps(DECISION), "reason": "looks good", "sentBy": tenant.user}
        tenant.kubectl("patch", "fx", "approval", "--type", "merge", "-p", json.dumps({"spec": {"signals": [entry]}}),
                       check=True)
    elif way == "plugin":
        sent = plugin("signal", "approval", "approve", "-n", fx.ns, "--data", json.dumps(DECISION),
                      "--reason", "looks good")
        assert sent.returncode == 0 and "signal approve sent" in sent.stdout, sent.stderr
    else:
        body["spec"]["signals"] = [{"name": "approve", "data": json.dumps(DECISION), "reason": "looks good"}]
        gitops(kubectl, fx, body)
    status = fx.wait_phase("approval", "Succeeded", timeout=90)
    # Who sent it, as the API server knows them: the tenant named itself, the plugin asked; a GitOps commit names
    # no one, so only its (client-named) field manager is there. The workflow sees the same sender.
    sender = {"tenant-patch": tenant.user, "plugin": whoami(api), "gitops": None}[way]
    approved_by = {"approvedBy": sender} if sender else {}  # a null in a merge patch is no key at all
    assert status["checkpoint"]["result"] == {"applied": True, "rows": 42, "decision": DECISION, **approved_by}
    assert status["checkpoint"]["steps"][: len(before)] == before, "prepare did not run again"
    received = status["signals"]
    assert [(r["name"], r["index"], r.get("sentBy"), r["fieldManager"]) for r in received] == [
        ("approve", 0, sender, manager)]
    told = [m for r, m in fx.event_records("approval") if r == "SignalReceived"]
    source = f"from {sender}" if sender else f"from a sender not verified (field manager {manager})"
    assert told == [f"signal approve received {source}: looks good"]


def test_a_wait_that_times_out_raises_in_the_workflow(fx):
    fx.create(manifest("impatient", "flux_examples.approval:main", {"timeoutSeconds": 3}))
    status = fx.wait_phase("impatient", "Succeeded", timeout=60)
    assert status["checkpoint"]["result"] == {"applied": False, "why": "nobody decided in time"}


def test_signals_are_append_only_and_a_finished_execution_says_so(fx, plugin):
    fx.create(manifest("once", "flux_examples.approval:main", {"timeoutSeconds": 3600}))
    fx.wait_phase("once", "Waiting", timeout=60)
    assert plugin("signal", "once", "approve", "-n", fx.ns, "--data", '{"approved": false}').returncode == 0
    with pytest.raises(ApiException) as refused:
        fx.patch("once", {"spec": {"signals": []}})
    assert "spec.signals is append-only" in refused.value.body
    status = fx.wait_phase("once", "Succeeded", timeout=60)
    assert status["checkpoint"]["result"]["why"] == "rejected"
    late = plugin("signal", "once", "approve", "-n", fx.ns)
    assert late.returncode == 3 and "already finished (Succeeded)" in late.stdout, late
