"""Start-up checks: is the Execution API served, and may this operator do its job? Each problem is
one clear log line and a red /healthz until it is fixed; the checks repeat until then.

The tables below are the operator's whole list of rights but one, each for a reason in the code; the one
is `get` on the admission policies and the TenancyPolicy, listed by flux_api.policy.reader_rules for the
policy check. The chart grants exactly these (tests/cluster/test_chart.py compares its rules with them), and
the cluster tests run the operator as an identity bound to the chart's rules and nothing else.
"""

from __future__ import annotations

import logging

from flux_api import GROUP, PLURAL, VERSION
from flux_api.names import LIMIT_PLURAL, SCHEDULE_PLURAL
from flux_api.progress import PLURAL as PROGRESS_PLURAL

from flux_operator.kube import KubeApi

log = logging.getLogger("flux_operator")

RBAC = "rbac.authorization.k8s.io"
Right = tuple[str, str, str]  # (verb, API group, resource[/subresource])

# In every namespace the operator serves.
NAMESPACED: tuple[Right, ...] = (
    # get: after a status Conflict, for a value the World keeps as a stub (reconcile), for the object a
    # create found under its name (making, schedule_shell). list, watch: kopf. create: children and Schedule runs. patch: a
    # cancel on a child or a replaced run. delete: ttlSecondsAfterFinished, history limits.
    *((verb, GROUP, PLURAL) for verb in ("get", "list", "watch", "create", "patch", "delete")),
    ("patch", GROUP, f"{PLURAL}/status"),
    # Owner references with blockOwnerDeletion (pods, runner RBAC, children, Schedule runs) need these where
    # the OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift, hardened clusters).
    ("update", GROUP, f"{PLURAL}/finalizers"),
    ("update", GROUP, f"{SCHEDULE_PLURAL}/finalizers"),
    # get: after a status Conflict, for a template kept as a stub. list, watch: kopf. patch: suspend on
    # ctx.unschedule.
    *((verb, GROUP, SCHEDULE_PLURAL) for verb in ("get", "list", "watch", "patch")),
    ("patch", GROUP, f"{SCHEDULE_PLURAL}/status"),
    # list, watch: kopf. patch: the usage a ConcurrencyLimit shows (limit_shell).
    ("list", GROUP, LIMIT_PLURAL), ("watch", GROUP, LIMIT_PLURAL), ("patch", GROUP, f"{LIMIT_PLURAL}/status"),
    # create: each runner's ExecutionProgress (making.Maker); get, patch status: granted to that runner.
    ("get", GROUP, PROGRESS_PLURAL), ("create", GROUP, PROGRESS_PLURAL), ("patch", GROUP, f"{PROGRESS_PLURAL}/status"),
    # get: whose is the pod (or runner RBAC) of that name, after a create met one (making.Maker).
    *((verb, "", "pods") for verb in ("get", "list", "watch", "create", "delete")),
    ("get", "", "serviceaccounts"), ("create", "", "serviceaccounts"),
    ("get", RBAC, "roles"), ("create", RBAC, "roles"),
    ("get", RBAC, "rolebindings"), ("create", RBAC, "rolebindings"),
    # Ours (reconcile, notices) and kopf's (handler errors).
    ("create", "", "events"),
)
# With --runner-egress: one NetworkPolicy per runner, beside its ServiceAccount.
NETWORK_POLICIES: tuple[Right, ...] = (("get", "networking.k8s.io", "networkpolicies"),
                                       ("create", "networking.k8s.io", "networkpolicies"))
# Cluster-wide. Label mode's namespace watch (handlers.watch_namespaces); kopf's CRD and namespace
# observers (in listed mode kopf does without them, with a warning, so they are not checked then).
LABEL_MODE: tuple[Right, ...] = (("list", "", "namespaces"), ("watch", "", "namespaces"))
KOPF_OBSERVERS: tuple[Right, ...] = (("list", "apiextensions.k8s.io", "customresourcedefinitions"),
                                     ("watch", "apiextensions.k8s.io", "customresourcedefinitions"),
                                     *LABEL_MODE)
# In the Lease's namespace (leader.py).
LEADER_ELECTION: tuple[Right, ...] = tuple((verb, "coordination.k8s.io", "leases") for verb in ("get", "create", "update"))
# Cluster-wide, for /metrics (metrics_auth.py): not checked here; a scrape that cannot be reviewed says why.
METRICS_AUTH: tuple[Right, ...] = (("create", "authentication.k8s.io", "tokenreviews"),
                                   ("create", "authorization.k8s.io", "subjectaccessreviews"))


def api_served(api: KubeApi) -> bool:
    """Whether the Execution API is served (its CRD installed); ApiFailure when the server could not be asked."""
    return api.served(f"/apis/{GROUP}/{VERSION}")


def missing_permissions(api: KubeApi, namespaces: list[str], lease_namespace: str | None,
                        network_policies: bool = False, lease_name: str = "") -> list[str]:
    """What this identity may not do, as 'verb resource in namespace' lines (SelfSubjectAccessReview). The
    Lease's get and update are asked for its own name: the chart grants them on that one only."""
    needed = NAMESPACED + (NETWORK_POLICIES if network_policies else ())
    checks = [(verb, group, resource, ns, "") for ns in (namespaces or [""]) for verb, group, resource in needed]
    if not namespaces:
        checks += [(verb, group, resource, "", "") for verb, group, resource in LABEL_MODE]
    if lease_namespace:
        checks += [(verb, group, resource, lease_namespace, "" if verb == "create" else lease_name)
                   for verb, group, resource in LEADER_ELECTION]
    missing = []
    for verb, group, resource, ns, object_name in checks:
        name, _, sub = resource.partition("/")
        attributes = {"verb": verb, "group": group, "resource": name}
        if sub:
            attributes["subresource"] = sub
        if ns:
            attributes["namespace"] = ns
        if object_name:
            attributes["name"] = object_name
        if not api.allowed(attributes):
            missing.append(f"{verb} {resource}{'.' + group if group else ''}{' ' + object_name if object_name else ''}"
                           f" in {ns or 'all namespaces'}")
    return missing
