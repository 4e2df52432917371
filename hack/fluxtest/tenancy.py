"""Tenants as the API server sees them: a namespace user with only the rights a platform team hands out.

Attacks are tested the way an attacker makes them: through impersonation of a user whose RBAC allows
only what a tenant gets (Executions, and optionally Schedules, in one namespace), never as the admin
the test suite itself uses. `Tenant.fx` and `Tenant.kubectl` act as that user.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flux_api import GROUP, PLURAL
from flux_api.names import SCHEDULE_PLURAL
from kubernetes import client
from localcluster.kube import api_client
from localcluster.probes import wait_for

from fluxtest.executions import Executions, Schedules

# What a platform team typically grants a team on Executions: no delete, no status, no pods or secrets.
TENANT_VERBS = ("create", "get", "list", "watch", "patch")
EVERYTHING = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]


def grant(api: client.ApiClient, namespace: str, user: str, rules: list[dict], name: str | None = None) -> None:
    """A Role with `rules` in `namespace`, bound to `user` alone."""
    rbac = client.RbacAuthorizationV1Api(api)
    name = name or f"tenant-{uuid.uuid4().hex[:6]}"
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
    # The API server's authorizer learns of a binding from its own watch, a moment later: an attack made at
    # once could be refused by RBAC, not by what the test means to show refusing it.
    wait_for(lambda: granted(api, namespace, user, rules), timeout=30, interval=0.1, what=f"{user}'s new rights")


def granted(api: client.ApiClient, namespace: str, user: str, rules: list[dict]) -> bool:
    """Whether the API server's authorizer already allows `user` the first verb of each rule's first resource."""
    authz = client.AuthorizationV1Api(api)
    for rule in rules:
        resource, _, subresource = rule["resources"][0].partition("/")
        names = rule.get("resourceNames") or [""]
        attributes = client.V1ResourceAttributes(namespace=namespace, verb=rule["verbs"][0],
                                                 group=rule["apiGroups"][0], resource=resource,
                                                 subresource=subresource or None, name=names[0] or None)
        review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(user=user,
                                                                                    resource_attributes=attributes))
        if not authz.create_subject_access_review(review).status.allowed:
            return False
    return True


def execution_rules(verbs: tuple[str, ...] = TENANT_VERBS, schedules: bool = False) -> list[dict]:
    resources = [PLURAL, *([SCHEDULE_PLURAL] if schedules else [])]
    return [{"apiGroups": [GROUP], "resources": resources, "verbs": list(verbs)}]


def can_i(kubectl, user: str, verb: str, resource: str, *where: str, subresource: str = "") -> str:
    """`kubectl auth can-i` as `user`: "yes" or "no" (`where`: "-n", ns or "--all-namespaces")."""
    args = ["auth", "can-i", verb, resource, *where, f"--as={user}"]
    if subresource:
        args.append(f"--subresource={subresource}")
    return kubectl(*args, check=False).stdout.strip()


def impersonating(kubeconfig: Path, user: str, groups: tuple[str, ...] = ()) -> client.ApiClient:
    """An API client whose every request is made as `user` (the API server adds system:authenticated)."""
    api = api_client(kubeconfig)
    api.set_default_header("Impersonate-User", user)
    for group in groups:  # the client sends one value per header: one group at most
        api.set_default_header("Impersonate-Group", group)
    return api


@dataclass
class Tenant:
    """A user who may only do what `rules` allow in `namespace`."""

    namespace: str
    user: str
    kubeconfig: Path
    env: dict[str, str]
    api: client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.api = impersonating(self.kubeconfig, self.user)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def fx(self) -> Executions:
        """Executions in the tenant's namespace, created and patched as the tenant."""
        return Executions(self.custom, self.core, self.namespace)

    @property
    def schedules(self) -> Schedules:
        return Schedules(self.custom, self.namespace)

    def kubectl(self, *args: str, check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
        """kubectl as the tenant (`--as`), in the tenant's namespace."""
        result = subprocess.run(["kubectl", f"--as={self.user}", "-n", self.namespace, *args], env=self.env,
                                capture_output=True, text=True, input=input, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl --as={self.user} {' '.join(args)} failed: {result.stderr}")
        return result

    def close(self) -> None:
        self.api.close()


def make_tenant(admin: client.ApiClient, kubeconfig: Path, env: dict[str, str], namespace: str,
                schedules: bool = False, verbs: tuple[str, ...] = TENANT_VERBS) -> Tenant:
    user = f"tenant-{namespace}"
    grant(admin, namespace, user, execution_rules(verbs, schedules))
    return Tenant(namespace, user, kubeconfig, env)


# --- fixtures (registered by fluxtest.plugin) ---------------------------------------------------------------

@pytest.fixture
def tenant_namespace(namespace: str) -> str:
    """Where `tenant` and `privileged` act: the test's namespace, unless a module overrides this fixture."""
    return namespace


@pytest.fixture
def tenant(api, kubeconfig, kube_env, tenant_namespace) -> Iterator[Tenant]:
    """A user who may only create, get, list, watch and patch Executions and Schedules in tenant_namespace."""
    who = make_tenant(api, kubeconfig, kube_env, tenant_namespace, schedules=True)
    yield who
    who.close()


@pytest.fixture
def privileged(api, kubeconfig, kube_env, tenant_namespace) -> Iterator[Tenant]:
    """A user who may do everything in tenant_namespace (not the operator: the policies apply to them too)."""
    grant(api, tenant_namespace, f"admin-{tenant_namespace}", EVERYTHING)
    who = Tenant(tenant_namespace, f"admin-{tenant_namespace}", kubeconfig, kube_env)
    yield who
    who.close()
