"""Start-up problems are one clear log line and a red /healthz, and clear by themselves once fixed."""

from __future__ import annotations

import pytest
from fluxtest import wait_for
from fluxtest import policies
from fluxtest.policies import also_operators
from fluxtest.identity import account_kubeconfig, bind_account
from fluxtest.operators import OperatorProcess

pytestmark = pytest.mark.cluster


def operator_rules() -> list[dict]:
    """What the operator needs in one namespace (its own table of rights) and its Lease there."""
    from flux_operator.startup import LEADER_ELECTION, NAMESPACED

    return [{"apiGroups": [group], "resources": [resource], "verbs": [verb]}
            for verb, group, resource in (*NAMESPACED, *LEADER_ELECTION)]


def test_missing_permissions_are_one_clear_line_and_a_red_probe(cluster, api, core, kubectl, namespace, kube_env,
                                                                crd_installed, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    account_kubeconfig(api, cluster, namespace, "weak", kubeconfig)
    op = OperatorProcess({**kube_env, "KUBECONFIG": str(kubeconfig)}, tmp_path)
    op.start("--namespace", namespace, "--leader-election-namespace", namespace,
             "--leader-election-id", "weak", wait_healthy=False)
    try:
        def red():
            code, body = op.health()
            return body if code == 500 and "permissions" in body.get("problems", {}) else None

        body = wait_for(red, timeout=60, what="a red probe naming the missing permissions")
        assert "delete pods in " + namespace in body["problems"]["permissions"]
        lines = [line for line in op.log_path.read_text().splitlines() if "missing permissions:" in line]
        assert len(lines) == 1, "said once, not every retry"
        bind_account(api, namespace, "weak", operator_rules())
        # ...and, as the chart does for its operator, reading the admission policies and being named in them.
        with also_operators(kubectl, f"system:serviceaccount:{namespace}:weak"):
            wait_for(lambda: op.health()[0] == 200, timeout=60, what="the probe to turn green once granted")
    finally:
        op.stop()


def test_admission_policies_not_in_force_are_one_clear_line_and_a_red_probe(kubectl, kubeconfig, namespace, operator_env,
                                                                            crd_installed, tmp_path):
    args = ("--namespace", namespace)  # as the chart's operator: the one the TenancyPolicy names
    kubectl("delete", "validatingadmissionpolicybinding", "flux-ttl-needs-delete")
    kubectl("patch", "validatingadmissionpolicy", "flux-tenant-secrets", "--type=json", "-p",
            '[{"op": "replace", "path": "/spec/validations/0/message", "message": "x", "value": "edited by hand"}]')
    op = OperatorProcess(operator_env, tmp_path)
    try:
        op.start(*args, "--leader-election-id", "unchecked", wait_healthy=False)

        def red(what: str):
            code, body = op.health()
            problem = body.get("problems", {}).get("policies", "") if code == 500 else ""
            return problem if what in problem else None

        problem = wait_for(lambda: red("not in force"), timeout=60, what="a red probe naming the policies")
        assert "missing ValidatingAdmissionPolicyBinding flux-ttl-needs-delete" in problem
        assert "not current: ValidatingAdmissionPolicy flux-tenant-secrets" in problem
        lines = [line for line in op.log_path.read_text().splitlines() if "admission policies not in force" in line]
        assert len(lines) == 1, "said once, not every retry"
        policies.install(kubectl, kubeconfig)
        wait_for(lambda: op.health()[0] == 200, timeout=60, what="the probe to turn green once they are back")
        op.stop()
        # Limits the cluster's TenancyPolicy does not hold: the API server and the operator would disagree.
        op.start(*args, "--leader-election-id", "disagrees", "--tenancy-policy", '{"allowedImages": []}',
                 wait_healthy=False)
        assert "holds other limits than --tenancy-policy" in wait_for(
            lambda: red("other limits"), timeout=60, what="a red probe naming the limits")
    finally:
        op.stop()
        policies.install(kubectl, kubeconfig)
