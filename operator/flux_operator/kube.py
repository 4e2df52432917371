"""The operator's calls to the API server, with failures sorted into kopf's two kinds.

Conflicts, throttling and server errors are temporary (kopf or the resync retries);
a request the server rejects as invalid is permanent: retrying cannot make it valid.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import kopf
from flux_api import GROUP, PARENT_LABEL, PLURAL, VERSION
from flux_api.timefmt import format_time, utcnow
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

TEMPORARY_STATUSES = {409, 429, 500, 502, 503, 504}


def load_client_config() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


@contextlib.contextmanager
def sorted_failures(what: str) -> Iterator[None]:
    try:
        yield
    except ApiException as err:
        if err.status in TEMPORARY_STATUSES:
            raise kopf.TemporaryError(f"{what}: {err.status} {err.reason}", delay=2) from err
        raise kopf.PermanentError(f"{what}: {err.status} {err.reason}: {err.body}") from err
    except HTTPError as err:
        raise kopf.TemporaryError(f"{what}: {err}", delay=2) from err


class KubeApi:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    # --- reads: absent objects are None, not errors ---------------------------------------------

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        with sorted_failures(f"get execution {namespace}/{name}"):
            try:
                return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            except ApiException as err:
                if err.status == 404:
                    return None
                raise

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        with sorted_failures(f"get pod {namespace}/{name}"):
            try:
                pod = self.core.read_namespaced_pod(name, namespace)
            except ApiException as err:
                if err.status == 404:
                    return None
                raise
        return client.ApiClient().sanitize_for_serialization(pod)

    def list_children(self, namespace: str, parent: str) -> list[dict[str, Any]]:
        with sorted_failures(f"list children of {namespace}/{parent}"):
            result = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                               label_selector=f"{PARENT_LABEL}={parent}")
        return result["items"]

    def list_executions(self, namespace: str | None) -> list[dict[str, Any]]:
        with sorted_failures("list executions"):
            if namespace is None:
                return self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
            return self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]

    # --- writes: each one idempotent -------------------------------------------------------------

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        with sorted_failures(f"patch status of {namespace}/{name}"):
            self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name,
                                                              {"status": status})

    def patch_execution(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        with sorted_failures(f"patch execution {namespace}/{name}"):
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)

    def create_execution(self, namespace: str, body: dict[str, Any]) -> None:
        with sorted_failures(f"create execution {namespace}/{body['metadata']['name']}"):
            try:
                self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
            except ApiException as err:
                if err.status != 409:
                    raise

    def create_if_absent(self, body: dict[str, Any]) -> None:
        namespace, kind = body["metadata"]["namespace"], body["kind"]
        create = {
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Pod": self.core.create_namespaced_pod,
            "Role": self.rbac.create_namespaced_role,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
        }[kind]
        with sorted_failures(f"create {kind} {namespace}/{body['metadata']['name']}"):
            try:
                create(namespace, body)
            except ApiException as err:
                if err.status != 409:  # already there: a previous run created it
                    raise

    def delete_pod(self, namespace: str, name: str, grace_seconds: int) -> None:
        with sorted_failures(f"delete pod {namespace}/{name}"):
            try:
                self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace_seconds)
            except ApiException as err:
                if err.status != 404:
                    raise

    def emit_event(self, execution: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = execution["metadata"]
        now = format_time(utcnow())
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": execution["apiVersion"], "kind": execution["kind"],
                               "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                               "resourceVersion": meta.get("resourceVersion")},
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": "flux-operator"}, "reportingComponent": "flux-operator",
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        with sorted_failures(f"post event {reason} for {meta['namespace']}/{meta['name']}"):
            self.core.create_namespaced_event(meta["namespace"], body)
