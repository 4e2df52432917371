"""The process node: registers a Node, keeps it Ready, and runs the pods bound to it as processes.

Single-threaded on purpose, except for the watch: container helpers are spawned from the main
thread, so PR_SET_PDEATHSIG ties them to this process and none outlives it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import queue
import signal
import threading
import time
from http import HTTPStatus
from pathlib import Path

from kubernetes import watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from localcluster.kube import api_client
from localcluster.logserver import LogError, LogServer, Runs
from localcluster.nodeapi import NodeApi
from localcluster.podrunner import PodRunner

HEARTBEAT_SECONDS = 10


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
        # Pods this node ran to the end and asked to remove, which finalizers keep: never started again (a
        # kubelet leaves such a pod as it ended).
        self.finished: set[str] = set()
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.stopping = threading.Event()

    def runs(self, namespace: str, pod: str, container: str) -> Runs:
        """What the log server serves; called from its threads, so it only reads (a copy of) the pods."""
        found = [r for r in list(self.pods.values()) if not r.removed and r.key == f"{namespace}/{pod}"]
        if not found:
            raise LogError(HTTPStatus.NOT_FOUND, f'pod "{pod}" in namespace "{namespace}" not found on this node')
        runner = found[-1]
        c = next((c for c in runner.containers if c.name == container), None)
        if c is None:
            raise LogError(HTTPStatus.BAD_REQUEST, f'container "{container}" is not in pod "{pod}"')
        starts = list(c.log_starts)
        return Runs(self.api.log_path(runner.pod, container), starts, bool(starts) and c.terminated is None,
                    runner.waiting_reason)

    def run(self, apiserver_port: int, log_server: LogServer) -> None:
        log_server.start()
        self.api.kubelet_port = log_server.port
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
                    self.finished.add(uid)
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
            self.finished &= seen
            for uid in [u for u in self.pods if u not in seen]:
                self.pods.pop(uid).kill_now()
            for p in pod["items"]:
                self._apply("MODIFIED", p)
            return
        uid = pod["metadata"]["uid"]
        if kind == "DELETED":
            self.finished.discard(uid)
            runner = self.pods.pop(uid, None)
            if runner:
                runner.kill_now()
            return
        if uid in self.pods:
            self.pods[uid].pod = pod
        elif uid in self.finished:
            return
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
    parser.add_argument("--serving-cert", required=True, type=Path, help="the log server's certificate")
    parser.add_argument("--serving-key", required=True, type=Path)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    # What kubelet injects into every container; PATH stands in for the image's: this interpreter's bin first
    # (where flux-runner is), whatever PATH the node was started with.
    image_path = [str(Path(sys.executable).parent), *os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")]
    node_env = {"PATH": ":".join(dict.fromkeys(image_path)),
                "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(args.apiserver_port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(args.apiserver_port),
                "KUBERNETES_PORT": f"tcp://127.0.0.1:{args.apiserver_port}"}
    node = ProcessNode(NodeApi(api_client(args.kubeconfig), args.name, args.dir), args.dir, node_env)
    signal.signal(signal.SIGTERM, lambda *_: node.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: node.stopping.set())
    log_server = LogServer(node.runs, args.serving_cert, args.serving_key, args.ca)
    try:
        node.run(args.apiserver_port, log_server)
    finally:
        log_server.stop()
    return 0
