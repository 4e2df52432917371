"""Periodic resync: deadlines fire and missed events heal, without a finalizer on every object."""

from __future__ import annotations

import logging
import threading

import kopf
from flux_api import TERMINAL_PHASES

from flux_operator.kube import KubeApi
from flux_operator.metrics import Metrics

log = logging.getLogger("flux_operator")


class Resync:
    def __init__(self, reconciler, api: KubeApi, metrics: Metrics, namespaces: list[str], seconds: float) -> None:
        self.reconciler, self.api, self.metrics = reconciler, api, metrics
        self.namespaces, self.seconds = namespaces or [None], seconds
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(self.seconds):
            try:
                self.once()
            except (kopf.TemporaryError, kopf.PermanentError) as err:
                log.warning("resync: %s", err)

    def once(self) -> None:
        phases = []
        for namespace in self.namespaces:
            for item in self.api.list_executions(namespace):
                phase = (item.get("status") or {}).get("phase") or "Pending"
                phases.append(phase)
                if phase in TERMINAL_PHASES:
                    continue
                meta = item["metadata"]
                try:
                    self.reconciler.reconcile(meta["namespace"], meta["name"])
                except kopf.TemporaryError as err:
                    log.info("resync of %s/%s: %s", meta["namespace"], meta["name"], err)
        self.metrics.count_phases(phases)
