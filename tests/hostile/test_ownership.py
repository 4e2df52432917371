"""Objects the operator finds under its runner's names must be its own (issue 17 item 6).

The attacker is a namespace developer: besides Executions they may make ServiceAccounts, Roles and pods, but
not write an Execution's status. Knowing the names the operator will use (`flux-runner-<execution>`,
`<execution>-runner`) and the UID of an execution that starts later, they make those objects first, with a
controlling ownerReference to it. The operator must never take them for its own.

Nor may anyone but the operator change the labels by which it finds a runner pod, the status subresource
(which keeps a pod's spec and ownerReferences, not its labels) included.
"""

from __future__ import annotations


import pytest
from flux_api import GROUP, VERSION
from fluxtest import TERMINAL, longrun, manifest, policies
from fluxtest.faults import log_tail
from fluxtest.tenancy import can_i, execution_rules, grant
from kubernetes import client
from kubernetes.client.rest import ApiException

RUNNER_OBJECTS = "flux-operator-owned-runner-objects"  # the admission policy that refuses forged runner objects

DEVELOPER_RULES = [{"apiGroups": [""], "resources": ["serviceaccounts", "pods"], "verbs": ["create", "get"]},
                   {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create", "get"]}]


def owned_by(victim: dict) -> dict:
    meta = victim["metadata"]
    return {"ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True}],
            "labels": {"workflows.flux.dev/execution": meta["name"]}}


def forge(tenant, kind: str, victim: dict) -> None:
    name = victim["metadata"]["name"]
    meta = {"name": f"flux-runner-{name}", **owned_by(victim)}
    if kind == "ServiceAccount":
        tenant.core.create_namespaced_service_account(tenant.namespace, {"metadata": meta})
    elif kind == "Role":
        # Broader than a runner's Role (it may patch every Execution's spec): what the developer holds.
        client.RbacAuthorizationV1Api(tenant.api).create_namespaced_role(tenant.namespace, {
            "metadata": meta,
            "rules": [{"apiGroups": [GROUP], "resources": ["executions"], "verbs": ["get", "patch"]}]})
    elif kind == "Pod":
        meta["name"] = f"{name}-runner"
        tenant.core.create_namespaced_pod(tenant.namespace, {"metadata": meta, "spec": {
            "nodeSelector": {"flux.dev/test-no-such-node": "x"},  # never runs: it only has to be there
            "containers": [{"name": "runner", "image": "example.invalid/forged:1"}]}})


@pytest.mark.threat("forged-runner-objects", "a developer pre-creates the runner's ServiceAccount, Role or pod of "
                    "an execution that starts later, with a controlling ownerReference to it",
                    "never adopted or bound: the execution fails, naming the object; no RoleBinding to a forged "
                    "Role")
@pytest.mark.timeout(150)
def test_forged_runner_objects_are_never_adopted(tenant, api, kubectl, kubeconfig, operators, fx, result):
    grant(api, tenant.namespace, tenant.user, DEVELOPER_RULES + execution_rules())
    op = operators.start()
    kinds = {"ServiceAccount": "v-sa", "Role": "v-role", "Pod": "v-pod"}
    # Made suspended: each starts once the tenant resumes it, after the forgeries (a start time would do too).
    victims = {kind: tenant.fx.create(manifest(name, "flux_examples.quick:main", suspend=True))
               for kind, name in kinds.items()}
    with pytest.raises(ApiException) as refused:  # the first line: the API server
        forge(tenant, "ServiceAccount", victims["ServiceAccount"])
    assert refused.value.status == 403 and RUNNER_OBJECTS in refused.value.body, refused.value.body
    # The second line: the operator's own check, as on a cluster without Flux's policies.
    with policies.unenforced(kubectl, kubeconfig, RUNNER_OBJECTS):
        for kind, victim in victims.items():
            forge(tenant, kind, victim)
    for name in kinds.values():
        assert not fx.status(name).get("runnerObjects"), f"{name} started before the forgeries: {fx.status(name)}"
        tenant.fx.patch(name, {"spec": {"suspend": False}})
    figures = []
    for kind, name in kinds.items():
        try:
            status = fx.wait_phase(name, *TERMINAL, timeout=40)
        except AssertionError:
            raise AssertionError(f"{name}: {fx.status(name)}: {log_tail(op, 1500)}") from None
        figures.append(f"{kind}: {status['phase']} ({status.get('message', '')[:90]!r})")
        assert status["phase"] == "Failed", (kind, status)
        assert "not made by the operator" in status["message"], status["message"]
    rbac = client.RbacAuthorizationV1Api(api)
    try:
        binding = rbac.read_namespaced_role_binding("flux-runner-v-role", tenant.namespace)
        bound = f"RoleBinding {binding.metadata.name} -> {binding.role_ref.name}"
    except ApiException as err:
        bound = None if err.status == 404 else f"unreadable: {err.status}"
    can = can_i(kubectl, f"system:serviceaccount:{tenant.namespace}:flux-runner-v-role", "patch", "executions",
                "-n", tenant.namespace)
    result.figure("; ".join(figures) + f"; forged Role bound: {bound or 'no'}; its would-be runner may patch "
                                        f"executions: {can}")
    assert bound is None, bound
    assert can == "no", "the runner's identity must not get the forged Role's rights"


RUNNER_LABEL = "workflows.flux.dev/execution"
STATUS_WRITER_RULES = [{"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]}]
# Through pods/status the API server keeps a pod's spec and ownerReferences, not its labels or annotations.
STATUS_LABEL_WRITES = {"removed": {RUNNER_LABEL: None}, "changed": {RUNNER_LABEL: "another"},
                       "added": {"workflows.flux.dev/parent": "another"}}


@pytest.mark.threat("runner-labels-through-status", "a tenant who may also write pods/status (some platforms grant it "
                    "for readiness gates) removes, changes or adds the operator's labels on a running runner pod "
                    "through the status subresource, which keeps a pod's spec and ownerReferences but not its labels",
                    "each refused by the API server, naming the label; the pod keeps its labels, and the execution "
                    "succeeds in that one pod (a runner pod that lost its label would look deleted to the operator, "
                    "which would start another while the first ran on)")
@pytest.mark.timeout(150)
def test_the_status_subresource_cannot_change_a_runner_pods_labels(tenant, api, operators, fx, result):
    grant(api, tenant.namespace, tenant.user, STATUS_WRITER_RULES + execution_rules())
    op = operators.start()
    tenant.fx.create(longrun("marked", steps=16, seconds=0.5))
    fx.wait_step("marked", timeout=90)
    before = fx.pod("marked")
    answers = {what: policies.answer(lambda labels=labels: tenant.core.patch_namespaced_pod_status(
        before.metadata.name, tenant.namespace, {"metadata": {"labels": labels}}))
        for what, labels in STATUS_LABEL_WRITES.items()}
    after = fx.pod("marked")
    status = fx.wait_phase("marked", *TERMINAL, timeout=90)
    result.figure("; ".join(f"{what}: {answer.split('denied request: ')[-1][:110]}" for what, answer in answers.items())
                  + f"; then {status['phase']}, resumes {status.get('resumes', 0)}")
    for what, answer in answers.items():
        assert answer.startswith("403") and RUNNER_OBJECTS in answer, (what, answer)
    assert "only the flux operator sets this label" in answers["removed"], answers
    assert after.metadata.uid == before.metadata.uid and after.metadata.labels == before.metadata.labels, \
        (before.metadata.labels, after.metadata.labels)
    assert status["phase"] == "Succeeded" and not status.get("resumes"), (status, log_tail(op, 1500))
