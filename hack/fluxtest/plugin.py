"""The pytest plugin of the test suite: one real local cluster per run (reused when already up),
a fresh namespace per test, the operator as a local process. Enabled by tests/conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client
from localcluster import cluster as localcluster
from localcluster.kube import api_client
from localcluster.layout import Layout, cluster_dir
from localcluster.nodes import choice
from localcluster.nodes.real import RealNode

from fluxtest import identity, policies
from fluxtest.namespaces import fresh_namespace
from fluxtest.operators import OperatorProcess
from fluxtest.tenancy import privileged, tenant, tenant_namespace  # noqa: F401 (fixtures for every suite)

REAL_NODE_RUNNER_IMAGE = RealNode.runner_image  # what the chart tests give runner pods on either node


NODE_MARKERS = {"real_node_only": "real", "process_node_only": "process"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked for one node kind fails on the other, loudly: the Makefile's targets deselect them
    with -m (a skip at run time would hide a test that never runs)."""
    for marker, kind in NODE_MARKERS.items():
        if item.get_closest_marker(marker) and choice.node_kind() != kind:
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
        # Only the cluster this session started: a session killed but slow to die (its teardown runs late)
        # must not take down the cluster a newer run has since started in the same directory.
        now = Layout.load(root)
        if now is not None and (now.supervisor_pid, now.ports) == (layout.supervisor_pid, layout.ports):
            localcluster.down(root)


@pytest.fixture(scope="session")
def kubeconfig(cluster: Layout) -> Path:
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def kube_env(cluster: Layout) -> dict[str, str]:
    """Environment for kubectl and plugins: our kubectl first on PATH, our kubeconfig."""
    path = f"{cluster.bin}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "PATH": path}
    image = choice.of(cluster).runner_image
    if image:  # a node that runs images: runner pods run our example workflow image (hack/build-images.sh)
        env.setdefault("FLUX_RUNNER_IMAGE", image)
    return env


def command_runner(program: str, env: dict[str, str], timeout: float, name: str, show_stdout: bool = False):
    """`program` as a function of its arguments, in `env`: the CompletedProcess, or (check=True) an
    AssertionError naming what failed (with stdout for helm, which reports there)."""
    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([program, *args], env=env, capture_output=True, text=True, input=input,
                                timeout=timeout)
        if check and result.returncode != 0:
            output = result.stdout + result.stderr if show_stdout else result.stderr
            raise AssertionError(f"{name} {' '.join(args)} failed: {output}")
        return result
    return run


@pytest.fixture(scope="session")
def kubectl(kube_env: dict[str, str]):
    return command_runner("kubectl", kube_env, 120, "kubectl")


@pytest.fixture(scope="session")
def helm(cluster: Layout, kube_env: dict[str, str]):
    """The cluster's helm binary (the chart tests install with it)."""
    return command_runner(str(cluster.bin / "helm"), kube_env, 180, "helm", show_stdout=True)


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


@pytest.fixture(scope="session")
def operator(cluster: Layout, crd_installed, operator_env) -> OperatorProcess:
    op = OperatorProcess(operator_env, cluster.logs)
    op.start()
    yield op
    op.stop()
