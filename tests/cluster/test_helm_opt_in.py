"""A fresh `helm install` with the chart's defaults (cluster mode) serves no namespace until one is labelled,
its admission policy holds its ServiceAccount to labelled namespaces, and its /metrics answers only tokens
the chart's metrics-reader ClusterRole allows. The session's operator is stopped for this module, so the
chart's operator pod is the only one acting. Tests run in file order on one release.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

import pytest
from flux_api.names import ENABLED_NAMESPACE_LABEL
from fluxtest import REPO, Executions, manifest, policies, wait_for
from fluxtest.identity import mint_token, runner_account, runner_shaped
from fluxtest.namespaces import fresh_namespace
from fluxtest.operators import healthy, insecure_tls
from fluxtest.plugin import REAL_NODE_RUNNER_IMAGE
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.procs import free_port

pytestmark = pytest.mark.cluster

CHART = REPO / "charts" / "flux-operator"
RELEASE = "flux-opt-in"
FULLNAME = "flux-opt-in-flux-operator"
OPERATOR_IMAGE = "localhost/flux-operator:dev"


@dataclass
class Release:
    namespace: str
    metrics_port: int
    health_port: int
    uninstalled: bool = False

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{FULLNAME}"


@pytest.fixture(scope="module")
def chart(cluster, core, kubectl, kubeconfig, operator, helm):
    operator.stop()  # only the chart's operator acts from here on
    policies.remove(kubectl)  # the chart brings its own admission policies, naming its own operator
    with fresh_namespace(core, enabled=False) as release_ns:
        release = Release(release_ns, free_port(), free_port())
        repository, tag = OPERATOR_IMAGE.rsplit(":", 1)
        try:
            # The chart's defaults, but for what this cluster needs: one replica on free host ports (every pod
            # is on the host network here), our own images (never pulled; the process node ignores them).
            helm("install", RELEASE, str(CHART), "-n", release_ns, "--wait", "--timeout", "120s",
                 "--set", f"metrics.port={release.metrics_port}", "--set", f"health.port={release.health_port}",
                 "--set", "replicaCount=1", "--set", f"runner.image={REAL_NODE_RUNNER_IMAGE}",
                 "--set", f"image.repository={repository}", "--set-string", f"image.tag={tag}",
                 "--set", "image.pullPolicy=Never")
            wait_for(lambda: healthy(release.health_port), timeout=90, interval=0.5, what="the chart's operator")
            yield release
        finally:
            if not release.uninstalled:
                helm("uninstall", RELEASE, "-n", release_ns, "--wait", check=False)
            policies.install(kubectl, kubeconfig)
            operator.start()


def notices(core: client.CoreV1Api, namespace: str, name: str) -> list[client.CoreV1Event]:
    items = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return [e for e in items if e.reason == "NamespaceNotEnabled"]


def test_a_fresh_install_serves_no_namespace_until_one_is_labelled(chart, custom, core, api):
    with fresh_namespace(core, enabled=False) as ns:
        fx = Executions(custom, core, ns)
        fx.create(manifest("waits", "flux_examples.quick:main", {"name": "helm"}))
        event = wait_for(lambda: notices(core, ns, "waits"), timeout=60, what="the chart operator's notice")[0]
        assert event.type == "Warning" and event.reporting_component == "flux-operator"
        assert f"kubectl label namespace {ns} {ENABLED_NAMESPACE_LABEL}=true" in event.message
        for _ in range(6):
            assert not fx.get("waits").get("status") and fx.pod("waits") is None
            time.sleep(0.5)
        core.patch_namespace(ns, {"metadata": {"labels": {ENABLED_NAMESPACE_LABEL: "true"}}})
        status = fx.wait_phase("waits", "Succeeded", timeout=90)
        assert status["checkpoint"]["result"]["greeting"] == "hello, helm"
        policy = client.NetworkingV1Api(api).read_namespaced_network_policy("flux-runner-waits", ns)
        assert policy.spec.pod_selector.match_labels["workflows.flux.dev/execution"] == "waits"


def as_operator(kube_env, release: Release, body: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "create", f"--as={release.user}", "--dry-run=server", "-f", "-"], env=kube_env,
                          input=json.dumps(body), capture_output=True, text=True, timeout=60)


def test_the_charts_policy_holds_its_operator_to_labelled_namespaces(chart, core, kube_env):
    with fresh_namespace(core, enabled=False) as off, fresh_namespace(core) as on:
        def pod(ns: str) -> dict:
            return runner_shaped("Pod", ns)
        for ns in (on, off):
            runner_account(core, ns)
        assert as_operator(kube_env, chart, pod(on)).returncode == 0
        refused = as_operator(kube_env, chart, pod(off))
        assert refused.returncode != 0 and f"{off} is not" in refused.stderr, refused.stderr
        assert f"{FULLNAME}-enabled-namespaces" in refused.stderr, "the chart's own policy said no"


def scrape(port: int, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"https://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, context=insecure_tls(), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_metrics_answer_only_tokens_the_metrics_reader_role_allows(chart, api, core):
    rbac = client.RbacAuthorizationV1Api(api)
    ns = chart.namespace
    for account in ("prometheus", "nosy"):
        core.create_namespaced_service_account(ns, {"metadata": {"name": account}})
    binding = f"prometheus-{uuid.uuid4().hex[:6]}"
    rbac.create_cluster_role_binding({
        "metadata": {"name": binding},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{FULLNAME}-metrics-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": ns}]})
    try:
        assert scrape(chart.metrics_port, None) == 401
        assert scrape(chart.metrics_port, mint_token(core, ns, "nosy")) == 403
        assert scrape(chart.metrics_port, mint_token(core, ns, "prometheus")) == 200
    finally:
        rbac.delete_cluster_role_binding(binding)


def queued_in(api, token: str, method: str, path: str, body: dict | None = None) -> tuple[str, str]:
    """The FlowSchema and the priority level the API server put a request with this token in: its response
    headers name them by UID, whatever it answered (a 403 or a 404 is classified too)."""
    tls = ssl.create_default_context(cafile=api.configuration.ssl_ca_cert)
    request = urllib.request.Request(api.configuration.host + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/merge-patch+json"})
    try:
        with urllib.request.urlopen(request, context=tls, timeout=10) as response:
            headers = response.headers
    except urllib.error.HTTPError as err:
        headers = err.headers
    flow = client.FlowcontrolApiserverV1Api(api)
    schemas = {s.metadata.uid: s.metadata.name for s in flow.list_flow_schema().items}
    levels = {p.metadata.uid: p.metadata.name for p in flow.list_priority_level_configuration().items}
    return (schemas.get(headers.get("X-Kubernetes-PF-FlowSchema-UID"), "none"),
            levels.get(headers.get("X-Kubernetes-PF-PriorityLevel-UID"), "none"))


def test_the_api_server_serves_the_operator_apart_and_queues_runners_by_namespace(chart, api, core):
    """A flood of Execution writes from any ServiceAccount (a runner's, a tenant's bot) waits in the runners'
    own queues, a namespace a flow; the operator's requests never queue behind them."""
    ns = chart.namespace
    core.create_namespaced_service_account(ns, {"metadata": {"name": "bot"}})
    operator, bot = mint_token(core, ns, FULLNAME), mint_token(core, ns, "bot")
    executions = f"/apis/workflows.flux.dev/v1alpha1/namespaces/{ns}/executions"
    seen = {
        "operator lists": queued_in(api, operator, "GET", executions),
        "operator patches a status": queued_in(api, operator, "PATCH", f"{executions}/x/status", {"status": {}}),
        "bot patches a status": queued_in(api, bot, "PATCH", f"{executions}/x/status", {"status": {}}),
        "bot gets one": queued_in(api, bot, "GET", f"{executions}/x"),
        "bot lists": queued_in(api, bot, "GET", executions),
    }
    runners = (f"{FULLNAME}-runners", f"{FULLNAME}-runners")
    assert seen == {"operator lists": (f"{FULLNAME}-operator", "workload-high"),
                    "operator patches a status": (f"{FULLNAME}-operator", "workload-high"),
                    "bot patches a status": runners, "bot gets one": runners,
                    "bot lists": ("service-accounts", "workload-low")}, seen


def test_uninstall_takes_the_policy_and_the_cluster_roles_with_it(chart, api, helm):
    helm("uninstall", RELEASE, "-n", chart.namespace, "--wait", "--timeout", "120s")
    chart.uninstalled = True
    admission = client.AdmissionregistrationV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    flow = client.FlowcontrolApiserverV1Api(api)
    for read in (lambda: admission.read_validating_admission_policy(f"{FULLNAME}-enabled-namespaces"),
                 lambda: rbac.read_cluster_role(f"{FULLNAME}-application"),
                 lambda: rbac.read_cluster_role(f"{FULLNAME}-framework"),
                 lambda: flow.read_flow_schema(f"{FULLNAME}-operator"),
                 lambda: flow.read_priority_level_configuration(f"{FULLNAME}-runners")):
        with pytest.raises(ApiException) as gone:
            read()
        assert gone.value.status == 404
