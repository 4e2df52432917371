"""The process node's view of the API server: pods as plain dicts, one place for every call it makes."""

from __future__ import annotations

import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from localcluster.kube import create_unless_there

LEASE_SECONDS = 40
CAPACITY = {"cpu": "32", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"}


def now_iso() -> str:
    """Second precision, as a kubelet writes container timestamps."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeApi:
    """Everything the node asks of the API server, with pods as plain dicts."""

    def __init__(self, api: client.ApiClient, node_name: str, workdir: Path) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.node_name = node_name
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.kubelet_port = 0  # where the log server listens; published in status.daemonEndpoints

    def log_path(self, pod: dict, container: str) -> Path:
        m = pod["metadata"]
        return self.logs / f"{m['namespace']}_{m['name']}_{m['uid'][:8]}_{container}.log"

    def read_object(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        read = self.core.read_namespaced_config_map if kind == "ConfigMap" else self.core.read_namespaced_secret
        try:
            return read(name, namespace).data or {}
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def request_token(self, pod: dict, sat: dict) -> str:
        meta = pod["metadata"]
        spec = {"expirationSeconds": sat.get("expirationSeconds", 3600),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}}
        if sat.get("audience"):
            spec["audiences"] = [sat["audience"]]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        result = self.core.create_namespaced_service_account_token(
            pod["spec"].get("serviceAccountName", "default"), meta["namespace"], body)
        return result.status.token

    def patch_status(self, pod: dict, status: dict) -> None:
        meta = pod["metadata"]
        try:
            self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})
        except ApiException as err:
            if err.status != 404:
                raise

    def delete_pod(self, pod: dict) -> None:
        meta = pod["metadata"]
        body = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"]))
        try:
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], body=body)
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    # --- the Node and its Lease -------------------------------------------------------------------

    def register(self, apiserver_port: int) -> None:
        labels = {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "flux.dev/process-node": "true"}
        create_unless_there(self.core.create_node, {"metadata": {"name": self.node_name, "labels": labels}})
        self.heartbeat()

    def heartbeat(self) -> None:
        now = now_iso()
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "process node is posting ready status", "lastHeartbeatTime": now,
                 "lastTransitionTime": now}
        pressure = [{"type": t, "status": "False", "reason": f"KubeletHas{r}", "lastHeartbeatTime": now,
                     "lastTransitionTime": now}
                    for t, r in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"),
                                 ("PIDPressure", "SufficientPID"))]
        status = {"capacity": CAPACITY, "allocatable": CAPACITY, "conditions": [ready, *pressure],
                  # Loopback only: the API server dials these to reach the log server.
                  "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                {"type": "Hostname", "address": "localhost"}],
                  "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
                  "nodeInfo": {"kubeletVersion": "v1.35.4-process-node", "kubeProxyVersion": "",
                               "operatingSystem": "linux", "architecture": "amd64",
                               "containerRuntimeVersion": "process://0.1", "kernelVersion": platform.release(),
                               "osImage": "flux process node", "machineID": "", "systemUUID": "", "bootID": ""}}
        self.core.patch_node_status(self.node_name, {"status": status})
        self._renew_lease()

    def _renew_lease(self) -> None:
        body = {"metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_SECONDS,
                         "renewTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())}}
        try:
            self.coordination.patch_namespaced_lease(self.node_name, "kube-node-lease", body)
        except ApiException as err:
            if err.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", body)
