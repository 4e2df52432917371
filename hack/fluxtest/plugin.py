"""The pytest plugin of the test suite: one real local cluster per run (reused when already up),
a fresh namespace per test, the operator as a local process. Enabled by tests/conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import cluster as localcluster
from localcluster.kube import api_client
from localcluster.layout import Layout, cluster_dir
from localcluster.procs import free_port, stop

from flux_api.names import ENABLED_NAMESPACE_LABEL

from fluxtest import identity, policies
from fluxtest.paths import CRD
from fluxtest.waiting import wait_for

REAL_NODE_RUNNER_IMAGE = "localhost/flux-examples:dev"


NODE_MARKERS = {"real_node_only": "real", "process_node_only": "process"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked for one node kind fails on the other, loudly: the Makefile's targets deselect them
    with -m (a skip at run time would hide a test that never runs)."""
    from localcluster.realnode import node_mode

    for marker, kind in NODE_MARKERS.items():
        if item.get_closest_marker(marker) and node_mode() != kind:
            pytest.fail(f"{item.nodeid} runs only on the {kind} node (FLUX_NODE={kind}); "
                        f"deselect it with -m 'not {marker}'", pytrace=False)


@pytest.fixture(scope="session")
def cluster() -> Layout:
    root = cluster_dir()
    existing = Layout.load(root)
    if localcluster.is_up(existing):
        yield existing
        return
    layout = localcluster.up(root)
    try:
        yield layout
    finally:
        localcluster.down(root)


@pytest.fixture(scope="session")
def kubeconfig(cluster: Layout) -> Path:
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def kube_env(cluster: Layout) -> dict[str, str]:
    """Environment for kubectl and plugins: our kubectl first on PATH, our kubeconfig."""
    path = f"{cluster.bin}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "PATH": path}
    if cluster.real_node:  # runner pods run our example workflow image (hack/build-images.sh)
        env.setdefault("FLUX_RUNNER_IMAGE", REAL_NODE_RUNNER_IMAGE)
    return env


@pytest.fixture(scope="session")
def kubectl(kube_env: dict[str, str]):
    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(["kubectl", *args], env=kube_env, capture_output=True, text=True, input=input,
                                timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result
    return run


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> client.ApiClient:
    with api_client(kubeconfig) as c:
        yield c


@pytest.fixture(scope="session")
def core(api) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="session")
def custom(api) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@contextlib.contextmanager
def fresh_namespace(core: client.CoreV1Api, enabled: bool = True):
    """A namespace of its own, opted in to Flux (workflows.flux.dev/enabled=true) unless `enabled` is False."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    labels = {"flux.dev/test": "true", **({ENABLED_NAMESPACE_LABEL: "true"} if enabled else {})}
    core.create_namespace({"metadata": {"name": name, "labels": labels}})

    def default_sa():
        try:
            return core.read_namespaced_service_account("default", name)
        except ApiException:
            return None

    # Pods are refused until the controller-manager has made the default ServiceAccount.
    wait_for(default_sa, timeout=30, what=f"default ServiceAccount in {name}")
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as err:
            if err.status != 404:
                raise


@pytest.fixture
def namespace(core: client.CoreV1Api) -> str:
    with fresh_namespace(core) as name:
        yield name


@pytest.fixture(scope="session")
def crd_installed(kubectl, kubeconfig) -> None:
    # The CRDs, the admission policies, and the TenancyPolicy naming the suite's operator (fluxtest.identity).
    policies.install(kubectl, kubeconfig)


@pytest.fixture(scope="session")
def operator_identity(cluster: Layout, api, kube_env, crd_installed) -> identity.Identity:
    """The chart's ServiceAccount and RBAC (cluster mode, its default values), applied as rendered."""
    return identity.install(cluster, api, kube_env)


@pytest.fixture(scope="session")
def operator_env(kube_env, operator_identity) -> dict[str, str]:
    """Environment for operator processes: logged in as the chart's ServiceAccount, not as the admin."""
    return operator_identity.operator_env(kube_env)


def operator_command() -> list[str]:
    """$FLUX_TEST_OPERATOR (e.g. .venv-operator/bin/flux-operator: the operator without the dev packages,
    as its image has it), else this interpreter's flux_operator."""
    command = os.environ.get("FLUX_TEST_OPERATOR", "").split()
    return command or [sys.executable, "-m", "flux_operator"]


class OperatorProcess:
    """The operator as a local process against the cluster; runner pods run on the process node."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.metrics_port = self.health_port = 0
        self.metrics_secure = True
        self.proc: subprocess.Popen | None = None
        self.log_path = logs / f"operator-{os.getpid()}.log"

    def health(self) -> tuple[int, dict]:
        """/healthz as (HTTP status, JSON body); (0, {}) while nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")
        except OSError:
            return 0, {}

    def start(self, *extra: str, wait_healthy: bool = True) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        self.metrics_secure = "--no-metrics-secure" not in extra
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*operator_command(), "--metrics-port", str(self.metrics_port),
                 "--health-port", str(self.health_port), "--lease-seconds", "5", *extra],
                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if wait_healthy:
            wait_for(self._healthy, timeout=60, what="operator liveness")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited: {self.log_path.read_text()[-3000:]}") from None
            return False

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
            self.proc.wait()
        stop(self.proc, timeout=15)

    def metrics(self, token: str | None = None) -> str:
        """/metrics as Prometheus would scrape it: over HTTPS with the scraper's token (fluxtest.identity)."""
        if not self.metrics_secure:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                return r.read().decode()
        if token is None:
            token_file = self.env.get(identity.SCRAPER_TOKEN_ENV)
            assert token_file, "no scraper token in this operator's environment (use the operator_env fixture)"
            token = Path(token_file).read_text()
        request = urllib.request.Request(f"https://127.0.0.1:{self.metrics_port}/metrics",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, context=insecure_tls(), timeout=10) as r:
            return r.read().decode()


def insecure_tls() -> ssl.SSLContext:
    """For the operator's self-signed /metrics certificate, as a scrape config with insecure_skip_verify."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


@pytest.fixture(scope="session")
def operator(cluster: Layout, crd_installed, operator_env) -> OperatorProcess:
    op = OperatorProcess(operator_env, cluster.logs)
    op.start()
    yield op
    op.stop()
