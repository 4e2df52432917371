"""The process node (the default): our own small kubelet, `python -m localcluster node`, runs each pod's
containers as host processes (localcluster.node); images are ignored."""

from __future__ import annotations

import sys
from pathlib import Path

from localcluster.layout import Layout, binaries_dir
from localcluster.nodes.protocol import Hooks
from localcluster.pki import make_pki

NODE_NAME = "flux-node"
SERVICE_CIDR = "10.0.0.0/24"


class ProcessNode:
    kind = "process"
    name = NODE_NAME
    runner_image: str | None = None
    python_image: str | None = None
    settle_seconds = 0.0
    serves_exec = False

    def binaries(self) -> Path:
        return binaries_dir()

    def plan(self, layout: Layout) -> None:
        layout.server = f"https://127.0.0.1:{layout.ports.apiserver}"

    def make_pki(self, layout: Layout) -> None:
        make_pki(layout.pki, self.name)

    def write_configs(self, layout: Layout) -> None:
        pass  # the node takes everything on its command line

    def apiserver_flags(self, layout: Layout) -> list[str]:
        pki = layout.pki
        return [
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={layout.ports.apiserver}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # `kubectl logs`: the API server reaches the node's kubelet endpoint on loopback, by the
            # Hostname address `localhost` (InternalIP 127.0.0.1 as the fallback), over verified TLS.
            "--kubelet-preferred-address-types=Hostname,InternalIP",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        ]

    def commands(self, layout: Layout) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        pki = layout.pki
        node = [sys.executable, "-m", "localcluster", "node", f"--kubeconfig={layout.kubeconfig}",
                f"--name={self.name}", f"--dir={layout.root / 'node'}", f"--apiserver-port={layout.ports.apiserver}",
                f"--ca={pki / 'ca.crt'}", f"--serving-cert={pki / 'kubelet.crt'}", f"--serving-key={pki / 'kubelet.key'}"]
        return {}, {"process-node": node}

    def hooks(self, layout: Layout) -> Hooks:
        return Hooks()

    def after_ready(self, layout: Layout) -> None:
        pass

    def before_down(self, layout: Layout) -> None:
        pass  # the node kills its pods' processes when it stops

    def after_down(self, root: Path) -> None:
        pass
