"""Opt-in namespaces: which namespaces the operator may act in, and the admission policy that makes the
API server hold it to that when its RBAC is cluster-wide (the chart's cluster mode).

The operator's own code already leaves other namespaces alone (flux_operator.namespaces). This policy is
the second wall: even an operator with a bug, or a stolen operator token, cannot create or delete pods,
runner RBAC or Executions in a namespace nobody opted in, nor in any `kube-*` namespace. Events are not
confined: the operator tells users in other namespaces why it leaves their Executions alone.

The chart renders the same policy for its ServiceAccount (templates/namespace-policy.yaml, compared with
this module by tests/cluster/test_chart.py); `python -m flux_api.namespace_policy --user USER` prints it
for an operator installed without Helm.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from flux_api.names import (
    ENABLED_NAMESPACE_LABEL,
    GROUP,
    LIMIT_PLURAL,
    PLURAL,
    RESERVED_NAMESPACE_PREFIX,
    SCHEDULE_PLURAL,
)
from flux_api.progress import PLURAL as PROGRESS_PLURAL

ENABLED_VALUE = "true"
DEFAULT_NAME = "flux-operator-enabled-namespaces"

# What the operator writes where it acts: (API group, resources, operations). Leases (its own namespace)
# and Events (its notice to namespaces it does not serve) are not confined.
CONFINED: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("", ("pods",), ("CREATE", "DELETE")),
    ("", ("serviceaccounts",), ("CREATE",)),
    ("rbac.authorization.k8s.io", ("roles", "rolebindings"), ("CREATE",)),
    ("networking.k8s.io", ("networkpolicies",), ("CREATE",)),
    (GROUP, (PLURAL, f"{PLURAL}/status", SCHEDULE_PLURAL, f"{SCHEDULE_PLURAL}/status", f"{LIMIT_PLURAL}/status"),
     ("CREATE", "UPDATE", "DELETE")),
    (GROUP, (PROGRESS_PLURAL,), ("CREATE",)),
)


def reserved(namespace: str) -> bool:
    """`kube-system`, `kube-public`, `kube-node-lease` and any other `kube-` name: never served."""
    return namespace.startswith(RESERVED_NAMESPACE_PREFIX)


def labelled(labels: Mapping[str, str] | None) -> bool:
    return (labels or {}).get(ENABLED_NAMESPACE_LABEL) == ENABLED_VALUE


def policy(operator_user: str, name: str = DEFAULT_NAME) -> dict[str, Any]:
    ns = "namespaceObject.metadata"
    label = ENABLED_NAMESPACE_LABEL
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [
                {"apiGroups": [group], "apiVersions": ["*"], "operations": list(operations),
                 "resources": list(resources)}
                for group, resources, operations in CONFINED]},
            # The operator's identity only: users, controllers and runners are not touched.
            "matchConditions": [{"name": "the-flux-operator",
                                 "expression": f"request.userInfo.username == '{operator_user}'"}],
            "validations": [
                {"expression": f"!{ns}.name.startsWith('{RESERVED_NAMESPACE_PREFIX}')",
                 "messageExpression": f"'the Flux operator never acts in ' + {ns}.name + "
                                      f"': {RESERVED_NAMESPACE_PREFIX}* namespaces belong to Kubernetes'",
                 "reason": "Forbidden"},
                {"expression": f"has({ns}.labels) && '{label}' in {ns}.labels && "
                               f"{ns}.labels['{label}'] == '{ENABLED_VALUE}'",
                 "messageExpression": f"'the Flux operator acts only in namespaces labelled {label}={ENABLED_VALUE}; "
                                      f"' + {ns}.name + ' is not'",
                 "reason": "Forbidden"},
            ],
        },
    }


def binding(name: str = DEFAULT_NAME) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flux_api.namespace_policy",
                                description="Prints the policy and its binding as a JSON List for kubectl apply -f -.")
    p.add_argument("--user", required=True,
                   help="the operator's user name, e.g. system:serviceaccount:flux-system:flux-operator")
    p.add_argument("--name", default=DEFAULT_NAME)
    args = p.parse_args(argv)
    print(json.dumps({"apiVersion": "v1", "kind": "List",
                      "items": [policy(args.user, args.name), binding(args.name)]}, indent=2))


if __name__ == "__main__":
    main()
