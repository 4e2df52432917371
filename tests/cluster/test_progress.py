"""Where a running execution's checkpoints go (its ExecutionProgress), and who may touch that object.

The runner writes its periodic checkpoints to an ExecutionProgress the operator makes and never watches.
Only its own runner may write it; a tenant who may create and patch Executions holds nothing on it, and the
CLI still answers them from the Execution. An object that goes away mid-run loses nothing: the runner's
later checkpoints go to the Execution.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from flux_api import GROUP, VERSION, progress
from fluxtest import Executions, longrun, wait_for
from fluxtest.faults import as_runner
from fluxtest.identity import account_kubeconfig, bind_account
from fluxtest.podlogs import LogFollower
from fluxtest.tenancy import execution_rules
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

FORGED = {"state": "Running", "sequence": 10**9, "stepCount": 600,
          "steps": [{"name": f"step-{i}", "result": None} for i in range(3)]}


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


def _refusal(call, *args) -> str | None:
    try:
        call(*args)
    except ApiException as err:
        return f"{err.status} {err.body}"
    return None


def _progress_as_runner(kubeconfig, fx, name: str, target: str, body: dict, status: bool = True) -> str | None:
    """Merge-patches `target`'s ExecutionProgress (its status, or with `status=False` the object itself) as
    runner `name` with its pod's token (fluxtest.faults.as_runner); the refusal, or None."""
    runner = client.CustomObjectsApi(as_runner(kubeconfig, fx.ns, name))
    patch = runner.patch_namespaced_custom_object_status if status else runner.patch_namespaced_custom_object
    try:
        patch(GROUP, "v1alpha1", fx.ns, progress.PLURAL, target, body)
    except ApiException as err:
        return f"{err.status} {err.body}"
    return None


def test_progress_goes_to_the_progress_object_which_only_its_own_runner_may_write(fx, kubeconfig):
    fx.create(longrun("honest", seconds=0.2))
    fx.create(longrun("victim", seconds=0.2))
    fx.wait_step("honest", steps=3)
    fx.wait_step("victim")
    uid = fx.get("honest")["metadata"]["uid"]
    made = fx.progress("honest")
    assert [(o["kind"], o["uid"], o.get("controller")) for o in made["metadata"]["ownerReferences"]] == \
        [("Execution", uid, True)], "owned by its Execution: collected with it"
    assert made["status"]["checkpoint"]["stepCount"] >= 3
    recorded = fx.status("honest").get("checkpoint") or {}
    assert recorded.get("stepCount", 0) < made["status"]["checkpoint"]["stepCount"], \
        "the periodic writes did not go to the Execution the operator watches"
    forged = {"status": {"checkpoint": {"state": "Running", "sequence": 1}}}
    assert _progress_as_runner(kubeconfig, fx, "honest", "honest", {"status": made["status"]}) is None
    refused = _progress_as_runner(kubeconfig, fx, "honest", "victim", forged)
    assert refused is not None and refused.startswith("403"), "not another execution's"
    stripped = _progress_as_runner(kubeconfig, fx, "honest", "honest", {"metadata": {"ownerReferences": None}},
                                   status=False)
    assert stripped is not None and stripped.startswith("403"), "its owner (and so its collection) is not the runner's"
    status = fx.wait_phase("victim", "Succeeded", "Running")
    assert status["phase"] == "Running"
    fx.cancel("honest", "enough")
    final = fx.wait_phase("honest", "Cancelled", timeout=60)["checkpoint"]
    assert final["state"] == "Cancelled" and final["stepCount"] >= 3, "the final word, every step, on the Execution"
    assert final["sequence"] > made["status"]["checkpoint"]["sequence"]


def test_a_tenant_can_neither_plant_nor_touch_a_progress_object_and_still_reads_the_status(
        fx, tenant, api, cluster, namespace, kube_env, tmp_path):
    # Planted before the execution exists: a runner would go on from a forged checkpoint of its own name.
    planted = {"apiVersion": f"{GROUP}/{VERSION}", "kind": progress.KIND, "metadata": {"name": "mine"},
               "status": {"checkpoint": FORGED}}
    refused = _refusal(tenant.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, progress.PLURAL,
                       planted)
    assert refused is not None and refused.startswith("403") and progress.PLURAL in refused, refused
    tenant.fx.create(longrun("mine", seconds=0.2))
    fx.wait_step("mine", steps=3)
    made = fx.progress("mine")
    assert made is not None and made["metadata"]["ownerReferences"][0]["uid"] == fx.get("mine")["metadata"]["uid"]
    custom = tenant.custom
    for what, call, args in [
        ("read", custom.get_namespaced_custom_object, ()),
        ("forge", custom.patch_namespaced_custom_object_status, ({"status": {"checkpoint": FORGED}},)),
        ("strip its owner", custom.patch_namespaced_custom_object, ({"metadata": {"ownerReferences": None}},)),
        ("delete", custom.delete_namespaced_custom_object, ()),
    ]:
        refused = _refusal(call, GROUP, VERSION, namespace, progress.PLURAL, "mine", *args)
        assert refused is not None and refused.startswith("403"), f"a tenant may {what} it: {refused}"
    assert fx.progress("mine")["status"]["checkpoint"]["sequence"] < FORGED["sequence"]

    # The CLI with a tenant's own token (not the admin's): it answers from the Execution, no error.
    bind_account(api, namespace, "member", execution_rules())
    kubeconfig = account_kubeconfig(api, cluster, namespace, "member", tmp_path / "member")
    env = {**kube_env, "KUBECONFIG": str(kubeconfig), "NO_COLOR": "1"}
    seen = subprocess.run(["kubectl-flux", "status", "mine", "-n", namespace, "-o", "json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert seen.returncode == 0, seen.stderr
    shown = json.loads(seen.stdout)
    assert shown["phase"] == "Running" and shown["checkpoint"]["state"] == "Running", shown
    fx.cancel("mine", "enough")
    final = fx.wait_phase("mine", "Cancelled", timeout=60)["checkpoint"]
    assert final["stepCount"] >= 3 and final["sequence"] < FORGED["sequence"]


def test_a_progress_object_deleted_mid_run_sends_the_checkpoints_back_to_the_execution(fx, custom, core):
    fx.create(longrun("lost", seconds=0.2))
    fx.wait_step("lost", steps=3)
    log = LogFollower(core, fx.ns, "lost-runner", "runner")
    assert fx.progress("lost") is not None
    written = (fx.status("lost").get("checkpoint") or {}).get("stepCount", 0)
    custom.delete_namespaced_custom_object(GROUP, VERSION, fx.ns, progress.PLURAL, "lost")
    wait_for(lambda: fx.progress("lost") is None, timeout=30, what="the ExecutionProgress to go")

    def on_the_execution():
        checkpoint = fx.status("lost").get("checkpoint") or {}
        return checkpoint if checkpoint.get("stepCount", 0) > written + 3 else None
    moving = wait_for(on_the_execution, timeout=60, what="periodic checkpoints on the Execution again")
    assert fx.progress("lost") is None, "not made again: the operator asks for one once"
    assert fx.phase("lost") == "Running"
    fx.cancel("lost", "enough")
    status = fx.wait_phase("lost", "Cancelled", timeout=60)
    assert status["cancellation"]["outcome"] == "Graceful"
    assert status["checkpoint"]["state"] == "Cancelled"
    assert status["checkpoint"]["stepCount"] >= moving["stepCount"], "no step lost"
    assert "checkpoints go to the Execution" in log.finish()
