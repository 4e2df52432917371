"""Pure manifest builders: an execution in, plain dicts out, ready to send to the API server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flux_api import API_VERSION, EXECUTION_LABEL, GROUP, KIND, PARENT_LABEL, Execution, progress, tracecontext
from flux_api.names import (
    CANCELLED_BY_ANNOTATION,
    CREATE_TOKEN_ANNOTATION,
    DEPTH_LABEL,
    MANAGED_BY,
    ROOT_LABEL,
    RUNNER_UID,
    SUSPEND_REASON_ANNOTATION,
    SUSPENDED_BY_ANNOTATION,
    operators_label,
    runner_account_name,
    runner_pod_name_for,
    tree_depth,
    tree_root,
)
from flux_api.policy_operator import runner_role_rules
from flux_api.tenancy import TenancyLimits
from flux_api.tracecontext import TRACEPARENT_ANNOTATION
from flux_api.types import MAX_DEPTH, PodTemplate

# Environment the operator sets: a template cannot replace it (the CRD refuses it; this is the backstop).
OWNED_ENV_PREFIX = "FLUX_"
_OWNED_ENV = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONNOUSERSITE")
_OWNED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/managed-by")


DEFAULT_RUNNER_IMAGE = "ghcr.io/flux-dev/flux-runner:0.1.0"


@dataclass(frozen=True)
class RunnerSettings:
    image: str = DEFAULT_RUNNER_IMAGE
    command: tuple[str, ...] = ("flux-runner",)
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    memory_limit: str = "512Mi"
    default_grace_period: int = 30
    # Seconds between two checkpoint writes of a runner (--checkpoint-interval; the runner's FLUX_CHECKPOINT_INTERVAL).
    checkpoint_interval: float = 1.0
    # Sleeps longer than this end the runner's pod until their wake time (--durable-wait-after;
    # the runner's FLUX_DURABLE_WAIT_AFTER).
    durable_wait_after: float = 60.0
    # The operator's --log-format, passed on to its runners (text or json).
    log_format: str = "text"
    # --tracing-endpoint and --tracing-sampling-ratio: the runners export their step spans there too.
    tracing_endpoint: str | None = None
    tracing_ratio: float = 1.0
    # The chart's runner.resources: replaces the three values above when given.
    resources: dict[str, Any] | None = field(default=None, hash=False)
    # The chart's runner.ttlSecondsAfterFinished, for executions that leave it unset (not children:
    # they go with their parent).
    default_ttl: int | None = None
    # The chart's runner.podTemplate: defaults under every execution's spec.podTemplate.
    pod_template: PodTemplate | None = field(default=None, hash=False)
    # The chart's runnerNetworkPolicy (--runner-egress): where a runner may connect to (NetworkPolicy egress
    # rules: the API server and DNS). None: the operator makes no NetworkPolicy for runners.
    egress: tuple[dict[str, Any], ...] | None = field(default=None, hash=False)
    # The platform's limits (--tenancy-policy): no pod is built past them (guard.py).
    limits: TenancyLimits | None = field(default=None, hash=False)

    def default_resources(self) -> dict[str, Any]:
        if self.resources is not None:
            return self.resources
        return {"requests": {"cpu": self.cpu_request, "memory": self.memory_request},
                "limits": {"memory": self.memory_limit}}


def with_defaults(ex: Execution, settings: RunnerSettings) -> Execution:
    """Fills what the spec leaves to operator settings, so every later step sees one value."""
    update: dict[str, Any] = {}
    if ex.spec.gracePeriodSeconds is None:
        update["gracePeriodSeconds"] = settings.default_grace_period
    is_child = PARENT_LABEL in (ex.metadata.get("labels") or {})
    if ex.spec.ttlSecondsAfterFinished is None and settings.default_ttl is not None and not is_child:
        update["ttlSecondsAfterFinished"] = settings.default_ttl
    if not update:
        return ex
    return ex.model_copy(update={"spec": ex.spec.model_copy(update=update)})


def owned_field_problems(template: PodTemplate) -> list[str]:
    """What the CRD's CEL rules refuse, for templates that do not pass the API server (operator flags)."""
    problems = []
    if any(e.name.startswith(OWNED_ENV_PREFIX) or e.name in _OWNED_ENV for e in template.env):
        problems.append("env cannot set FLUX_* variables, PYTHONDONTWRITEBYTECODE, PYTHONUNBUFFERED or "
                        "PYTHONNOUSERSITE")
    labels = template.metadata.labels if template.metadata else {}
    if any(k.startswith(f"{GROUP}/") or k in _OWNED_LABELS for k in labels):
        problems.append(f"labels cannot set {GROUP}/* or app.kubernetes.io/name, component or managed-by")
    if any(v.name == "tmp" for v in template.volumes) or any(
            m.name == "tmp" or m.mountPath == "/tmp" or m.mountPath.startswith(("/tmp/", "/var/run/secrets/kubernetes.io"))
            for m in template.volumeMounts):
        problems.append("volumes cannot use the name tmp or cover /tmp or the service account token")
    if not all(clean_mount_path(m.mountPath) for m in template.volumeMounts):
        problems.append("a mountPath must be a clean absolute path (no //, . or .. parts)")
    return problems


def clean_mount_path(path: str) -> bool:
    """crd_rules.MOUNT_PATHS_RULE."""
    return (path.startswith("/") and not any(part in path for part in ("//", "/./", "/../"))
            and not path.endswith(("/.", "/..")))


def merged_template(defaults: PodTemplate | None, own: PodTemplate | None) -> PodTemplate:
    """The execution's template over the operator's defaults: maps merge key by key (the execution's
    keys win), env merges by name, any other field the execution sets (not empty) replaces the default."""
    if defaults is None:
        return own or PodTemplate()
    if own is None:
        return defaults
    base, top = defaults.model_dump(exclude_defaults=True), own.model_dump(exclude_defaults=True)
    # An empty value sets nothing: `affinity: {}` must not take away the platform's placement of runners.
    top = {k: v for k, v in top.items() if v not in ({}, [], "", None)}
    merged = {**base, **top}
    for key in ("nodeSelector", "serviceAccountAnnotations"):
        merged[key] = {**base.get(key, {}), **top.get(key, {})}
    meta_base, meta_top = base.get("metadata") or {}, top.get("metadata") or {}
    merged["metadata"] = {k: {**meta_base.get(k, {}), **meta_top.get(k, {})} for k in ("labels", "annotations")}
    names = {e["name"] for e in top.get("env", [])}
    merged["env"] = [e for e in base.get("env", []) if e["name"] not in names] + top.get("env", [])
    return PodTemplate.model_validate(merged)


def _template(ex: Execution, settings: RunnerSettings | None = None) -> PodTemplate:
    return merged_template(settings.pod_template if settings else None, ex.spec.podTemplate)


def _dump(items: list[Any]) -> list[dict[str, Any]]:
    return [i.model_dump(mode="json", exclude_none=True) if hasattr(i, "model_dump") else dict(i) for i in items]


def owner_reference(ex: Execution) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": ex.name, "uid": ex.metadata["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _metadata(ex: Execution, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": ex.namespace,
            "labels": {EXECUTION_LABEL: ex.name, "app.kubernetes.io/name": "flux-runner",
                       "app.kubernetes.io/component": component, **MANAGED_BY},
            "ownerReferences": [owner_reference(ex)]}


def service_account(ex: Execution, settings: RunnerSettings | None = None) -> dict[str, Any]:
    """Annotations (cloud workload identity) may name a cloud role; the Kubernetes Role stays the same."""
    metadata = _metadata(ex, runner_account_name(ex.name), "identity")
    annotations = dict(_template(ex, settings).serviceAccountAnnotations)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}


def role(ex: Execution) -> dict[str, Any]:
    """Read its own Execution and ExecutionProgress, patch their status, watch the Execution (a waiting runner,
    flux_runner.follow): nothing else, not even its siblings'. The watch is allowed by name, so only a watch
    with the field selector metadata.name=<its name> is: the namespace's other Executions stay unseen."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": _metadata(ex, runner_account_name(ex.name), "identity"),
        # Its progress between the checkpoints the operator decides on (flux_api.progress) too; the shape is the
        # one flux-operator-makes-only-runners lets the operator's identity create.
        "rules": runner_role_rules(ex.name),
    }


def progress_object(ex: Execution) -> dict[str, Any]:
    """The runner's ExecutionProgress: the same name as its Execution, empty until the runner writes its status."""
    metadata = _metadata(ex, ex.name, "progress")
    return {"apiVersion": API_VERSION, "kind": progress.KIND, "metadata": metadata}


def role_binding(ex: Execution) -> dict[str, Any]:
    name = runner_account_name(ex.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": _metadata(ex, name, "identity"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ex.namespace}],
    }


def network_policy(ex: Execution, settings: RunnerSettings) -> dict[str, Any] | None:
    """The runner pod's NetworkPolicy: nothing may connect to it; it may connect only where `egress` says.
    One per execution, owned by it like the runner's RBAC, so it goes with it and never drifts."""
    if settings.egress is None:
        return None
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _metadata(ex, runner_account_name(ex.name), "network"),
        "spec": {"podSelector": {"matchLabels": {EXECUTION_LABEL: ex.name, "app.kubernetes.io/component": "runner"}},
                 "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": [dict(r) for r in settings.egress]},
    }


def runner_pod(ex: Execution, settings: RunnerSettings) -> dict[str, Any]:
    """The runner pod: the template's settings, then everything the operator owns on top (it wins)."""
    template = _template(ex, settings)
    owned_env = [
        {"name": "FLUX_EXECUTION_NAME", "value": ex.name},
        {"name": "FLUX_EXECUTION_UID", "value": str(ex.metadata.get("uid") or "")},
        {"name": "FLUX_LOG_FORMAT", "value": settings.log_format},
        {"name": "FLUX_EXECUTION_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "FLUX_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "FLUX_CHECKPOINT_INTERVAL", "value": f"{settings.checkpoint_interval:g}"},
        {"name": "FLUX_DURABLE_WAIT_AFTER", "value": f"{settings.durable_wait_after:g}"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},  # the root filesystem is read-only
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        # No user site: a HOME of the template's choosing would otherwise load its .pth files (flux_api.steering).
        {"name": "PYTHONNOUSERSITE", "value": "1"},
    ]
    if settings.tracing_endpoint:
        owned_env += [{"name": "FLUX_TRACING_ENDPOINT", "value": settings.tracing_endpoint},
                      {"name": "TRACEPARENT", "value": execution_traceparent(ex, settings)}]
    owned_names = {e["name"] for e in owned_env}
    user_env = [e for e in _dump(template.env)
                if e["name"] not in owned_names and not e["name"].startswith(OWNED_ENV_PREFIX)]
    resources = template.resources.model_dump(mode="json", exclude_defaults=True) if template.resources \
        else settings.default_resources()
    container = {
        "name": "runner",
        "image": ex.spec.image or settings.image,
        "command": list(settings.command),
        "env": owned_env + user_env,
        "resources": resources,
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # The root filesystem is read-only; Python and workflows still need somewhere to write.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                         *[m for m in _dump(template.volumeMounts) if m["name"] != "tmp"]],
    }
    if template.envFrom:
        container["envFrom"] = _dump(template.envFrom)
    metadata = _metadata(ex, runner_pod_name_for(ex.name, ex.status.retries), "runner")
    if template.metadata is not None:
        metadata["labels"] = {**template.metadata.labels, **metadata["labels"]}  # ours win
        if template.metadata.annotations:
            metadata["annotations"] = dict(template.metadata.annotations)
    spec: dict[str, Any] = {
        "serviceAccountName": runner_account_name(ex.name),
        # A crashed runner restarts in place and skips the steps it already checkpointed.
        "restartPolicy": "OnFailure",
        "terminationGracePeriodSeconds": ex.spec.gracePeriodSeconds,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    *[v for v in _dump(template.volumes) if v["name"] != "tmp"]],
    }
    for key in ("nodeSelector", "priorityClassName", "affinity"):
        value = getattr(template, key)
        if value:
            spec[key] = value
    if template.tolerations:
        spec["tolerations"] = _dump(template.tolerations)
    if template.imagePullSecrets:
        spec["imagePullSecrets"] = _dump(template.imagePullSecrets)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def with_token(body: dict[str, Any], token: str) -> dict[str, Any]:
    """The object carrying its creation token (ownership.py): how the operator knows it made it."""
    if token:
        meta = body["metadata"]
        meta["annotations"] = {**(meta.get("annotations") or {}), CREATE_TOKEN_ANNOTATION: token}
    return body


def execution_traceparent(ex: Execution, settings: RunnerSettings) -> str:
    """The trace context its runner and children get: its own span as their parent (flux_api.tracecontext)."""
    return tracecontext.of_execution(ex.metadata.get("annotations"), str(ex.metadata.get("uid") or ""),
                                     settings.tracing_ratio)[0].traceparent


def inherited_labels(parent: Execution) -> dict[str, str]:
    """The parent's own labels, so that a selector that picks the parent picks its children too (a limit with
    includeChildren, `kubectl get -l`); never the operator's (a child is no run of its parent's Schedule)."""
    return {k: v for k, v in (parent.metadata.get("labels") or {}).items() if not operators_label(k, v)}


def child_execution(parent: Execution, name: str, workflow: str, input_: dict[str, Any],
                    token: str = "", traceparent: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name, "namespace": parent.namespace,
        "labels": {**inherited_labels(parent), PARENT_LABEL: parent.name,
                   DEPTH_LABEL: str(tree_depth(parent.metadata.get("labels"), MAX_DEPTH) + 1),
                   ROOT_LABEL: tree_root(parent.metadata.get("uid"), parent.metadata.get("labels"))},
        "ownerReferences": [owner_reference(parent)]}
    annotations = {**({CREATE_TOKEN_ANNOTATION: token} if token else {}),
                   **({TRACEPARENT_ANNOTATION: traceparent} if traceparent else {})}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": meta,
        "spec": {"workflow": workflow, "input": input_, "gracePeriodSeconds": parent.spec.gracePeriodSeconds,
                 **({"image": parent.spec.image} if parent.spec.image else {}),
                 # A child needs the same secrets, volumes and identity as the workflow that spawned it.
                 **({"podTemplate": parent.spec.podTemplate.model_dump(mode="json", exclude_none=True)}
                    if parent.spec.podTemplate else {})},
    }


def child_suspend_patch(parent_name: str, reason: str, suspend: bool) -> dict[str, Any]:
    """Suspends a child with its parent's reason, or resumes it (and forgets who suspended it)."""
    if not suspend:
        return {"metadata": {"annotations": {SUSPENDED_BY_ANNOTATION: None, SUSPEND_REASON_ANNOTATION: None}},
                "spec": {"suspend": False}}
    return {"metadata": {"annotations": {SUSPENDED_BY_ANNOTATION: parent_name, SUSPEND_REASON_ANNOTATION: reason}},
            "spec": {"suspend": True}}


def child_cancel_patch(parent_name: str, reason: str, force: bool) -> dict[str, Any]:
    return {"metadata": {"annotations": {CANCELLED_BY_ANNOTATION: parent_name}},
            "spec": {"cancel": {"reason": reason, "cascade": True, "force": force}}}
