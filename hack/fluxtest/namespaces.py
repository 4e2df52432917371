"""A namespace of one's own on the local cluster, for a test, a fault, an attack or a benchmark."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from flux_api.names import ENABLED_NAMESPACE_LABEL
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.probes import wait_for

TEST_LABELS = {"flux.dev/test": "true"}


@contextmanager
def fresh_namespace(core: client.CoreV1Api, enabled: bool = True, *, prefix: str = "t",
                    labels: dict[str, str] | None = None, keep: bool = False, timeout: float = 30,
                    error: type[Exception] = AssertionError) -> Iterator[str]:
    """A fresh namespace, opted in to Flux (workflows.flux.dev/enabled=true) unless `enabled` is False,
    deleted afterwards unless `keep`; `labels` say whose it is (a test's by default)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    labels = {**(TEST_LABELS if labels is None else labels), **({ENABLED_NAMESPACE_LABEL: "true"} if enabled else {})}
    core.create_namespace({"metadata": {"name": name, "labels": labels}})

    def default_sa():
        try:
            return core.read_namespaced_service_account("default", name)
        except ApiException:
            return None

    try:
        # Pods are refused until the controller-manager has made the default ServiceAccount.
        wait_for(default_sa, timeout=timeout, what=f"default ServiceAccount in {name}", error=error)
        yield name
    finally:
        if keep:
            print(f"keeping namespace {name}")
        else:
            try:
                core.delete_namespace(name, propagation_policy="Background")
            except ApiException as err:
                if err.status != 404:
                    raise
