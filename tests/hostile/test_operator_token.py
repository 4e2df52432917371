"""A stolen operator token: in a namespace the operator serves, its RBAC may create pods, ServiceAccounts, Roles,
RoleBindings and NetworkPolicies and delete pods. `flux-operator-makes-only-runners` holds that identity to the
runner objects the operator's code makes (audit round 5, chart).

Each attack is made with the operator's own token (the chart's ServiceAccount, as the suite's operators run),
and each is one the RBAC alone allows, so the refusal is the policy's. The operators keep serving with that same
identity meanwhile: an execution starts, runs and is cancelled, its pod deleted by the operator.
"""

from __future__ import annotations

import pytest
from flux_api import EXECUTION_LABEL, GROUP, VERSION
from fluxtest import longrun
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.kube import api_client

POLICY = "flux-operator-makes-only-runners"
RBAC = "rbac.authorization.k8s.io"


def owned_by(execution: dict) -> list[dict]:
    return [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "name": execution["metadata"]["name"],
             "uid": execution["metadata"]["uid"], "controller": True}]


def as_root(pod: dict) -> dict:
    """The container overrides the pod's runAsNonRoot, and keeps the runtime's default capabilities."""
    pod["spec"]["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": False, "runAsNonRoot": False,
                                                       "runAsUser": 0}
    return pod


def confined_pod(name: str, account: str, owners: list[dict], **spec) -> dict:
    labels = {EXECUTION_LABEL: owners[0]["name"]} if owners else {}  # as the operator labels a runner pod
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "ownerReferences": owners, "labels": labels},
            "spec": {"serviceAccountName": account, "restartPolicy": "Never",
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "runner", "image": "localhost/flux-runner:dev", "command": ["sleep", "1"],
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}], **spec}}


@pytest.mark.threat("stolen-operator-token", "with the operator's own token, in a namespace it serves: a pod as "
                    "another ServiceAccount with the host's root mounted, a runner-named pod in the host's PID namespace, "
                    "one with a hostPath volume, a runner Role holding the operator's right to create pods, a "
                    "runner RoleBinding to the tenant's user, a RoleBinding of another name, the delete of a "
                    "pod that is not a runner, a runner pod whose container runs as root with the default "
                    "capabilities, one pinned to a node by nodeName, and a runner Role that may patch its Execution",
                    "the API server refuses all ten, naming flux-operator-makes-only-runners; the operator "
                    "itself still starts, runs and cancels an execution")
@pytest.mark.timeout(180)
def test_a_stolen_operator_token_makes_only_runner_objects(tenant, operators, fx, api, core, operator_identity,
                                                            result):
    operators.start()
    fx.create(longrun("victim", steps=600, seconds=0.5))
    fx.wait_step("victim")
    victim = fx.get("victim")
    ns = tenant.namespace
    # Someone else's pod, named as a runner would be: only its ServiceAccount tells it is none.
    core.create_namespaced_pod(ns, confined_pod("colleague-runner", "default", []))

    stolen = api_client(operator_identity.kubeconfig)
    as_operator, rbac = client.CoreV1Api(stolen), client.RbacAuthorizationV1Api(stolen)
    owners = owned_by(victim)

    def owned(execution: str) -> list[dict]:  # a runner object's owner by name: only the name is checked
        return [{**owners[0], "name": execution}]

    root = [{"name": "root", "hostPath": {"path": "/"}}]
    # Each attack with the words of the one rule meant to refuse it: every other part of it is as a runner's is.
    attacks = {
        "pod as default, host root": ("not named as one", lambda: as_operator.create_namespaced_pod(
            ns, confined_pod("miner", "default", [], volumes=root))),
        "runner-named pod, host PID": ("no hostPID", lambda: as_operator.create_namespaced_pod(
            ns, confined_pod("victim-runner-7", "flux-runner-victim", owners, hostPID=True))),
        "runner-named pod, hostPath": ("volumes of the types", lambda: as_operator.create_namespaced_pod(
            ns, confined_pod("victim-runner-8", "flux-runner-victim", owners, volumes=root))),
        "runner Role creating pods": ("only a runner", lambda: rbac.create_namespaced_role(ns, {
            "metadata": {"name": "flux-runner-planted", "ownerReferences": owned("planted")},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]})),
        "runner RoleBinding to the tenant": ("may bind only", lambda: rbac.create_namespaced_role_binding(ns, {
            "metadata": {"name": "flux-runner-victim-2", "ownerReferences": owned("victim-2")},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "flux-runner-victim"},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": tenant.user}]})),
        "RoleBinding of another name": ("not named as one", lambda: rbac.create_namespaced_role_binding(ns, {
            "metadata": {"name": "tenant-runs-as-runner"},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "flux-runner-victim"},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": tenant.user}]})),
        "delete a colleague's pod": ("deletes only runner pods",
                                     lambda: as_operator.delete_namespaced_pod("colleague-runner", ns)),
        "runner-named pod, root container": ("not root", lambda: as_operator.create_namespaced_pod(
            ns, as_root(confined_pod("victim-runner-9", "flux-runner-victim", owners)))),
        "runner-named pod, nodeName": ("no nodeName", lambda: as_operator.create_namespaced_pod(
            ns, confined_pod("victim-runner-10", "flux-runner-victim", owners, nodeName="any-node"))),
        "runner Role patching its Execution": ("only a runner", lambda: rbac.create_namespaced_role(ns, {
            "metadata": {"name": "flux-runner-victim-3", "ownerReferences": owned("victim-3")},
            "rules": [{"apiGroups": [GROUP], "resources": ["executions"], "resourceNames": ["victim-3"],
                       "verbs": ["patch"]}]})),
    }
    refused: dict[str, int] = {}
    try:
        for what, (words, attack) in attacks.items():
            try:
                attack()
            except ApiException as err:
                assert POLICY in err.body and words in err.body, f"{what}: refused, but not so: {err.body}"
                refused[what] = err.status
    finally:
        stolen.close()
    allowed = [what for what in attacks if what not in refused]
    # The operator, the same identity, still does its work: the pod it made runs; its cancel deletes that pod.
    assert fx.pod("victim").status.phase == "Running"
    fx.cancel("victim", "the attack is over")
    ended = fx.wait_phase("victim", "Cancelled", timeout=60)
    result.figure(f"{len(refused)} of {len(attacks)} refused ({sorted(set(refused.values()))}); allowed: "
                  f"{allowed or 'none'}; the operator's own execution ended {ended['phase']}")
    assert not allowed, f"the stolen token could: {allowed}"
    assert set(refused.values()) == {403}
    assert core.read_namespaced_pod("colleague-runner", ns).metadata.deletion_timestamp is None
