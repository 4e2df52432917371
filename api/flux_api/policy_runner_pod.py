"""Ways into a runner pod: each would run someone's code beside the runner's token, so the API server guards them.

`flux-runner-pod-access-needs-its-rights`: a way into a runner pod needs the rights of the token inside it.

A runner pod holds its ServiceAccount's token, bound to that pod, and the token may write its Execution's
status: the verdict, the result, spawn requests. Anyone who may exec or attach into the pod, or add an ephemeral
container to it, can read that token. So `pods/exec` and `pods/attach` (the `edit` role grants both) would hand a
namespace user a write RBAC withholds from them, for instance to forge an approval workflow's result. Here the API
server asks such a request for `patch` on `executions/status` of that Execution, the right the token carries.

A CONNECT request carries no pod, only its name, so exec and attach are matched by the runner's name
(`<execution>-runner`, `<execution>-runner-<retries>`): a pod of another kind named like that in a Flux
namespace takes them only from those who may write that Execution's status (the message says so). An
ephemeral container's request carries the pod: there the operator's label names the Execution (only the
operator may set it). Namespaces that opted in by label are covered; the chart's listed mode is not unless
those namespaces carry the label too.

`flux-runner-pod-images-are-fixed`: no one changes the image of a runner pod's container (a pod's one mutable
field that says what runs), the operator included. `patch pods`, which `edit` grants, would otherwise run any image
with the token, past `tenancy.allowedImages` too. It looks only at pods the operator's labels mark, which no one
else may set or remove (flux_api.policy_owned), and fails open like the other pod policies.
"""

from __future__ import annotations

from typing import Any

from flux_api.admission import binding, policy, validation, variable
from flux_api.names import ENABLED_NAMESPACE_LABEL, EXECUTION_LABEL, GROUP, MANAGED_BY, PLURAL, runner_pod_name

NAME = "flux-runner-pod-access-needs-its-rights"
IMAGES_NAME = "flux-runner-pod-images-are-fixed"
RUNNER_SUFFIX = runner_pod_name("")  # "-runner"; a retry's pod adds "-<retries>"
CONNECTS = ("exec", "attach")

_RULES = [
    {"apiGroups": [""], "apiVersions": ["*"], "operations": ["CONNECT"],
     "resources": [f"pods/{sub}" for sub in CONNECTS]},
    {"apiGroups": [""], "apiVersions": ["*"], "operations": ["UPDATE"], "resources": ["pods/ephemeralcontainers"]},
]
_MANAGED_KEY, _MANAGED_VALUE = next(iter(MANAGED_BY.items()))


def _execution_by_name() -> str:
    """The Execution a runner pod's name names, or '' for a name no runner pod has."""
    name = "request.name"
    return (f"({name}.endsWith('{RUNNER_SUFFIX}') ? {name}.substring(0, size({name}) - {len(RUNNER_SUFFIX)}) : "
            f"({name}.matches('.{RUNNER_SUFFIX}-[1-9][0-9]*$') ? "
            f"{name}.substring(0, {name}.lastIndexOf('{RUNNER_SUFFIX}-')) : ''))")


def _execution_by_label() -> str:
    labels = "object.metadata.?labels.orValue({})"
    return (f"({labels}[?'{_MANAGED_KEY}'].orValue('') == '{_MANAGED_VALUE}' ? "
            f"{labels}[?'{EXECUTION_LABEL}'].orValue('') : '')")


def access_policy() -> dict[str, Any]:
    variables = [
        variable("execution", f"request.subResource == 'ephemeralcontainers' ? {_execution_by_label()} : "
                              f"{_execution_by_name()}"),
    ]
    may_write_status = (f"authorizer.group('{GROUP}').resource('{PLURAL}').subresource('status')"
                        f".namespace(request.namespace).name(variables.execution).check('patch').allowed()")
    refused = validation(
        f"variables.execution == '' || {may_write_status}",
        f"a runner pod holds a token that may write its Execution's status: exec, attach and ephemeral containers "
        f"need patch on {PLURAL}/status of that Execution",
        "'pod ' + request.name + ' is (or is named as) the runner of Execution ' + variables.execution + ', whose "
        "token may write that Execution\\'s status: pods/' + request.subResource + ' needs patch on "
        f"{PLURAL}/status ' + variables.execution + ' in ' + request.namespace")
    spec_policy = policy(NAME, _RULES, [refused], variables, with_params=False)
    spec_policy["spec"]["matchConstraints"]["namespaceSelector"] = {
        "matchLabels": {ENABLED_NAMESPACE_LABEL: "true"}}
    return spec_policy


def _runner_pod(obj: str) -> str:
    labels = f"{obj}.metadata.?labels.orValue({{}})"
    return (f"{labels}[?'{_MANAGED_KEY}'].orValue('') == '{_MANAGED_VALUE}' && "
            f"{labels}[?'{EXECUTION_LABEL}'].orValue('') != ''")


def images_policy() -> dict[str, Any]:
    variables = [variable(name, f"{obj}.spec.?{kind}.orValue([]).map(c, c.name + '=' + c.?image.orValue(''))")
                 for name, obj, kind in (("images", "object", "containers"), ("oldImages", "oldObject", "containers"),
                                         ("initImages", "object", "initContainers"),
                                         ("oldInitImages", "oldObject", "initContainers"))]
    refused = validation(
        "variables.images == variables.oldImages && variables.initImages == variables.oldInitImages",
        "the images of a runner pod's containers are fixed: its token may write its Execution's status",
        "'pod ' + request.name + ' is the runner of Execution ' + oldObject.metadata.labels['" + EXECUTION_LABEL +
        "'] + ', whose token may write that Execution\\'s status: the images of its containers are fixed (to run "
        "another, create an Execution with spec.image)'")
    runner = {"name": "a-runner-pod", "expression": _runner_pod("oldObject")}
    rules = [{"apiGroups": [""], "apiVersions": ["*"], "operations": ["UPDATE"], "resources": ["pods"]}]
    made = policy(IMAGES_NAME, rules, [refused], variables, [runner], with_params=False, failure_policy="Ignore")
    made["spec"]["matchConstraints"]["namespaceSelector"] = {"matchLabels": {ENABLED_NAMESPACE_LABEL: "true"}}
    return made


def documents() -> list[dict[str, Any]]:
    return [access_policy(), binding(NAME, with_params=False), images_policy(),
            binding(IMAGES_NAME, with_params=False)]
