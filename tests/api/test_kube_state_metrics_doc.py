"""docs/kube-state-metrics.yaml names only fields the CRDs have, and every phase there is."""

from __future__ import annotations

import pytest
import yaml
from flux_api import Phase
from fluxtest.paths import CRD, REPO, SCHEDULE_CRD

pytestmark = pytest.mark.unit

DOC = REPO / "docs" / "kube-state-metrics.yaml"
METADATA = {("metadata", "name"), ("metadata", "namespace"), ("metadata", "creationTimestamp")}


def schema_of(crd_path) -> dict:
    crd = yaml.safe_load(crd_path.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def has_path(schema: dict, path: list[str]) -> bool:
    if tuple(path) in METADATA or path[:2] == ["metadata", "labels"]:
        return True
    node = schema
    for part in path:
        node = (node.get("properties") or {}).get(part)
        if node is None:
            return False
    return True


def node_at(schema: dict, path: list[str]) -> dict:
    for part in path:
        schema = schema["properties"][part]
    return schema


def resources() -> list[dict]:
    return yaml.safe_load(DOC.read_text())["spec"]["resources"]


@pytest.mark.parametrize("resource", resources(), ids=lambda r: r["groupVersionKind"]["kind"])
def test_every_path_is_a_field_of_the_crd(resource):
    kind = resource["groupVersionKind"]["kind"]
    schema = schema_of({"Execution": CRD, "Schedule": SCHEDULE_CRD}[kind])
    for label, path in resource["labelsFromPath"].items():
        assert has_path(schema, path), f"{kind} label {label}: {path}"
    for metric in resource["metrics"]:
        each = metric["each"]
        spec = each.get("gauge") or each.get("stateSet")
        assert has_path(schema, spec["path"]), f"{kind} {metric['name']}: {spec['path']}"
        inner = [spec.get("valueFrom")] + list((spec.get("labelsFromPath") or {}).values())
        for sub in filter(None, inner):
            assert has_path(node_at(schema, spec["path"]), sub), f"{kind} {metric['name']}: {spec['path']} + {sub}"


def test_the_phase_stateset_lists_every_phase():
    execution = next(r for r in resources() if r["groupVersionKind"]["kind"] == "Execution")
    stateset = next(m for m in execution["metrics"] if m["each"]["type"] == "StateSet")["each"]["stateSet"]
    assert stateset["list"] == [str(p) for p in Phase]


def test_a_misspelt_path_would_be_caught():
    assert not has_path(schema_of(CRD), ["status", "startedat"])
