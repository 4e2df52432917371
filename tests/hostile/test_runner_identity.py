"""A runner's identity held by someone else: its ServiceAccount's rights are its execution's runner rights, so only the
runner pod the operator made and recorded may use them (audit round 3).

- A namesake left behind: a tenant deletes their own Execution with `--cascade=orphan`; its pod, ServiceAccount,
  Role and RoleBinding stay, and the pod's token with them. The next Execution of that name (a colleague's, or a
  Schedule's run, whose names are known in advance) is written to with that token.
- A pod run as a runner's ServiceAccount by a tenant who may create pods, or a token asked for it.
"""

from __future__ import annotations

import time

import pytest
from flux_api import GROUP, PLURAL, VERSION
from fluxtest import longrun, manifest, wait_for
from fluxtest.identity import token_kubeconfig
from fluxtest.tenancy import grant
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.kube import api_client

IDENTITY_POLICY = "flux-runner-accounts-only-for-runners"
FORGED = {"checkpoint": {"state": "Succeeded", "sequence": 10_000, "result": {"forged": True}},
          "spawnRequests": [{"name": "heir-planted", "workflow": "flux_examples.quick:main", "input": {}}]}


def recorded_pod_uid(fx, name: str) -> str:
    return ((fx.status(name).get("runnerObjects") or {}).get("pod") or {}).get("uid") or ""


@pytest.mark.threat("orphaned-runner-token", "a tenant deletes its own running Execution with --cascade=orphan, keeps "
                    "the runner pod's token, and writes a verdict and a spawn request into the next Execution of "
                    "that name, made by someone else",
                    "the API server refuses every such write (the pod is not the one recorded for the new "
                    "Execution); the namesake never ends Succeeded and spawns nothing")
@pytest.mark.timeout(240)
def test_a_token_left_by_an_orphaned_namesake_cannot_write_the_next_execution(tenant, operators, fx, api, core,
                                                                               cluster, tmp_path, result):
    grant(api, tenant.namespace, tenant.user, [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["delete"]}])
    operators.start()
    tenant.fx.create(longrun("heir", steps=600, seconds=0.5))
    fx.wait_step("heir")
    pod = fx.pod("heir")
    assert recorded_pod_uid(fx, "heir") == pod.metadata.uid
    tenant.custom.delete_namespaced_custom_object(GROUP, VERSION, tenant.namespace, PLURAL, "heir",
                                                  propagation_policy="Orphan")
    wait_for(lambda: not fx.exists("heir"), timeout=30, what="the Execution gone, its runner left behind")
    left = core.read_namespaced_pod(pod.metadata.name, tenant.namespace)
    assert left.metadata.uid == pod.metadata.uid and not left.metadata.deletion_timestamp
    # What a process in that pod holds: a token of flux-runner-heir bound to it.
    token = core.create_namespaced_service_account_token(
        "flux-runner-heir", tenant.namespace,
        {"spec": {"expirationSeconds": 3600,
                  "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": left.metadata.name,
                                     "uid": left.metadata.uid}}}).status.token
    leftover = api_client(token_kubeconfig(cluster, token, tmp_path, "leftover"))
    try:
        fx.create(manifest("heir", "flux_examples.quick:main"))  # a colleague's, under the same name
        writes, refusals = 0, []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.CustomObjectsApi(leftover).patch_namespaced_custom_object_status(
                    GROUP, VERSION, tenant.namespace, PLURAL, "heir", {"status": FORGED})
                writes += 1
            except ApiException as err:
                refusals.append(err)
            time.sleep(0.2)
    finally:
        leftover.close()
    ended = fx.wait_phase("heir", "Failed", "Succeeded", "Cancelled", timeout=90)
    reasons = {e.status: e.body for e in refusals}
    result.figure(f"{writes} of {writes + len(refusals)} writes with the leftover token accepted; refusals "
                  f"{sorted(reasons)}; the namesake ended {ended['phase']}: {str(ended.get('message'))[:80]!r}")
    assert writes == 0, "a leftover token wrote the namesake's status"
    assert set(reasons) == {403}, reasons
    assert ended["phase"] != "Succeeded" and not fx.exists("heir-planted")


@pytest.mark.threat("runner-account-pod", "a tenant who may create pods, Secrets and ServiceAccount tokens runs a "
                    "pod as another execution's runner ServiceAccount, asks for a token of it, and makes a token "
                    "Secret of it", "all three refused by the API server, naming the policy")
@pytest.mark.timeout(120)
def test_a_tenant_cannot_run_a_pod_as_a_runners_account_or_get_its_token(tenant, operators, fx, api, result):
    grant(api, tenant.namespace, tenant.user, [{"apiGroups": [""],
                                                "resources": ["pods", "serviceaccounts/token", "secrets"],
                                                "verbs": ["create"]}])
    operators.start()
    fx.create(longrun("victim", steps=600, seconds=0.5))
    fx.wait_step("victim")
    impostor = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "impostor"},
                "spec": {"serviceAccountName": "flux-runner-victim", "restartPolicy": "Never",
                         "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                             "seccompProfile": {"type": "RuntimeDefault"}},
                         "containers": [{"name": "c", "image": "localhost/flux-runner:dev", "command": ["sleep", "1"],
                                         "securityContext": {"allowPrivilegeEscalation": False,
                                                             "capabilities": {"drop": ["ALL"]}}}]}}
    with pytest.raises(ApiException) as pod_refused:
        tenant.core.create_namespaced_pod(tenant.namespace, impostor)
    with pytest.raises(ApiException) as token_refused:
        tenant.core.create_namespaced_service_account_token("flux-runner-victim", tenant.namespace,
                                                            {"spec": {"expirationSeconds": 600}})
    def token_secret(account: str) -> dict:  # the token controller fills it with a token that never expires
        return {"metadata": {"name": f"{account}-token",
                             "annotations": {"kubernetes.io/service-account.name": account}},
                "type": "kubernetes.io/service-account-token"}
    with pytest.raises(ApiException) as secret_refused:
        tenant.core.create_namespaced_secret(tenant.namespace, token_secret("flux-runner-victim"))
    result.figure(f"pod: HTTP {pod_refused.value.status}; token: HTTP {token_refused.value.status}; "
                  f"token Secret: HTTP {secret_refused.value.status}")
    for refused in (pod_refused.value, token_refused.value, secret_refused.value):
        assert refused.status == 403 and IDENTITY_POLICY in refused.body, refused.body
    # The same rights over an account that is not a runner's are untouched: the policy is that narrow.
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(tenant.namespace, {"metadata": {"name": "tools"}})
    assert tenant.core.create_namespaced_service_account_token("tools", tenant.namespace,
                                                               {"spec": {"expirationSeconds": 600}}).status.token
    tenant.core.create_namespaced_secret(tenant.namespace, token_secret("tools"))
    assert fx.phase("victim") == "Running"


ACCESS_POLICY = "flux-runner-pod-access-needs-its-rights"
IMAGES_POLICY = "flux-runner-pod-images-are-fixed"
# Exec and attach as the `edit` ClusterRole grants them, and ephemeral (debug) containers, which it does not.
POD_ACCESS = [{"apiGroups": [""], "resources": ["pods/exec", "pods/attach"], "verbs": ["get", "create"]},
              {"apiGroups": [""], "resources": ["pods/ephemeralcontainers"], "verbs": ["patch", "update"]},
              {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
DEBUGGER = {"spec": {"ephemeralContainers": [{
    "name": "debugger", "image": "localhost/flux-runner:dev", "command": ["cat", "/var/run/secrets/kubernetes.io/"
                                                                           "serviceaccount/token"],
    "targetContainerName": "runner",
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}]}}


def _exec_refusal(tenant, pod: str, how: str = "exec") -> str:
    """What the API server says to the tenant's `kubectl exec` into `pod` (reading the token the pod holds), or
    `kubectl attach`."""
    args = ["--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"] if how == "exec" else []
    done = tenant.kubectl(how, pod, *args)
    return done.stderr if done.returncode else ""


def _plain_pod(core, namespace: str, name: str) -> None:
    """A pod that is no runner (the default ServiceAccount), its one container named as a runner's is."""
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "runner", "image": "localhost/flux-runner:dev",
                                                            "command": ["sleep", "600"]}]}})


def _not_refused_by_a_policy(said: str) -> bool:
    """Not refused at admission (the node may still not serve it: the process node runs no containers)."""
    return ACCESS_POLICY not in said and "denied request" not in said and "ValidatingAdmissionPolicy" not in said


@pytest.mark.threat("exec-into-runner", "a tenant who may exec and attach into pods (as the `edit` role grants) and "
                    "add debug containers, but not write an Execution's status, execs into its runner pod, or adds a "
                    "debug container to it, to read the runner's token and forge the Execution's verdict",
                    "both refused by the API server, naming the policy; the same requests are not refused once "
                    "the tenant may write that status, nor into a pod that is no runner")
@pytest.mark.timeout(120)
def test_a_tenant_cannot_exec_into_a_runner_pod_for_its_token(tenant, operators, fx, api, core, result):
    grant(api, tenant.namespace, tenant.user, POD_ACCESS)
    operators.start()
    tenant.fx.create(longrun("victim", steps=600, seconds=0.5))
    fx.wait_step("victim")
    pod = fx.pod("victim").metadata.name
    exec_refused = _exec_refusal(tenant, pod)
    attach_refused = _exec_refusal(tenant, pod, "attach")
    with pytest.raises(ApiException) as debug_refused:
        tenant.core.patch_namespaced_pod_ephemeralcontainers(pod, tenant.namespace, DEBUGGER)
    said = exec_refused.strip().rpartition("denied request: ")[2]
    result.figure(f"kubectl exec: Forbidden, {said[:150]!r}; ephemeral container: HTTP {debug_refused.value.status}")
    assert ACCESS_POLICY in exec_refused and "Forbidden" in exec_refused, exec_refused
    assert ACCESS_POLICY in attach_refused and "pods/attach" in attach_refused, attach_refused
    assert debug_refused.value.status == 403 and ACCESS_POLICY in debug_refused.value.body, debug_refused.value.body
    assert not core.read_namespaced_pod(pod, tenant.namespace).spec.ephemeral_containers
    # A pod that is no runner takes the same requests (the node may still not serve them: the process node does
    # not run containers), and so does the runner once the tenant holds the right its token carries.
    for name in ("tools", "victim-runner-3"):
        _plain_pod(core, tenant.namespace, name)
    assert _not_refused_by_a_policy(_exec_refusal(tenant, "tools"))
    # Exec carries only the pod's name: one named as a retry's runner is held to the same rule.
    assert ACCESS_POLICY in _exec_refusal(tenant, "victim-runner-3")
    grant(api, tenant.namespace, tenant.user, [{"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"],
                                                "resourceNames": ["victim"], "verbs": ["patch"]}])
    wait_for(lambda: _not_refused_by_a_policy(_exec_refusal(tenant, pod) + _exec_refusal(tenant, "victim-runner-3")),
             timeout=30, what="exec not refused once the tenant may write the status")
    tenant.core.patch_namespaced_pod_ephemeralcontainers(pod, tenant.namespace, DEBUGGER)
    assert fx.phase("victim") == "Running"


@pytest.mark.threat("runner-image-swap", "a tenant who may patch pods (as `edit` grants) but not write an Execution's "
                    "status sets another image on its runner pod, which the kubelet would restart with the runner's "
                    "token mounted (an image tenancy.allowedImages does not list, too)",
                    "refused by the API server, naming the policy; a pod that is no runner takes the same patch")
@pytest.mark.timeout(120)
def test_a_tenant_cannot_swap_a_runner_pods_image(tenant, operators, fx, api, core, result):
    grant(api, tenant.namespace, tenant.user, [{"apiGroups": [""], "resources": ["pods"],
                                                "verbs": ["get", "list", "patch", "update"]}])
    operators.start()
    tenant.fx.create(longrun("victim", steps=600, seconds=0.5))
    fx.wait_step("victim")
    pod = fx.pod("victim")
    swap = {"spec": {"containers": [{"name": "runner", "image": "registry.invalid/evil:1"}]}}
    with pytest.raises(ApiException) as refused:
        tenant.core.patch_namespaced_pod(pod.metadata.name, tenant.namespace, swap)
    said = str(refused.value.body).rpartition("denied request: ")[2]
    result.figure(f"HTTP {refused.value.status}: {said[:150]!r}")
    assert refused.value.status == 403 and IMAGES_POLICY in refused.value.body, refused.value.body
    images = [c.image for c in core.read_namespaced_pod(pod.metadata.name, tenant.namespace).spec.containers]
    assert images == [c.image for c in pod.spec.containers]
    _plain_pod(core, tenant.namespace, "tools")
    tenant.core.patch_namespaced_pod("tools", tenant.namespace, swap)
    assert fx.phase("victim") == "Running"
