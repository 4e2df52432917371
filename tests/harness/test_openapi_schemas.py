"""localcluster.openapi_schemas: kubeconform's file names, and what "strict" adds to a schema."""

from __future__ import annotations

import pytest
from localcluster import openapi_schemas as schemas

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("kind,group,version,name", [
    ("Service", "", "v1", "service-v1.json"),
    ("Deployment", "apps", "v1", "deployment-apps-v1.json"),
    ("ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", "clusterrolebinding-rbac-v1.json"),
    ("Execution", "workflows.flux.dev", "v1alpha1", "execution-workflows-v1alpha1.json"),
])
def test_file_names_follow_kubeconforms_default_template(kind, group, version, name):
    assert schemas.schema_file_name(kind, group, version) == name


def test_objects_with_properties_are_closed_and_maps_stay_open():
    out = schemas.strict({"type": "object", "description": "d", "properties": {
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "port": {"type": "string", "format": "int-or-string"},
        "raw": {"type": "object"},
    }})
    assert out["additionalProperties"] is False and "description" not in out
    assert out["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert out["properties"]["port"] == {"type": ["integer", "string"]}
    assert "additionalProperties" not in out["properties"]["raw"], "a free-form object stays free-form"


def test_crd_schemas_close_every_object_unless_unknown_fields_are_preserved():
    out = schemas.strict({"type": "object", "properties": {
        "input": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "empty": {"type": "object"},
        "name": {"type": "string", "nullable": True},
    }}, structural=True)
    assert out["additionalProperties"] is False
    assert "additionalProperties" not in out["properties"]["input"]
    assert out["properties"]["empty"]["additionalProperties"] is False
    assert out["properties"]["name"]["type"] == ["string", "null"]


def test_a_standalone_schema_carries_every_definition_it_reaches():
    definitions = {"A": {"properties": {"b": {"$ref": "#/definitions/B"}}}, "B": {"type": "string"}, "C": {}}
    out = schemas.standalone({"properties": {"a": {"$ref": "#/definitions/A"}}}, definitions)
    assert set(out["definitions"]) == {"A", "B"}


def test_a_ref_to_a_missing_definition_is_a_clear_error():
    with pytest.raises(schemas.SchemaError, match="missing definition 'Nope'"):
        schemas.standalone({"$ref": "#/definitions/Nope"}, {})
