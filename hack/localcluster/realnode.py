"""The real node's parts (FLUX_NODE=real, nodes.real): containerd, runc and a kubelet at the pinned version.

Pure renderers for their configuration (unit-tested), the commands the supervisor runs, and the steps
around them: importing our images into containerd and the admission policy that puts every pod on
the host network. Everything lives under `<cluster>/node-real/`; the host changes the kubelet and
containerd make anyway are recorded and undone by `hoststate`.

The network rule: pods reach the API server only on loopback. The Service range is a loopback /24
(`127.0.<slot>.0/24`), the API server listens on its first address at 443, and the kubelet hands
pods that address as KUBERNETES_SERVICE_HOST; pods use the host network, so no kube-proxy is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from pathlib import Path

from localcluster.layout import REPO, write_kubeconfig

NODE_NAME = "localhost"  # the API server dials the kubelet by this name (--kubelet-preferred-address-types=Hostname)
SANDBOX_IMAGE = "localhost/pause:flux"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
SLOTS = range(100, 200)  # 127.<slot>.0.0/24 candidates for the Service range


def service_slot() -> int:
    """A loopback /24 whose first address has port 443 free, so several clusters can coexist."""
    for slot in SLOTS:
        with socket.socket() as sock:
            try:
                sock.bind((f"127.0.{slot}.1", 443))
            except OSError:
                continue
            return slot
    raise RuntimeError("no free loopback /24 for the Service range (127.0.100-199.0/24 all busy on 443)")


def service_cidr(slot: int) -> str:
    return f"127.0.{slot}.0/24"


def apiserver_ip(slot: int) -> str:
    return f"127.0.{slot}.1"  # the `kubernetes` Service's ClusterIP: the first address of the range


class Paths:
    """Every file of the real node, under one directory of the cluster."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "node-real"
        self.containerd_root = self.dir / "containerd" / "root"
        self.containerd_state = self.dir / "containerd" / "state"
        self.containerd_opt = self.dir / "containerd" / "opt"
        self.containerd_config = self.dir / "containerd" / "config.toml"
        # Unix socket paths are limited to 108 bytes and a cluster dir can be deep: the sockets live
        # in a short directory of this cluster's own under /run (removed by down).
        self.run_dir = Path("/run") / f"flux-node-{hashlib.sha256(str(root).encode()).hexdigest()[:10]}"
        self.socket = self.run_dir / "containerd.sock"
        self.cni_conf_dir = self.dir / "cni"
        self.kubelet_root = self.dir / "kubelet"
        self.kubelet_certs = self.dir / "kubelet-pki"
        self.kubelet_config = self.dir / "kubelet-config.json"
        self.kubelet_kubeconfig = self.dir / "kubelet.kubeconfig"
        self.pod_logs = self.dir / "pod-logs"


# --- pure renderers ------------------------------------------------------------------------------

def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _toml(table: dict, prefix: str = "") -> str:
    """Enough TOML for containerd's config: scalars and lists first, then nested tables."""
    lines = [f"{key} = {_toml_value(v)}" for key, v in table.items() if not isinstance(v, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
            lines += ["", f"[{name}]", _toml(value, name)]
    return "\n".join(line for line in lines if line is not None).strip("\n") + ("\n" if not prefix else "")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else f"'{key}'"


def containerd_config(paths: Paths, bin_dir: Path) -> str:
    """containerd 2.x (config version 3), every path of its own under the cluster directory."""
    cri_runtime = {
        # No CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj, so every sandbox would fail.
        "restrict_oom_score_adj": True,
        "enable_cdi": False,
        "containerd": {
            "default_runtime_name": "runc",
            "runtimes": {"runc": {"runtime_type": "io.containerd.runc.v2",
                                  "options": {"BinaryName": str(bin_dir / "runc"), "SystemdCgroup": False}}},
        },
        "cni": {"bin_dirs": [CNI_BIN_DIR], "conf_dir": str(paths.cni_conf_dir), "max_conf_num": 1},
    }
    config = {
        "version": 3,
        "root": str(paths.containerd_root),
        "state": str(paths.containerd_state),
        # NRI would open a socket under /var/run/nri; the node does not use it.
        "disabled_plugins": ["io.containerd.nri.v1.nri"],
        "grpc": {"address": str(paths.socket)},
        "plugins": {
            "io.containerd.internal.v1.opt": {"path": str(paths.containerd_opt)},  # not /opt/containerd
            "io.containerd.cri.v1.images": {"snapshotter": "overlayfs",
                                            "pinned_images": {"sandbox": SANDBOX_IMAGE}},
            "io.containerd.cri.v1.runtime": cri_runtime,
        },
    }
    return _toml(config)


def cni_conflist() -> dict:
    """Loopback only: every pod runs on the host network, but containerd wants a network config."""
    return {"cniVersion": "1.0.0", "name": "flux-loopback", "plugins": [{"type": "loopback"}]}


def kubelet_config(paths: Paths, pki: Path, port: int, healthz_port: int) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # v1.35 refuses cgroup v1 by default; these hosts have nothing else
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{paths.socket}",
        "address": "127.0.0.1",
        "port": port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "readOnlyPort": 0,
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "authentication": {"x509": {"clientCAFile": str(pki / "ca.crt")}, "webhook": {"enabled": True},
                           "anonymous": {"enabled": False}},
        "authorization": {"mode": "Webhook"},
        "failSwapOn": False,
        "podLogsDir": str(paths.pod_logs),
        "staticPodPath": "",
        "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf",
        # A test machine's disk and memory are whatever they are: never evict or GC our images.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%",
                         "imagefs.available": "1%"},
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        # Ready shows as soon as the runtime is; the status is still posted only when it changes.
        "nodeStatusUpdateFrequency": "1s",
        "nodeStatusReportFrequency": "1m",
    }


def kubelet_command(bin_dir: Path, paths: Paths) -> list[str]:
    return [str(bin_dir / "kubelet"), f"--config={paths.kubelet_config}",
            f"--kubeconfig={paths.kubelet_kubeconfig}", f"--root-dir={paths.kubelet_root}",
            f"--cert-dir={paths.kubelet_certs}", f"--hostname-override={NODE_NAME}", "--v=1"]


def containerd_command(bin_dir: Path, paths: Paths) -> list[str]:
    # exec, so the pid the supervisor records is containerd's own; its shim must be first on PATH.
    return ["/usr/bin/env", f"PATH={bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            str(bin_dir / "containerd"), f"--config={paths.containerd_config}", "--log-level=warn"]


def apiserver_flags(slot: int, pki: Path) -> list[str]:
    """What the API server needs on top of the common flags when the node is a real kubelet."""
    return [
        f"--bind-address={apiserver_ip(slot)}", f"--advertise-address={apiserver_ip(slot)}", "--secure-port=443",
        f"--service-cluster-ip-range={service_cidr(slot)}",
        "--kubelet-preferred-address-types=Hostname",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        # MutatingAdmissionPolicy is beta and off by default in v1.35.
        "--feature-gates=MutatingAdmissionPolicy=true",
        "--runtime-config=admissionregistration.k8s.io/v1beta1=true",
    ]


def host_network_policy() -> list[dict]:
    """Every pod on the host network (the network rule), with host ports equal to container ports
    as validation demands there. Installed by the local cluster, never by the product."""
    ports = ("c.ports.map(p, Object.spec.containers.ports{containerPort: p.containerPort, "
             "hostPort: p.containerPort, protocol: has(p.protocol) ? p.protocol : 'TCP'})")
    expression = ("Object{spec: Object.spec{hostNetwork: true, containers: object.spec.containers"
                  f".map(c, Object.spec.containers{{name: c.name, ports: has(c.ports) ? {ports} : []}})}}}}")
    name = "flux-local-host-network"
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1beta1", "kind": "MutatingAdmissionPolicy",
         "metadata": {"name": name},
         "spec": {"failurePolicy": "Fail", "reinvocationPolicy": "Never",
                  "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["CREATE"], "resources": ["pods"]}]},
                  "mutations": [{"patchType": "ApplyConfiguration",
                                 "applyConfiguration": {"expression": expression}}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1beta1", "kind": "MutatingAdmissionPolicyBinding",
         "metadata": {"name": name}, "spec": {"policyName": name}},
    ]


# --- steps with side effects ---------------------------------------------------------------------

def prepare(paths: Paths, bin_dir: Path, pki: Path, server: str, port: int, healthz_port: int) -> None:
    """Writes every config before anything starts: containerd reads the CNI dir only at start."""
    for d in (paths.run_dir, paths.containerd_root, paths.containerd_state, paths.cni_conf_dir, paths.kubelet_root,
              paths.kubelet_certs, paths.pod_logs):
        d.mkdir(parents=True, exist_ok=True)
    paths.containerd_config.write_text(containerd_config(paths, bin_dir))
    (paths.cni_conf_dir / "10-flux-loopback.conflist").write_text(json.dumps(cni_conflist(), indent=2))
    paths.kubelet_config.write_text(json.dumps(kubelet_config(paths, pki, port, healthz_port), indent=2))
    write_kubeconfig(paths.kubelet_kubeconfig, server, pki / "ca.crt", pki / "kubelet-client.crt",
                     pki / "kubelet-client.key", f"system:node:{NODE_NAME}")


def ctr(bin_dir: Path, paths: Paths, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "ctr"), f"--address={paths.socket}", "--namespace=k8s.io", *args],
                          capture_output=True, text=True, **kwargs)


def containerd_ready(bin_dir: Path, paths: Paths) -> bool:
    return paths.socket.exists() and ctr(bin_dir, paths, "version", timeout=5).returncode == 0


def image_archives(bin_dir: Path) -> list[Path]:
    """Builds (or finds in the cache) the images the node runs; see hack/build-images.sh."""
    env = {**os.environ, "FLUX_NODE_BIN_DIR": str(bin_dir)}  # already checked: skip the second check
    out = subprocess.run([str(REPO / "hack" / "build-images.sh")], check=True, stdout=subprocess.PIPE, text=True,
                         env=env)
    return [Path(line) for line in out.stdout.split() if line]


def import_images(bin_dir: Path, paths: Paths, archives: list[Path]) -> None:
    """All at once: each import mostly waits on reading and unpacking its layers."""
    wanted = [a for a in archives if not a.name.startswith("base-")]  # only images built on it run
    running = [(a, subprocess.Popen([str(bin_dir / "ctr"), f"--address={paths.socket}", "--namespace=k8s.io",
                                     "images", "import", str(a)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)) for a in wanted]
    failed = []
    for archive, proc in running:
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failed.append(f"{archive.name}: {err.strip()}")
    if failed:
        raise RuntimeError(f"importing images into containerd failed: {'; '.join(failed)}")

