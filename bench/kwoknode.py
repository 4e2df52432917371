"""A KWOK node beside the process node: pods bound to it report Running without any process.

`kwok` (sigs.k8s.io/kwok, pinned in hack/kwok/go.mod) is built into the same cache as the control
plane by `hack/build-binaries.sh --with-kwok`. It talks to the local apiserver through the cluster's
kubeconfig (https://127.0.0.1:<port>) and opens no port of its own: neither --server-address nor
--node-port is given, so it serves nothing. While the node exists the process node is cordoned, so
every new pod (the operator's runner pods included) lands on the KWOK node.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.layout import NODE_NAME, Layout
from localcluster.procs import die_with_parent, stop

from benchkit import REPO, BenchError, log, wait_until

STAGES = REPO / "bench" / "kwok" / "stages.yaml"
KWOK_NODE = "kwok-node-0"
FAKE = {"kwok.x-k8s.io/node": "fake"}
# Pod IPs KWOK hands out: only strings in pod status, but there must be enough of them (5,000+ pods),
# and apart from the cluster's service range (10.0.0.0/24).
POD_CIDR = "10.128.0.0/14"


def kwok_binary() -> Path:
    """Builds kwok on first use (a few minutes); afterwards a cache hit."""
    out = subprocess.run([str(REPO / "hack" / "build-binaries.sh"), "--with-kwok"], check=True,
                         stdout=subprocess.PIPE, text=True)
    path = Path(out.stdout.strip().splitlines()[-1]) / "kwok"
    if not path.is_file():
        raise BenchError(f"{path} was not built")
    return path


def _node_ready(core: client.CoreV1Api, name: str) -> bool:
    try:
        node = core.read_node(name)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def _listening_sockets(pid: int) -> list[str]:
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
def kwok_node(layout: Layout, api: client.ApiClient) -> Iterator[str]:
    """Starts kwok, registers one fake node, cordons the process node; undoes all three at the end."""
    core = client.CoreV1Api(api)
    binary = kwok_binary()
    log_path = layout.logs / "kwok.log"
    argv = [str(binary), f"--kubeconfig={layout.kubeconfig}", f"--config={STAGES}",
            f"--manage-nodes-with-annotation-selector={','.join(f'{k}={v}' for k, v in FAKE.items())}",
            f"--cidr={POD_CIDR}", "--node-ip=127.0.0.1", "--node-lease-duration-seconds=40"]
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=die_with_parent)
    try:
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": KWOK_NODE, "annotations": {**FAKE, "node.alpha.kubernetes.io/ttl": "0"},
                             "labels": {"kubernetes.io/hostname": KWOK_NODE, "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64", "type": "kwok", "flux.dev/kwok": "true"}},
                "status": {"allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "20000"},
                           "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "20000"}}}
        try:
            core.create_node(node)
        except ApiException as err:
            if err.status != 409:
                raise

        def ready() -> bool:
            if proc.poll() is not None:
                raise BenchError(f"kwok exited with {proc.returncode}; see {log_path}")
            return _node_ready(core, KWOK_NODE)

        wait_until(ready, 60, f"KWOK node {KWOK_NODE} to be Ready", interval=0.2)
        time.sleep(0.5)
        listening = _listening_sockets(proc.pid)
        if listening:
            raise BenchError(f"kwok listens on {listening}: it must open no port")
        core.patch_node(NODE_NAME, {"spec": {"unschedulable": True}})
        log(f"KWOK node {KWOK_NODE} Ready (kwok pid {proc.pid}, log {log_path}); {NODE_NAME} cordoned")
        yield KWOK_NODE
    finally:
        try:
            core.patch_node(NODE_NAME, {"spec": {"unschedulable": False}})
        except ApiException:
            pass
        try:
            core.delete_node(KWOK_NODE)
        except ApiException:
            pass
        stop(proc, timeout=10)
