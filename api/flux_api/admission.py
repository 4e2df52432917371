"""Building blocks of the ValidatingAdmissionPolicies: CEL literals, validations, bindings.

The policies are generated (policy.py lists them) and carry no identity: the operator's user name and
the platform's limits come from the TenancyPolicy object (flux_api.tenancy) each binding names as its
parameter, so the same files serve the chart, `kubectl apply -f crds/` and the tests.

CEL's `authorizer` is costly: every check counts 350,000 against a budget of 1,000,000 per expression and
10,000,000 per binding, so an expression makes at most two checks and a policy at most 28. The policies
therefore check each distinct name once, in an expression of its own, after one namespace-wide check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flux_api.names import GROUP
from flux_api.tenancy import KIND as TENANCY_KIND
from flux_api.tenancy import NAME as TENANCY_NAME

ADMISSION_API = "admissionregistration.k8s.io/v1"
# A Secret or ConfigMap named in a template is checked by name up to this many distinct names; past it,
# only `get` on all of them in the namespace will do (see the cost note above).
MAX_NAMED_CHECKS = 20


def string(value: str) -> str:
    """A CEL string literal (JSON's escapes are CEL's for what we write)."""
    return json.dumps(value)


def strings(values: Iterable[str]) -> str:
    """A CEL list of string literals."""
    return "[" + ", ".join(string(v) for v in values) + "]"


def validation(expression: str, message: str, message_expression: str | None = None,
               reason: str = "Forbidden") -> dict[str, Any]:
    """One rule: `message` is what the API server says if `message_expression` cannot be evaluated."""
    rule: dict[str, Any] = {"expression": expression, "message": message}
    if message_expression:
        rule["messageExpression"] = message_expression
    rule["reason"] = reason
    return rule


def variable(name: str, expression: str) -> dict[str, str]:
    return {"name": name, "expression": expression}


def resource_rules(resources: list[tuple[str, str]], operations: list[str]) -> list[dict[str, Any]]:
    """resources: (API group, plural) pairs."""
    groups: dict[str, list[str]] = {}
    for group, plural in resources:
        groups.setdefault(group, []).append(plural)
    return [{"apiGroups": [group], "apiVersions": ["*"], "operations": list(operations), "resources": plurals}
            for group, plurals in groups.items()]


# Everyone but the operator: its identity comes from the TenancyPolicy (`spec.operators`).
NOT_THE_OPERATOR = {"name": "not-the-operator",
                    "expression": "!(request.userInfo.username in params.spec.operators)"}


def policy(name: str, rules: list[dict[str, Any]], validations: list[dict[str, Any]],
           variables: list[dict[str, str]] = (), match_conditions: list[dict[str, str]] = (),
           with_params: bool = True, failure_policy: str = "Fail") -> dict[str, Any]:
    spec: dict[str, Any] = {"failurePolicy": failure_policy}
    if with_params:
        spec["paramKind"] = {"apiVersion": f"{GROUP}/v1alpha1", "kind": TENANCY_KIND}
    spec["matchConstraints"] = {"resourceRules": rules}
    if match_conditions:
        spec["matchConditions"] = list(match_conditions)
    if variables:
        spec["variables"] = list(variables)
    spec["validations"] = validations
    return {"apiVersion": ADMISSION_API, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
            "spec": spec}


def binding(policy_name: str, with_params: bool = True, deny_without_params: bool = True) -> dict[str, Any]:
    """A binding that denies. Without the TenancyPolicy object, Executions and Schedules are refused (no one
    can be checked); a policy over objects every workload makes (pods) skips instead, so a missing object
    cannot stop the cluster (the operator's start-up check reports it)."""
    spec: dict[str, Any] = {"policyName": policy_name, "validationActions": ["Deny"]}
    if with_params:
        spec["paramRef"] = {"name": TENANCY_NAME,
                            "parameterNotFoundAction": "Deny" if deny_without_params else "Allow"}
    return {"apiVersion": ADMISSION_API, "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": policy_name}, "spec": spec}


# The request's namespace, in CEL.
NAMESPACE = "request.namespace"


def authorize(resource: str, verb: str, name: str | None = None, group: str = "") -> str:
    """CEL: whether the requester may `verb` the `resource` (named by the CEL expression `name`, if given) in the
    request's namespace."""
    named = f".name({name})" if name else ""
    return f"authorizer.group('{group}').resource('{resource}').namespace({NAMESPACE}){named}.check('{verb}').allowed()"
