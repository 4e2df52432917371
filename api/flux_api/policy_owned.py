"""The operator's marks on objects can be made only by the operator: enforced by the API server.

The operator finds children by `workflows.flux.dev/parent` and an ownerReference, Schedule runs by
`workflows.flux.dev/schedule`, tree depth by `workflows.flux.dev/depth`, runner pods by
`workflows.flux.dev/execution`; it marks what it makes with `app.kubernetes.io/managed-by=flux-operator`
and `app.kubernetes.io/name=flux-runner`, and makes Executions and Schedules the owners of what it creates.
No one else may add, change or remove those labels, its annotations on Executions, or add an
ownerReference to an Execution or a Schedule. Removing such a reference stays open: the garbage collector
does that when it orphans an object. Nothing here applies to the operator's own identity.
"""

from __future__ import annotations

from typing import Any

from flux_api.admission import NOT_THE_OPERATOR, binding, policy, resource_rules, string, strings, validation, variable
from flux_api.names import (
    CANCELLED_BY_ANNOTATION,
    GROUP,
    OWNED_LABEL_VALUES,
    PLURAL,
    REPLACED_BY_ANNOTATION,
    RUNNER_ACCOUNT_PREFIX,
    SCHEDULED_AT_ANNOTATION,
)
from flux_api.progress import PLURAL as PROGRESS_PLURAL

NAME = "flux-operator-owned-metadata"
RUNNER_OBJECTS_NAME = "flux-operator-owned-runner-objects"
RUNNER_IDENTITY_NAME = "flux-runner-accounts-only-for-runners"
# pods/status too: its writes may change a pod's labels and annotations (not its ownerReferences), and the
# operator finds runner pods by label.
RUNNER_OBJECTS = [("", "pods"), ("", "pods/status"), ("", "serviceaccounts"), ("rbac.authorization.k8s.io", "roles"),
                  ("rbac.authorization.k8s.io", "rolebindings")]
OWNED_ANNOTATIONS = (CANCELLED_BY_ANNOTATION, REPLACED_BY_ANNOTATION, SCHEDULED_AT_ANNOTATION)


def _owned_label(key: str, labels: str) -> str:
    by_value = " || ".join(f"({key} == {string(k)} && {labels}[{key}] == {string(v)})"
                           for k, v in OWNED_LABEL_VALUES.items())
    return f"({key}.startsWith('{GROUP}/') || {by_value})"


def _changed(new: str, old: str, owned) -> str:
    """Keys of `owned` that were added, changed or removed between the maps `old` and `new`."""
    return (f"{new}.filter(k, {owned('k', new)} && !(k in {old} && {old}[k] == {new}[k])) + "
            f"{old}.filter(k, {owned('k', old)} && !(k in {new}))")


def _marked(obj: str) -> str:
    """Whether an object carries anything of the operator's: only those are looked at (cheap for all pods)."""
    labels, annotations = f"{obj}.metadata.?labels.orValue({{}})", f"{obj}.metadata.?annotations.orValue({{}})"
    return (f"{labels}.exists(k, {_owned_label('k', labels)}) || "
            f"{obj}.metadata.?ownerReferences.orValue([]).exists(r, r.apiVersion.startsWith('{GROUP}/')) || "
            f"{annotations}.exists(k, k in {strings(OWNED_ANNOTATIONS)})")


def owned_policy(name: str, resources: list[tuple[str, str]], failure_policy: str) -> dict[str, Any]:
    variables = [
        variable("labels", "object.metadata.?labels.orValue({})"),
        variable("oldLabels", "request.operation == 'CREATE' ? {} : oldObject.metadata.?labels.orValue({})"),
        variable("changedLabels", _changed("variables.labels", "variables.oldLabels", _owned_label)),
        variable("annotations", f"request.resource.resource == '{PLURAL}' ? object.metadata.?annotations.orValue({{}})"
                                " : {}"),
        variable("oldAnnotations", f"request.operation == 'CREATE' || request.resource.resource != '{PLURAL}' ? {{}} "
                                   ": oldObject.metadata.?annotations.orValue({})"),
        variable("changedAnnotations", _changed("variables.annotations", "variables.oldAnnotations",
                                                lambda k, _: f"{k} in {strings(OWNED_ANNOTATIONS)}")),
        variable("owners", f"object.metadata.?ownerReferences.orValue([]).filter(r, "
                           f"r.apiVersion.startsWith('{GROUP}/'))"),
        variable("oldOwners", "request.operation == 'CREATE' ? [] : oldObject.metadata.?ownerReferences.orValue([])"),
        variable("newOwners", "variables.owners.filter(r, !(r in variables.oldOwners))"),
    ]
    validations = [
        validation("size(variables.changedLabels) == 0", "only the flux operator sets its labels",
                   "'metadata.labels.' + variables.changedLabels[0] + ': only the flux operator sets this label "
                   "(it finds and counts its objects by it)'"),
        validation("size(variables.changedAnnotations) == 0", "only the flux operator sets its annotations",
                   "'metadata.annotations.' + variables.changedAnnotations[0] + ': only the flux operator sets this "
                   "annotation'"),
        validation("size(variables.newOwners) == 0", "only the flux operator makes Executions and Schedules owners",
                   "'metadata.ownerReferences: only the flux operator may make ' + variables.newOwners[0].kind + ' ' + "
                   "variables.newOwners[0].name + ' an owner'"),
    ]
    touches = {"name": "touches-the-operators-marks",
               "expression": f"{_marked('object')} || (request.operation == 'UPDATE' && ({_marked('oldObject')}))"}
    return policy(name, resource_rules(resources, ["CREATE", "UPDATE"]), validations, variables,
                  [NOT_THE_OPERATOR, touches], failure_policy=failure_policy)


def runner_identity_policy() -> dict[str, Any]:
    """A runner's ServiceAccount (`flux-runner-<execution>`) holds its execution's runner rights, so only the
    operator runs a pod as it, and only a node (for the pods bound to it) or a cluster admin gets a token of it,
    asked for or as a token Secret. Else anyone who may create pods, or a workload whose controller does, or
    anyone who may ask for tokens or create Secrets, would hold them: a token bound to the execution's own
    runner pod passes every other check, and any token may write the execution's ExecutionProgress."""
    exempt = {"name": "not-a-node-or-a-cluster-admin",
              "expression": "!('system:nodes' in request.userInfo.groups) && "
                            "!('system:masters' in request.userInfo.groups)"}
    prefix = string(RUNNER_ACCOUNT_PREFIX)
    named = "{}.metadata.?annotations[?'kubernetes.io/service-account.name'].orValue('')"
    token_secret = (f"object.?type.orValue('') == 'kubernetes.io/service-account-token' && "
                    f"{named.format('object')}.startsWith({prefix}) && (request.operation == 'CREATE' || "
                    f"{named.format('oldObject')} != {named.format('object')})")
    runner_account = {"name": "a-runners-account",
                      "expression": f"request.resource.resource == 'pods' ? object.spec.?serviceAccountName.orValue('')"
                                    f".startsWith({prefix}) : request.resource.resource == 'secrets' ? "
                                    f"({token_secret}) : request.name.startsWith({prefix})"}
    refused = validation("false", "only the flux operator runs pods as a runner's ServiceAccount (flux-runner-*), "
                                  "and only nodes get its tokens: it holds an execution's runner rights")
    rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
              "resources": ["pods", "serviceaccounts/token"]},
             {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["secrets"]}]
    return policy(RUNNER_IDENTITY_NAME, rules, [refused], [], [NOT_THE_OPERATOR, exempt, runner_account],
                  failure_policy="Ignore")


def documents() -> list[dict[str, Any]]:
    """Executions fail closed: without the TenancyPolicy (or if it cannot be read) no one can be told apart
    from the operator, so every write is refused. Pods and runner RBAC fail open: a policy over objects
    every workload of the cluster makes must never stop them; the operator's start-up check reports it."""
    # An ExecutionProgress too: a runner, a retry and the CLI take its checkpoint as its owner's (progress.py).
    executions = owned_policy(NAME, [(GROUP, PLURAL), (GROUP, PROGRESS_PLURAL)], "Fail")
    runner_objects = owned_policy(RUNNER_OBJECTS_NAME, RUNNER_OBJECTS, "Ignore")
    return [executions, binding(NAME), runner_objects, binding(RUNNER_OBJECTS_NAME, deny_without_params=False),
            runner_identity_policy(), binding(RUNNER_IDENTITY_NAME, deny_without_params=False)]
