"""`kubectl logs` on the process node: the API server reaches the node's log endpoint as it reaches a
kubelet's, on loopback, with a client certificate, verifying the node's serving certificate."""

from __future__ import annotations

import socket
import ssl
import sys
import urllib.error
import urllib.request

import pytest
from fluxtest import wait_for
from fluxtest.podlogs import LogFollower, wait_log

pytestmark = pytest.mark.cluster

COUNT = "import sys, time\nfor i in range(1, 6):\n    print('line', i, flush=True)\n    time.sleep(0.3)\n"


def pod(name: str, script: str, restart: str = "Never") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "main", "image": "ignored", "command": [sys.executable, "-c", script]}]}}


def kubelet_port(core) -> int:
    node = core.read_node("flux-node")
    return node.status.daemon_endpoints.kubelet_endpoint.port


def test_the_node_publishes_a_loopback_kubelet_endpoint(core):
    node = core.read_node("flux-node")
    assert {(a.type, a.address) for a in node.status.addresses} == {("InternalIP", "127.0.0.1"),
                                                                   ("Hostname", "localhost")}
    port = kubelet_port(core)
    assert port > 0
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # listening on loopback, where the API server dials it


def test_kubectl_logs_follow_tail_and_previous(core, namespace, kubectl):
    core.create_namespaced_pod(namespace, pod("counter", COUNT))
    follower = LogFollower(core, namespace, "counter")
    assert follower.finish(timeout=30) == "".join(f"line {i}\n" for i in range(1, 6)), "follow ends with the run"
    assert kubectl("logs", "counter", "-n", namespace, "--tail=2").stdout == "line 4\nline 5\n"
    assert kubectl("logs", "counter", "-n", namespace, "--limit-bytes=6").stdout == "line 1"
    previous = kubectl("logs", "counter", "-n", namespace, "-p", check=False)
    assert previous.returncode != 0
    assert 'previous terminated container "main" in pod "counter" not found' in previous.stderr


def test_kubectl_logs_f_streams_lines_as_they_come(core, namespace, kube_env):
    import subprocess
    core.create_namespaced_pod(namespace, pod("slow", "import time\nprint('first', flush=True)\ntime.sleep(4)\n"
                                                      "print('second', flush=True)\n"))
    wait_log(core, namespace, "slow", "first")
    follow = subprocess.Popen(["kubectl", "logs", "-f", "slow", "-n", namespace], env=kube_env,
                              stdout=subprocess.PIPE, text=True)
    assert follow.stdout.readline() == "first\n", "the log so far comes at once"
    assert follow.stdout.readline() == "second\n"
    assert follow.wait(timeout=20) == 0, "the stream ends when the container exits"


def _get(cluster, port: int, cert: str | None) -> int:
    ctx = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(str(cluster.pki / f"{cert}.crt"), str(cluster.pki / f"{cert}.key"))
    try:
        with urllib.request.urlopen(f"https://localhost:{port}/containerLogs/x/y/z", context=ctx, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_the_log_endpoint_serves_only_the_api_servers_client(core, cluster):
    port = kubelet_port(core)
    # The serving certificate verifies for `localhost` against the cluster CA (as the API server checks).
    assert _get(cluster, port, "apiserver-kubelet-client") == 404, "allowed: an unknown pod is a 404"
    assert _get(cluster, port, "scheduler") == 403, "a cluster certificate outside system:masters"
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _get(cluster, port, None)  # no client certificate: the handshake fails


def test_a_pod_that_is_not_started_has_no_log_yet(core, namespace, kubectl):
    spec = pod("waiting", "print('never')")
    spec["spec"]["containers"][0]["env"] = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent",
                                                                                           "key": "k"}}}]
    core.create_namespaced_pod(namespace, spec)
    result = wait_for(lambda: (r := kubectl("logs", "waiting", "-n", namespace, check=False)).stderr and r,
                      timeout=30, what="kubectl logs to answer")
    assert result.returncode != 0 and "is waiting to start" in result.stderr
