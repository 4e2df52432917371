"""The admission policy that keeps runners to their own part of status, enforced by the API server.

A runner's ServiceAccount (`flux-runner-<execution>`) may already patch only its own Execution's
status (its Role). This ValidatingAdmissionPolicy narrows that to the fields a runner owns: its
checkpoint and its requests. Phase, timestamps, the cancellation block, conditions and children
are the operator's, so a workflow cannot forge them. Generated beside the CRD by `make crds`.
"""

from __future__ import annotations

from typing import Any

from flux_api.names import GROUP, PLURAL
from flux_api.types import ExecutionStatus

NAME = "flux-runner-writes-only-its-own-status"
# What a runner may write. Every other status field is the operator's.
RUNNER_OWNED = ("checkpoint", "spawnRequests", "unscheduleRequest")


def operator_owned() -> list[str]:
    return [field for field in ExecutionStatus.model_fields if field not in RUNNER_OWNED]


def policy() -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": NAME},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [GROUP], "apiVersions": ["*"], "operations": ["UPDATE"],
                "resources": [f"{PLURAL}/status"],
            }]},
            # Runner identities only: the operator, users and controllers are not touched.
            "matchConditions": [{
                "name": "runner-identity",
                "expression": "request.userInfo.username.startsWith("
                              "'system:serviceaccount:' + request.namespace + ':flux-runner-')",
            }],
            "validations": [{
                "expression": f"object.?status.?{field} == oldObject.?status.?{field}",
                "message": "a runner may write only status.checkpoint, status.spawnRequests and status.unscheduleRequest, "
                           f"not status.{field}",
                "reason": "Forbidden",
            } for field in operator_owned()],
        },
    }


def binding() -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": NAME},
        "spec": {"policyName": NAME, "validationActions": ["Deny"]},
    }
