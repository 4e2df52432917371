"""An ExecutionProgress is where a runner writes its checkpoint while it runs, and what a retry and the CLI take as
the execution's newest: no one but the operator makes one for an Execution, what a leaked runner token writes
there after its execution finished is not taken, and acting as a runner's account without its pod's token
writes nothing there."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from flux_api import GROUP, VERSION
from flux_api import PLURAL as EXECUTIONS
from flux_api.policy import NAME as RUNNER_STATUS_POLICY
from flux_api.policy import PROGRESS_NAME as RUNNER_PROGRESS_POLICY
from flux_api.progress import KIND, PLURAL
from fluxtest import TERMINAL, longrun, manifest, wait_for
from fluxtest.faults import as_runner, log_tail
from fluxtest.identity import account_kubeconfig
from fluxtest.policies import answer
from fluxtest.tenancy import execution_rules, grant
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.kube import api_client

FORGED_SEQUENCE = 2 ** 40


@pytest.mark.threat("forged-progress", "a user who may create ExecutionProgresses makes one named as a colleague's "
                    "Execution, controlled by it; and a finished execution's leaked runner token writes its "
                    f"ExecutionProgress a Succeeded checkpoint of sequence {FORGED_SEQUENCE}",
                    "the first refused by the API server (only the operator makes an Execution an owner); the "
                    "second not shown by kubectl flux status, which keeps the execution's own final checkpoint")
@pytest.mark.timeout(180)
def test_no_one_but_a_running_runner_writes_what_counts_as_progress(api, tenant, operators, fx, kubeconfig,
                                                                   kube_env, result):
    ns = tenant.namespace
    operators.start()
    tenant.fx.create(manifest("victim", "flux_examples.longrun:main", {"steps": 8, "stepSeconds": 0.5}))
    done = fx.wait_phase("victim", "Succeeded", timeout=90)
    uid = fx.get("victim")["metadata"]["uid"]
    custom = client.CustomObjectsApi(api)
    wait_for(lambda: _exists(custom, ns, "victim"), timeout=10, what="the operator's ExecutionProgress")

    grant(api, ns, tenant.user, [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create"]}])
    owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "name": "victim", "uid": uid,
             "controller": True}
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(tenant.api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": "victim-copy", "ownerReferences": [owner]}})
    assert refused.value.status == 403, refused.value.body
    assert "only the flux operator may make Execution victim an owner" in refused.value.body

    time.sleep(2)  # past the API server's one-second stamps: a write after the finish
    runner = as_runner(kubeconfig, ns, "victim")
    try:
        client.CustomObjectsApi(runner).patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "victim", {
            "status": {"checkpoint": {"state": "Succeeded", "sequence": FORGED_SEQUENCE, "stepCount": 99,
                                      "result": "forged"}}})
    finally:
        runner.close()
    shown = subprocess.run(["kubectl-flux", "status", "victim", "-n", ns, "-o", "json"], env=kube_env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    checkpoint = json.loads(shown.stdout)["checkpoint"]
    result.figure(f"create: HTTP {refused.value.status}; after the forged write, status shows sequence "
                  f"{checkpoint['sequence']} (its own: {done['checkpoint']['sequence']})")
    assert checkpoint["sequence"] == done["checkpoint"]["sequence"] and checkpoint["result"] != "forged"


def _exists(custom: client.CustomObjectsApi, ns: str, name: str) -> bool:
    try:
        custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


# As the `edit` role has it: impersonate any ServiceAccount of the namespace (but not add what a pod's token says).
IMPERSONATE_ACCOUNTS = [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}]


@pytest.mark.threat("impersonated-runner", "a namespace developer who may impersonate the namespace's ServiceAccounts "
                    "(as the `edit` role grants), but not write an Execution's status, acts as its running Execution's "
                    "runner account and writes a forged Succeeded checkpoint into its ExecutionProgress and its status",
                    "both refused by the API server, naming the policy (no token bound to the runner pod); the "
                    "ExecutionProgress keeps the runner's own checkpoint and the execution succeeds on its own")
@pytest.mark.timeout(180)
def test_acting_as_a_runners_account_writes_no_progress(api, cluster, tenant, operators, fx, tmp_path, result):
    ns = tenant.namespace
    kubeconfig = account_kubeconfig(api, cluster, ns, "developer", tmp_path / "developer.kubeconfig")
    grant(api, ns, f"system:serviceaccount:{ns}:developer", execution_rules() + IMPERSONATE_ACCOUNTS)
    op = operators.start()
    tenant.fx.create(longrun("victim", steps=30, seconds=0.5))
    wait_for(lambda: fx.progress("victim"), timeout=90, what="the runner's ExecutionProgress")
    developer = api_client(kubeconfig)
    developer.set_default_header("Impersonate-User", f"system:serviceaccount:{ns}:flux-runner-victim")
    forged = {"status": {"checkpoint": {"state": "Succeeded", "sequence": FORGED_SEQUENCE, "stepCount": 99,
                                        "result": "forged"}}}
    custom = client.CustomObjectsApi(developer)
    try:
        answers = {what: answer(lambda plural=plural: custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, plural, "victim", forged))
            for what, plural in (("ExecutionProgress", PLURAL), ("Execution", EXECUTIONS))}
    finally:
        developer.close()
    kept = (fx.progress("victim") or {}).get("status", {}).get("checkpoint") or {}
    done = fx.wait_phase("victim", *TERMINAL, timeout=90)
    result.figure("; ".join(f"{what}: {answer[:150]}" for what, answer in answers.items())
                  + f"; ExecutionProgress at sequence {kept.get('sequence')}; then {done['phase']} "
                    f"({done.get('checkpoint', {}).get('stepCount')} steps)")
    assert answers["ExecutionProgress"].startswith("403") and RUNNER_PROGRESS_POLICY in answers["ExecutionProgress"], \
        answers
    assert answers["Execution"].startswith("403") and RUNNER_STATUS_POLICY in answers["Execution"], answers
    assert kept.get("sequence") != FORGED_SEQUENCE and kept.get("result") != "forged", kept
    assert done["phase"] == "Succeeded" and done["checkpoint"]["result"] != "forged", (done, log_tail(op, 1500))
