"""The real node (FLUX_NODE=real): a kubelet, containerd and runc running our images.

Everything is observed through the API: pod status, `kubectl logs`/read_namespaced_pod_log and
`kubectl exec`, never host files (the kubelet deletes container logs with the pod).
Run with `make test-real-node` (or FLUX_NODE=real pytest tests/harness/test_realnode.py).
"""

from __future__ import annotations

import textwrap

import pytest
from fluxtest import gone, wait_for
from kubernetes.client.rest import ApiException

pytestmark = [pytest.mark.cluster, pytest.mark.real_node_only]

IMAGE = "localhost/flux-runner:dev"


def python_pod(name: str, script: str, **container) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 20,
                     "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                                     "command": ["python3", "-c", textwrap.dedent(script)], **container}]}}


def running(core, ns: str, name: str) -> bool:
    pod = core.read_namespaced_pod(name, ns)
    if pod.status.phase in ("Failed", "Succeeded"):
        raise AssertionError(f"pod {name} ended: {pod.status}")
    return pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses or [])


def log(core, ns: str, name: str) -> str:
    try:
        return core.read_namespaced_pod_log(name, ns, container="main") or ""
    except ApiException as err:
        if err.status in (400, 404):
            return ""
        raise


SLEEPER = """
import signal, sys, time
def term(*_):
    print("got SIGTERM as pid 1", flush=True)
    time.sleep(3)  # long enough for the test to read the log while the pod is Terminating
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
print("started", flush=True)
while True:
    time.sleep(1)
"""


def test_node_is_a_ready_kubelet_on_containerd(core) -> None:
    node = core.read_node("localhost")
    assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    assert node.status.node_info.kubelet_version == "v1.35.4"
    assert node.status.node_info.container_runtime_version == "containerd://2.2.9"


def test_pod_runs_our_image_on_the_host_network_and_pid1_gets_sigterm(core, namespace) -> None:
    core.create_namespaced_pod(namespace, python_pod("sleeper", SLEEPER))
    wait_for(lambda: running(core, namespace, "sleeper"), timeout=60, what="sleeper running")
    pod = core.read_namespaced_pod("sleeper", namespace)
    assert pod.spec.host_network is True  # the local cluster's admission policy, not the pod's author
    wait_for(lambda: "started" in log(core, namespace, "sleeper"), timeout=30, what="sleeper log")
    core.delete_namespaced_pod("sleeper", namespace, grace_period_seconds=20)
    wait_for(lambda: "got SIGTERM as pid 1" in log(core, namespace, "sleeper"), timeout=15, what="SIGTERM in the log")
    wait_for(lambda: gone(core.read_namespaced_pod, "sleeper", namespace), timeout=30,
             what="pod removed after a graceful exit")


def test_kubectl_logs_and_exec(core, kubectl, namespace) -> None:
    core.create_namespaced_pod(namespace, python_pod("shell", SLEEPER))
    wait_for(lambda: running(core, namespace, "shell"), timeout=60, what="pod running")
    wait_for(lambda: "started" in kubectl("logs", "-n", namespace, "shell").stdout, timeout=30, what="kubectl logs")
    out = kubectl("exec", "-n", namespace, "shell", "--", "python3", "-c", "import os; print('uid', os.getuid())")
    assert out.stdout.strip() == "uid 65532"  # the image's USER


def test_pod_reaches_the_api_server_in_cluster_on_loopback(core, namespace, cluster) -> None:
    script = """
    import json, os, ssl, urllib.request
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
    req = urllib.request.Request(f"https://{host}:{port}/version",
                                 headers={"Authorization": "Bearer " + open(f"{sa}/token").read()})
    print(host, port, json.load(urllib.request.urlopen(req, context=ctx))["gitVersion"], flush=True)
    """
    core.create_namespaced_pod(namespace, python_pod("incluster", script))
    expected = f"127.0.{cluster.extra['slot']}.1 443 v1.35.4"
    wait_for(lambda: expected in log(core, namespace, "incluster"), timeout=60, what="the in-cluster call's answer")


def test_memory_limit_is_a_real_cgroup_limit(core, kubectl, namespace) -> None:
    limits = {"resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}
    core.create_namespaced_pod(namespace, python_pod("limited", SLEEPER, **limits))
    wait_for(lambda: running(core, namespace, "limited"), timeout=60, what="pod running")
    read = ("import pathlib; p = pathlib.Path('/sys/fs/cgroup/memory/memory.limit_in_bytes');"
            "q = pathlib.Path('/sys/fs/cgroup/memory.max'); print((p if p.exists() else q).read_text().strip())")
    out = kubectl("exec", "-n", namespace, "limited", "--", "python3", "-c", read)
    assert out.stdout.strip() == str(64 * 1024 * 1024)


def test_failing_liveness_probe_restarts_the_container(core, namespace) -> None:
    probe = {"livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1,
                               "initialDelaySeconds": 1}}
    pod = python_pod("unhealthy", SLEEPER, **probe)
    pod["spec"]["restartPolicy"] = "Always"
    pod["spec"]["terminationGracePeriodSeconds"] = 1
    core.create_namespaced_pod(namespace, pod)

    def restarted() -> bool:
        statuses = core.read_namespaced_pod("unhealthy", namespace).status.container_statuses or []
        return bool(statuses) and statuses[0].restart_count >= 1

    wait_for(restarted, timeout=60, what="a restart after the liveness probe failed")


def test_workflow_image_extends_the_runner_image(core, namespace) -> None:
    """examples/Dockerfile is the pattern users follow: the runner image plus their own package."""
    script = "import flux_examples.quick, flux_runner, shutil; print('workflow image ok', shutil.which('flux-runner'))"
    pod = python_pod("workflow", script)
    pod["spec"]["containers"][0]["image"] = "localhost/flux-examples:dev"
    core.create_namespaced_pod(namespace, pod)
    wait_for(lambda: "workflow image ok /opt/flux/bin/flux-runner" in log(core, namespace, "workflow"), timeout=60,
             what="the workflow image's own package and the runner")
