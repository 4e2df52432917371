"""Helpers for tests that drive Executions on the local cluster."""

from __future__ import annotations

from typing import Any

from flux_api import API_VERSION, GROUP, KIND, PLURAL, VERSION, nesting, progress
from kubernetes import client
from kubernetes.client.rest import ApiException

from localcluster.probes import wait_for

TERMINAL = ("Cancelled", "Succeeded", "Failed")


def manifest(name: str, workflow: str, input_: dict | None = None, **spec: Any) -> dict:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "spec": {"workflow": workflow, "input": input_ or {}, **spec}}


def longrun(name: str, steps: int = 600, seconds: float = 0.5, **spec: Any) -> dict:
    return manifest(name, "flux_examples.longrun:main", {"steps": steps, "stepSeconds": seconds}, **spec)


def gone(read, *args) -> bool:
    """Whether `read(*args)` answers 404 now: what a test waits for after a delete or a garbage collection.
    Any other error is not an answer yet (the wait goes on)."""
    try:
        read(*args)
    except ApiException as err:
        return err.status == 404
    return False


class Executions:
    def __init__(self, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str) -> None:
        self.custom, self.core, self.ns = custom, core, namespace

    def create(self, body: dict) -> dict:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, body)

    def get(self, name: str) -> dict:
        # Decoded by flux_api.nesting, as the plugin does: the client's own json.loads dies on an object
        # nested as deep as the API server admits (tests/hostile/test_deep_objects.py makes such objects).
        response = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name,
                                                            _preload_content=False)
        return nesting.loads(response.data)

    def patch(self, name: str, body: dict) -> dict:
        response = self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, body,
                                                              _preload_content=False)
        return nesting.loads(response.data)

    def cancel(self, name: str, reason: str = "test", **extra: Any) -> dict:
        return self.patch(name, {"spec": {"cancel": {"reason": reason, **extra}}})

    def status(self, name: str) -> dict:
        return self.get(name).get("status") or {}

    def progress(self, name: str) -> dict | None:
        """The execution's ExecutionProgress (where its runner writes checkpoints while it runs), or None."""
        try:
            response = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, progress.PLURAL, name,
                                                                _preload_content=False)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return nesting.loads(response.data)

    def live_status(self, name: str) -> dict:
        """The status with the newest checkpoint: its own, or its ExecutionProgress's while that one is newer."""
        return progress.with_progress(self.get(name), self.progress(name)).get("status") or {}

    def phase(self, name: str) -> str | None:
        return self.status(name).get("phase")

    def wait_phase(self, name: str, *phases: str, timeout: float = 60) -> dict:
        return wait_for(lambda: self.status(name) if self.phase(name) in phases else None, timeout=timeout,
                        what=f"{name} to reach {phases} (now {self.phase(name)})")

    def wait_step(self, name: str, steps: int = 1, timeout: float = 60) -> dict:
        """Running with at least `steps` checkpointed steps: the runner's SIGTERM handler is in place."""
        def progressed():
            status = self.live_status(name)
            # A real kubelet may report the pod Running (so the operator says Running) a moment after the
            # runner's first checkpoint: wait for both.
            if status.get("phase") in (None, "Pending"):
                return None
            return status if len((status.get("checkpoint") or {}).get("steps") or []) >= steps else None
        return wait_for(progressed, timeout=timeout, what=f"{name} to checkpoint {steps} step(s)")

    def events(self, name: str) -> list[str]:
        return [reason for reason, _ in self.event_records(name)]

    def event_records(self, name: str) -> list[tuple[str, str]]:
        """(reason, message) of the execution's Events, oldest first."""
        items = self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={name}").items
        return [(e.reason, e.message or "") for e in sorted(items, key=lambda e: e.metadata.creation_timestamp)
                if e.involved_object.kind == KIND]

    def cancel_told(self, name: str) -> dict[str, int]:
        """How many of each of a cancel's Events there are: `CancelRequested`, or when there is none the request
        folded into the conclusion's Event (a cancel that concluded within TOLD_AFTER_SECONDS of its request),
        and the conclusion. A slower cancel has both, and its conclusion's Event tells the request again."""
        records = self.event_records(name)
        concluded = [m for r, m in records if r in ("Cancelled", "CancelIgnored")]
        requested = sum(1 for r, _ in records if r == "CancelRequested")
        folded = sum(1 for m in concluded if m.startswith("cancel requested"))
        return {"CancelRequested": requested or folded, "Cancelled": len(concluded)}

    def pod(self, name: str) -> client.V1Pod | None:
        try:
            return self.core.read_namespaced_pod(f"{name}-runner", self.ns)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise

    def spawn_tree(self, grace: int | None = None) -> None:
        """The tree example as `tree`, running until both leaves have checkpointed a step."""
        spec = {"gracePeriodSeconds": grace} if grace is not None else {}
        self.create(manifest("tree", "flux_examples.tree:main", {"steps": 600, "stepSeconds": 0.5}, **spec))
        for leaf in ("tree-left-leaf", "tree-right-leaf"):
            wait_for(lambda leaf=leaf: self.exists(leaf), timeout=60, what=f"{leaf} to be spawned")
            self.wait_step(leaf)

    def children(self, parent: str) -> list[dict]:
        return self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, label_selector=f"{GROUP}/parent={parent}")["items"]


class Schedules:
    """Schedules on the cluster, and the runs they started."""

    def __init__(self, custom: client.CustomObjectsApi, namespace: str) -> None:
        self.custom, self.ns = custom, namespace

    def create(self, body: dict) -> dict:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, "schedules", body)

    def get(self, name: str) -> dict:
        response = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "schedules", name,
                                                            _preload_content=False)
        return nesting.loads(response.data)

    def patch(self, name: str, body: dict) -> dict:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "schedules", name, body)

    def status(self, name: str) -> dict:
        return self.get(name).get("status") or {}

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, "schedules", name,
                                                    propagation_policy="Background")

    def runs(self, name: str) -> list[dict]:
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, label_selector=f"{GROUP}/schedule={name}")["items"]
        return sorted(items, key=lambda r: r["metadata"]["name"])

    def wait_runs(self, name: str, count: int, timeout: float = 150) -> list[dict]:
        return wait_for(lambda: (runs := self.runs(name)) and len(runs) >= count and runs, timeout=timeout,
                        interval=0.5, what=f"{count} run(s) of schedule {name}")


def schedule(name: str, workflow: str, input_: dict | None = None, cron: str = "* * * * *", **spec: Any) -> dict:
    return {"apiVersion": API_VERSION, "kind": "Schedule", "metadata": {"name": name},
            "spec": {"schedule": cron, "executionTemplate": {"spec": {"workflow": workflow, "input": input_ or {}}},
                     **spec}}
