"""ConcurrencyLimits on the cluster, for the tests that queue executions (limits, failover)."""

from __future__ import annotations

from flux_api import GROUP, VERSION
from flux_api.names import LIMIT_PLURAL
from localcluster.probes import wait_for


class Limits:
    def __init__(self, custom, namespace: str) -> None:
        self.custom, self.ns = custom, namespace

    def create(self, name: str, max_: int, labels: dict | None = None, children: bool = False,
               seen: bool = True) -> None:
        """`seen`: waits until the operator has written the limit's status (observedGeneration), so what is made
        next is decided under it. The limit's watch and the executions' are separate streams: an execution
        created a moment after the limit may reach the operator first, and start as if there were none."""
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, LIMIT_PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ConcurrencyLimit", "metadata": {"name": name},
            "spec": {"max": max_, "selector": {"matchLabels": labels or {}}, "includeChildren": children}})
        if seen:
            wait_for(lambda: self.status(name).get("observedGeneration") == 1, timeout=30,
                     what=f"the operator to take in limit {name}")

    def set_max(self, name: str, max_: int) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, LIMIT_PLURAL, name, {"spec": {"max": max_}})

    def status(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, LIMIT_PLURAL, name).get("status") or {}

    def wait_usage(self, name: str, active: int, queued: int) -> None:
        wait_for(lambda: (self.status(name).get("active"), self.status(name).get("queued")) == (active, queued),
                 timeout=30, what=f"limit {name} to show {active} active, {queued} queued "
                                  f"(shows {self.status(name)})")


def started(fx, name: str) -> dict:
    """The execution's Started condition ({} while it has none)."""
    return next((c for c in fx.status(name).get("conditions", []) if c["type"] == "Started"), {})


def assert_queued(fx, name: str, message: str) -> None:
    wait_for(lambda: started(fx, name).get("reason") == "Queued", timeout=30, what=f"{name} to be queued")
    status = fx.status(name)
    assert status["phase"] == "Pending" and status["message"] == message, status
    assert fx.pod(name) is None, f"{name} is queued but has a runner pod"
