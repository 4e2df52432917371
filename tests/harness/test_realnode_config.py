"""The real node's configuration renderers: what containerd, the kubelet and the API server are given."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from localcluster import realnode
from localcluster.nodes import choice
from localcluster.hoststate import differences

pytestmark = pytest.mark.unit

ROOT = Path("/clusters/c1")
BIN = Path("/cache/bin")


def test_containerd_config_keeps_everything_under_the_cluster_dir() -> None:
    paths = realnode.Paths(ROOT)
    config = tomllib.loads(realnode.containerd_config(paths, BIN))
    assert config["version"] == 3
    assert config["root"].startswith(str(ROOT)) and config["state"].startswith(str(ROOT))
    assert config["grpc"]["address"] == str(paths.socket)
    plugins = config["plugins"]
    assert plugins["io.containerd.internal.v1.opt"]["path"].startswith(str(ROOT))
    assert "io.containerd.nri.v1.nri" in config["disabled_plugins"]


def test_containerd_runs_our_runc_with_the_pitfalls_handled() -> None:
    plugins = tomllib.loads(realnode.containerd_config(realnode.Paths(ROOT), BIN))["plugins"]
    runtime = plugins["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE on these hosts
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["options"] == {"BinaryName": str(BIN / "runc"), "SystemdCgroup": False}
    assert runtime["cni"]["conf_dir"] == str(realnode.Paths(ROOT).cni_conf_dir)
    assert plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "localhost/pause:flux"


def test_cni_is_loopback_only() -> None:
    conflist = realnode.cni_conflist()
    assert [p["type"] for p in conflist["plugins"]] == ["loopback"]


def test_kubelet_config_is_locked_down_and_on_loopback() -> None:
    paths = realnode.Paths(ROOT)
    config = realnode.kubelet_config(paths, ROOT / "pki", 10250, 10248)
    assert config["failCgroupV1"] is False and config["cgroupDriver"] == "cgroupfs"
    assert config["address"] == config["healthzBindAddress"] == "127.0.0.1"
    assert (config["port"], config["healthzPort"], config["readOnlyPort"]) == (10250, 10248, 0)
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authentication"]["x509"]["clientCAFile"] == str(ROOT / "pki" / "ca.crt")
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["containerRuntimeEndpoint"] == f"unix://{paths.socket}"
    assert config["podLogsDir"].startswith(str(ROOT))
    assert config["imageGCHighThresholdPercent"] == 100


def test_kubelet_command_names_the_node_localhost_and_keeps_its_dirs() -> None:
    cmd = realnode.kubelet_command(BIN, realnode.Paths(ROOT))
    assert cmd[0] == str(BIN / "kubelet")
    assert "--hostname-override=localhost" in cmd
    assert all(a.split("=", 1)[1].startswith(str(ROOT)) for a in cmd if a.startswith(("--root-dir", "--cert-dir")))


def test_apiserver_moves_to_the_loopback_service_address() -> None:
    flags = realnode.apiserver_flags(117, ROOT / "pki")
    assert "--service-cluster-ip-range=127.0.117.0/24" in flags
    assert "--bind-address=127.0.117.1" in flags and "--secure-port=443" in flags
    assert "--kubelet-preferred-address-types=Hostname" in flags
    assert any(f.startswith("--feature-gates=") and "MutatingAdmissionPolicy=true" in f for f in flags)


def test_host_network_policy_matches_pod_creates_only() -> None:
    policy, binding = realnode.host_network_policy()
    assert policy["kind"] == "MutatingAdmissionPolicy" and binding["spec"]["policyName"] == policy["metadata"]["name"]
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rules == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]
    assert "hostNetwork: true" in policy["spec"]["mutations"][0]["applyConfiguration"]["expression"]


def test_node_kind_defaults_to_the_process_node(monkeypatch) -> None:
    monkeypatch.delenv("FLUX_NODE", raising=False)
    assert choice.node_kind() == "process"
    monkeypatch.setenv("FLUX_NODE", "real")
    assert choice.node_kind() == "real"
    monkeypatch.setenv("FLUX_NODE", "kind")
    with pytest.raises(ValueError):
        choice.node_kind()


def test_snapshot_differences_name_the_section() -> None:
    before = {"sysctls": {"kernel.panic": "1"}, "paths": {"/var/lib/kubelet": False}}
    after = {"sysctls": {"kernel.panic": "10"}, "paths": {"/var/lib/kubelet": False}}
    assert differences(before, before) == []
    assert [d.split(":")[0] for d in differences(before, after)] == ["sysctls"]


def test_pki_for_a_real_kubelet(tmp_path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from localcluster.pki import make_pki

    make_pki(tmp_path, extra_ips=("127.0.117.1",), kubelet_name="localhost")

    def cert(stem: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((tmp_path / f"{stem}.crt").read_bytes())

    def names(c: x509.Certificate, oid) -> list[str]:
        return [a.value for a in c.subject.get_attributes_for_oid(oid)]

    def sans(c: x509.Certificate) -> list[str]:
        ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [str(v) for v in ext.get_values_for_type(x509.DNSName)] + \
            [str(v) for v in ext.get_values_for_type(x509.IPAddress)]

    assert "127.0.117.1" in sans(cert("apiserver"))
    client = cert("kubelet-client")
    assert names(client, NameOID.COMMON_NAME) == ["system:node:localhost"]
    assert names(client, NameOID.ORGANIZATION_NAME) == ["system:nodes"]
    assert set(sans(cert("kubelet-serving"))) == {"localhost", "127.0.0.1"}
    assert names(cert("apiserver-kubelet-client"), NameOID.ORGANIZATION_NAME) == ["system:masters"]


def test_pki_without_a_kubelet_name_is_unchanged(tmp_path) -> None:
    from localcluster.pki import make_pki

    make_pki(tmp_path)
    assert not (tmp_path / "kubelet-client.crt").exists()
    # The API server's kubelet client certificate is there: the process node serves `kubectl logs` too.
    assert (tmp_path / "apiserver-kubelet-client.crt").exists()
