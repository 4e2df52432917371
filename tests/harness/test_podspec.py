"""What the process node derives from a pod spec, as kubelet would."""

from __future__ import annotations

import base64

import pytest
from localcluster import podspec

pytestmark = pytest.mark.unit

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "demo"},
                    "annotations": {"note": "x"}},
       "spec": {"nodeName": "flux-node", "serviceAccountName": "sa", "containers": []},
       "status": {"podIP": "127.0.0.1"}}

OBJECTS = {("ConfigMap", "ns", "cfg"): {"color": "blue", "size": "L"},
           ("Secret", "ns", "sec"): {"token": base64.b64encode(b"s3cret").decode()}}


def read(kind: str, ns: str, name: str):
    return OBJECTS.get((kind, ns, name))


@pytest.mark.parametrize("path,value", [
    ("metadata.name", "p"), ("metadata.namespace", "ns"), ("metadata.uid", "u-1"),
    ("metadata.labels['app']", "demo"), ("metadata.annotations['note']", "x"), ("metadata.labels['none']", ""),
    ("spec.nodeName", "flux-node"), ("spec.serviceAccountName", "sa"), ("status.podIP", "127.0.0.1"),
])
def test_field_refs(path, value):
    assert podspec.field_value(POD, path) == value


def test_unknown_field_ref_is_an_error():
    with pytest.raises(ValueError, match="unsupported fieldRef"):
        podspec.field_value(POD, "spec.nope")


def test_dollar_expansion_like_kubernetes():
    env = {"A": "1"}
    assert podspec.expand("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


def test_env_sources_and_order():
    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                 "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "GREETING", "value": "hi $(POD)"},
                         {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
                         {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k",
                                                                          "optional": True}}}]}
    env = podspec.container_env(POD, container, read, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "CFG_color": "blue", "CFG_size": "L", "POD": "p", "GREETING": "hi p",
                   "TOKEN": "s3cret"}


def test_missing_required_reference_waits():
    container = {"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]}
    with pytest.raises(podspec.NotReady, match="ConfigMap ns/gone"):
        podspec.container_env(POD, container, read, {})


def test_command_line_expands_and_needs_a_command():
    assert podspec.command_line({"name": "c", "command": ["echo"], "args": ["$(X)"]}, {"X": "y"}) == ["echo", "y"]
    with pytest.raises(ValueError, match="ignores images"):
        podspec.command_line({"name": "c"}, {})


def test_projected_volume_files(tmp_path):
    volume = {"name": "v", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}},
        {"configMap": {"name": "cfg", "items": [{"key": "color", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}
    podspec.write_volume(POD, volume, tmp_path, read, lambda sat: f"jwt-{sat['expirationSeconds']}")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"token": "jwt-600", "ca.crt": "blue",
                                                                  "namespace": "ns"}
    assert oct((tmp_path / "token").stat().st_mode & 0o777) == "0o644"
