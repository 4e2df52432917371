"""Flux's admission policies on the test cluster: installed with the CRDs, for the suite's operator.

`install` applies crds/ (the CRDs and the generated policies, as `kubectl apply -f crds/` would) and the
TenancyPolicy naming fluxtest.identity.OPERATOR_USER, then waits until the API server enforces them.
`platform_limits` sets the platform's limits for the length of a test; `remove` takes everything but the
CRDs away (the chart test installs its own).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

from flux_api import GROUP, PLURAL, VERSION, policy, tenancy
from kubernetes import client
from kubernetes.client.rest import ApiException

from fluxtest.identity import OPERATOR_USER
from fluxtest.paths import REPO
from localcluster.probes import wait_for

CRDS = REPO / "crds"
PROBE_USER = "flux-policy-probe"  # may create Executions in `default`, and nothing else
PROBE_NAMESPACE = "default"

Kubectl = Callable[..., subprocess.CompletedProcess]


def tenancy_object(limits: dict[str, Any] | None = None) -> dict[str, Any]:
    return tenancy.tenancy_policy([OPERATOR_USER], tenancy.TenancyLimits.model_validate(limits or {}))


def _apply(kubectl: Kubectl, document: dict[str, Any]) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(document))


def _probe_rights(kubectl: Kubectl) -> None:
    _apply(kubectl, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                     "metadata": {"name": PROBE_USER, "namespace": PROBE_NAMESPACE},
                     "rules": [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create"]}]})
    _apply(kubectl, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": {"name": PROBE_USER, "namespace": PROBE_NAMESPACE},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": PROBE_USER},
                     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROBE_USER}]})


# One forbidden thing per policy over Executions: each dry run must be refused by that policy.
_PROBES = {
    "flux-operator-owned-metadata": {"metadata": {"labels": {f"{GROUP}/parent": "probe"}}},
    "flux-tenant-secrets": {"spec": {"podTemplate": {"env": [
        {"name": "P", "valueFrom": {"secretKeyRef": {"name": "probe", "key": "k"}}}]}}},
    # With a prefix: an envFrom without one also needs create pods (flux_api.steering), another policy's refusal.
    "flux-tenant-configmaps": {"spec": {"podTemplate": {"envFrom": [{"prefix": "P_",
                                                                     "configMapRef": {"name": "probe"}}]}}},
    "flux-tenant-pod-settings": {"spec": {"podTemplate": {"priorityClassName": "probe"}}},
}


def refusal(api: client.ApiClient, body: dict[str, Any], namespace: str, plural: str = PLURAL) -> str | None:
    """The API server's answer to a dry-run create: None if admitted, else its message."""
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body,
                                                                     dry_run="All")
    except ApiException as err:
        return _message(err)
    return None


def answer(write: Callable[[], Any]) -> str:
    """How the API server took a write: "admitted", or its refusal as "<status>: <message>"."""
    try:
        write()
    except ApiException as err:
        return f"{err.status}: {_message(err)}"
    return "admitted"


def _message(err: ApiException) -> str:
    return json.loads(err.body or "{}").get("message") or str(err)


def _enforced(api: client.ApiClient) -> bool:
    for name, overlay in _PROBES.items():
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution",
                "metadata": {"name": "probe", **overlay.get("metadata", {})},
                "spec": {"workflow": "probe.probe:main", **overlay.get("spec", {})}}
        if f"ValidatingAdmissionPolicy '{name}'" not in (refusal(api, body, PROBE_NAMESPACE) or ""):
            return False
    return True


def install(kubectl: Kubectl, kubeconfig) -> None:
    from fluxtest.tenancy import impersonating

    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    kubectl("wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", f"crd/schedules.{GROUP}",
            f"crd/concurrencylimits.{GROUP}", f"crd/executionprogresses.{GROUP}",
            f"crd/{tenancy.PLURAL}.{GROUP}", "--timeout=60s")
    _apply(kubectl, tenancy_object())
    _probe_rights(kubectl)
    with impersonating(kubeconfig, PROBE_USER) as probe:
        wait_for(lambda: _enforced(probe), timeout=60, what="the API server to enforce the admission policies")


def remove(kubectl: Kubectl) -> None:
    """Every policy, binding and the TenancyPolicy (not the CRDs): the chart brings its own."""
    for kind, name in [*policy.names(), (f"{tenancy.PLURAL}.{GROUP}", tenancy.NAME)]:
        kubectl("delete", kind.lower(), name, "--ignore-not-found", "--wait=true")


@contextlib.contextmanager
def platform_limits(kubectl: Kubectl, **limits: Any) -> Iterator[dict[str, Any]]:
    """The TenancyPolicy with these limits for the length of the block, then as before. The API server
    reads it through an informer: assert with `eventually_refused`/`eventually_admitted`, not once."""
    _apply(kubectl, tenancy_object(limits))
    try:
        yield limits
    finally:
        _apply(kubectl, tenancy_object())


@contextlib.contextmanager
def own_policy(kubectl: Kubectl, name: str, spec: dict[str, Any]) -> Iterator[str]:
    """A ValidatingAdmissionPolicy of a test's own (`spec`), bound to deny, for the length of the block. The API
    server takes it in through an informer: wait for its effect before relying on it."""
    policy_ = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
               "metadata": {"name": name}, "spec": spec}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": name}, "spec": {"policyName": name, "validationActions": ["Deny"]}}
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [policy_, binding]}))
    try:
        yield name
    finally:
        kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name, "--ignore-not-found")


@contextlib.contextmanager
def also_operators(kubectl: Kubectl, *users: str) -> Iterator[None]:
    """These users count as the operator too (TenancyPolicy spec.operators) for the length of the block, and
    may read what the operator's start-up check reads."""
    rules = policy.reader_rules()
    name = "flux-test-admission-check"
    _apply(kubectl, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": {"name": name}, "rules": rules})
    _apply(kubectl, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                     "metadata": {"name": name},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u} for u in users]})
    _apply(kubectl, tenancy.tenancy_policy([OPERATOR_USER, *users]))
    try:
        yield
    finally:
        _apply(kubectl, tenancy_object())
        kubectl("delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found")


def eventually_refused(api: client.ApiClient, body: dict[str, Any], namespace: str, plural: str = PLURAL,
                       timeout: float = 20) -> str:
    """The refusal's message, once the API server (its informers caught up) refuses the dry run."""
    return wait_for(lambda: refusal(api, body, namespace, plural), timeout=timeout, what="a refusal")


def eventually_admitted(api: client.ApiClient, body: dict[str, Any], namespace: str, plural: str = PLURAL,
                        timeout: float = 20) -> None:
    last: list[str | None] = [None]

    def admitted() -> bool:
        last[0] = refusal(api, body, namespace, plural)
        return last[0] is None
    try:
        wait_for(admitted, timeout=timeout, what="admission")
    except Exception as err:
        raise AssertionError(f"still refused: {last[0]}") from err


# A forgery each owned-marks policy refuses (the admin is not the operator, so it is refused too).
_FORGERIES = {
    "flux-operator-owned-metadata": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution",
                                     "metadata": {"name": "forgery-probe", "namespace": PROBE_NAMESPACE,
                                                  "labels": {f"{GROUP}/parent": "probe"}},
                                     "spec": {"workflow": "probe.probe:main"}},
    "flux-operator-owned-runner-objects": {"apiVersion": "v1", "kind": "ServiceAccount",
                                           "metadata": {"name": "forgery-probe", "namespace": PROBE_NAMESPACE,
                                                        "labels": {f"{GROUP}/execution": "probe"}}},
}


@contextlib.contextmanager
def unenforced(kubectl: Kubectl, kubeconfig, *names: str) -> Iterator[None]:
    """The owned-marks policies `names` unbound for the length of the block, then installed again: a tenant's
    forgery then reaches the operator, as on a cluster without Flux's policies, so its own checks are tested."""
    for name in names:
        kubectl("delete", "validatingadmissionpolicybinding", name, "--ignore-not-found", "--wait=true")

    def admitted(name: str) -> bool:
        return kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(_FORGERIES[name]),
                       check=False).returncode == 0
    try:
        for name in names:
            wait_for(lambda: admitted(name), timeout=30, what=f"{name} to be out of force")
        yield
    finally:
        install(kubectl, kubeconfig)
