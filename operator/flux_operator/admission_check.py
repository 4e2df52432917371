"""Start-up check: are Flux's admission policies in force, as this version of the operator generates them?

Every ValidatingAdmissionPolicy and binding of flux_api.policy must exist with at least what this version
generates (the API server adds defaults), and the TenancyPolicy `flux-tenancy` must name this operator's
user (or the operator's own writes would be refused) and hold the limits of `--tenancy-policy` (the chart
renders both from the same values). A problem is one line: /healthz stays red until it is fixed.
"""

from __future__ import annotations

from typing import Any

from flux_api import policy, tenancy
from flux_api.errors import Failure
from flux_api.names import GROUP, VERSION

from flux_operator.kube import ApiFailure, KubeApi

_PLURALS = {"ValidatingAdmissionPolicy": "validatingadmissionpolicies",
            "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings"}
HOW_TO_FIX = "apply crds/ of this version (kubectl apply --server-side -f crds/) or helm upgrade the chart"


def covers(found: Any, wanted: Any) -> bool:
    """Whether `found` holds everything `wanted` does: maps may have more keys (server defaults), lists
    must match item by item."""
    if isinstance(wanted, dict):
        return isinstance(found, dict) and all(k in found and covers(found[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(found, list) and len(found) == len(wanted) and all(map(covers, found, wanted))
    return found == wanted


def _policies(api: KubeApi) -> list[str]:
    missing, stale = [], []
    for doc in policy.documents():
        kind, name = doc["kind"], doc["metadata"]["name"]
        found = api.get_object(f"/apis/admissionregistration.k8s.io/v1/{_PLURALS[kind]}/{name}")
        if found is None:
            missing.append(f"{kind} {name}")
        elif not covers(found.get("spec"), doc["spec"]):
            stale.append(f"{kind} {name}")
    return ([f"missing {', '.join(missing)}"] if missing else []) + \
        ([f"not current: {', '.join(stale)}"] if stale else [])


def _tenancy(api: KubeApi, limits: tenancy.TenancyLimits | None) -> list[str]:
    found = api.get_object(f"/apis/{GROUP}/{VERSION}/{tenancy.PLURAL}/{tenancy.NAME}")
    if found is None:
        return [f"missing {tenancy.KIND} {tenancy.NAME} (the operator's identity and the platform's limits)"]
    spec = found.get("spec") or {}
    problems = []
    me = api.whoami()
    if me not in (spec.get("operators") or []):
        problems.append(f"{tenancy.KIND} {tenancy.NAME} does not name this operator ({me}) in spec.operators: "
                        "its own writes would be refused")
    try:
        theirs = tenancy.limits_of(spec)
    except ValueError as err:
        return [*problems, f"{tenancy.KIND} {tenancy.NAME} does not parse: {err}"]
    if theirs != (limits or tenancy.TenancyLimits()):
        problems.append(f"{tenancy.KIND} {tenancy.NAME} holds other limits than --tenancy-policy: the API server "
                        "and this operator would disagree")
    return problems


def policy_problems(api: KubeApi, limits: tenancy.TenancyLimits | None) -> str | None:
    """One line naming what is wrong, or None. ApiFailure if the API server could not be asked."""
    try:
        problems = _policies(api) + _tenancy(api, limits)
    except ApiFailure as err:
        if err.kind is not Failure.FORBIDDEN:
            raise
        return f"cannot check the admission policies: {err}"
    if not problems:
        return None
    return "admission policies not in force: " + "; ".join(problems) + f" ({HOW_TO_FIX})"
