"""`down` leaves the host as `up` found it: a real-node cluster of its own, a pod, then a snapshot diff.

Only one real kubelet can run on a machine (its device-plugin directory is hard-coded), so this test
needs no other real node running: `make test-real-node` runs it in a pytest run of its own once its
cluster is down (or: `FLUX_NODE=real pytest tests/harness/test_host_clean.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fluxtest import wait_for
from localcluster import hoststate
from localcluster.procs import alive, named

pytestmark = [pytest.mark.cluster, pytest.mark.real_node_only]


def localcluster(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLUX_NODE": "real", "FLUX_CLUSTER_DIR": str(root)}
    return subprocess.run([sys.executable, "-m", "localcluster", *args, f"--dir={root}"], env=env,
                          capture_output=True, text=True, timeout=600)


def components(root: Path) -> dict:
    return json.loads((root / "components.json").read_text())["components"]


def run_pod_then_down(crash_kubelet: bool) -> None:
    # A kubelet process, not /var/lib/kubelet: a run killed before its `down` leaves that directory with
    # no kubelet behind it. The snapshot then records it as there before, and `down` leaves it as found.
    kubelets = named("kubelet")
    assert not kubelets, f"another real node runs on this host (kubelet {kubelets}): run this test once it is down"
    # A short path: the kubelet's own unix sockets live under its root dir.
    root = Path(tempfile.mkdtemp(prefix="fx-", dir="/tmp")) / "cluster"
    before = hoststate.snapshot(root)
    up = localcluster(root, "up")
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads((root / "state.json").read_text())
        kubectl = [f"{state['bin']}/kubectl", f"--kubeconfig={root / 'kubeconfig'}"]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "busy", "namespace": "default"},
               "spec": {"containers": [{"name": "main", "image": "localhost/flux-runner:dev",
                                        "command": ["python3", "-c", "import time; time.sleep(3600)"]}]}}
        subprocess.run([*kubectl, "create", "-f", "-"], input=json.dumps(pod), text=True, check=True,
                       capture_output=True)

        def running() -> bool:
            out = subprocess.run([*kubectl, "get", "pod", "busy", "-o", "jsonpath={.status.phase}"],
                                 capture_output=True, text=True)
            return out.stdout == "Running"

        wait_for(running, timeout=60, what="a pod running on the real node")
        assert hoststate.differences(before, hoststate.snapshot(root)), "the node changed nothing: nothing tested"
        if crash_kubelet:  # the supervisor then stops the cluster itself, with the pod still running
            os.kill(components(root)["kubelet"]["pid"], signal.SIGKILL)
            wait_for(lambda: not alive(state["supervisor_pid"]), timeout=60, what="the supervisor to stop")
    finally:
        down = localcluster(root, "down")
    assert down.returncode == 0 and "not fully restored" not in down.stderr, down.stderr
    assert hoststate.differences(before, hoststate.snapshot(root)) == []
    shutil.rmtree(root.parent)


def test_down_restores_the_host() -> None:
    run_pod_then_down(crash_kubelet=False)


def test_down_restores_the_host_after_the_kubelet_died() -> None:
    """Nothing drains the pods: containerd's sweep and the cgroup cleanup must still leave nothing."""
    run_pod_then_down(crash_kubelet=True)
