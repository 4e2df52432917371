"""`flux-operator-makes-only-runners`: what the operator's own identity may create is a runner, tied to its Execution.

The operator's RBAC lets it create pods, ServiceAccounts, Roles, RoleBindings and NetworkPolicies, and delete
pods, in every namespace it serves. Its code only ever makes the runner objects flux_operator.builders builds.
Without this policy a stolen operator token could start any pod there (as any ServiceAccount, as root, with
`hostPath` wherever Pod Security is not enforced), write a Role holding any of the operator's rights, bind it
to anyone, and delete anyone's pods. Matched by the operator's user names (the TenancyPolicy's
`spec.operators`); users, controllers and runners are not touched, and the tenant policies still bind everyone
else.

Each object must be named and owned as the operator makes it, for one Execution `E`:
- a pod `E-runner` (a retry's `E-runner-N`), run as `flux-runner-E`, labelled with `E`, confined as every runner
  pod is (policy_operator_pod: confined containers, non-root, capabilities dropped, a seccomp profile, no host
  PID or IPC, no nodeName, only the volume types a runner pod may have). The host network is left to Pod Security: a
  cluster without a pod network puts every pod on it (the local cluster's real node does, by a mutating policy
  that runs before this one);
- a ServiceAccount `flux-runner-E` with no Secrets of its own, annotated only as the platform's
  `serviceAccountAnnotations` say (if set);
- a Role `flux-runner-E` with exactly the runner's rules (RUNNER_ROLE) on Execution `E`;
- a RoleBinding `flux-runner-E` of Role `flux-runner-E` to ServiceAccount `flux-runner-E` alone;
- a NetworkPolicy `flux-runner-E` that selects `E`'s runner pods, for ingress and egress, and lets nothing in;
each controlled by Execution `E`. A pod it deletes runs as a runner's ServiceAccount.

What stays open to such a token: the image, the Secrets and ConfigMaps a runner pod mounts or pulls with, the
pod's labels and where it is scheduled (mutating admission sets those too, so the final pod's are not the
operator's alone), and the egress a runner NetworkPolicy allows (the operator's --runner-egress is not in the
TenancyPolicy).
"""

from __future__ import annotations

from typing import Any

from flux_api.admission import binding, policy, string, strings, validation, variable
from flux_api.names import EXECUTION_LABEL, GROUP, KIND, PLURAL, RUNNER_ACCOUNT_PREFIX
from flux_api.policy_operator_pod import pod_rules
from flux_api.policy_runner_pod import RUNNER_SUFFIX, execution_by_name
from flux_api.progress import PLURAL as PROGRESS_PLURAL
from flux_api.tenancy import FREE_VOLUME_TYPES, NAMESPACE_PLACEHOLDER, RESTRICTED_VOLUME_TYPES

NAME = "flux-operator-makes-only-runners"
# The runner's Role on its own Execution `E` (flux_operator.builders.role makes it from this): resource, verbs.
RUNNER_ROLE = ((PLURAL, ("get", "watch")), (f"{PLURAL}/status", ("patch",)), (PROGRESS_PLURAL, ("get",)),
               (f"{PROGRESS_PLURAL}/status", ("patch",)))
MOST = 16  # ownerReferences walked at most; a Role's rules
RBAC = "rbac.authorization.k8s.io"

_RULES = [
    {"apiGroups": [""], "apiVersions": ["*"], "operations": ["CREATE", "DELETE"], "resources": ["pods"]},
    {"apiGroups": [""], "apiVersions": ["*"], "operations": ["CREATE"], "resources": ["serviceaccounts"]},
    {"apiGroups": [RBAC], "apiVersions": ["*"], "operations": ["CREATE"], "resources": ["roles", "rolebindings"]},
    {"apiGroups": ["networking.k8s.io"], "apiVersions": ["*"], "operations": ["CREATE"],
     "resources": ["networkpolicies"]},
]
THE_OPERATOR = {"name": "the-operator", "expression": "request.userInfo.username in params.spec.operators"}


def _variables() -> list[dict[str, str]]:
    restricted = [t for t in RESTRICTED_VOLUME_TYPES if t not in FREE_VOLUME_TYPES]
    return [
        variable("kind", "request.resource.resource"),
        variable("name", "request.operation == 'DELETE' ? request.name : object.metadata.name"),
        variable("execution", f"variables.kind == 'pods' ? {execution_by_name('variables.name')} : "
                              f"(variables.name.startsWith({string(RUNNER_ACCOUNT_PREFIX)}) ? "
                              f"variables.name.substring({len(RUNNER_ACCOUNT_PREFIX)}) : '')"),
        variable("account", string(RUNNER_ACCOUNT_PREFIX) + " + variables.execution"),
        variable("creates", "request.operation == 'CREATE'"),
        variable("volumeTypes", f"{strings(FREE_VOLUME_TYPES)} + params.spec.?allowedVolumeTypes.orValue("
                                f"{strings(restricted)})"),
    ]


def runner_role_rules(execution: str) -> list[dict[str, Any]]:
    return [{"apiGroups": [GROUP], "resources": [resource], "resourceNames": [execution], "verbs": list(verbs)}
            for resource, verbs in RUNNER_ROLE]


def _rbac_rules() -> list[dict[str, Any]]:
    shapes = " || ".join(f"(r.?resources.orValue([]) == [{string(resource)}] && r.verbs == {strings(verbs)})"
                         for resource, verbs in RUNNER_ROLE)
    role_rule = (f"r.?apiGroups.orValue([]) == [{string(GROUP)}] && "
                 f"r.?resourceNames.orValue([]) == [variables.execution] && "
                 f"size(r.?nonResourceURLs.orValue([])) == 0 && ({shapes})")
    rights = "; ".join(f"{'/'.join(verbs)} {resource}" for resource, verbs in RUNNER_ROLE)
    subject = "object.?subjects.orValue([])"
    return [
        validation(f"variables.kind != 'roles' || (size(object.?rules.orValue([])) <= {MOST} && "
                   f"object.?rules.orValue([]).all(r, {role_rule}))",
                   "a runner's Role reads and patches its own Execution and ExecutionProgress only",
                   f"'Role ' + variables.name + ' may hold only a runner\\'s rules on ' + variables.execution + "
                   f"': {rights}'"),
        validation(f"variables.kind != 'rolebindings' || (object.roleRef.kind == 'Role' && "
                   f"object.roleRef.name == variables.name && size({subject}) == 1 && "
                   f"{subject}[0].kind == 'ServiceAccount' && {subject}[0].name == variables.name && "
                   f"{subject}[0].?namespace.orValue(request.namespace) == request.namespace)",
                   "a runner's RoleBinding binds its Role to its ServiceAccount only",
                   "'RoleBinding ' + variables.name + ' may bind only Role ' + variables.name + ' to ServiceAccount "
                   "' + variables.name + ' of its namespace'"),
        validation("variables.kind != 'serviceaccounts' || (!has(object.secrets) && !has(object.imagePullSecrets))",
                   "a runner's ServiceAccount names no Secrets",
                   "'ServiceAccount ' + variables.name + ' may name no secrets or imagePullSecrets (a runner\\'s "
                   "has none)'"),
        validation("variables.kind != 'serviceaccounts' || !has(params.spec.serviceAccountAnnotations) || "
                   "(size(object.metadata.?annotations.orValue({})) <= 64 && "
                   f"object.metadata.?annotations.orValue({{}}).all(k, k.startsWith({string(GROUP + '/')}) || "
                   "(k in params.spec.serviceAccountAnnotations && "
                   "object.metadata.annotations[k] == params.spec.serviceAccountAnnotations[k].replace("
                   f"{string(NAMESPACE_PLACEHOLDER)}, request.namespace))))",
                   "a runner's ServiceAccount carries only the annotations the platform allows",
                   "'ServiceAccount ' + variables.name + ' carries only the annotations the platform allows "
                   "(TenancyPolicy serviceAccountAnnotations)'"),
        validation("variables.kind != 'networkpolicies' || (object.spec.?podSelector.?matchLabels.orValue({})[?"
                   f"{string(EXECUTION_LABEL)}].orValue('') == variables.execution && "
                   "size(object.spec.?ingress.orValue([])) == 0)",
                   "a runner's NetworkPolicy selects its runner pods and lets nothing in",
                   "'NetworkPolicy ' + variables.name + ' must select the runner pods of Execution ' + "
                   "variables.execution + ' and let nothing in'"),
    ]


def make_policy() -> dict[str, Any]:
    owners = "object.metadata.?ownerReferences.orValue([])"
    owner = (f"size({owners}) <= {MOST} && {owners}.exists(r, r.kind == {string(KIND)} && "
             f"r.apiVersion.startsWith({string(GROUP + '/')}) && r.name == variables.execution && "
             "r.?controller.orValue(false))")
    validations = [
        validation("variables.execution != ''",
                   "the flux operator's identity creates only runner objects (pods <execution>-runner, "
                   "ServiceAccounts, Roles, RoleBindings and NetworkPolicies flux-runner-<execution>)",
                   "'the flux operator\\'s identity makes only runner objects: ' + variables.kind + ' ' + "
                   "variables.name + ' is not named as one (pods <execution>-runner, others flux-runner-<execution>)'"),
        validation(f"variables.creates || oldObject.spec.?serviceAccountName.orValue('')"
                   f".startsWith({string(RUNNER_ACCOUNT_PREFIX)})",
                   "the flux operator's identity deletes only runner pods",
                   "'the flux operator\\'s identity deletes only runner pods: pod ' + variables.name + ' does not "
                   f"run as a {RUNNER_ACCOUNT_PREFIX}* ServiceAccount'"),
        validation(f"!variables.creates || {owner}",
                   "a runner object is controlled by its Execution",
                   "variables.kind + ' ' + variables.name + ' must be controlled by Execution ' + "
                   "variables.execution + ', as every runner object is'"),
        *pod_rules(),
        *_rbac_rules(),
    ]
    # Fails open as the other policies over pods and RBAC do: a policy that cannot be evaluated (its
    # TenancyPolicy CRD not yet there) must not stop every pod of the cluster.
    return policy(NAME, _RULES, validations, _variables(), [THE_OPERATOR], failure_policy="Ignore")


def documents() -> list[dict[str, Any]]:
    """Without the TenancyPolicy no one is known as the operator, so the policy is skipped (the operator's
    start-up check reports the missing object)."""
    return [make_policy(), binding(NAME, deny_without_params=False)]
