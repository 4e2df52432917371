"""The KWOK node (FLUX_NODE=kwok, or `beside` a running process node): pods bound to it report Running
without any process, for the scale benchmarks.

`kwok` (sigs.k8s.io/kwok, pinned in hack/kwok/go.mod, stages in hack/kwok/stages.yaml) is built into the
same cache as the control plane by `hack/build-binaries.sh --with-kwok`. It talks to the local API server
through the cluster's kubeconfig and opens no port of its own: neither --server-address nor --node-port
is given, so it serves nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from localcluster.layout import REPO, Layout, binaries_dir
from localcluster.nodes.process import NODE_NAME as PROCESS_NODE
from localcluster.nodes.process import ProcessNode
from localcluster.probes import wait_for
from localcluster.procs import die_with_parent, stop

STAGES = REPO / "hack" / "kwok" / "stages.yaml"
KWOK_NODE = "kwok-node-0"
FAKE = {"kwok.x-k8s.io/node": "fake"}
# Pod IPs KWOK hands out: only strings in pod status, but there must be enough of them (5,000+ pods),
# and apart from the cluster's service range (10.0.0.0/24).
POD_CIDR = "10.128.0.0/14"
NODE_OBJECT = {
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": KWOK_NODE, "annotations": {**FAKE, "node.alpha.kubernetes.io/ttl": "0"},
                 "labels": {"kubernetes.io/hostname": KWOK_NODE, "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64", "type": "kwok", "flux.dev/kwok": "true"}},
    "status": {"allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "20000"},
               "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "20000"}},
}


class KwokError(RuntimeError):
    pass


class KwokNode(ProcessNode):
    """The control plane as the process node has it (ports, certificates); kwok in the node's place."""

    kind = "kwok"
    name = KWOK_NODE

    def binaries(self) -> Path:
        return binaries_dir(with_kwok=True)

    def commands(self, layout: Layout) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        return {}, {"kwok": kwok_command(layout.bin / "kwok", layout)}

    def after_ready(self, layout: Layout) -> None:
        from localcluster.kube import api_client  # the Python client is slow to import; only up needs it

        with api_client(layout.kubeconfig) as api:
            register(api, lambda: None)


def kwok_command(binary: Path, layout: Layout) -> list[str]:
    return [str(binary), f"--kubeconfig={layout.kubeconfig}", f"--config={STAGES}",
            f"--manage-nodes-with-annotation-selector={','.join(f'{k}={v}' for k, v in FAKE.items())}",
            f"--cidr={POD_CIDR}", "--node-ip=127.0.0.1", "--node-lease-duration-seconds=40"]


def register(api, alive) -> None:
    """Creates the fake Node and waits until kwok reports it Ready; `alive` raises if kwok has exited."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from localcluster.kube import create_unless_there

    core = client.CoreV1Api(api)
    create_unless_there(core.create_node, NODE_OBJECT)

    def ready() -> bool:
        alive()
        try:
            node = core.read_node(KWOK_NODE)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

    wait_for(ready, timeout=60, interval=0.2, what=f"KWOK node {KWOK_NODE} to be Ready", error=KwokError)


def listening_sockets(pid: int) -> list[str]:
    """Local addresses `pid` listens on (TCP, v4 and v6), from /proc: KWOK must have none off loopback."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1])
    return found


@contextmanager
def beside(layout: Layout, api) -> Iterator[str]:
    """On a process-node cluster: starts kwok, registers the fake node and cordons the process node, so
    every new pod (the operator's runner pods included) lands on the KWOK node; undoes all three."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api)
    log_path = layout.logs / "kwok.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(kwok_command(KwokNode().binaries() / "kwok", layout), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

    def alive() -> None:
        if proc.poll() is not None:
            raise KwokError(f"kwok exited with {proc.returncode}; see {log_path}")

    try:
        register(api, alive)
        time.sleep(0.5)
        listening = listening_sockets(proc.pid)
        if listening:
            raise KwokError(f"kwok listens on {listening}: it must open no port")
        core.patch_node(PROCESS_NODE, {"spec": {"unschedulable": True}})
        print(f"[{time.strftime('%H:%M:%S')}] KWOK node {KWOK_NODE} Ready (kwok pid {proc.pid}, log {log_path}); "
              f"{PROCESS_NODE} cordoned", flush=True, file=sys.stdout)
        yield KWOK_NODE
    finally:
        try:
            core.patch_node(PROCESS_NODE, {"spec": {"unschedulable": False}})
        except ApiException:
            pass
        try:
            core.delete_node(KWOK_NODE)
        except ApiException:
            pass
        stop(proc, timeout=10)
