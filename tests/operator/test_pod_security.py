"""Runner pods meet the Pod Security Standard `restricted` (https://kubernetes.io/docs/concepts/security/
pod-security-standards/), whatever an Execution's template holds within the admission policies. The cluster
test (tests/cluster/test_tenancy_limits.py) runs one under PodSecurity admission; this names each rule."""

from __future__ import annotations

from typing import Any

import pytest
from flux_api import Execution
from flux_api.tenancy import RESTRICTED_VOLUME_TYPES
from flux_operator.builders import RunnerSettings, runner_pod

pytestmark = pytest.mark.unit


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    spec, problems = pod["spec"], []
    pod_context = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(flag)
    for volume in spec.get("volumes", []):
        kinds = [k for k in volume if k != "name"]
        if any(k not in RESTRICTED_VOLUME_TYPES for k in kinds):
            problems.append(f"volume {volume['name']}: {kinds}")
    if pod_context.get("sysctls"):
        problems.append("sysctls")
    for annotation, value in ((pod.get("metadata") or {}).get("annotations") or {}).items():
        if annotation.startswith("container.apparmor.security.beta.kubernetes.io/") and \
                value != "runtime/default" and not value.startswith("localhost/"):
            problems.append(f"apparmor {annotation}")
    for c in spec.get("initContainers", []) + spec["containers"]:
        context = c.get("securityContext") or {}
        if context.get("privileged"):
            problems.append(f"{c['name']}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{c['name']}: allowPrivilegeEscalation must be false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []) or set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{c['name']}: capabilities must drop ALL")
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"{c['name']}: runAsNonRoot")
        if (context.get("runAsUser") if "runAsUser" in context else pod_context.get("runAsUser")) == 0:
            problems.append(f"{c['name']}: runAsUser 0")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{c['name']}: seccompProfile")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{c['name']}: hostPort")
        if context.get("procMount", "Default") != "Default":
            problems.append(f"{c['name']}: procMount")
    return problems


def execution(template: dict | None = None) -> Execution:
    return Execution.model_validate({"metadata": {"name": "job", "namespace": "ns", "uid": "u"},
                                     "spec": {"workflow": "pkg.mod:main", "gracePeriodSeconds": 30,
                                              **({"podTemplate": template} if template else {})}})


def test_the_runner_pod_is_restricted_as_built():
    assert restricted_violations(runner_pod(execution(), RunnerSettings())) == []


def test_it_stays_restricted_with_everything_a_template_may_hold():
    template = {
        "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        "envFrom": [{"configMapRef": {"name": "c"}}],
        "volumes": [{"name": t, t: {}} for t in RESTRICTED_VOLUME_TYPES],
        "volumeMounts": [{"name": "emptyDir", "mountPath": "/scratch"}],
        "nodeSelector": {"pool": "batch"}, "tolerations": [{"key": "batch", "operator": "Exists"}],
        "priorityClassName": "batch-low", "metadata": {"labels": {"team": "a"}, "annotations": {"x": "y"}},
        "resources": {"limits": {"memory": "1Gi"}}, "serviceAccountAnnotations": {"a": "b"},
    }
    assert restricted_violations(runner_pod(execution(template), RunnerSettings())) == []


def test_the_checker_can_fail():
    pod = runner_pod(execution({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}), RunnerSettings())
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert len(restricted_violations(pod)) == 2
