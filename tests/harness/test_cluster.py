"""The local cluster is real: scheduler, kubelet-like node, GC, RBAC, tokens and CEL all behave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fluxtest import wait_for
from localcluster.kube import create_unless_there
from fluxtest.podlogs import LogFollower, pod_log, wait_log
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import cluster as localcluster
from localcluster.procs import alive, session_members

# These tests are about the process node itself (host paths, throwaway process-node clusters);
# the real node has its own in test_realnode.py and test_host_clean.py.
pytestmark = [pytest.mark.cluster, pytest.mark.process_node_only]


def pod_manifest(name: str, script: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 30,
                     "containers": [{"name": "main", "image": "ignored", "command": [sys.executable, "-c", script]}],
                     **spec}}


def pod_phase(core, ns: str, name: str) -> str | None:
    try:
        return core.read_namespaced_pod(name, ns).status.phase
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def final_state_watch(core, ns: str, name: str, timeout: int = 60) -> dict:
    """The last containerStatuses the node reported before it removed the pod."""
    last = None
    w = __import__("kubernetes").watch.Watch()
    for event in w.stream(core.list_namespaced_pod, ns, field_selector=f"metadata.name={name}",
                          timeout_seconds=timeout):
        pod = event["object"]
        if pod.status.container_statuses:
            last = pod.status.container_statuses[0]
        if event["type"] == "DELETED":
            w.stop()
    assert last is not None, "no container status was ever reported"
    return last


SIGNAL_SCRIPT = """
import os, signal, sys, time
def term(*_):
    print("SIGTERM as pid", os.getpid(), flush=True)
    sys.exit(42)
signal.signal(signal.SIGTERM, term)
print("ready pid", os.getpid(), flush=True)
while True:
    time.sleep(0.1)
"""

IGNORE_SCRIPT = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def test_scheduler_binds_a_pod_to_the_process_node_and_it_runs(core, namespace, cluster):
    core.create_namespaced_pod(namespace, pod_manifest("hello", "import time; print('hi', flush=True); time.sleep(60)"))
    wait_for(lambda: pod_phase(core, namespace, "hello") == "Running", timeout=30, what="Running")
    pod = core.read_namespaced_pod("hello", namespace)
    assert pod.spec.node_name == "flux-node"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in pod.status.conditions)
    status = pod.status.container_statuses[0]
    assert status.state.running is not None and status.ready
    assert pod.status.pod_ip == "127.0.0.1"
    wait_log(core, namespace, "hello", "hi")  # through the API server and the node's log endpoint


def test_graceful_delete_sends_sigterm_to_pid_1_and_records_its_exit_code(core, namespace, cluster, kubectl):
    core.create_namespaced_pod(namespace, pod_manifest("graceful", SIGNAL_SCRIPT))
    log = LogFollower(core, namespace, "graceful")
    log.wait_for("ready pid 1")
    watcher = __import__("concurrent.futures").futures.ThreadPoolExecutor(1).submit(
        final_state_watch, core, namespace, "graceful")
    started = time.monotonic()
    kubectl("delete", "pod", "graceful", "-n", namespace, "--grace-period=5", "--wait=true")
    state = watcher.result(timeout=60).state.terminated
    assert state.exit_code == 42, "the exit code the process chose is the one recorded"
    assert time.monotonic() - started < 5, "SIGTERM was handled, so no SIGKILL wait"
    assert "SIGTERM as pid 1" in log.finish()
    assert pod_phase(core, namespace, "graceful") is None, "the node removed the pod"


def test_process_ignoring_sigterm_is_killed_after_the_grace_period(core, namespace, cluster, kubectl):
    core.create_namespaced_pod(namespace, pod_manifest("stubborn", IGNORE_SCRIPT))
    wait_log(core, namespace, "stubborn", "ready")
    watcher = __import__("concurrent.futures").futures.ThreadPoolExecutor(1).submit(
        final_state_watch, core, namespace, "stubborn")
    started = time.monotonic()
    kubectl("delete", "pod", "stubborn", "-n", namespace, "--grace-period=2", "--wait=true")
    elapsed = time.monotonic() - started
    state = watcher.result(timeout=60).state.terminated
    assert state.exit_code == 137, "SIGKILL is reported as 128+9, as kubelet does"
    assert 2 <= elapsed < 10


def test_pid_1_without_a_handler_ignores_sigterm_like_in_a_container(core, namespace, cluster, kubectl):
    """The PID-1 rule: a signal with no handler does nothing, so only SIGKILL ends it."""
    core.create_namespaced_pod(namespace, pod_manifest("nohandler", "import time; print('ready', flush=True); "
                                                                    "time.sleep(600)"))
    wait_log(core, namespace, "nohandler", "ready")
    watcher = __import__("concurrent.futures").futures.ThreadPoolExecutor(1).submit(
        final_state_watch, core, namespace, "nohandler")
    kubectl("delete", "pod", "nohandler", "-n", namespace, "--grace-period=1", "--wait=true")
    assert watcher.result(timeout=60).state.terminated.exit_code == 137


def test_restart_policy_on_failure_restarts_and_never_does_not(core, namespace, cluster):
    script = "import sys; print('run', flush=True); sys.exit(3)"
    core.create_namespaced_pod(namespace, pod_manifest("never", script))
    wait_for(lambda: pod_phase(core, namespace, "never") == "Failed", what="Failed")
    status = core.read_namespaced_pod("never", namespace).status.container_statuses[0]
    assert status.state.terminated.exit_code == 3 and status.restart_count == 0
    core.create_namespaced_pod(namespace, pod_manifest("onfailure", script, restartPolicy="OnFailure"))
    wait_for(lambda: any(s.restart_count for s in
                         core.read_namespaced_pod("onfailure", namespace).status.container_statuses or []),
             timeout=40, what="a restart after the back-off")
    status = core.read_namespaced_pod("onfailure", namespace).status.container_statuses[0]
    assert status.last_state.terminated.exit_code == 3
    # Each run has its own log, as on a kubelet: the current one, and the previous one with -p.
    assert pod_log(core, namespace, "onfailure", previous=True) == "run\n"
    assert wait_log(core, namespace, "onfailure", "run") == "run\n"


def test_termination_message_and_downward_api_env(core, namespace, cluster):
    script = ("import os, json; open('/dev/termination-log','w').write(json.dumps({k: os.environ[k] for k in "
              "['POD','NS','UID','LABEL','SA','IP']}))")
    env = [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in
           [("POD", "metadata.name"), ("NS", "metadata.namespace"), ("UID", "metadata.uid"),
            ("LABEL", "metadata.labels['app']"), ("SA", "spec.serviceAccountName"), ("IP", "status.podIP")]]
    manifest = pod_manifest("downward", script)
    manifest["metadata"]["labels"] = {"app": "demo"}
    manifest["spec"]["containers"][0]["env"] = env
    created = core.create_namespaced_pod(namespace, manifest)
    wait_for(lambda: pod_phase(core, namespace, "downward") == "Succeeded", what="Succeeded")
    terminated = core.read_namespaced_pod("downward", namespace).status.container_statuses[0].state.terminated
    assert terminated.reason == "Completed" and terminated.started_at and terminated.finished_at
    assert json.loads(terminated.message) == {"POD": "downward", "NS": namespace, "UID": created.metadata.uid,
                                              "LABEL": "demo", "SA": "default", "IP": "127.0.0.1"}


def test_garbage_collector_removes_a_pod_owned_by_a_configmap(core, namespace):
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    manifest = pod_manifest("owned", "import time; time.sleep(600)")
    manifest["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                                "uid": owner.metadata.uid}]
    # What is tested is the collection, not a grace period: the sleeper has no SIGTERM handler (it would sit
    # out the default 30 s as PID 1 does).
    manifest["spec"]["terminationGracePeriodSeconds"] = 1
    core.create_namespaced_pod(namespace, manifest)
    wait_for(lambda: pod_phase(core, namespace, "owned") == "Running", what="Running")
    core.delete_namespaced_config_map("owner", namespace)
    wait_for(lambda: pod_phase(core, namespace, "owned") is None, timeout=90, what="garbage collection")


SA_SCRIPT = """
import json, os, ssl, urllib.request, urllib.error
d = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(d + "/token").read()
ns = open(d + "/namespace").read()
ctx = ssl.create_default_context(cafile=d + "/ca.crt")
url = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
def call(path, method="GET", body=None):
    req = urllib.request.Request(url + path, method=method, data=body,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, {}
review = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
who = call("/apis/authentication.k8s.io/v1/selfsubjectreviews", "POST", review)[1]["status"]["userInfo"]["username"]
code = call("/api/v1/namespaces/%s/secrets" % ns)[0]
open("/dev/termination-log", "w").write(json.dumps({"user": who, "secrets": code, "ns": ns}))
"""


def _whoami(core, ns: str, name: str) -> dict:
    core.create_namespaced_pod(ns, pod_manifest(name, SA_SCRIPT, serviceAccountName="reader"))
    wait_for(lambda: pod_phase(core, ns, name) in ("Succeeded", "Failed"), what=f"{name} finished")
    state = core.read_namespaced_pod(name, ns).status.container_statuses[0].state.terminated
    assert state.exit_code == 0, state.message
    return json.loads(state.message)


def test_projected_token_authenticates_as_the_service_account_and_rbac_applies(core, namespace, api):
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    before = _whoami(core, namespace, "before")
    assert before == {"user": f"system:serviceaccount:{namespace}:reader", "secrets": 403, "ns": namespace}
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "secrets"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "secrets"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                     "name": "secrets"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]})
    assert _whoami(core, namespace, "after")["secrets"] == 200


CEL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.harness.flux.dev"},
    "spec": {"group": "harness.flux.dev", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {
                     "type": "object", "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                     "x-kubernetes-validations": [{"rule": "self.min <= self.max",
                                                   "message": "min must not exceed max"}]}}}}}]},
}


def test_crd_cel_rule_rejects_a_bad_object_with_its_message(api, kubectl, namespace):
    create_unless_there(client.ApiextensionsV1Api(api).create_custom_resource_definition, CEL_CRD)
    kubectl("wait", "--for=condition=Established", "crd/widgets.harness.flux.dev", "--timeout=30s")
    custom = client.CustomObjectsApi(api)

    def create(spec):
        return custom.create_namespaced_custom_object("harness.flux.dev", "v1", namespace, "widgets", {
            "apiVersion": "harness.flux.dev/v1", "kind": "Widget", "metadata": {"name": f"w{spec['min']}"},
            "spec": spec})

    wait_for(lambda: _created(create, {"min": 1, "max": 2}), timeout=30, what="the Widget API to serve")
    with pytest.raises(ApiException) as err:
        create({"min": 5, "max": 2})
    assert err.value.status == 422
    assert "min must not exceed max" in err.value.body


def _created(create, spec) -> bool:
    try:
        create(spec)
        return True
    except ApiException as err:
        if err.status == 404:
            return False
        raise


def localcluster_cli(root: Path, command: str) -> subprocess.CompletedProcess:
    """`python -m localcluster up|down` for a throwaway cluster in `root`, as make runs it."""
    return subprocess.run([sys.executable, "-m", "localcluster", command], capture_output=True, text=True,
                          env={**os.environ, "FLUX_CLUSTER_DIR": str(root)}, timeout=180)


def start_throwaway_cluster_with_pod(root: Path, pod: str) -> tuple[localcluster.Layout, int]:
    """Returns the cluster's layout and the host PID of `pod`'s running container."""
    up = localcluster_cli(root, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    layout = localcluster.Layout.load(root)
    from localcluster.kube import api_client

    with api_client(layout.kubeconfig) as c:
        core = client.CoreV1Api(c)
        core.create_namespaced_pod("default", pod_manifest(pod, IGNORE_SCRIPT))
        wait_for(lambda: pod_phase(core, "default", pod) == "Running", timeout=60, what="Running")
        status = core.read_namespaced_pod(pod, "default").status.container_statuses[0]
    return layout, int(status.container_id.split("://")[1])


def test_cluster_down_leaves_no_process_behind(tmp_path, cluster):
    """A second, throwaway cluster: up, run a pod, down, and nothing of its session survives."""
    root = tmp_path / "cluster"
    try:
        layout, _ = start_throwaway_cluster_with_pod(root, "sleeper")
        sid = layout.supervisor_pid
        assert len(session_members(sid)) >= 6, "etcd, apiserver, controller-manager, scheduler, node, container"
        down = localcluster_cli(root, "down")
        assert down.returncode == 0, down.stderr
        assert session_members(sid) == []
        assert not (root / "state.json").exists()
    finally:
        localcluster_cli(root, "down")  # a no-op unless an assertion above failed first


def test_no_container_outlives_a_crashed_node(tmp_path, cluster):
    """SIGKILL the process node itself: the kernel takes its containers down with it."""
    root = tmp_path / "crash"
    try:
        layout, container_pid = start_throwaway_cluster_with_pod(root, "orphan")
        node_pid = next(pid for pid in session_members(layout.supervisor_pid)
                        if b"localcluster\x00node" in Path(f"/proc/{pid}/cmdline").read_bytes())
        assert alive(container_pid)
        os.kill(node_pid, 9)
        # alive() counts a zombie as dead: the kernel has killed it, only reaping is left to init.
        wait_for(lambda: not alive(container_pid), timeout=5, what="the container to die")
    finally:
        localcluster_cli(root, "down")
    assert session_members(layout.supervisor_pid) == []
