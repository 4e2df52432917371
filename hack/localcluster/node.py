"""The process node: registers a Node, keeps it Ready, and runs the pods bound to it as processes.

Single-threaded on purpose, except for the watch: container helpers are spawned from the main
thread, so PR_SET_PDEATHSIG ties them to this process and none outlives it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import signal
import threading
import time
from pathlib import Path

from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from localcluster.kube import api_client
from localcluster.podrunner import PodRunner, now_iso

HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40
CAPACITY = {"cpu": "32", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"}


class NodeApi:
    """Everything the node asks of the API server, with pods as plain dicts."""

    def __init__(self, api: client.ApiClient, node_name: str, workdir: Path) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.node_name = node_name
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

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
        try:
            self.core.create_node({"metadata": {"name": self.node_name, "labels": labels}})
        except ApiException as err:
            if err.status != 409:
                raise
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
                  "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                {"type": "Hostname", "address": self.node_name}],
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


def _watch_pods(api: NodeApi, events: "queue.Queue[tuple[str, dict]]", stop: threading.Event) -> None:
    """Feeds (type, pod) events; a fresh list after every watch break keeps nothing missed."""
    selector = f"spec.nodeName={api.node_name}"
    while not stop.is_set():
        try:
            listing = api.core.list_pod_for_all_namespaces(field_selector=selector, _preload_content=False)
            body = json.loads(listing.data)
            events.put(("RESYNC", {"items": body["items"]}))
            stream = watch.Watch().stream(api.core.list_pod_for_all_namespaces, field_selector=selector,
                                          resource_version=body["metadata"]["resourceVersion"],
                                          timeout_seconds=300, _preload_content=False)
            for event in stream:
                if stop.is_set():
                    return
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    events.put((event["type"], event["raw_object"]))
        except (ApiException, HTTPError, OSError, ValueError) as err:
            print(f"process-node: watch restarting: {err}", flush=True)
            time.sleep(1)


class ProcessNode:
    def __init__(self, api: NodeApi, workdir: Path, node_env: dict[str, str]) -> None:
        self.api, self.workdir, self.node_env = api, workdir, node_env
        self.pods: dict[str, PodRunner] = {}
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.stopping = threading.Event()

    def run(self, apiserver_port: int) -> None:
        self.api.register(apiserver_port)
        threading.Thread(target=_watch_pods, args=(self.api, self.events, self.stopping), daemon=True).start()
        next_beat = time.monotonic() + HEARTBEAT_SECONDS
        while not self.stopping.is_set():
            try:
                kind, obj = self.events.get(timeout=0.1)
                self._apply(kind, obj)
                while not self.events.empty():
                    self._apply(*self.events.get_nowait())
            except queue.Empty:
                pass
            for uid, runner in list(self.pods.items()):
                try:
                    runner.sync()
                except (ApiException, HTTPError, OSError) as err:
                    # One pod's trouble must not take the node, and every other pod, down with it.
                    print(f"process-node: {runner.key}: {err}", flush=True)
                if runner.removed:
                    del self.pods[uid]
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + HEARTBEAT_SECONDS
                try:
                    self.api.heartbeat()
                except (ApiException, HTTPError) as err:
                    print(f"process-node: heartbeat failed: {err}", flush=True)
        self.shutdown()

    def _apply(self, kind: str, pod: dict) -> None:
        if kind == "RESYNC":
            seen = {p["metadata"]["uid"] for p in pod["items"]}
            for uid in [u for u in self.pods if u not in seen]:
                self.pods.pop(uid).kill_now()
            for p in pod["items"]:
                self._apply("MODIFIED", p)
            return
        uid = pod["metadata"]["uid"]
        if kind == "DELETED":
            runner = self.pods.pop(uid, None)
            if runner:
                runner.kill_now()
            return
        if uid in self.pods:
            self.pods[uid].pod = pod
        elif (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") or pod["metadata"].get(
                "deletionTimestamp"):
            self.pods[uid] = PodRunner(pod, self.workdir / "pods" / uid, self.node_env, self.api)

    def shutdown(self) -> None:
        for runner in self.pods.values():
            runner.kill_now()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster node")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--apiserver-port", required=True, type=int)
    parser.add_argument("--ca", required=True, type=Path)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    # What kubelet injects into every container; PATH stands in for the image's.
    node_env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(args.apiserver_port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(args.apiserver_port),
                "KUBERNETES_PORT": f"tcp://127.0.0.1:{args.apiserver_port}"}
    node = ProcessNode(NodeApi(api_client(args.kubeconfig), args.name, args.dir), args.dir, node_env)
    signal.signal(signal.SIGTERM, lambda *_: node.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: node.stopping.set())
    node.run(args.apiserver_port)
    return 0
