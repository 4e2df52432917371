"""Generates the Execution, Schedule, ConcurrencyLimit, ExecutionProgress and TenancyPolicy CRDs from the
pydantic models, so they cannot drift,
and writes the admission policies (flux_api.policy) beside them.

`python -m flux_api.crd --write` (`make crds`) rewrites crds/ and the chart's copies;
`--check` exits 1 when either differs from what the models generate. Rendering YAML (`--write`,
`--check`, the default print) needs the `crd` extra (PyYAML); building the schema itself needs nothing
beyond the models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flux_api import crd_rules, policy, progress, tenancy
from flux_api.names import (
    GROUP,
    KIND,
    LIMIT_KIND,
    LIMIT_PLURAL,
    LIMIT_SHORT_NAMES,
    LIMIT_SINGULAR,
    PLURAL,
    SCHEDULE_KIND,
    SCHEDULE_PLURAL,
    SCHEDULE_SHORT_NAMES,
    SCHEDULE_SINGULAR,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from flux_api.limits import MAX_LABEL_KEY, MAX_SELECTOR_VALUES, ConcurrencyLimitSpec, ConcurrencyLimitStatus
from flux_api.policy_tenant import RUN_FIELDS
from flux_api.schedule import ScheduleSpec, ScheduleStatus
from flux_api.signals import APPEND_ONLY
from flux_api.types import ExecutionSpec, ExecutionStatus

REPO = Path(__file__).resolve().parents[2]  # a development tool: run from the checkout
CRD_FILE = f"{PLURAL}.{GROUP}.yaml"
CANONICAL = REPO / "crds" / CRD_FILE
CHART_COPY = REPO / "charts" / "flux-operator" / "crds" / CRD_FILE
# Admission policies are templates in the chart, so `helm upgrade` upgrades them (Helm never upgrades crds/).
POLICY = REPO / "crds" / "admission-policies.yaml"
CHART_POLICY = REPO / "charts" / "flux-operator" / "templates" / "admission-policies.yaml"
CHART_CHECK_RULES = REPO / "charts" / "flux-operator" / "templates" / "_admission-check-rules.tpl"
TENANCY_CRD_FILE = f"{tenancy.PLURAL}.{GROUP}.yaml"
TENANCY_CANONICAL = REPO / "crds" / TENANCY_CRD_FILE
TENANCY_CHART_COPY = REPO / "charts" / "flux-operator" / "crds" / TENANCY_CRD_FILE
SCHEDULE_CRD_FILE = f"{SCHEDULE_PLURAL}.{GROUP}.yaml"
SCHEDULE_CANONICAL = REPO / "crds" / SCHEDULE_CRD_FILE
SCHEDULE_CHART_COPY = REPO / "charts" / "flux-operator" / "crds" / SCHEDULE_CRD_FILE
LIMIT_CRD_FILE = f"{LIMIT_PLURAL}.{GROUP}.yaml"
LIMIT_CANONICAL = REPO / "crds" / LIMIT_CRD_FILE
LIMIT_CHART_COPY = REPO / "charts" / "flux-operator" / "crds" / LIMIT_CRD_FILE
PROGRESS_CRD_FILE = f"{progress.PLURAL}.{GROUP}.yaml"
PROGRESS_CANONICAL = REPO / "crds" / PROGRESS_CRD_FILE
PROGRESS_CHART_COPY = REPO / "charts" / "flux-operator" / "crds" / PROGRESS_CRD_FILE

CANCEL_IMMUTABLE = {
    "rule": "!has(oldSelf.cancel) || (has(self.cancel) && self.cancel == oldSelf.cancel)",
    "message": "spec.cancel cannot be removed or changed once set: cancellation cannot be undone",
    "reason": "FieldValueForbidden",
    "fieldPath": ".cancel",
}
# What runs, and with what, is fixed at create (a Job's template is too): each new runner pod reads it again, so a
# change would run one workflow's steps after another's, under the creator's name, by whoever may patch it.
RUNS_WHAT_IT_WAS_MADE_WITH = {
    "rule": " && ".join(f"has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f})"
                        for f in RUN_FIELDS),
    "message": "spec." + ", ".join(RUN_FIELDS[:-1]) + f" and {RUN_FIELDS[-1]} cannot change once the Execution "
               "exists (each new runner pod reads them again): create another (kubectl flux retry or resubmit)",
    "reason": "FieldValueForbidden",
}
# A finished execution stays finished, whoever writes: a stale or forged write cannot revive it.
TERMINAL_IS_FINAL = {
    "rule": "!has(oldSelf.phase) || !(oldSelf.phase in ['Cancelled', 'Succeeded', 'Failed'])"
            " || (has(self.phase) && self.phase == oldSelf.phase)",
    "message": "status.phase cannot change once the execution has finished (Cancelled, Succeeded or Failed)",
    "reason": "FieldValueForbidden",
    "fieldPath": ".phase",
}
CANCELLING_HAS_CANCELLATION = {
    "rule": "!has(self.phase) || self.phase != 'Cancelling' || has(self.cancellation)",
    "message": "status.phase Cancelling needs status.cancellation (reason and source)",
    "reason": "FieldValueRequired",
    "fieldPath": ".cancellation",
}
# The name becomes a label value on the runner's objects, and label values stop at 63 characters.
NAME_FITS_LABEL = {
    "rule": "self.metadata.name.size() <= 63",
    "message": "Execution names are at most 63 characters: the name is used as a label value",
}
# Keys of JSON Schema that a structural CRD schema accepts as they are.
_KEEP = {"type", "description", "minimum", "maximum", "minLength", "maxLength", "pattern", "enum", "default",
         "minItems", "maxItems", "format", "maxProperties"}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turns pydantic's JSON Schema into a Kubernetes structural schema (no $ref, no null types)."""
    if "$ref" in node:
        merged = {**defs[node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:  # `X | None`: optional in Kubernetes terms
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf" and not (k == "default" and v is None)}
        if sorted(o.get("type", "") for o in options) == ["integer", "string"]:  # a resource quantity
            bounds = {k: v for o in options for k, v in o.items() if k == "maxLength"}
            return {"x-kubernetes-int-or-string": True, **bounds, **{k: v for k, v in rest.items() if k in _KEEP}}
        return _structural({**options[0], **rest}, defs) if len(options) == 1 else {
            "x-kubernetes-preserve-unknown-fields": True}
    out = {k: v for k, v in node.items() if k in _KEEP}
    if "default" in out and out["default"] in (None, [], {}):
        del out["default"]  # an empty default adds nothing but noise to every object
    kind = node.get("type")
    if kind is None and "enum" not in node:
        return {"x-kubernetes-preserve-unknown-fields": True, **out}  # `Any`: free-form JSON
    if kind is None:
        out["type"] = "string"
    if kind == "object":
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props:
            out["properties"] = {k: _structural(v, defs) for k, v in props.items()}
            required = [r for r in node.get("required", []) if r in props]
            if required:
                out["required"] = required
            if extra is True:  # a Kubernetes object passed through: keep what we do not model
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict) and (extra.get("type") in ("string", "integer", "boolean") or "anyOf" in extra):
            out["additionalProperties"] = _structural(extra, defs)  # a typed map (labels, selectors)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if kind == "array":
        out["items"] = _structural(node.get("items", {}), defs)
    return out


def _schema_of(model) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    for section in ("title",):
        schema.pop(section, None)
    return _structural(schema, schema.get("$defs", {}))


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def _conditions_by_type(status: dict[str, Any]) -> None:
    """Conditions are a map keyed by type: a server-side apply merges them one by one."""
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]


def open_api_schema() -> dict[str, Any]:
    spec = _schema_of(ExecutionSpec)
    spec["x-kubernetes-validations"] = [CANCEL_IMMUTABLE, APPEND_ONLY, RUNS_WHAT_IT_WAS_MADE_WITH]
    crd_rules.add_spec_rules(spec)
    status = _schema_of(ExecutionStatus)
    status["x-kubernetes-validations"] = [TERMINAL_IS_FINAL, CANCELLING_HAS_CANCELLATION]
    _conditions_by_type(status)
    return _strip_titles({
        "type": "object",
        "description": "A workflow execution run by the flux operator. Cancel it by setting spec.cancel.",
        "required": ["spec"],
        "x-kubernetes-validations": [NAME_FITS_LABEL],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    })


def schedule_schema() -> dict[str, Any]:
    spec = _schema_of(ScheduleSpec)
    props = spec["properties"]
    props["schedule"]["x-kubernetes-validations"] = [crd_rules.CRON_RULE, crd_rules.CRON_FIRES_RULE]
    props["timeZone"]["x-kubernetes-validations"] = [crd_rules.time_zone_rule()]
    template_spec = props["executionTemplate"]["properties"]["spec"]
    crd_rules.add_spec_rules(template_spec)
    template_spec["x-kubernetes-validations"] = [crd_rules.TEMPLATE_NO_CANCEL, crd_rules.TEMPLATE_UNSIGNED_SIGNALS]
    template_meta = props["executionTemplate"]["properties"]["metadata"]["properties"]
    template_meta["labels"]["x-kubernetes-validations"] = [crd_rules.TEMPLATE_LABELS_RULE]
    template_meta["annotations"]["x-kubernetes-validations"] = [crd_rules.TEMPLATE_ANNOTATIONS_RULE]
    status = _schema_of(ScheduleStatus)
    _conditions_by_type(status)
    return _strip_titles({
        "type": "object",
        "description": "Starts an Execution from its template at every time its cron expression names.",
        "required": ["spec"],
        "x-kubernetes-validations": [crd_rules.SCHEDULE_NAME_FITS],
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                       "metadata": {"type": "object"}, "spec": spec, "status": status},
    })


def _namespaced_crd(kind: str, plural: str, singular: str, short_names: list[str], schema: dict[str, Any],
                    columns: list[dict[str, Any]], **version: Any) -> dict[str, Any]:
    """A namespaced CRD of one version, with a status subresource; `version` adds to that version's fields."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": singular,
                      "shortNames": short_names, "categories": ["flux"]},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": schema},
                **version,
                "additionalPrinterColumns": columns,
            }],
        },
    }


def schedule_crd() -> dict[str, Any]:
    return _namespaced_crd(SCHEDULE_KIND, SCHEDULE_PLURAL, SCHEDULE_SINGULAR, SCHEDULE_SHORT_NAMES,
                           schedule_schema(), [
                               {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
                               {"name": "TimeZone", "type": "string", "jsonPath": ".spec.timeZone"},
                               {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
                               {"name": "Active", "type": "integer", "jsonPath": ".status.active.length()",
                                "priority": 1},
                               {"name": "Last", "type": "date", "jsonPath": ".status.lastScheduleTime"},
                               {"name": "Next", "type": "string", "jsonPath": ".status.nextScheduleTime"},
                               {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                           ])


def limit_crd() -> dict[str, Any]:
    spec = _schema_of(ConcurrencyLimitSpec)
    expressions = spec["properties"]["selector"]["properties"]["matchExpressions"]["items"]
    expressions["x-kubernetes-validations"] = [{
        "rule": "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0"
                " : !has(self.values) || size(self.values) == 0",
        "message": "In and NotIn need values; Exists and DoesNotExist take none",
        "fieldPath": ".values",
    }]
    selector = spec["properties"]["selector"]
    selector["properties"]["matchLabels"]["x-kubernetes-validations"] = [{
        "rule": f"self.all(k, size(k) <= {MAX_LABEL_KEY})",
        "message": f"a label key is at most {MAX_LABEL_KEY} characters"}]
    selector["x-kubernetes-validations"] = [{
        "rule": "!has(self.matchExpressions) || "
                f"self.matchExpressions.map(e, has(e.values) ? size(e.values) : 0).sum() <= {MAX_SELECTOR_VALUES}",
        "message": f"matchExpressions may hold at most {MAX_SELECTOR_VALUES} values in all",
        "fieldPath": ".matchExpressions"}]
    schema = _strip_titles({
        "type": "object", "required": ["spec"],
        "description": "At most spec.max of the Executions its selector matches in its namespace run at once; "
                       "the others wait Pending (Started=False, reason Queued) and start in creation order.",
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                       "metadata": {"type": "object"}, "spec": spec, "status": _schema_of(ConcurrencyLimitStatus)},
    })
    return _namespaced_crd(LIMIT_KIND, LIMIT_PLURAL, LIMIT_SINGULAR, LIMIT_SHORT_NAMES, schema, [
        {"name": "Max", "type": "integer", "jsonPath": ".spec.max"},
        {"name": "Active", "type": "integer", "jsonPath": ".status.active"},
        {"name": "Queued", "type": "integer", "jsonPath": ".status.queued"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ])


def progress_crd() -> dict[str, Any]:
    schema = _strip_titles({
        "type": "object",
        "description": "A running Execution's latest checkpoint (same name), written by its runner between the "
                       "writes the operator decides on; the operator does not watch it. Made and owned by the "
                       "operator, written only by that execution's runner (status), read by the CLI.",
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                       "metadata": {"type": "object"}, "status": _schema_of(progress.ExecutionProgressStatus)},
    })
    return _namespaced_crd(progress.KIND, progress.PLURAL, progress.SINGULAR, progress.SHORT_NAMES, schema, [
        {"name": "State", "type": "string", "jsonPath": ".status.checkpoint.state"},
        {"name": "Steps", "type": "integer", "jsonPath": ".status.checkpoint.stepCount"},
        {"name": "Updated", "type": "date", "jsonPath": ".status.checkpoint.updatedAt"},
    ])


def crd() -> dict[str, Any]:
    return _namespaced_crd(KIND, PLURAL, SINGULAR, SHORT_NAMES, open_api_schema(), [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.cancellation.reason"},
        {"name": "Workflow", "type": "string", "jsonPath": ".spec.workflow", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ], selectableFields=[{"jsonPath": ".status.phase"}, {"jsonPath": ".spec.workflow"}])


def tenancy_crd() -> dict[str, Any]:
    """The TenancyPolicy: cluster-scoped, one object (`flux-tenancy`) that every binding reads."""
    spec = _schema_of(tenancy.TenancyPolicySpec)
    props = spec["properties"]
    props["allowedNodeSelectors"] = {**props["allowedNodeSelectors"], "type": "object",
                                     "additionalProperties": {"type": "array", "items": {"type": "string"}}}
    props["allowedNodeSelectors"].pop("x-kubernetes-preserve-unknown-fields", None)
    schema = _strip_titles({
        "type": "object", "required": ["spec"],
        "description": "What any Execution may ask of its runner pod, and who the operator is: the parameter of "
                       "the Flux admission policies.",
        "x-kubernetes-validations": [{"rule": f"self.metadata.name == '{tenancy.NAME}'",
                                      "message": f"the TenancyPolicy is named {tenancy.NAME}: the admission "
                                                 "policies read that one"}],
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                       "metadata": {"type": "object"}, "spec": spec},
    })
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{tenancy.PLURAL}.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Cluster",
                 "names": {"kind": tenancy.KIND, "listKind": f"{tenancy.KIND}List", "plural": tenancy.PLURAL,
                           "singular": tenancy.SINGULAR, "categories": ["flux"]},
                 "versions": [{"name": VERSION, "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": schema}}]},
    }


def render(document: dict[str, Any] | None = None, source: str = "api/flux_api/types.py") -> str:
    import yaml  # the `crd` extra: only development needs the YAML form

    header = f"# Generated from {source} by `make crds`. Do not edit by hand.\n"
    return header + yaml.safe_dump(document or crd(), sort_keys=False, width=120)


def render_policy() -> str:
    import yaml

    header = ("# Generated from api/flux_api/policy.py by `make crds`. Do not edit by hand.\n"
              "# Needs the TenancyPolicy flux-tenancy (the operator's identity and the platform's limits).\n")
    text = header + yaml.safe_dump_all(policy.documents(), sort_keys=False, width=120)
    # The chart's copy is a Helm template: it must hold no template action.
    assert "{{" not in text, "a policy contains '{{', which Helm would read as a template action"
    return text


def render_check_rules() -> str:
    """The chart's RBAC for the operator's start-up check of the policies, as a Helm named template."""
    import yaml

    rules = yaml.safe_dump(policy.reader_rules(), sort_keys=False, width=120)
    return ("{{/* Generated from api/flux_api/policy.py by `make crds`. Do not edit by hand. */}}\n"
            '{{- define "flux-operator.rules.admissionCheck" -}}\n' + rules + "{{- end }}\n")


def outputs() -> dict[Path, str]:
    """Every generated file and its text: the CRDs in crds/ and the chart's crds/, the admission policies in
    crds/ and the chart's templates/."""
    execution, schedule, policy_text = render(), render(schedule_crd(), "api/flux_api/schedule.py"), render_policy()
    tenancy_text = render(tenancy_crd(), "api/flux_api/tenancy.py")
    limit = render(limit_crd(), "api/flux_api/limits.py")
    progress_text = render(progress_crd(), "api/flux_api/progress.py")
    return {CANONICAL: execution, CHART_COPY: execution, SCHEDULE_CANONICAL: schedule, SCHEDULE_CHART_COPY: schedule,
            TENANCY_CANONICAL: tenancy_text, TENANCY_CHART_COPY: tenancy_text,
            LIMIT_CANONICAL: limit, LIMIT_CHART_COPY: limit,
            PROGRESS_CANONICAL: progress_text, PROGRESS_CHART_COPY: progress_text,
            POLICY: policy_text, CHART_POLICY: policy_text, CHART_CHECK_RULES: render_check_rules()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    targets = outputs()
    if args.write:
        for path, text in targets.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return 0
    if args.check:
        stale = [str(p) for p, text in targets.items() if not p.exists() or p.read_text() != text]
        for path in stale:
            print(f"{path} is out of date: run `make crds`", file=sys.stderr)
        return 1 if stale else 0
    sys.stdout.write(targets[CANONICAL] + "---\n" + targets[SCHEDULE_CANONICAL])
    return 0


if __name__ == "__main__":
    sys.exit(main())
