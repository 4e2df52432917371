"""Start-up checks: is the Execution API served, and may this operator do its job? Each problem is
one clear log line and a red /healthz until it is fixed; the checks repeat until then."""

from __future__ import annotations

import logging

from flux_api import GROUP, PLURAL, VERSION
from flux_api.names import SCHEDULE_PLURAL

from flux_operator.kube import KubeApi

log = logging.getLogger("flux_operator")

# (verb, API group, resource): what the operator's actions need, in every namespace it watches.
REQUIRED = (
    ("list", GROUP, PLURAL), ("watch", GROUP, PLURAL), ("patch", GROUP, PLURAL), ("create", GROUP, PLURAL),
    ("patch", GROUP, f"{PLURAL}/status"),
    ("list", "", "pods"), ("watch", "", "pods"), ("create", "", "pods"), ("delete", "", "pods"),
    ("delete", GROUP, PLURAL),  # ttlSecondsAfterFinished and Schedules' history limits
    ("list", GROUP, SCHEDULE_PLURAL), ("watch", GROUP, SCHEDULE_PLURAL), ("patch", GROUP, SCHEDULE_PLURAL),
    ("patch", GROUP, f"{SCHEDULE_PLURAL}/status"),
    ("create", "", "serviceaccounts"), ("create", "rbac.authorization.k8s.io", "roles"),
    ("create", "rbac.authorization.k8s.io", "rolebindings"), ("create", "", "events"),
)


def api_served(api: KubeApi) -> bool:
    """Whether the Execution API is served (its CRD installed); ApiFailure when the server could not be asked."""
    return api.served(f"/apis/{GROUP}/{VERSION}")


def missing_permissions(api: KubeApi, namespaces: list[str], lease_namespace: str | None) -> list[str]:
    """What this identity may not do, as 'verb resource in namespace' lines (SelfSubjectAccessReview)."""
    checks = [(verb, group, resource, ns) for ns in (namespaces or [""]) for verb, group, resource in REQUIRED]
    if lease_namespace:
        checks += [(verb, "coordination.k8s.io", "leases", lease_namespace) for verb in ("get", "create", "update")]
    missing = []
    for verb, group, resource, ns in checks:
        name, _, sub = resource.partition("/")
        attributes = {"verb": verb, "group": group, "resource": name}
        if sub:
            attributes["subresource"] = sub
        if ns:
            attributes["namespace"] = ns
        if not api.allowed(attributes):
            missing.append(f"{verb} {resource}{'.' + group if group else ''} in {ns or 'all namespaces'}")
    return missing
