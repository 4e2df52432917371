"""Which namespaces this operator serves, and the gate that keeps it out of every other one.

- Listed (`--namespace a --namespace b`): exactly those, labelled or not; kopf watches only them.
- Label mode (no `--namespace`): the namespaces labelled `workflows.flux.dev/enabled=true`, learnt from a
  watch on namespaces (handlers.watch_namespaces) that feeds `Namespaces`. kopf watches Executions
  everywhere, so the operator sees what it leaves alone and says why, once, with a Warning Event.
- Never a `kube-*` namespace, labelled or listed.

The label is a switch that takes effect at once, both ways. Removed: the operator stops acting on every
Execution and Schedule there (nothing new starts; a runner already running runs on, and still stops at
its next step when cancelled, since it reads spec.cancel itself); each live Execution gets an Event.
Put back: the operator decides again from what it observes now (level-triggered) and carries on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from flux_api import TERMINAL_PHASES
from flux_api.events import EventReason
from flux_api.names import ENABLED_NAMESPACE_LABEL
from flux_api.namespace_policy import ENABLED_VALUE, labelled, reserved

from flux_operator.kube import KubeApi
from flux_operator.workqueue import Reconcile, Result
from flux_operator.world import Key, World

NOTICE_REASON = EventReason.NAMESPACE_NOT_ENABLED
# Notices this replica already posted; beyond this, a repeat is only a harmless 409 on the Event's fixed name.
NOTICES_KEPT = 50_000


class Namespaces:
    """Thread-safe: the namespace watch writes, the workers read."""

    def __init__(self, listed: Iterable[str] = ()) -> None:
        self.listed = frozenset(listed)
        self._lock = threading.Lock()
        self._labelled: set[str] = set()
        self._flips: dict[str, int] = {}  # how often a namespace's label changed: names each notice apart
        self._announced: set[str] = set()  # the labelled set as the event handler last acted on it

    @property
    def label_mode(self) -> bool:
        return not self.listed

    def seen(self, raw: dict[str, Any]) -> bool:
        """Stores a namespace's label; True when that changed whether the namespace is served."""
        meta = raw.get("metadata") or {}
        name, on = meta.get("name", ""), labelled(meta.get("labels"))
        with self._lock:
            was = name in self._labelled
            if on:
                self._labelled.add(name)
            else:
                self._labelled.discard(name)
            if was != on:
                self._flips[name] = self._flips.get(name, 0) + 1
        return was != on

    def gone(self, raw: dict[str, Any]) -> bool:
        name = (raw.get("metadata") or {}).get("name", "")
        with self._lock:
            was = name in self._labelled
            self._labelled.discard(name)
            self._flips.pop(name, None)
        return was

    def take_change(self, name: str) -> bool:
        """Whether `name` was switched on or off since the last call for it: its keys need a look."""
        with self._lock:
            on = name in self._labelled
            if on == (name in self._announced):
                return False
            if on:
                self._announced.add(name)
            else:
                self._announced.discard(name)
            return True

    def served(self, namespace: str) -> bool:
        if reserved(namespace):
            return False
        if self.listed:
            return namespace in self.listed
        with self._lock:
            return namespace in self._labelled

    def flips(self, namespace: str) -> int:
        with self._lock:
            return self._flips.get(namespace, 0)

    def refusal(self, namespace: str) -> str:
        """Why the operator does not act in `namespace`, and what would change that."""
        if reserved(namespace):
            return f"the Flux operator never acts in {namespace}: kube-* namespaces belong to Kubernetes"
        if self.listed:
            return f"namespace {namespace} is not among the namespaces this operator watches"
        return (f"namespace {namespace} is not enabled for Flux: label it "
                f"(kubectl label namespace {namespace} {ENABLED_NAMESPACE_LABEL}={ENABLED_VALUE}) "
                f"or list it in the chart's watchNamespaces")


class NamespaceGate:
    """A reconcile that passes a key on only where the operator serves; elsewhere it posts a notice."""

    def __init__(self, namespaces: Namespaces, inner: Reconcile, notice: Callable[[Key, str], None]) -> None:
        self.namespaces, self.inner, self.notice = namespaces, inner, notice

    def reconcile(self, key: Key) -> Result:
        if self.namespaces.served(key[0]):
            return self.inner(key)
        self.notice(key, self.namespaces.refusal(key[0]))
        return Result()


class Notices:
    """One Warning Event per object the operator leaves alone (and per time its namespace was switched off)."""

    def __init__(self, api: KubeApi, namespaces: Namespaces) -> None:
        self.api, self.namespaces = api, namespaces
        self._posted: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def execution(self, world: World) -> Callable[[Key, str], None]:
        def notice(key: Key, why: str) -> None:
            snapshot = world.snapshot(key)
            if snapshot is None or snapshot.execution.phase in TERMINAL_PHASES:
                return  # nothing to say about a finished execution
            flips = self.namespaces.flips(key[0])
            if snapshot.execution.status.phase is not None:
                why = (f"{why}. The operator stopped acting on this execution: a running runner goes on and "
                       f"still stops at its next step if cancelled; enable the namespace again to carry on")
            else:
                why = f"{why}. The operator leaves this execution alone"
            self._post(snapshot.event_name(NOTICE_REASON, str(flips) if flips else ""),
                       _involved(snapshot.raw), why)
        return notice

    def schedule(self, store: Any) -> Callable[[Key, str], None]:
        def notice(key: Key, why: str) -> None:
            raw = store.get(key)
            if raw is None:
                return
            meta = raw["metadata"]
            flips = self.namespaces.flips(key[0])
            name = f"{meta['name']}.{meta.get('uid', '')[:8]}.{NOTICE_REASON.lower()}" + (f".{flips}" if flips else "")
            self._post(name, _involved(raw), f"{why}. The operator starts no run of this schedule")
        return notice

    def _post(self, name: str, involved: dict[str, str], message: str) -> None:
        with self._lock:
            if name in self._posted:
                return
        self.api.emit_event(involved, name, "Warning", NOTICE_REASON, message)
        with self._lock:
            self._posted[name] = None
            while len(self._posted) > NOTICES_KEPT:
                self._posted.popitem(last=False)


def _involved(raw: dict[str, Any]) -> dict[str, str]:
    meta = raw["metadata"]
    return {"apiVersion": raw.get("apiVersion") or "", "kind": raw.get("kind") or "", "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", "")}
