"""kopf handlers: thin on purpose. Each one names the execution to reconcile, nothing more."""

from __future__ import annotations

import logging
import threading

import kopf
from flux_api import EXECUTION_LABEL, GROUP, PARENT_LABEL, PLURAL, VERSION

from flux_operator.resync import Resync

log = logging.getLogger("flux_operator")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    settings.posting.level = logging.WARNING  # our Events are deliberate; handler chatter stays in logs
    settings.execution.max_workers = 16
    settings.watching.server_timeout = 300
    settings.persistence.finalizer = f"{GROUP}/operator"
    if memo.metrics_port:
        memo.metrics.serve(memo.metrics_port)
    memo.resync = Resync(memo.reconciler, memo.api, memo.metrics, memo.namespaces, memo.resync_seconds)
    memo.resync_thread = threading.Thread(target=memo.resync.run, name="resync", daemon=True)
    memo.resync_thread.start()


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_) -> None:
    memo.resync.stop()


@kopf.on.event(GROUP, VERSION, PLURAL)
def execution_changed(type: str, name: str, namespace: str, labels: dict, memo: kopf.Memo, **_) -> None:
    if type == "DELETED":
        return
    memo.reconciler.reconcile(namespace, name)
    parent = labels.get(PARENT_LABEL)
    if parent:  # a child's phase decides when its parent may finish cancelling
        memo.reconciler.reconcile(namespace, parent)


@kopf.on.event("", "v1", "pods", labels={EXECUTION_LABEL: kopf.PRESENT})
def runner_pod_changed(labels: dict, namespace: str, memo: kopf.Memo, **_) -> None:
    memo.reconciler.reconcile(namespace, labels[EXECUTION_LABEL])
