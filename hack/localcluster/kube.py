"""Small Kubernetes client helpers shared by `up`, the process node and the test fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException


def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def cluster_ready(kubeconfig: Path) -> bool:
    """The node is Ready and pods can be admitted (the default ServiceAccount exists)."""
    with api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        try:
            nodes = core.list_node().items
            core.read_namespaced_service_account("default", "default")
        except ApiException:
            return False
    return any(c.type == "Ready" and c.status == "True" for n in nodes for c in (n.status.conditions or []))


def create_unless_there(create: Callable[..., Any], *args: Any) -> None:
    """Creates an object that may exist already (a re-run, a second cluster user): a 409 is success."""
    try:
        create(*args)
    except ApiException as err:
        if err.status != 409:
            raise
