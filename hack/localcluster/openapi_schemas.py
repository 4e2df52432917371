"""Strict JSON schemas for kubeconform, made from a running API server: no network, no schema downloads.

    python -m localcluster.openapi_schemas --kubeconfig KUBECONFIG --out DIR [--crd crds/FILE.yaml ...]

Reads the API server's OpenAPI v2 document (/openapi/v2) and writes one standalone schema per kind,
named as kubeconform's default file template expects ({{ .ResourceKind }}{{ .KindSuffix }}.json, e.g.
deployment-apps-v1.json, service-v1.json), so that this works:

    kubeconform -strict -schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json' FILE

"Strict": every object schema that lists its properties (and does not declare additionalProperties)
rejects any other key, so a misspelt field fails instead of being silently dropped by the API server.
"Standalone": each file embeds the definitions it reaches under "definitions" and refers to them with
local "#/definitions/..." refs; nothing refers across files. CRDs given with --crd get a schema from
their openAPIV3Schema (metadata checked as ObjectMeta); their kinds take precedence over the server's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

Schema = dict[str, Any]

DEFINITIONS_PREFIX = "#/definitions/"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
# Keywords that hold one subschema, and those that hold a name -> subschema map or a list of them.
_ONE = ("items", "additionalProperties", "not", "additionalItems")
_MAP = ("properties", "patternProperties", "definitions")
_LIST = ("allOf", "anyOf", "oneOf")
# Words for people or for the API server's own machinery: no validator uses them.
_DROPPED = ("description", "title", "example", "externalDocs", "readOnly")


class SchemaError(Exception):
    """The OpenAPI document or a CRD cannot be turned into schemas."""


# --- fetching -------------------------------------------------------------------------------------

def fetch_openapi(kubeconfig: Path) -> Schema:
    """GET /openapi/v2 as JSON, authenticated as the kubeconfig's user."""
    from kubernetes import config
    from kubernetes.client.rest import ApiException

    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        try:
            response = api.call_api("/openapi/v2", "GET", header_params={"Accept": "application/json"},
                                    auth_settings=["BearerToken"], _preload_content=False,
                                    _return_http_data_only=True)
        except ApiException as err:
            raise SchemaError(f"GET /openapi/v2 failed: {err.status} {err.reason}") from err
    document = json.loads(response.data)
    if not isinstance(document.get("definitions"), dict):
        raise SchemaError("the OpenAPI v2 document has no definitions")
    return document


# --- naming ---------------------------------------------------------------------------------------

def api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def schema_file_name(kind: str, group: str, version: str) -> str:
    """kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json: the group's first DNS label, then the version."""
    group_version = api_version(group, version).split("/")
    suffix = "-" + group_version[0].split(".")[0].lower()
    if len(group_version) > 1:
        suffix += "-" + group_version[1].lower()
    return f"{kind.lower()}{suffix}.json"


# --- making schemas strict ------------------------------------------------------------------------

def _with_null(schema: Schema) -> Schema:
    kind = schema.get("type")
    if kind is None:
        return schema
    kinds = kind if isinstance(kind, list) else [kind]
    return {**schema, "type": [*kinds, "null"]}


def strict(node: Any, *, structural: bool = False) -> Any:
    """A copy of one (sub)schema that rejects keys it does not name.

    structural: a CRD schema. The API server prunes every field such a schema does not name (unless
    x-kubernetes-preserve-unknown-fields), so there even an object that lists no properties is closed.
    """
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string"):
        return {"type": ["integer", "string"]}
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED or key.startswith("x-") or key == "nullable":
            continue
        if key in _ONE:
            out[key] = strict(value, structural=structural)
        elif key in _MAP:
            out[key] = {name: strict(sub, structural=structural) for name, sub in value.items()}
        elif key in _LIST:
            out[key] = [strict(sub, structural=structural) for sub in value]
        else:
            out[key] = value
    open_ended = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if not open_ended and ("properties" in node or (structural and node.get("type") == "object")):
        out["additionalProperties"] = False
    if node.get("nullable"):
        out = _with_null(out)
    return out


def strict_definitions(openapi: Schema) -> dict[str, Schema]:
    definitions = {name: strict(schema) for name, schema in openapi["definitions"].items()}
    # The API server's wire formats, wider than the documented "type: string":
    if INT_OR_STRING in definitions:
        definitions[INT_OR_STRING] = {"type": ["integer", "string"]}
    if QUANTITY in definitions:
        definitions[QUANTITY] = {"type": ["string", "number"]}
    return definitions


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith(DEFINITIONS_PREFIX):
                raise SchemaError(f"unsupported $ref {ref!r}: only {DEFINITIONS_PREFIX}... refs are expected")
            yield ref[len(DEFINITIONS_PREFIX):]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def reachable(root: Schema, definitions: dict[str, Schema]) -> dict[str, Schema]:
    """Every definition `root` refers to, directly or through other definitions."""
    found: dict[str, Schema] = {}
    pending = list(_refs(root))
    while pending:
        name = pending.pop()
        if name in found:
            continue
        if name not in definitions:
            raise SchemaError(f"$ref to a missing definition {name!r}")
        found[name] = definitions[name]
        pending.extend(_refs(found[name]))
    return dict(sorted(found.items()))


def _pin_identity(schema: Schema, group: str, version: str, kind: str) -> Schema:
    """apiVersion and kind must be exactly this kind's, as in a schema picked by kind."""
    properties = dict(schema.get("properties") or {})
    properties["apiVersion"] = {"type": "string", "enum": [api_version(group, version)]}
    properties["kind"] = {"type": "string", "enum": [kind]}
    return {**schema, "properties": properties}


def standalone(schema: Schema, definitions: dict[str, Schema]) -> Schema:
    needed = reachable(schema, definitions)
    return {**schema, "definitions": needed} if needed else schema


# --- kinds of the API server ----------------------------------------------------------------------

def server_kinds(openapi: Schema, definitions: dict[str, Schema]) -> dict[tuple[str, str, str], Schema]:
    """(group, version, kind) -> standalone schema, for every definition the server names a kind for."""
    kinds: dict[tuple[str, str, str], Schema] = {}
    for name, raw in openapi["definitions"].items():
        for gvk in raw.get("x-kubernetes-group-version-kind") or []:
            key = (gvk.get("group", ""), gvk["version"], gvk["kind"])
            kinds[key] = standalone(_pin_identity(definitions[name], *key), definitions)
    return kinds


# --- kinds of CRDs --------------------------------------------------------------------------------

def _metadata(crd_metadata: Schema | None) -> Schema:
    """The API server checks every object's metadata as ObjectMeta, whatever the CRD says about it."""
    meta_ref = {"$ref": DEFINITIONS_PREFIX + OBJECT_META}
    extra = {k: v for k, v in (crd_metadata or {}).items() if k != "type"}
    if not extra:
        return meta_ref
    return {"allOf": [meta_ref, strict({**extra, "x-kubernetes-preserve-unknown-fields": True}, structural=True)]}


def crd_kinds(documents: Iterable[Schema], definitions: dict[str, Schema]) -> dict[tuple[str, str, str], Schema]:
    kinds: dict[tuple[str, str, str], Schema] = {}
    for crd in documents:
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        for version in spec["versions"]:
            raw = ((version.get("schema") or {}).get("openAPIV3Schema"))
            if raw is None:
                raise SchemaError(f"CRD {crd['metadata']['name']} version {version['name']} has no openAPIV3Schema")
            properties = dict(raw.get("properties") or {})
            metadata = properties.pop("metadata", None)
            schema = strict({**raw, "properties": properties}, structural=True)
            schema["properties"]["metadata"] = _metadata(metadata)
            key = (group, version["name"], kind)
            kinds[key] = standalone(_pin_identity(schema, *key), definitions)
    return kinds


def load_crds(paths: Iterable[Path]) -> list[Schema]:
    documents: list[Schema] = []
    for path in paths:
        try:
            documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
        except (OSError, yaml.YAMLError) as err:
            raise SchemaError(f"cannot read CRD file {path}: {err}") from err
    return documents


# --- writing --------------------------------------------------------------------------------------

def write_schemas(openapi: Schema, crds: list[Schema], out: Path) -> dict[str, tuple[str, str, str]]:
    """Writes every schema into `out`; returns file name -> (group, version, kind)."""
    definitions = strict_definitions(openapi)
    kinds = {**server_kinds(openapi, definitions), **crd_kinds(crds, definitions)}
    written: dict[str, tuple[str, str, str]] = {}
    out.mkdir(parents=True, exist_ok=True)
    for key, schema in sorted(kinds.items()):
        name = schema_file_name(key[2], key[0], key[1])
        if name in written:
            # kubeconform keeps only a group's first DNS label: two groups sharing it would share a file.
            raise SchemaError(f"{name} would hold both {written[name]} and {key}")
        written[name] = key
        (out / name).write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="admin kubeconfig of the API server")
    parser.add_argument("--out", type=Path, required=True, help="directory for the schema files")
    parser.add_argument("--crd", type=Path, action="append", default=[], help="CRD manifest (repeatable)")
    args = parser.parse_args(argv)
    try:
        written = write_schemas(fetch_openapi(args.kubeconfig), load_crds(args.crd), args.out)
    except SchemaError as err:
        print(f"openapi_schemas: {err}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} schemas to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
