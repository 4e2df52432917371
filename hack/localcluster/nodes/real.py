"""The real node (FLUX_NODE=real): containerd, runc and a kubelet at the pinned version; realnode holds
their configuration and commands, this their part in `up`, the supervisor and `down`.

Order matters on both ends. Up: record the host, build images, write every config, then the
supervisor starts containerd, imports the images, starts the kubelet; once the cluster is ready the
host-network admission policy goes in. Down: cordon the node and delete its pods through the API (the
kubelet stops their containers), then the supervisor stops the kubelet, removes what is left in
containerd and stops it; finally the host is put back as it was recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from localcluster import hoststate, procs, realnode
from localcluster.layout import Layout, binaries_dir
from localcluster.nodes.protocol import Hooks
from localcluster.pki import make_pki
from localcluster.probes import http_ok

HOST_BEFORE = "host-before.json"
DRAIN_TIMEOUT = 60


class RealNode:
    kind = "real"
    name = realnode.NODE_NAME
    runner_image: str | None = "localhost/flux-examples:dev"  # hack/build-images.sh
    python_image: str | None = "localhost/flux-runner:dev"  # the bare runner image has python3
    # A kubelet's pod worker, right after it started a container, waits for its next PLEG relist (every
    # 1 s) before it acts on the pod again: a delete in that second waits for it.
    settle_seconds = 2.0
    serves_exec = True

    def binaries(self) -> Path:
        return binaries_dir(with_node=True)

    def plan(self, layout: Layout) -> None:
        """Before any process starts: the host snapshot, the Service slot, ports and images."""
        hoststate.save(layout.root, layout.root / HOST_BEFORE)
        started = time.monotonic()
        archives = realnode.image_archives(layout.bin)
        print(f"images ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
        slot = realnode.service_slot()
        layout.extra.update(slot=slot, kubelet_port=procs.free_port(), kubelet_healthz_port=procs.free_port(),
                            images=[str(a) for a in archives])
        # The API server sits on the loopback Service address (the network rule in realnode).
        layout.server = f"https://{realnode.apiserver_ip(slot)}:443"

    def make_pki(self, layout: Layout) -> None:
        make_pki(layout.pki, extra_ips=(realnode.apiserver_ip(layout.extra["slot"]),), kubelet_name=self.name)

    def write_configs(self, layout: Layout) -> None:
        realnode.prepare(realnode.Paths(layout.root), layout.bin, layout.pki, layout.server,
                         layout.extra["kubelet_port"], layout.extra["kubelet_healthz_port"])

    def apiserver_flags(self, layout: Layout) -> list[str]:
        return realnode.apiserver_flags(layout.extra["slot"], layout.pki)

    def commands(self, layout: Layout) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        paths = realnode.Paths(layout.root)
        # containerd first: our images import into it while the control plane starts.
        return ({"containerd": realnode.containerd_command(layout.bin, paths)},
                {"kubelet": realnode.kubelet_command(layout.bin, paths)})

    def hooks(self, layout: Layout) -> Hooks:
        paths = realnode.Paths(layout.root)
        hooks = Hooks()
        hooks.health["containerd"] = lambda: realnode.containerd_ready(layout.bin, paths)
        hooks.health["kubelet"] = lambda: http_ok(f"http://127.0.0.1:{layout.extra['kubelet_healthz_port']}/healthz")
        failures: list[Exception] = []

        def import_images() -> None:
            started = time.monotonic()
            try:
                realnode.import_images(layout.bin, paths, [Path(a) for a in layout.extra["images"]])
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
                failures.append(err)
                return
            print(f"supervisor: images imported in {time.monotonic() - started:.1f}s", flush=True)

        importer = threading.Thread(target=import_images, daemon=True)

        def images_imported() -> None:  # the kubelet starts only once its images are there
            importer.join()
            if failures:
                raise RuntimeError(str(failures[0]))

        hooks.after_start["containerd"] = importer.start
        hooks.before_start["kubelet"] = images_imported
        hooks.before_stop["containerd"] = lambda: remove_containers(layout.bin, paths)
        return hooks

    def after_ready(self, layout: Layout) -> None:
        ready = time.monotonic()
        install_host_network_policy(layout)
        print(f"host-network policy in effect {time.monotonic() - ready:.1f}s after ready", file=sys.stderr)

    def before_down(self, layout: Layout) -> None:
        drain(layout)

    def after_down(self, root: Path) -> None:
        restore_host(root)


def remove_containers(bin_dir: Path, paths: realnode.Paths) -> None:
    """The kubelet is gone; kill and delete whatever containers remain, so every shim exits with them
    (stopping containerd alone would leave shims and containers running)."""
    listed = realnode.ctr(bin_dir, paths, "containers", "list", "--quiet", timeout=30)
    for cid in listed.stdout.split():
        # --force kills a running task first; a container without a task just answers "not found".
        realnode.ctr(bin_dir, paths, "tasks", "delete", "--force", cid, timeout=30)
        realnode.ctr(bin_dir, paths, "containers", "delete", cid, timeout=30)


def kubectl(layout: Layout, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(layout.bin / "kubectl"), f"--kubeconfig={layout.kubeconfig}", *args],
                          capture_output=True, text=True, input=input, timeout=60)


def install_host_network_policy(layout: Layout) -> None:
    """Applies the policy and waits until the API server enforces it (a server-side dry run shows it)."""
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": realnode.host_network_policy()})
    applied = kubectl(layout, "apply", "--server-side", "-f", "-", input=manifest)
    if applied.returncode != 0:
        raise RuntimeError(f"installing the host-network policy failed: {applied.stderr.strip()}")
    probe = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flux-policy-probe"},
                        "spec": {"containers": [{"name": "c", "image": realnode.SANDBOX_IMAGE,
                                                 "ports": [{"containerPort": 1}]}]}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = kubectl(layout, "create", "--dry-run=server", "-o", "json", "-f", "-", input=probe)
        if out.returncode == 0 and json.loads(out.stdout)["spec"].get("hostNetwork"):
            return
        time.sleep(0.2)
    raise RuntimeError("the host-network admission policy did not take effect within 30s")


def drain(layout: Layout) -> None:
    """Cordon, then delete every pod on the node and wait until the kubelet has confirmed each."""
    from kubernetes import client  # the Python client is slow to import; only down needs it here
    from kubernetes.client.rest import ApiException

    from localcluster.kube import api_client

    with api_client(layout.kubeconfig) as api:
        core = client.CoreV1Api(api)
        selector = f"spec.nodeName={realnode.NODE_NAME}"
        try:
            core.patch_node(realnode.NODE_NAME, {"spec": {"unschedulable": True}})
            for pod in core.list_pod_for_all_namespaces(field_selector=selector).items:
                try:  # a short grace: the kubelet still stops each container and confirms it
                    core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=1)
                except ApiException as err:
                    if err.status != 404:
                        raise
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while core.list_pod_for_all_namespaces(field_selector=selector).items:
                if time.monotonic() > deadline:
                    print("down: pods still on the node after 60s; containerd's sweep removes them", file=sys.stderr)
                    return
                time.sleep(0.2)
        except ApiException as err:
            print(f"down: could not drain the node through the API ({err.status}); sweeping instead",
                  file=sys.stderr)


def restore_host(root: Path) -> list[str]:
    before_file = root / HOST_BEFORE
    if not before_file.exists():
        return []
    problems = hoststate.restore(root, json.loads(before_file.read_text()))
    for problem in problems:
        print(f"down: host not fully restored: {problem}", file=sys.stderr)
    before_file.unlink()
    return problems
