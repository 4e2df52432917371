"""Reads what is, asks `decide()` what to do, and does it. One execution at a time."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

import pydantic
from flux_api import Execution, Phase
from flux_api.names import runner_pod_name
from flux_api.timefmt import utcnow

from flux_operator import builders
from flux_operator import decide as machine
from flux_operator.kube import KubeApi
from flux_operator.metrics import Metrics

log = logging.getLogger("flux_operator")


def pod_view(pod: dict[str, Any] | None) -> machine.PodView | None:
    if pod is None:
        return None
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    started = any("running" in (s.get("state") or {}) or "terminated" in (s.get("state") or {})
                  or s.get("restartCount", 0) > 0 for s in statuses)
    message = ""
    for s in statuses:
        terminated = (s.get("state") or {}).get("terminated") or (s.get("lastState") or {}).get("terminated")
        if terminated:
            message = (terminated.get("message") or "").strip() or \
                f"runner exited with code {terminated.get('exitCode')} ({terminated.get('reason', 'Error')})"
    return machine.PodView(name=pod["metadata"]["name"], phase=status.get("phase", "Pending"),
                           terminating=bool(pod["metadata"].get("deletionTimestamp")), started=started,
                           exit_message=message)


class Reconciler:
    def __init__(self, api: KubeApi, runner: builders.RunnerSettings, metrics: Metrics) -> None:
        self.api, self.runner, self.metrics = api, runner, metrics
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[(namespace, name)]

    def reconcile(self, namespace: str, name: str) -> Phase | None:
        """Serialised per execution: two triggers at once must not both act on one observation."""
        with self._lock(namespace, name):
            raw = self.api.get_execution(namespace, name)
            if raw is None or raw["metadata"].get("deletionTimestamp"):
                return None
            try:
                ex = builders.with_defaults(Execution.model_validate(raw), self.runner)
            except pydantic.ValidationError as err:
                # The CRD schema admits nothing this rejects, so this is an object from a newer version.
                log.error("execution %s/%s does not parse, left alone: %s", namespace, name, err)
                return None
            pod = pod_view(self.api.get_pod(namespace, runner_pod_name(name)))
            children = [Execution.model_validate(c) for c in self.api.list_children(namespace, name)]
            actions = machine.decide(ex, pod, children, utcnow())
            for action in actions:
                self._apply(raw, ex, action)
            return ex.phase

    def _apply(self, raw: dict[str, Any], ex: Execution, action: machine.Action) -> None:
        ns, name = ex.namespace, ex.name
        match action:
            case machine.PatchStatus(patch=patch):
                self.api.patch_status(ns, name, patch)
                if "phase" in patch:
                    log.info("execution %s/%s: %s -> %s", ns, name, ex.phase.value, patch["phase"])
            case machine.EnsureRunner():
                for body in (builders.service_account(ex), builders.role(ex), builders.role_binding(ex),
                             builders.runner_pod(ex, self.runner)):
                    self.api.create_if_absent(body)
            case machine.DeletePod(name=pod, grace_seconds=grace):
                self.api.delete_pod(ns, pod, grace)
            case machine.CancelChild(name=child, reason=reason, force=force):
                self.api.patch_execution(ns, child, builders.child_cancel_patch(name, reason, force))
            case machine.CreateChild(name=child, workflow=workflow, input=input_):
                self.api.create_execution(ns, builders.child_execution(ex, child, workflow, input_))
            case machine.EmitEvent(reason=reason, message=message, type=type_):
                self.api.emit_event(raw, type_, reason, message)
            case machine.Observe():
                self.metrics.observe(action)
