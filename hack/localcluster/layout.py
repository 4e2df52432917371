"""Where a local cluster keeps its files, and the commands that start its components."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ISSUER = "https://kubernetes.default.svc.cluster.local"


def cluster_dir() -> Path:
    return Path(os.environ.get("FLUX_CLUSTER_DIR", REPO / ".cluster")).resolve()


def binaries_dir(with_node: bool = False, with_kwok: bool = False, with_prometheus: bool = False,
                 with_jaeger: bool = False, with_kueue: bool = False) -> Path:
    """Builds the pinned binaries on first use; afterwards this is a cache hit in milliseconds (kwok,
    prometheus: a few minutes the first time)."""
    if with_node:
        subprocess.run([str(REPO / "hack" / "node-deps.sh")], check=True)
    args = [str(REPO / "hack" / "build-binaries.sh"), *(["--with-node"] if with_node else []),
            *(["--with-kwok"] if with_kwok else []), *(["--with-prometheus"] if with_prometheus else []),
            *(["--with-jaeger"] if with_jaeger else []), *(["--with-kueue"] if with_kueue else [])]
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def kueue_crds() -> list[Path]:
    """Kueue's CRDs, from the module pinned in hack/kueue (the one its binary is built from)."""
    out = subprocess.run(["go", "mod", "download", "-json", "sigs.k8s.io/kueue"], cwd=REPO / "hack" / "kueue",
                         check=True, stdout=subprocess.PIPE, text=True, env={**os.environ, "GOFLAGS": "-mod=mod"})
    return sorted((Path(json.loads(out.stdout)["Dir"]) / "config" / "components" / "crd" / "bases").glob("*.yaml"))


def monitoring_crds() -> list[Path]:
    """The prometheus-operator CRDs the chart's ServiceMonitor, PodMonitor and PrometheusRule are validated
    against, from the module pinned in hack/monitoring-crds (the Go module proxy; cached after the first)."""
    module = REPO / "hack" / "monitoring-crds"
    out = subprocess.run(["go", "mod", "download", "-json", "github.com/prometheus-operator/prometheus-operator"],
                         cwd=module, check=True, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "GOFLAGS": "-mod=mod"})
    crds = Path(json.loads(out.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    return [crds / f"monitoring.coreos.com_{plural}.yaml" for plural in ("servicemonitors", "podmonitors",
                                                                         "prometheusrules")]


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int


@dataclass
class Layout:
    root: Path
    bin: Path
    ports: Ports
    supervisor_pid: int = 0
    node: str = "process"  # the node's kind (localcluster.nodes.choice)
    server: str = ""  # the API server's URL: where it listens is the node's choice
    extra: dict = field(default_factory=dict)  # what the node keeps between up, the supervisor and down

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def save(self) -> None:
        data = asdict(self)
        data["root"], data["bin"] = str(self.root), str(self.bin)
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.root / "state.json")

    @classmethod
    def load(cls, root: Path) -> "Layout | None":
        try:
            data = json.loads((root / "state.json").read_text())
        except FileNotFoundError:
            return None
        extra = data.get("extra", {})
        # A cluster brought up before the node interface kept its node in `extra`, its server implied.
        node = data.get("node") or extra.get("node", "process")
        server = data.get("server") or (f"https://127.0.{extra['slot']}.1:443" if "slot" in extra
                                        else f"https://127.0.0.1:{data['ports']['apiserver']}")
        return cls(root=Path(data["root"]), bin=Path(data["bin"]), ports=Ports(**data["ports"]),
                   supervisor_pid=data["supervisor_pid"], node=node, server=server, extra=extra)


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    # JSON is valid YAML; kubectl and the Python client both read it.
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "flux-local",
        "clusters": [{"name": "flux-local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "flux-local", "context": {"cluster": "flux-local", "user": user, "namespace": "default"}}],
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def write_kubeconfigs(layout: Layout) -> None:
    pki = layout.pki
    write_kubeconfig(layout.kubeconfig, layout.server, pki / "ca.crt", pki / "admin.crt", pki / "admin.key", "admin")
    for who in ("controller-manager", "scheduler"):
        write_kubeconfig(layout.root / f"{who}.kubeconfig", layout.server, pki / "ca.crt",
                         pki / f"{who}.crt", pki / f"{who}.key", who)


def control_plane_commands(layout: Layout, apiserver_flags: list[str]) -> dict[str, list[str]]:
    """Ordered: each component only starts once the one before it is healthy. `apiserver_flags` are the
    node's: where the API server listens and how it reaches the kubelet."""
    b, p, pki, root = layout.bin, layout.ports, layout.pki, layout.root
    peer = f"http://127.0.0.1:{p.etcd_peer}"
    client = f"http://127.0.0.1:{p.etcd_client}"
    secure_kubeconfig = lambda who: [  # noqa: E731 - three flags every secure-serving component takes
        f"--kubeconfig={root / f'{who}.kubeconfig'}",
        f"--authentication-kubeconfig={root / f'{who}.kubeconfig'}",
        f"--authorization-kubeconfig={root / f'{who}.kubeconfig'}",
    ]
    return {
        "etcd": [
            str(b / "etcd"), "--name=default", f"--data-dir={root / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}", "--unsafe-no-fsync", "--log-level=warn",
        ],
        "kube-apiserver": [
            str(b / "kube-apiserver"), f"--etcd-servers={client}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={ISSUER}", f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            # No kube-proxy here, so the `kubernetes` Service endpoints would point nowhere useful.
            "--endpoint-reconciler-type=none", "--allow-privileged=true", "--profiling=false",
            *apiserver_flags,
        ],
        "kube-controller-manager": [
            str(b / "kube-controller-manager"), *secure_kubeconfig("controller-manager"),
            "--bind-address=127.0.0.1", f"--secure-port={p.controller_manager}",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true", "--leader-elect=false",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
        ],
        "kube-scheduler": [
            str(b / "kube-scheduler"), *secure_kubeconfig("scheduler"),
            "--bind-address=127.0.0.1", f"--secure-port={p.scheduler}", "--leader-elect=false",
        ],
    }
