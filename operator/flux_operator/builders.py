"""Pure manifest builders: an execution in, plain dicts out, ready to send to the API server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flux_api import API_VERSION, EXECUTION_LABEL, GROUP, KIND, PARENT_LABEL, PLURAL, Execution
from flux_api.names import (
    CANCELLED_BY_ANNOTATION,
    DEPTH_LABEL,
    MANAGED_BY,
    RUNNER_UID,
    runner_account_name,
    runner_pod_name,
    tree_depth,
)
from flux_api.types import MAX_DEPTH


@dataclass(frozen=True)
class RunnerSettings:
    image: str = "ghcr.io/flux-dev/flux-runner:0.1.0"
    command: tuple[str, ...] = ("flux-runner",)
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    memory_limit: str = "512Mi"
    default_grace_period: int = 30


def with_defaults(ex: Execution, settings: RunnerSettings) -> Execution:
    """Fills what the spec leaves to operator settings, so every later step sees one value."""
    if ex.spec.gracePeriodSeconds is not None:
        return ex
    spec = ex.spec.model_copy(update={"gracePeriodSeconds": settings.default_grace_period})
    return ex.model_copy(update={"spec": spec})


def owner_reference(ex: Execution) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": ex.name, "uid": ex.metadata["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _metadata(ex: Execution, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": ex.namespace,
            "labels": {EXECUTION_LABEL: ex.name, "app.kubernetes.io/name": "flux-runner",
                       "app.kubernetes.io/component": component, **MANAGED_BY},
            "ownerReferences": [owner_reference(ex)]}


def service_account(ex: Execution) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": _metadata(ex, runner_account_name(ex.name), "identity")}


def role(ex: Execution) -> dict[str, Any]:
    """Read its own Execution, patch its own status: nothing else, not even its siblings."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": _metadata(ex, runner_account_name(ex.name), "identity"),
        "rules": [
            {"apiGroups": [GROUP], "resources": [PLURAL], "resourceNames": [ex.name], "verbs": ["get"]},
            {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "resourceNames": [ex.name],
             "verbs": ["patch"]},
        ],
    }


def role_binding(ex: Execution) -> dict[str, Any]:
    name = runner_account_name(ex.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": _metadata(ex, name, "identity"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ex.namespace}],
    }


def runner_pod(ex: Execution, settings: RunnerSettings) -> dict[str, Any]:
    env = [
        {"name": "FLUX_EXECUTION_NAME", "value": ex.name},
        {"name": "FLUX_EXECUTION_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "FLUX_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},  # the root filesystem is read-only
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    container = {
        "name": "runner",
        "image": ex.spec.image or settings.image,
        "command": list(settings.command),
        "env": env,
        "resources": {"requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
                      "limits": {"memory": settings.memory_limit}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # The root filesystem is read-only; Python and workflows still need somewhere to write.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": _metadata(ex, runner_pod_name(ex.name), "runner"),
        "spec": {
            "serviceAccountName": runner_account_name(ex.name),
            # A crashed runner restarts in place and skips the steps it already checkpointed.
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": ex.spec.gracePeriodSeconds,
            "enableServiceLinks": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
        },
    }


def child_execution(parent: Execution, name: str, workflow: str, input_: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": name, "namespace": parent.namespace,
                     "labels": {PARENT_LABEL: parent.name, DEPTH_LABEL: str(tree_depth(parent.metadata.get("labels"), MAX_DEPTH) + 1)},
                     "ownerReferences": [owner_reference(parent)]},
        "spec": {"workflow": workflow, "input": input_, "gracePeriodSeconds": parent.spec.gracePeriodSeconds,
                 **({"image": parent.spec.image} if parent.spec.image else {})},
    }


def child_cancel_patch(parent_name: str, reason: str, force: bool) -> dict[str, Any]:
    return {"metadata": {"annotations": {CANCELLED_BY_ANNOTATION: parent_name}},
            "spec": {"cancel": {"reason": reason, "cascade": True, "force": force}}}
