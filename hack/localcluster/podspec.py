"""What kubelet derives from a pod spec before it starts a container: env, files of volumes.

Pods are plain dicts here (the API's JSON), so the process node never depends on the
client's model classes.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Callable

_FIELD = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")

# Reads a ConfigMap or Secret's data: (kind, namespace, name) -> dict or None when missing.
ObjectReader = Callable[[str, str, str], "dict[str, str] | None"]


class NotReady(Exception):
    """A referenced object does not exist yet: kubelet retries, and so do we."""


def field_value(pod: dict, path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP") or "127.0.0.1",
        "status.hostIP": status.get("hostIP") or "127.0.0.1",
        "status.podIPs": status.get("podIP") or "127.0.0.1",
    }
    if path in simple:
        return simple[path] or ""
    m = _FIELD.match(path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ValueError(f"unsupported fieldRef {path!r}")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: unknown references stay as written, $$ escapes."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, value)


def _decoded(kind: str, data: dict[str, str]) -> dict[str, str]:
    if kind == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    return data


def _read(read: ObjectReader, kind: str, ns: str, name: str, optional: bool) -> dict[str, str]:
    data = read(kind, ns, name)
    if data is None:
        if optional:
            return {}
        raise NotReady(f"{kind} {ns}/{name} not found")
    return _decoded(kind, data)


def container_env(pod: dict, container: dict, read: ObjectReader, base: dict[str, str]) -> dict[str, str]:
    ns = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                ref = source[key]
                for k, v in _read(read, kind, ns, ref["name"], ref.get("optional", False)).items():
                    env[prefix + k] = v
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom")
        if source is None:
            env[name] = expand(var.get("value", ""), env)
        elif "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            kind, ref = ("ConfigMap", source["configMapKeyRef"]) if "configMapKeyRef" in source \
                else ("Secret", source["secretKeyRef"])
            data = _read(read, kind, ns, ref["name"], ref.get("optional", False))
            if ref["key"] in data:
                env[name] = data[ref["key"]]
            elif not ref.get("optional", False):
                raise NotReady(f"key {ref['key']} not in {kind} {ns}/{ref['name']}")
        elif "resourceFieldRef" in source:
            env[name] = _resource_value(container, source["resourceFieldRef"])
    return env


def _resource_value(container: dict, ref: dict) -> str:
    section, _, resource = ref["resource"].partition(".")
    return str(((container.get("resources") or {}).get(section) or {}).get(resource, "0"))


def command_line(container: dict, env: dict[str, str]) -> list[str]:
    argv = [expand(a, env) for a in (container.get("command") or []) + (container.get("args") or [])]
    if not argv:
        raise ValueError(f"container {container['name']} has no command: the process node ignores images")
    return argv


def write_volume(pod: dict, volume: dict, target: Path, read: ObjectReader,
                 request_token: Callable[[dict], str]) -> None:
    """Materialises one volume's files under `target` (a directory later bind-mounted)."""
    target.mkdir(parents=True, exist_ok=True)
    ns = pod["metadata"]["namespace"]
    mode = volume.get("projected", volume.get("configMap", volume.get("secret", {}))).get("defaultMode", 0o644)
    files: dict[str, str] = {}
    if "projected" in volume:
        for source in volume["projected"].get("sources") or []:
            files.update(_projected_files(pod, ns, source, read, request_token))
    elif "configMap" in volume or "secret" in volume:
        kind, key = ("ConfigMap", "configMap") if "configMap" in volume else ("Secret", "secret")
        ref = volume[key]
        name = ref.get("name") or ref.get("secretName")
        files.update(_items(_read(read, kind, ns, name, ref.get("optional", False)), ref.get("items")))
    elif "downwardAPI" in volume:
        for item in volume["downwardAPI"].get("items") or []:
            files[item["path"]] = field_value(pod, item["fieldRef"]["fieldPath"])
    for rel, content in files.items():
        write_atomically(target / rel, content, mode)


def _projected_files(pod: dict, ns: str, source: dict, read: ObjectReader,
                     request_token: Callable[[dict], str]) -> dict[str, str]:
    if "serviceAccountToken" in source:
        sat = source["serviceAccountToken"]
        return {sat["path"]: request_token(sat)}
    if "configMap" in source or "secret" in source:
        kind, key = ("ConfigMap", "configMap") if "configMap" in source else ("Secret", "secret")
        ref = source[key]
        return _items(_read(read, kind, ns, ref["name"], ref.get("optional", False)), ref.get("items"))
    if "downwardAPI" in source:
        return {i["path"]: field_value(pod, i["fieldRef"]["fieldPath"]) for i in source["downwardAPI"]["items"]}
    return {}


def _items(data: dict[str, str], items: list[dict] | None) -> dict[str, str]:
    if not items:
        return dict(data)
    return {i["path"]: data[i["key"]] for i in items if i["key"] in data}


def write_atomically(path: Path, content: str, mode: int = 0o644) -> None:
    # A reader never sees half a token: write beside it, then rename over it.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content)
    tmp.chmod(mode)
    tmp.replace(path)
