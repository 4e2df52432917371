"""Four ways to cancel reach the same end; GitOps (server-side apply) can neither undo nor lose a cancel."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import yaml
from flux_api import CANCEL_ANNOTATION
from fluxtest import REPO, Executions, longrun

pytestmark = pytest.mark.cluster

REASON = "same reason, any way"
GITOPS = REPO / "examples" / "gitops"
IMMUTABLE = "spec.cancel cannot be removed or changed once set"


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


@pytest.fixture
def apply(kubectl):
    """`kubectl apply --server-side` of one manifest under a field manager, as a GitOps tool does."""
    def run(fx: Executions, body: dict, manager: str = "gitops", check: bool = True) -> subprocess.CompletedProcess:
        return kubectl("apply", "--server-side", f"--field-manager={manager}", "-n", fx.ns, "-f", "-",
                       input=yaml.safe_dump(body), check=check)
    return run


@pytest.fixture
def plugin(kube_env):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl-flux", *args], env=kube_env, capture_output=True, text=True, timeout=120)
    return run


@dataclass
class Tools:
    fx: Executions
    kubectl: Callable[..., subprocess.CompletedProcess]
    apply: Callable[..., subprocess.CompletedProcess]
    plugin: Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def tools(fx, kubectl, apply, plugin) -> Tools:
    return Tools(fx, kubectl, apply, plugin)


def original(name: str) -> dict:
    body = longrun(name, gracePeriodSeconds=10)
    # Its cleanup also waits on a release that hangs, under asyncio.timeout (flux_runner.deadline on 3.11.2).
    return {**body, "spec": {**body["spec"], "input": {**body["spec"]["input"], "cleanupTimeout": 0.3}}}


def with_cancel(body: dict, reason: str = REASON) -> dict:
    return {**body, "spec": {**body["spec"], "cancel": {"reason": reason}}}


# --- four ways, one outcome --------------------------------------------------------------------------

def by_patch(t: Tools, name: str) -> None:
    patch = json.dumps({"spec": {"cancel": {"reason": REASON}}})
    t.kubectl("patch", "fx", name, "-n", t.fx.ns, "--type", "merge", "-p", patch)


def by_annotation(t: Tools, name: str) -> None:
    t.kubectl("annotate", "fx", name, "-n", t.fx.ns, f"{CANCEL_ANNOTATION}={REASON}")


def by_plugin(t: Tools, name: str) -> None:
    result = t.plugin("cancel", name, "-n", t.fx.ns, "--reason", REASON)
    assert result.returncode == 0, result.stderr


def by_gitops(t: Tools, name: str) -> None:
    t.apply(t.fx, with_cancel(original(name)))


@pytest.mark.parametrize("way,source", [
    (by_patch, "spec"), (by_annotation, "annotation"), (by_plugin, "spec"), (by_gitops, "spec"),
], ids=["kubectl-patch", "kubectl-annotate", "kubectl-flux", "server-side-apply"])
def test_every_way_ends_the_same(fx, apply, tools, way, source):
    apply(fx, original("job"))  # created the GitOps way; the other ways act on it from outside
    fx.wait_step("job")
    way(tools, "job")
    status = fx.wait_phase("job", "Cancelled")
    c = status["cancellation"]
    assert (c["reason"], c["source"], c["outcome"]) == (REASON, source, "Graceful")
    assert status["checkpoint"]["state"] == "Cancelled"
    assert status["checkpoint"]["data"]["cleanedUp"] is True
    assert status["checkpoint"]["data"]["stoppedFor"] == "Cancel", "the workflow was told it is for good"
    assert status["checkpoint"]["data"]["cleanupWait"] == "TimeoutError", "a timeout in cleanup is a TimeoutError"
    assert {x["type"]: x["reason"] for x in status["conditions"]}["Finished"] == "Cancelled"
    assert fx.pod("job") is None


# --- GitOps: a cancel is never lost, and never silently undone --------------------------------------

def cancel_request(obj: dict) -> tuple[dict | None, str | None]:
    return obj["spec"].get("cancel"), (obj["metadata"].get("annotations") or {}).get(CANCEL_ANNOTATION)


@pytest.mark.parametrize("way,manager", [
    (by_plugin, "gitops"), (by_patch, "gitops"), (by_annotation, "gitops"), (by_gitops, "other-tool"),
], ids=["kubectl-flux-then-gitops-resync", "kubectl-patch-then-gitops-resync",
        "kubectl-annotate-then-gitops-resync", "gitops-cancel-then-other-manager"])
def test_reapplying_the_original_without_owning_the_cancel_keeps_it(fx, apply, tools, way, manager):
    """A re-sync of the original manifest by a manager that never set the cancel leaves it alone."""
    apply(fx, original("job"))
    fx.wait_step("job")
    way(tools, "job")
    fx.wait_phase("job", "Cancelled")
    before = cancel_request(fx.get("job"))
    spec_request = {"reason": REASON, "cascade": True, "force": False}  # with the API's defaults
    assert before in ((spec_request, None), (None, REASON))
    result = apply(fx, original("job"), manager=manager, check=False)
    assert result.returncode == 0, result.stderr
    after = fx.get("job")
    assert cancel_request(after) == before
    assert after["status"]["phase"] == "Cancelled"


def test_same_manager_dropping_or_changing_cancel_is_rejected(fx, apply):
    """Cancellation cannot be undone: the manager that set spec.cancel cannot remove or edit it."""
    apply(fx, original("job"))
    fx.wait_step("job")
    apply(fx, with_cancel(original("job")))
    fx.wait_phase("job", "Cancelled")
    for body in (original("job"), with_cancel(original("job"), "a different reason")):
        result = apply(fx, body, check=False)
        assert result.returncode == 1
        assert IMMUTABLE in result.stderr and "cancellation cannot be undone" in result.stderr
    obj = fx.get("job")
    assert obj["spec"]["cancel"]["reason"] == REASON and obj["status"]["phase"] == "Cancelled"


def test_a_later_commit_cancels_the_kustomized_execution(fx, kubectl):
    base = kubectl("kustomize", str(GITOPS / "base")).stdout
    later = kubectl("kustomize", str(GITOPS / "cancelled")).stdout
    patch = yaml.safe_load((GITOPS / "cancelled" / "cancel-patch.yaml").read_text())["spec"]["cancel"]
    first, second = yaml.safe_load(base), yaml.safe_load(later)
    assert second["spec"].pop("cancel") == patch, "the later commit adds spec.cancel ..."
    assert second == first, "... and changes nothing else"
    name = first["metadata"]["name"]

    def sync(rendered: str, check: bool = True) -> subprocess.CompletedProcess:
        return kubectl("apply", "--server-side", "--field-manager=gitops", "-n", fx.ns, "-f", "-", input=rendered,
                       check=check)

    sync(base)
    fx.wait_step(name)
    sync(later)
    status = fx.wait_phase(name, "Cancelled")
    c = status["cancellation"]
    assert (c["reason"], c["source"], c["outcome"]) == (patch["reason"], "spec", "Graceful")
    assert fx.pod(name) is None
    reverted = sync(base, check=False)  # reverting the commit does not bring the work back
    assert reverted.returncode == 1 and IMMUTABLE in reverted.stderr
    assert fx.phase(name) == "Cancelled"

