"""Ways into a runner pod: each would run someone's code beside the runner's token, so the API server guards them.

A runner pod holds its ServiceAccount's token, bound to that pod, and the token may write its Execution's status:
the verdict, the result, spawn requests. Both policies here are for everyone (no parameter, no exemption).

`flux-runner-pod-access-needs-its-rights`: exec, attach, port-forward, proxy and ephemeral containers into a
runner pod need `patch` (or `update`) on `executions/status` of its Execution, the right its token carries.
`pods/exec` and `pods/attach`, which the `edit` role grants, would otherwise let a namespace user read the token
and forge a colleague's verdict. A CONNECT request carries no pod, only its name, so those are matched by the
runner's name (`<execution>-runner`, `<execution>-runner-<retries>`): a pod of another kind named like that in a
Flux namespace takes them only from those who may write that Execution's status (the message says so). An
ephemeral container's request carries the pod: there its ServiceAccount (`flux-runner-<execution>`, fixed for the
pod's life) names the Execution. Fails closed.

`flux-runner-pod-images-are-fixed`: no one changes the image of a container in a pod that runs as a runner's
ServiceAccount (a pod's one mutable field that says what runs), the operator included. `patch pods`, which `edit`
grants, would otherwise run any image with the token, past `tenancy.allowedImages` too. Fails open like the other
pod policies.

The access rule's binding holds it to namespaces that opted in by label; in the chart's listed mode a second
binding (`-listed`, templates/runner-pod-access-listed.yaml) holds it to the listed ones.
"""

from __future__ import annotations

from typing import Any

from flux_api.admission import binding, policy, validation, variable
from flux_api.names import ENABLED_NAMESPACE_LABEL, GROUP, PLURAL, RUNNER_ACCOUNT_PREFIX, runner_pod_name

NAME = "flux-runner-pod-access-needs-its-rights"
IMAGES_NAME = "flux-runner-pod-images-are-fixed"
RUNNER_SUFFIX = runner_pod_name("")  # "-runner"; a retry's pod adds "-<retries>"
CONNECTS = ("exec", "attach", "portforward", "proxy")

_RULES = [
    {"apiGroups": [""], "apiVersions": ["*"], "operations": ["CONNECT"],
     "resources": [f"pods/{sub}" for sub in CONNECTS]},
    {"apiGroups": [""], "apiVersions": ["*"], "operations": ["UPDATE"], "resources": ["pods/ephemeralcontainers"]},
]


def execution_by_name(name: str = "request.name") -> str:
    """The Execution a runner pod's name (the CEL expression `name`) names, or '' for a name no runner pod has."""
    return (f"({name}.endsWith('{RUNNER_SUFFIX}') ? {name}.substring(0, size({name}) - {len(RUNNER_SUFFIX)}) : "
            f"({name}.matches('.{RUNNER_SUFFIX}-[1-9][0-9]*$') ? "
            f"{name}.substring(0, {name}.lastIndexOf('{RUNNER_SUFFIX}-')) : ''))")


def _account(obj: str) -> str:
    return f"{obj}.spec.?serviceAccountName.orValue('')"


def _runs_as_a_runner(obj: str) -> str:
    return f"{_account(obj)}.startsWith('{RUNNER_ACCOUNT_PREFIX}')"


def _execution_by_account() -> str:
    """The Execution whose runner's ServiceAccount the pod runs as, or ''."""
    return (f"({_runs_as_a_runner('oldObject')} ? "
            f"{_account('oldObject')}.substring({len(RUNNER_ACCOUNT_PREFIX)}) : '')")


def access_policy() -> dict[str, Any]:
    variables = [
        variable("execution", f"request.subResource == 'ephemeralcontainers' ? {_execution_by_account()} : "
                              f"{execution_by_name()}"),
    ]
    status = (f"authorizer.group('{GROUP}').resource('{PLURAL}').subresource('status')"
              f".namespace(request.namespace).name(variables.execution)")
    refused = validation(
        f"variables.execution == '' || {status}.check('patch').allowed() || {status}.check('update').allowed()",
        f"a runner pod holds a token that may write its Execution's status: exec, attach, port-forward, proxy and "
        f"ephemeral containers need patch on {PLURAL}/status of that Execution",
        "'pod ' + request.name + ' is (or is named as) the runner of Execution ' + variables.execution + ', whose "
        "token may write that Execution\\'s status: pods/' + request.subResource + ' needs patch on "
        f"{PLURAL}/status ' + variables.execution + ' in ' + request.namespace")
    return policy(NAME, _RULES, [refused], variables, with_params=False)


def images_policy() -> dict[str, Any]:
    variables = [variable(name, f"{obj}.spec.?{kind}.orValue([]).map(c, c.name + '=' + c.?image.orValue(''))")
                 for name, obj, kind in (("images", "object", "containers"), ("oldImages", "oldObject", "containers"),
                                         ("initImages", "object", "initContainers"),
                                         ("oldInitImages", "oldObject", "initContainers"))]
    refused = validation(
        "variables.images == variables.oldImages && variables.initImages == variables.oldInitImages",
        "the images of a runner pod's containers are fixed: its token may write its Execution's status",
        f"'pod ' + request.name + ' runs as ' + {_account('oldObject')} + ', whose token may write an Execution\\'s "
        "status: the images of its containers are fixed (to run another, create an Execution with spec.image)'")
    runner = {"name": "runs-as-a-runner", "expression": _runs_as_a_runner("oldObject")}
    rules = [{"apiGroups": [""], "apiVersions": ["*"], "operations": ["UPDATE"], "resources": ["pods"]}]
    return policy(IMAGES_NAME, rules, [refused], variables, [runner], with_params=False, failure_policy="Ignore")


def access_binding(namespaces: dict[str, Any] | None = None, name: str = NAME) -> dict[str, Any]:
    """Held to namespaces by the binding, not the policy, so the chart's listed mode adds one for its list; by
    default, the namespaces opted in by label."""
    made = binding(NAME, with_params=False)
    made["metadata"]["name"] = name
    if namespaces is None:  # an empty selector is a choice too: every namespace
        namespaces = {"matchLabels": {ENABLED_NAMESPACE_LABEL: "true"}}
    made["spec"]["matchResources"] = {"namespaceSelector": namespaces}
    return made


def documents() -> list[dict[str, Any]]:
    """The image rule needs no namespace: only runner pods run as a runner's ServiceAccount."""
    return [access_policy(), access_binding(), images_policy(), binding(IMAGES_NAME, with_params=False)]
