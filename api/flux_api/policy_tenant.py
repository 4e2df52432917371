"""Admission policies on what an Execution or a Schedule asks of its runner pod, checked against the requester.

The operator creates runner pods for whoever creates an Execution (and, from a Schedule's template, for
whoever wrote the Schedule), so the API server checks that requester at the door with CEL's `authorizer`:

- `flux-tenant-secrets`, `flux-tenant-configmaps`: every Secret or ConfigMap the template names (env,
  envFrom, volumes, projected sources, imagePullSecrets) needs `get` on it in the namespace.
- `flux-tenant-pod-settings`: each setting that would give the pod more than a plain pod of the namespace
  gets is either within what the platform allows (the TenancyPolicy's `allowed*` lists, for everyone) or,
  where the platform set no list, needs `create pods` (service account annotations also `create
  serviceaccounts`); volume types outside the Pod Security Standard `restricted` and any platform list, and
  resources past the platform's maximum, are refused for everyone. What decides which code runs (env, envFrom
  and mounts: flux_api.steering) needs `create pods`, as an image of one's own does; a Schedule needs `create
  executions` (its runs are Executions).
- `flux-ttl-needs-delete` and `flux-deletes-need-delete` (flux_api.policy_tenant_deletes): other ways to have
  the cluster delete or patch what one may not.

The first three apply on create, and on update only when what runs, or with what, changes (workflow, input,
image, podTemplate, seed; on an Execution the CRD refuses such a change outright): a cancel or a label by
someone else is never refused for what the creator was allowed.
The TTL rule looks at every update of an Execution (not of a Schedule). The operator's own writes (children,
Schedule runs) are exempt: children copy a template that was checked.
"""

from __future__ import annotations

from typing import Any

from flux_api.admission import (
    MAX_NAMED_CHECKS,
    NAMESPACE,
    NOT_THE_OPERATOR,
    authorize,
    binding,
    policy,
    resource_rules,
    string,
    strings,
    validation,
    variable,
)
from flux_api import policy_tenant_deletes
from flux_api.names import GROUP, PLURAL, SCHEDULE_PLURAL
from flux_api.steering import CODE_ENV_NAMES, CODE_ENV_PREFIXES, CODE_PATHS
from flux_api.tenancy import (
    CONFINEMENT_ANNOTATION_PREFIXES,
    FREE_PROJECTED_SOURCES,
    FREE_VOLUME_TYPES,
    IMAGE_BOUNDARIES,
    NAMESPACE_PLACEHOLDER,
    RESTRICTED_VOLUME_TYPES,
)

SECRETS = "flux-tenant-secrets"
CONFIGMAPS = "flux-tenant-configmaps"
POD_SETTINGS = "flux-tenant-pod-settings"

# What decides what runs and with which powers: a change to any of these in a Schedule's template is checked like
# a create (an Execution's cannot change at all: crd.RUNS_WHAT_IT_WAS_MADE_WITH). `seed` too: its results are what
# the runner returns for steps it then skips.
RUN_FIELDS = ("workflow", "input", "image", "podTemplate", "seed")
# Volume types `restricted` admits that still give more than a plain tenant has: they need `create pods`
# unless the platform lists them.
ESCALATING_VOLUME_TYPES = tuple(t for t in RESTRICTED_VOLUME_TYPES if t not in FREE_VOLUME_TYPES)

_RULES = resource_rules([(GROUP, PLURAL), (GROUP, SCHEDULE_PLURAL)], ["CREATE", "UPDATE"])
_RUN_CHANGED = {
    "name": "creates-or-changes-what-runs",
    "expression": f"request.operation == 'CREATE' || (request.resource.resource == '{SCHEDULE_PLURAL}' ? "
                  f"{strings(RUN_FIELDS)}.exists(f, object.spec.executionTemplate.spec[?f] != "
                  f"oldObject.spec.executionTemplate.spec[?f]) : "
                  f"{strings(RUN_FIELDS)}.exists(f, object.spec[?f] != oldObject.spec[?f]))",
}
# An Execution's spec, or a Schedule's template of one; `path` is where its podTemplate sits, for messages.
_TEMPLATE_VARIABLES = [
    variable("isSchedule", f"request.resource.resource == '{SCHEDULE_PLURAL}'"),
    variable("spec", "variables.isSchedule ? object.spec.executionTemplate.spec : object.spec"),
    variable("at", "variables.isSchedule ? 'spec.executionTemplate.spec' : 'spec'"),
    variable("path", "variables.at + '.podTemplate'"),
    variable("template", "variables.spec.?podTemplate.orValue({})"),
    variable("volumes", "variables.template.?volumes.orValue([])"),
]
_NS = NAMESPACE


def _at(index: str, field: str) -> str:
    return f"variables.path + '.{field}[' + string({index}) + ']'"


# --- Secrets and ConfigMaps, by name ------------------------------------------------------------------------

def _reference_variables(kind: str) -> list[dict[str, str]]:
    """`refs`: every {path, name} the template names of this kind; `names`: each name once, in order."""
    secret = kind == "secret"
    key_ref, env_from, volume, volume_name = (("secretKeyRef", "secretRef", "secret", "secretName") if secret
                                              else ("configMapKeyRef", "configMapRef", "configMap", "name"))
    parts = [
        f"variables.template.?env.orValue([]).transformList(i, e, has(e.valueFrom) && has(e.valueFrom.{key_ref}), "
        f"{{'path': {_at('i', 'env')}, 'name': string(e.valueFrom.{key_ref}.?name.orValue(''))}})",
        f"variables.template.?envFrom.orValue([]).transformList(i, e, has(e.{env_from}), "
        f"{{'path': {_at('i', 'envFrom')}, 'name': string(e.{env_from}.?name.orValue(''))}})",
        f"variables.volumes.transformList(i, v, has(v.{volume}), "
        f"{{'path': {_at('i', 'volumes')}, 'name': string(v.{volume}.?{volume_name}.orValue(''))}})",
        # Sources of projected volumes, flattened through text ("path name,path name"): a name has no
        # comma or space, and one that does is no valid name and fails the pod anyway.
        f"variables.volumes.transformList(i, v, has(v.projected), v.projected.?sources.orValue([])"
        f".transformList(j, s, has(s.{volume}), {_at('i', 'volumes')} + '.projected.sources[' + string(j) + '] '"
        f" + string(s.{volume}.?name.orValue(''))).join(',')).join(',').split(',').filter(r, r != '')"
        f".map(r, {{'path': r.substring(0, r.indexOf(' ')), 'name': r.substring(r.indexOf(' ') + 1)}})",
    ]
    if secret:
        parts.append(f"variables.template.?imagePullSecrets.orValue([]).transformList(i, s, true, "
                     f"{{'path': {_at('i', 'imagePullSecrets')}, 'name': string(s.?name.orValue(''))}})")
    return [
        variable("refs", " + ".join(parts)),
        variable("named", "variables.refs.map(r, r.name)"),
        variable("names", "variables.named.transformList(i, n, variables.named.indexOf(n) == i, n)"),
    ]


def reference_policy(name: str, kind: str, resource: str) -> dict[str, Any]:
    """`get` on each named Secret (or ConfigMap): one namespace-wide check first, then one per name."""
    variables = [*_TEMPLATE_VARIABLES, *_reference_variables(kind),
                 variable("readsAll", authorize(resource, "get"))]
    validations = []
    for i in range(MAX_NAMED_CHECKS):
        name_i = f"variables.names[{i}]"
        validations.append(validation(
            f"size(variables.names) <= {i} || variables.readsAll || {authorize(resource, 'get', name_i)}",
            f"you may not get a {kind} this template names",
            f"size(variables.names) <= {i} ? '' : variables.refs.filter(r, r.name == {name_i})[0].path + "
            f"': you may not get {kind} ' + {name_i} + ' in ' + {_NS}"))
    validations.append(validation(
        f"size(variables.names) <= {MAX_NAMED_CHECKS} || variables.readsAll",
        f"a template naming more than {MAX_NAMED_CHECKS} {resource} needs get on every {kind} in the namespace",
        f"variables.path + ': ' + string(size(variables.names)) + ' {resource} are named; past "
        f"{MAX_NAMED_CHECKS}, you need get on all {resource} in ' + {_NS}"))
    return policy(name, _RULES, validations, variables, [NOT_THE_OPERATOR, _RUN_CHANGED])


# --- Settings of the pod: the platform's lists, else `create pods` -------------------------------------------

def _may_not(verb_resource: str, why: str) -> str:
    """The tail of a message naming the missing permission; `why` is a CEL string expression."""
    return f"': you may not {verb_resource} in ' + {_NS} + ' (' + {why} + ')'"


def _pod_variables() -> list[dict[str, str]]:
    free_projected = f"v.projected.?sources.orValue([]).all(s, s.all(x, x in {strings(FREE_PROJECTED_SOURCES)}))"
    not_free = f"k != 'name' && !(k in {strings(FREE_VOLUME_TYPES)}) && !(k == 'projected' && {free_projected})"
    return [
        variable("mayCreatePods", authorize("pods", "create")),
        variable("mayCreateServiceAccounts", authorize("serviceaccounts", "create")),
        # Volumes whose type gives more than a plain tenant has: {path, type}.
        variable("nonFreeVolumes", f"variables.volumes.transformList(i, v, v.exists(k, {not_free}), "
                                   f"{{'path': {_at('i', 'volumes')}, 'type': string(v.filter(k, {not_free})[0])}})"),
        variable("refusedVolumes", "has(params.spec.allowedVolumeTypes) ? variables.nonFreeVolumes.filter(v, "
                                   "!(v.type in params.spec.allowedVolumeTypes)) : variables.nonFreeVolumes.filter("
                                   f"v, !(v.type in {strings(ESCALATING_VOLUME_TYPES)}))"),
        variable("escalatingVolumes", "has(params.spec.allowedVolumeTypes) ? [] : variables.nonFreeVolumes.filter("
                                      f"v, v.type in {strings(ESCALATING_VOLUME_TYPES)})"),
        variable("max", "params.spec.?maxResources.orValue({})"),
        variable("resources", "variables.template.?resources.orValue({})"),
        variable("overMax", " + ".join([
            "(has(variables.template.resources) ? variables.max.transformList(k, m, !(k in variables.resources"
            ".?limits.orValue({})), variables.path + '.resources.limits.' + k + ': must be set, at most ' + "
            "string(m) + ' (the platform maximum)') : [])",
            *[f"variables.resources.?{part}.orValue({{}}).transformList(k, q, k in variables.max && "
              "!(isQuantity(string(q)) && quantity(string(q)).compareTo(quantity(string(variables.max[k]))) <= 0), "
              f"variables.path + '.resources.{part}.' + k + ': ' + string(q) + ' is more than ' + "
              "string(variables.max[k]) + ', the platform maximum')" for part in ("requests", "limits")],
            # A limit of 0 is no limit at all (the kubelet sets no cgroup limit for it): never under a maximum.
            "variables.resources.?limits.orValue({}).transformList(k, q, k in variables.max && "
            "isQuantity(string(q)) && quantity(string(q)).compareTo(quantity('0')) <= 0, variables.path + "
            "'.resources.limits.' + k + ': ' + string(q) + ' is no limit at all; at most ' + "
            "string(variables.max[k]) + ', the platform maximum')"])),
        variable("selector", "variables.template.?nodeSelector.orValue({})"),
        variable("badSelectors", "has(params.spec.allowedNodeSelectors) ? variables.selector.filter(k, !(k in "
                                 "params.spec.allowedNodeSelectors && variables.selector[k] in "
                                 "params.spec.allowedNodeSelectors[k])) : []"),
        variable("tolerations", "variables.template.?tolerations.orValue([])"),
        variable("badTolerations", "has(params.spec.allowedTolerations) ? variables.tolerations.transformList("
                                   "i, t, !params.spec.allowedTolerations.exists(a, t.?key.orValue('') == "
                                   "a.?key.orValue('') && t.?operator.orValue('Equal') == a.?operator.orValue("
                                   "'Equal') && t.?value.orValue('') == a.?value.orValue('') && "
                                   "t.?effect.orValue('') == a.?effect.orValue('')), i) : []"),
        variable("labels", "variables.template.?metadata.?labels.orValue({})"),
        variable("annotations", "variables.template.?metadata.?annotations.orValue({})"),
        variable("confining", "variables.annotations.filter(k, " + " || ".join(
            f"k.startsWith({string(p)})" for p in CONFINEMENT_ANNOTATION_PREFIXES) + ")"),
        variable("codeSteering", _code_steering()),
        variable("accountAnnotations", "variables.template.?serviceAccountAnnotations.orValue({})"),
        variable("badAccountAnnotations", "has(params.spec.serviceAccountAnnotations) ? "
                 "variables.accountAnnotations.filter(k, !(k in params.spec.serviceAccountAnnotations && "
                 "variables.accountAnnotations[k] == params.spec.serviceAccountAnnotations[k].replace("
                 f"{string(NAMESPACE_PLACEHOLDER)}, {_NS}))) : []"),
    ]


def _code_steering() -> str:
    """{path, why} of each env entry, envFrom and mount that decides which code runs (flux_api.steering)."""
    prefixes = strings(CODE_ENV_PREFIXES)
    steers = f"(e.name in {strings(CODE_ENV_NAMES)} || {prefixes}.exists(p, e.name.startsWith(p)))"
    prefix = "string(e.?prefix.orValue(''))"
    opens = (f"({prefix} == '' || {strings((*CODE_ENV_NAMES, *CODE_ENV_PREFIXES))}.exists(n, n.startsWith({prefix}))"
             f" || {prefixes}.exists(p, {prefix}.startsWith(p)))")
    # The CRD admits only clean absolute mount paths: at most one '/' to take off the end ('/' becomes '').
    path = "(m.mountPath.endsWith('/') ? m.mountPath.substring(0, size(m.mountPath) - 1) : m.mountPath)"
    covers = f"{strings(CODE_PATHS)}.exists(c, {path} == c || {path}.startsWith(c + '/') || c.startsWith({path} + '/'))"
    return " + ".join([
        f"variables.template.?env.orValue([]).transformList(i, e, {steers}, "
        f"{{'path': {_at('i', 'env')}, 'why': e.name + ' decides which code runs'}})",
        f"variables.template.?envFrom.orValue([]).transformList(i, e, {opens}, {{'path': {_at('i', 'envFrom')}, "
        "'why': 'its keys could set PATH, PYTHON* or LD_* variables, which decide which code runs: give it a "
        "prefix of your own'})",
        f"variables.template.?volumeMounts.orValue([]).transformList(i, m, {covers}, "
        f"{{'path': {_at('i', 'volumeMounts')}, 'why': 'a mount at ' + m.mountPath + ' covers code of the image'}})",
    ])


def _allowed(list_field: str) -> str:
    return f"(size(params.spec.{list_field}) == 0 ? 'none' : params.spec.{list_field}.join(', '))"


def _field_rules(field: str, present: str, allowed_list: str, refused: str, refused_message: str, why: str,
                 needs_accounts: bool = False) -> list[dict[str, Any]]:
    """A setting that is either within the platform's list (a refusal names it) or, with no list, needs
    `create pods` (and `create serviceaccounts` for the runner's ServiceAccount)."""
    unset_or_absent = f"!({present}) || has(params.spec.{allowed_list})"
    rules = [
        validation(refused, f"{field}: not allowed by the platform", refused_message),
        validation(f"{unset_or_absent} || variables.mayCreatePods", f"{field}: you may not create pods here",
                   f"variables.path + '.{field}' + {_may_not('create pods', string(why))}"),
    ]
    if needs_accounts:
        rules.append(validation(f"{unset_or_absent} || variables.mayCreateServiceAccounts",
                                f"{field}: you may not create serviceaccounts here",
                                f"variables.path + '.{field}' + {_may_not('create serviceaccounts', string(why))}"))
    return rules


def image_allowed_cel(image: str, prefix: str) -> str:
    """tenancy.image_allowed in CEL: the prefix, then the end of the image or one of IMAGE_BOUNDARIES."""
    ends = " || ".join(f"{prefix}.endsWith({string(c)})" for c in IMAGE_BOUNDARIES)
    return (f"{image} == {prefix} || ({image}.startsWith({prefix}) && ({ends} || "
            f"{image}.charAt(size({prefix})) in {strings(list(IMAGE_BOUNDARIES))}))")


def pod_settings_policy() -> dict[str, Any]:
    image = "variables.spec.image"
    validations = [
        validation(f"!has({image}) || !has(params.spec.allowedImages) || "
                   f"params.spec.allowedImages.exists(p, {image_allowed_cel(image, 'p')})",
                   "spec.image: not an image the platform allows",
                   f"variables.at + '.image: ' + {image} + ' is not an image the platform allows (images "
                   f"starting with: ' + {_allowed('allowedImages')} + ')'"),
        validation(f"!has({image}) || has(params.spec.allowedImages) || variables.mayCreatePods",
                   "spec.image: you may not create pods here",
                   f"variables.at + '.image' + {_may_not('create pods', string('an image of your own needs it'))}"),
        validation("size(variables.refusedVolumes) == 0", "a volume type is not allowed",
                   "variables.refusedVolumes[0].path + ': ' + variables.refusedVolumes[0].type + ' volumes are not "
                   "allowed: ' + (has(params.spec.allowedVolumeTypes) ? 'the platform allows ' + "
                   f"{_allowed('allowedVolumeTypes')} + ' besides emptyDir, downwardAPI, configMap and secret' : "
                   "'runner pods meet the Pod Security Standard restricted')"),
        validation("size(variables.escalatingVolumes) == 0 || variables.mayCreatePods",
                   "a volume needs create pods", "variables.escalatingVolumes[0].path + " + _may_not(
                       "create pods", "'a ' + variables.escalatingVolumes[0].type + ' volume needs it'")),
        # The operator makes a Schedule's runs: its writer must be one who could make them.
        validation(f"!variables.isSchedule || {authorize(PLURAL, 'create', group=GROUP)}",
                   "a Schedule needs create executions",
                   "'spec.executionTemplate' + " + _may_not(f"create {PLURAL}", "'its runs are Executions'")),
        validation("size(variables.codeSteering) == 0 || variables.mayCreatePods",
                   "a setting that decides which code runs needs create pods",
                   "variables.codeSteering[0].path + " + _may_not("create pods", "variables.codeSteering[0].why")),
        validation("size(variables.overMax) == 0", "resources past the platform maximum", "variables.overMax[0]"),
        *_field_rules(
            "priorityClassName", "has(variables.template.priorityClassName)", "allowedPriorityClasses",
            "!has(variables.template.priorityClassName) || !has(params.spec.allowedPriorityClasses) || "
            "variables.template.priorityClassName in params.spec.allowedPriorityClasses",
            "variables.path + '.priorityClassName: ' + variables.template.priorityClassName + ' is not a priority "
            f"class the platform allows (' + {_allowed('allowedPriorityClasses')} + ')'",
            "a priority class needs it"),
        *_field_rules(
            "nodeSelector", "size(variables.selector) > 0", "allowedNodeSelectors",
            "size(variables.badSelectors) == 0",
            "variables.path + '.nodeSelector.' + variables.badSelectors[0] + ': ' + variables.badSelectors[0] + "
            "'=' + variables.selector[variables.badSelectors[0]] + ' is not a node selector the platform allows'",
            "choosing nodes needs it"),
        *_field_rules(
            "tolerations", "size(variables.tolerations) > 0", "allowedTolerations",
            "size(variables.badTolerations) == 0",
            "variables.path + '.tolerations[' + string(variables.badTolerations[0]) + ']: not a toleration the "
            "platform allows'", "tolerating taints needs it"),
        validation("!has(variables.template.affinity) || size(variables.template.affinity) == 0 || "
                   "params.spec.?allowAffinity.orValue(false) || variables.mayCreatePods",
                   "affinity: you may not create pods here",
                   f"variables.path + '.affinity' + {_may_not('create pods', string('affinity needs it'))}"),
        *_field_rules(
            "metadata.labels", "size(variables.labels) > 0", "allowedPodLabels",
            "!has(params.spec.allowedPodLabels) || variables.labels.all(k, k in params.spec.allowedPodLabels)",
            "variables.path + '.metadata.labels.' + variables.labels.filter(k, !(k in "
            "params.spec.allowedPodLabels))[0] + ': not a pod label the platform allows (' + "
            f"{_allowed('allowedPodLabels')} + ')'", "pod labels need it: NetworkPolicies select by them"),
        *_field_rules(
            "metadata.annotations", "size(variables.annotations) > 0", "allowedPodAnnotations",
            "!has(params.spec.allowedPodAnnotations) || variables.annotations.all(k, k in "
            "params.spec.allowedPodAnnotations)",
            "variables.path + '.metadata.annotations.' + variables.annotations.filter(k, !(k in "
            "params.spec.allowedPodAnnotations))[0] + ': not a pod annotation the platform allows (' + "
            f"{_allowed('allowedPodAnnotations')} + ')'", "pod annotations need it"),
        validation("variables.confining.all(k, has(params.spec.allowedPodAnnotations) && k in "
                   "params.spec.allowedPodAnnotations)", "a confinement annotation is not allowed",
                   "variables.path + '.metadata.annotations.' + variables.confining[0] + ': not allowed: runner pods "
                   "meet the Pod Security Standard restricted'"),
        *_field_rules(
            "serviceAccountAnnotations", "size(variables.accountAnnotations) > 0", "serviceAccountAnnotations",
            "size(variables.badAccountAnnotations) == 0",
            "variables.path + '.serviceAccountAnnotations.' + variables.badAccountAnnotations[0] + ': ' + "
            "(variables.badAccountAnnotations[0] in params.spec.serviceAccountAnnotations ? 'the platform allows "
            "only ' + params.spec.serviceAccountAnnotations[variables.badAccountAnnotations[0]].replace("
            f"{string(NAMESPACE_PLACEHOLDER)}, {_NS}) + ' here' : 'not an annotation the platform allows')",
            "annotating a ServiceAccount used by a pod needs it", needs_accounts=True),
    ]
    return policy(POD_SETTINGS, _RULES, validations, [*_TEMPLATE_VARIABLES, *_pod_variables()],
                  [NOT_THE_OPERATOR, _RUN_CHANGED])


def documents() -> list[dict[str, Any]]:
    policies = [reference_policy(SECRETS, "secret", "secrets"), reference_policy(CONFIGMAPS, "configmap", "configmaps"),
                pod_settings_policy(), policy_tenant_deletes.ttl_policy(), policy_tenant_deletes.deletes_policy()]
    return [doc for p in policies for doc in (p, binding(p["metadata"]["name"]))]
