"""The chart installed for real: its operator runs as a pod, with only the chart's RBAC, and does the demo.

The session's operator process is stopped for this module, so every Execution here is reconciled by
the operator pod the chart made. Both nodes get the same values. On the real node (FLUX_NODE=real) the
kubelet runs the operator image built from operator/Dockerfile with the chart's security context and
liveness probe, and runner pods from the example workflow image; the process node runs the chart's
`command` from this checkout and ignores images, probes and the read-only root (the tests marked
`real_node_only` check those). Tests run in file order on one release: install, use, break one rule,
upgrade to JSON logs, uninstall.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import yaml
from flux_api import GROUP
from fluxtest import REPO, Executions, manifest, policies, wait_for
from fluxtest.hostprocs import pids_where
from fluxtest.identity import mint_token
from fluxtest.operators import healthy, insecure_tls
from fluxtest.plugin import REAL_NODE_RUNNER_IMAGE
from fluxtest.podlogs import LogFollower, pod_log, wait_log
from fluxtest.tenancy import can_i, make_tenant
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.nodes import choice
from localcluster.procs import free_port

pytestmark = pytest.mark.cluster

CHART = REPO / "charts" / "flux-operator"
RELEASE = "flux-operator"  # a release named after the chart: object names are just "flux-operator"
FULLNAME = "flux-operator"
OPERATOR_UID = 65532
OPERATOR_IMAGE = "localhost/flux-operator:dev"  # hack/build-images.sh, imported into the node's containerd


@dataclass
class Install:
    release_ns: str  # where the operator runs
    ns: str  # the one namespace it watches (listed: it needs no label)
    metrics_port: int
    health_port: int
    scrape_token: str = ""  # a ServiceAccount bound to the chart's metrics-reader ClusterRole
    uninstalled: bool = False

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.release_ns}:{FULLNAME}"


def create_namespace(core: client.CoreV1Api) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"flux.dev/test": "true"}}})
    return name


def delete_namespace(core: client.CoreV1Api, name: str) -> None:
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException as err:
        if err.status != 404:
            raise


@pytest.fixture(scope="module")
def install(cluster, api, core, kubectl, kubeconfig, operator, helm):
    operator.stop()  # only the chart's operator may reconcile from here on
    policies.remove(kubectl)  # the chart brings its own admission policies, naming its own operator
    release_ns, ns = create_namespace(core), create_namespace(core)
    chart = Install(release_ns, ns, free_port(), free_port())
    repository, tag = OPERATOR_IMAGE.rsplit(":", 1)
    try:
        helm("install", RELEASE, str(CHART), "-n", release_ns, "--wait", "--timeout", "120s",
             "--set", f"watchNamespaces={{{ns}}}", "--set", f"metrics.port={chart.metrics_port}",
             "--set", f"health.port={chart.health_port}", "--set", f"runner.image={REAL_NODE_RUNNER_IMAGE}",
             # Our images are imported into containerd, never pulled (the process node ignores images).
             "--set", f"image.repository={repository}", "--set-string", f"image.tag={tag}",
             "--set", "image.pullPolicy=Never",
             # Every pod here is on the host's network (the process node by construction, the real node by
             # the local cluster's admission policy, hostPort = containerPort), so a second replica would
             # want the first one's ports: the scheduler keeps it Pending on the real node, on the process
             # node it cannot bind. Hence one replica, on ports free on this host; the chart's default of
             # two is right where pods have their own network.
             "--set", "replicaCount=1")
        # A non-resource URL is granted only by a ClusterRoleBinding.
        core.create_namespaced_service_account(release_ns, {"metadata": {"name": "prometheus"}})
        client.RbacAuthorizationV1Api(api).create_cluster_role_binding({
            "metadata": {"name": f"prometheus-{release_ns}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": f"{FULLNAME}-metrics-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": release_ns}]})
        chart.scrape_token = mint_token(core, release_ns, "prometheus")
        yield chart
    finally:
        if not chart.uninstalled:
            helm("uninstall", RELEASE, "-n", release_ns, "--wait", check=False)
        try:
            client.RbacAuthorizationV1Api(api).delete_cluster_role_binding(f"prometheus-{release_ns}")
        except ApiException as err:
            if err.status != 404:
                raise
        delete_namespace(core, ns)
        delete_namespace(core, release_ns)
        policies.install(kubectl, kubeconfig)
        operator.start()


@pytest.fixture(scope="module")
def fx(custom, core, install) -> Executions:
    return Executions(custom, core, install.ns)


# --- helpers --------------------------------------------------------------------------------------

def operator_pods(core, install: Install) -> list[client.V1Pod]:
    return core.list_namespaced_pod(install.release_ns, label_selector=f"app.kubernetes.io/instance={RELEASE}").items


def running_operator_pod(core, install: Install, timeout: float = 90) -> client.V1Pod:
    """The one operator pod, Running, its container up and kopf answering /healthz."""
    def ready():
        pods = [p for p in operator_pods(core, install) if not p.metadata.deletion_timestamp]
        if len(pods) != 1 or pods[0].status.phase != "Running":
            return None
        statuses = pods[0].status.container_statuses or []
        return pods[0] if statuses and statuses[0].state.running and healthy(install.health_port) else None
    return wait_for(ready, timeout=timeout, interval=0.5, what="the chart's operator pod to run and be healthy")


# What PID 1 of the operator container is, as JSON: argv, the Uid and CapEff lines of its status, and
# whether the root filesystem is mounted read-only (statvfs, not a write: uid 65532 may not write / anyway).
PROCESS_FACTS = """
import json, os
status = dict(line.split(":", 1) for line in open("/proc/{pid}/status").read().splitlines() if ":" in line)
print(json.dumps({{"argv": open("/proc/{pid}/cmdline", "rb").read().decode().split("\\0"),
                  "uid": status["Uid"].split(), "capeff": status["CapEff"].strip(),
                  "read_only_root": bool(os.statvfs("/").f_flag & os.ST_RDONLY)}}))
"""


def operator_process(cluster, kubectl, install: Install, pod: client.V1Pod) -> dict:
    """PROCESS_FACTS of the operator pod's process: on the real node read inside the container through
    `kubectl exec` (the kubelet's view: its mounts, its PID 1); the process node serves no exec, and its
    container ID is the host PID, so the same script runs on the host."""
    if choice.of(cluster).serves_exec:
        out = kubectl("exec", "-n", install.release_ns, pod.metadata.name, "-c", "operator", "--",
                      "python3", "-c", PROCESS_FACTS.format(pid=1))
    else:
        container_id = pod.status.container_statuses[0].container_id
        assert container_id.startswith("process://"), container_id
        pid = int(container_id.removeprefix("process://"))
        out = subprocess.run(["python3", "-c", PROCESS_FACTS.format(pid=pid)], capture_output=True, text=True,
                             check=True)
    return json.loads(out.stdout)


def operator_log(core, install: Install, pod: client.V1Pod) -> str:
    """The operator container's log, through the API server (`kubectl logs`)."""
    return pod_log(core, install.release_ns, pod.metadata.name, "operator")


def operator_processes(install: Install) -> list[int]:
    """Live processes that are this release's operator, found by their unique metrics port."""
    def ours(cmdline: bytes) -> bool:
        argv = cmdline.split(b"\0")
        return any(a.endswith(b"flux-operator") for a in argv) and \
            f"--metrics-port={install.metrics_port}".encode() in argv
    return pids_where("cmdline", ours)


def samples(metrics: str, name: str) -> dict[frozenset, float]:
    """Prometheus text -> {frozenset of (label, value): sample value} for one metric name."""
    out = {}
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, _, value = line[len(name) + 1:].rpartition("} ")
        pairs = (item.split("=", 1) for item in labels.split(","))
        out[frozenset((k, v.strip('"')) for k, v in pairs)] = float(value)
    return out


def scrape(install: Install, port: int | None = None) -> str:
    """/metrics as Prometheus scrapes it: HTTPS (the operator's self-signed certificate), a bearer token the
    API server vouches for and allows to get /metrics through the chart's metrics-reader ClusterRole."""
    request = urllib.request.Request(f"https://127.0.0.1:{port or install.metrics_port}/metrics",
                                     headers={"Authorization": f"Bearer {install.scrape_token}"})
    with urllib.request.urlopen(request, context=insecure_tls(), timeout=10) as r:
        return r.read().decode()


def longrun_example(name: str, step_seconds: float = 0.5) -> str:
    """examples/manifests/longrun.yaml, shorter steps, as a user would apply it."""
    doc = yaml.safe_load((REPO / "examples" / "manifests" / "longrun.yaml").read_text())
    assert doc["spec"]["workflow"] == "flux_examples.longrun:main"
    doc["metadata"]["name"] = name
    doc["spec"]["input"] = {"steps": 600, "stepSeconds": step_seconds}
    return yaml.safe_dump(doc)


def cancel_with_kubectl(kubectl, install: Install, name: str) -> None:
    kubectl("patch", "fx", name, "-n", install.ns, "--type", "merge", "-p", '{"spec":{"cancel":{"reason":"helm"}}}')


# --- the installed operator -----------------------------------------------------------------------

def test_operator_runs_as_a_pod_under_the_charts_service_account(cluster, core, kubectl, install):
    pod = running_operator_pod(core, install)
    assert pod.spec.service_account_name == FULLNAME
    assert pod.spec.node_name == choice.of(cluster).name
    assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    assert pod.status.container_statuses[0].restart_count == 0
    container = pod.spec.containers[0]
    assert (container.image, container.image_pull_policy) == (OPERATOR_IMAGE, "Never")
    volumes = [v for v in pod.spec.volumes if v.projected]
    assert any(s.service_account_token for v in volumes for s in v.projected.sources), "an SA token is projected"
    # The process behind the pod: the chart's command and args, as the chart's non-root uid, no capabilities.
    facts = operator_process(cluster, kubectl, install, pod)
    argv = facts["argv"]
    assert argv[1].endswith("flux-operator") or argv[0].endswith("flux-operator"), argv
    assert f"--namespace={install.ns}" in argv and f"--metrics-port={install.metrics_port}" in argv
    assert f"--runner-image={REAL_NODE_RUNNER_IMAGE}" in argv
    assert facts["uid"] == [str(OPERATOR_UID)] * 4
    assert int(facts["capeff"], 16) == 0, "no effective capabilities"


@pytest.mark.real_node_only
def test_the_kubelet_runs_the_operator_image_read_only_and_probes_its_liveness(cluster, core, kubectl, install):
    """What only a kubelet does: the image's own files, a read-only root and the liveness probe."""
    pod = running_operator_pod(core, install)
    status = pod.status.container_statuses[0]
    assert status.image == OPERATOR_IMAGE and status.container_id.startswith("containerd://")
    facts = operator_process(cluster, kubectl, install, pod)
    argv = facts["argv"]
    assert argv[0].startswith("/opt/flux/bin/python") and argv[1] == "/opt/flux/bin/flux-operator", argv
    assert facts["read_only_root"] is True
    probe = pod.spec.containers[0].liveness_probe
    assert (probe.http_get.path, probe.http_get.port) == ("/healthz", "health")
    # The kubelet's own count of the probes it ran: the chart's probe reaches /healthz on the health port and
    # passes (initialDelaySeconds 10, every 10 s). Read from the kubelet itself on loopback, with the admin
    # certificate: the API server's node proxy refuses loopback addresses.
    wanted = ('probe_type="Liveness",result="successful"', f'pod="{pod.metadata.name}"')
    tls = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    tls.load_cert_chain(str(cluster.pki / "admin.crt"), str(cluster.pki / "admin.key"))

    def probed() -> bool:
        url = f"https://localhost:{cluster.extra['kubelet_port']}/metrics/probes"
        with urllib.request.urlopen(url, context=tls, timeout=5) as r:
            raw = r.read().decode()
        return any(all(w in line for w in wanted) and float(line.rsplit(" ", 1)[1]) >= 1
                   for line in raw.splitlines() if line.startswith("prober_probe_total{"))
    wait_for(probed, timeout=45, interval=1, what="a successful liveness probe of the operator pod")
    assert core.read_namespaced_pod(pod.metadata.name, install.release_ns).status.container_statuses[0] \
        .restart_count == 0


@pytest.mark.parametrize("verb,resource,where,allowed", [
    # what the operator needs, in the namespace it watches
    ("watch", f"executions.{GROUP}", "watched", "yes"),
    ("patch", f"executions.{GROUP}", "watched", "yes"),
    ("create", f"executions.{GROUP}", "watched", "yes"),
    ("patch", f"executions.{GROUP}/status", "watched", "yes"),
    ("create", "pods", "watched", "yes"),
    ("delete", "pods", "watched", "yes"),
    ("create", "serviceaccounts", "watched", "yes"),
    ("create", "roles", "watched", "yes"),
    ("create", "rolebindings", "watched", "yes"),
    ("create", "events", "watched", "yes"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", "cluster", "yes"),
    # ttlSecondsAfterFinished and Schedule history limits; Schedules are watched, suspended, their status written
    ("delete", f"executions.{GROUP}", "watched", "yes"),
    ("watch", f"schedules.{GROUP}", "watched", "yes"),
    ("patch", f"schedules.{GROUP}", "watched", "yes"),
    ("patch", f"schedules.{GROUP}/status", "watched", "yes"),
    ("create", "networkpolicies.networking.k8s.io", "watched", "yes"),  # one per runner pod
    ("create", "tokenreviews.authentication.k8s.io", "cluster", "yes"),  # who scrapes /metrics
    ("create", "subjectaccessreviews.authorization.k8s.io", "cluster", "yes"),
    # nothing more: no list or delete on runner RBAC (the garbage collector deletes it), no update anywhere
    ("list", "serviceaccounts", "watched", "no"),
    ("delete", "serviceaccounts", "watched", "no"),
    ("patch", "roles", "watched", "no"),
    ("delete", "rolebindings", "watched", "no"),
    ("update", f"executions.{GROUP}", "watched", "no"),
    ("update", f"executions.{GROUP}/status", "watched", "no"),
    ("patch", "events", "watched", "no"),
    ("create", "pods", "other", "no"),
    ("create", "networkpolicies.networking.k8s.io", "release", "no"),
    ("create", f"schedules.{GROUP}", "watched", "no"),
    ("delete", f"schedules.{GROUP}", "watched", "no"),
    ("get", "secrets", "watched", "no"),
    ("list", "configmaps", "watched", "no"),
    ("update", "pods", "watched", "no"),
    ("bind", "roles", "watched", "no"),
    ("escalate", "roles", "watched", "no"),
    ("create", "pods", "release", "no"),
    ("list", f"executions.{GROUP}", "release", "no"),
    ("get", "secrets", "cluster", "no"),
    ("delete", "namespaces", "cluster", "no"),
])
def test_service_account_holds_exactly_what_the_operator_needs(kubectl, install, verb, resource, where, allowed):
    scope = {"watched": ["-n", install.ns], "release": ["-n", install.release_ns], "cluster": ["--all-namespaces"],
             "other": ["-n", "default"]}
    base, _, sub = resource.partition("/")
    assert can_i(kubectl, install.subject, verb, base, *scope[where], subresource=sub) == allowed


def test_demo_scenario_cancels_gracefully_and_is_counted(core, kubectl, install, fx):
    # Steps of 5 s: the runner also reads spec.cancel at every step boundary, and the cancel below lands
    # just after one, so the SIGTERM (about a second away on the real node) comes first.
    kubectl("apply", "-n", install.ns, "-f", "-", input=longrun_example("longrun", step_seconds=5))
    fx.wait_step("longrun")
    assert fx.phase("longrun") == "Running"
    runner = fx.pod("longrun")
    assert runner.spec.service_account_name == "flux-runner-longrun", "made by the operator pod"
    assert runner.spec.containers[0].image == REAL_NODE_RUNNER_IMAGE, "the chart's runner.image"
    log = LogFollower(core, install.ns, "longrun-runner", "runner")  # through the API: the log goes with the pod
    cancel_with_kubectl(kubectl, install, "longrun")
    status = fx.wait_phase("longrun", "Cancelled", timeout=60)
    c = status["cancellation"]
    assert (c["reason"], c["source"], c["outcome"]) == ("helm", "spec", "Graceful")
    assert status["checkpoint"]["data"]["cleanedUp"] is True
    assert fx.pod("longrun") is None
    assert "received SIGTERM" in log.finish(), "the kubelet's SIGTERM reached the runner"
    counted = samples(scrape(install), "flux_cancellations_total")
    assert counted[frozenset({("outcome", "Graceful"), ("source", "spec")})] == 1.0


def test_the_charts_policies_refuse_a_tenant_and_name_its_operator(api, custom, kubeconfig, kube_env, install, fx):
    tenant = make_tenant(api, kubeconfig, kube_env, install.ns)
    steal = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "Execution", "metadata": {"name": "steal"},
             "spec": {"workflow": "flux_examples.environment:main", "input": {"names": ["PASSWORD"]},
                      "podTemplate": {"env": [{"name": "PASSWORD", "valueFrom": {
                          "secretKeyRef": {"name": "db-admin", "key": "password"}}}]}}}
    try:
        applied = tenant.kubectl("apply", "-f", "-", input=yaml.safe_dump(steal))
    finally:
        tenant.close()
    assert applied.returncode != 0
    assert f"spec.podTemplate.env[0]: you may not get secret db-admin in {install.ns}" in applied.stderr
    found = custom.get_cluster_custom_object(GROUP, "v1alpha1", "tenancypolicies", "flux-tenancy")
    assert found["spec"]["operators"] == [install.subject], "exempt: the chart's operator, no one else"


def test_metrics_service_selects_the_operator_on_the_metrics_port(core, install):
    pod = running_operator_pod(core, install)
    service = core.read_namespaced_service(f"{FULLNAME}-metrics", install.release_ns)
    ports = {p.name: p for p in service.spec.ports}
    assert ports["metrics"].port == install.metrics_port and ports["metrics"].target_port == "metrics"
    assert service.spec.selector.items() <= pod.metadata.labels.items()
    # Resolved as the endpoints controller would: the selected pod and its port named "metrics". (The
    # process node's pods have IP 127.0.0.1, which EndpointSlices refuse, so we resolve it here.)
    container_ports = {p.name: p.container_port for p in pod.spec.containers[0].ports}
    assert container_ports["metrics"] == install.metrics_port
    # Scraped on loopback: every pod here is on the host network, and the network rule keeps traffic off
    # the host's other addresses (on the real node the pod IP is the node's InternalIP).
    assert "flux_cancellations_total" in scrape(install, container_ports[ports["metrics"].target_port])
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"https://127.0.0.1:{install.metrics_port}/metrics", context=insecure_tls(), timeout=10)
    assert refused.value.code == 401, "no token, no metrics"


@contextmanager
def without_pod_verb(api, kubectl, install, verb: str):
    """The chart's application Role without `verb` on pods while the block runs; replaced as the chart wrote it
    afterwards, whatever happened."""
    rbac = client.RbacAuthorizationV1Api(api)
    original = api.sanitize_for_serialization(rbac.read_namespaced_role(f"{FULLNAME}-application", install.ns))
    broken = json.loads(json.dumps(original))
    pod_rules = [r for r in broken["rules"] if r["resources"] == ["pods"]]
    assert len(pod_rules) == 1 and verb in pod_rules[0]["verbs"]
    pod_rules[0]["verbs"].remove(verb)
    kubectl("replace", "-f", "-", input=json.dumps(broken))
    try:
        wait_for(lambda: kubectl("auth", "can-i", verb, "pods", "-n", install.ns, f"--as={install.subject}",
                                 check=False).stdout.strip() == "no", timeout=10, what="the rule to be gone")
        yield
    finally:
        for key in ("resourceVersion", "managedFields"):  # replace unconditionally, as the chart wrote it
            original["metadata"].pop(key, None)
        kubectl("replace", "-f", "-", input=json.dumps(original))


def test_without_delete_on_pods_a_cancel_cannot_finish(core, api, kubectl, install, fx):
    with without_pod_verb(api, kubectl, install, "delete"):
        kubectl("apply", "-n", install.ns, "-f", "-", input=longrun_example("stuck"))
        fx.wait_step("stuck")
        cancel_with_kubectl(kubectl, install, "stuck")
        fx.wait_phase("stuck", "Cancelling", timeout=15)
        phases = set()
        for _ in range(30):  # 15 s: it must stay Cancelling, its pod in place
            phases.add(fx.phase("stuck"))
            assert fx.pod("stuck") is not None
            time.sleep(0.5)
        assert phases == {"Cancelling"}
        log = wait_log(core, install.release_ns, running_operator_pod(core, install).metadata.name, "Forbidden",
                       "operator", timeout=15)
        assert "403" in log and "Forbidden" in log
        assert install.subject in log and "cannot delete resource" in log, \
            "the operator calls the API as the chart's ServiceAccount"
    # The one rule was the cause: with it back, the stuck cancel completes.
    assert fx.wait_phase("stuck", "Cancelled", timeout=30)["cancellation"]["outcome"] == "Graceful"


def test_without_create_on_pods_an_execution_waits_and_starts_once_the_role_is_back(api, kubectl, install, fx):
    """The operator's own role lacking a right (a chart upgrade mid-way, a verb left out) is not the tenant's
    doing: the execution waits, saying why, instead of failing; with the rule back it runs."""
    with without_pod_verb(api, kubectl, install, "create"):
        fx.create(manifest("norole", "flux_examples.quick:main", {"name": "role"}))
        wait_for(lambda: "(Forbidden: " in (fx.status("norole").get("message") or ""), timeout=30,
                 what="the execution to say it waits for the operator's role")
        for _ in range(10):  # 5 s: waiting, never failed
            status = fx.status("norole")
            assert status.get("phase") in (None, "Pending"), status
            assert "cannot create resource" in status["message"], status["message"]
            time.sleep(0.5)
    status = fx.wait_phase("norole", "Succeeded", timeout=60)
    assert status["checkpoint"]["result"]["greeting"] == "hello, role"


def test_upgrade_to_json_logs_restarts_the_operator_logging_json(core, helm, install, fx):
    before = running_operator_pod(core, install)
    # The chart's rolling update starts the new pod before the old one goes (maxUnavailable 0): on the host
    # network it must not want the old pod's ports, or the scheduler would hold it Pending for good.
    install.metrics_port, install.health_port = free_port(), free_port()
    helm("upgrade", RELEASE, str(CHART), "-n", install.release_ns, "--reuse-values", "--set", "logFormat=json",
         "--set", f"metrics.port={install.metrics_port}", "--set", f"health.port={install.health_port}",
         "--wait", "--timeout", "120s")
    wait_for(lambda: before.metadata.name not in {p.metadata.name for p in operator_pods(core, install)},
             timeout=60, interval=0.5, what="the old operator pod to go (rolling update)")
    pod = running_operator_pod(core, install)
    assert "--log-format=json" in pod.spec.containers[0].args
    fx.create(manifest("quick", "flux_examples.quick:main", {"name": "helm"}))
    assert fx.wait_phase("quick", "Succeeded", timeout=60)["checkpoint"]["result"]["greeting"] == "hello, helm"
    wait_log(core, install.release_ns, pod.metadata.name, '"quick"', "operator", timeout=15)
    lines = [line for line in operator_log(core, install, pod).splitlines() if line.strip()]
    assert len(lines) >= 3
    records = [json.loads(line) for line in lines]  # every line, not just some
    assert all("message" in r and "timestamp" in r for r in records)
    assert any((r.get("object") or {}).get("name") == "quick" for r in records)


def test_uninstall_leaves_no_operator_running(core, helm, install):
    running_operator_pod(core, install)
    assert len(operator_processes(install)) == 1  # the host sees the container's processes on both nodes
    helm("uninstall", RELEASE, "-n", install.release_ns, "--wait", "--timeout", "120s")
    install.uninstalled = True
    wait_for(lambda: not operator_pods(core, install), timeout=60, interval=0.5, what="the operator pod to go")
    wait_for(lambda: not operator_processes(install), timeout=30, interval=0.5, what="the operator process to exit")
    assert not healthy(install.health_port)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_service_account(FULLNAME, install.release_ns)
    assert gone.value.status == 404
    with pytest.raises(ApiException) as policy_gone:  # templates, not crds/: they go (and upgrade) with the release
        client.AdmissionregistrationV1Api(core.api_client).read_validating_admission_policy("flux-tenant-secrets")
    assert policy_gone.value.status == 404
