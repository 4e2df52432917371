"""Watches in threads of their own that note when each object reached each phase: executions (PhaseBook) and
pods (PodBook), shared by the parts of the benchmark suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flux_api import GROUP, PLURAL, VERSION
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from localcluster.probes import wait_for
from urllib3.exceptions import HTTPError

from bench.benchkit import TERMINAL, BenchError



class _Book:
    """A watch in a thread of its own that notes each event under a lock; it survives the watch's expiry by
    resuming from the last resourceVersion, and lists again after an ERROR event."""

    _watch: watch.Watch | None

    def _start(self, thread_name: str) -> None:
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._watch = None
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    def _events(self, **kwargs: Any) -> Iterator[dict]:
        raise NotImplementedError

    def _note(self, kind: str, obj: Any, now: float) -> str | None:
        """Records one event (under the lock); returns the object's resourceVersion."""
        raise NotImplementedError

    def _run(self) -> None:
        version = None
        while not self._stopped.is_set():
            self._watch = watch.Watch()
            try:
                for event in self._events(**({"resource_version": version} if version else {})):
                    now = time.monotonic()
                    if event["type"] == "ERROR":
                        version = None
                        break
                    with self._changed:
                        version = self._note(event["type"], event["object"], now) or version
                        self._changed.notify_all()
            except (ApiException, HTTPError, OSError, ValueError):
                time.sleep(0.5)
            finally:
                self._watch.stop()


class PhaseBook(_Book):
    """Watches every Execution of a namespace; notes, per name, when (monotonic and wall clock) each
    phase was first delivered. Survives watch expiry by resuming from the last resourceVersion."""

    def __init__(self, api: client.ApiClient, namespace: str, keep_objects: bool = False) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.keep_objects = keep_objects
        self.phase: dict[str, str | None] = {}
        self.first: dict[str, dict[str, tuple[float, float]]] = {}  # name -> phase -> (monotonic, wall)
        self.objects: dict[str, dict] = {}
        self.gone: set[str] = set()
        self._start(f"phases-{namespace}")

    def _events(self, **kwargs: Any) -> Iterator[dict]:
        return self._watch.stream(self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL,
                                  timeout_seconds=1800, **kwargs)

    def _note(self, kind: str, obj: dict, now: float) -> str | None:
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if kind == "DELETED":
            self.gone.add(name)
            self.phase.pop(name, None)
            self.objects.pop(name, None)
        else:
            phase = (obj.get("status") or {}).get("phase")
            self.phase[name] = phase
            self.first.setdefault(name, {}).setdefault(phase, (now, time.time()))
            if self.keep_objects or phase in TERMINAL:
                self.objects[name] = obj
        return meta.get("resourceVersion")

    def count(self, phases: Iterable[str], names: Iterable[str] | None = None) -> int:
        wanted = set(phases)
        with self._changed:
            if names is None:
                return sum(1 for p in self.phase.values() if p in wanted)
            return sum(1 for n in names if self.phase.get(n) in wanted)

    def wait_count(self, phases: Iterable[str], n: int, timeout: float, what: str,
                   names: Iterable[str] | None = None) -> float:
        """Waits until `n` executions (of `names`, or all) are in one of `phases`; returns monotonic()."""
        wanted = tuple(phases)
        name_list = list(names) if names is not None else None
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                have = (sum(1 for p in self.phase.values() if p in wanted) if name_list is None
                        else sum(1 for x in name_list if self.phase.get(x) in wanted))
                if have >= n:
                    return time.monotonic()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}: {have}/{n}; phases now "
                                     f"{self.histogram()}")
                self._changed.wait(min(left, 1.0))

    def wait_gone(self, names: Iterable[str], timeout: float) -> None:
        names = set(names)
        wait_for(lambda: names <= self.gone or not (names & set(self.phase)),
                 timeout, 0.2, "executions to be deleted", BenchError)

    def histogram(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in list(self.phase.values()):
            out[str(p)] = out.get(str(p), 0) + 1
        return out

    def reached(self, name: str, phase: str) -> tuple[float, float] | None:
        with self._changed:
            return (self.first.get(name) or {}).get(phase)

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()


class PodBook(_Book):
    """Watches the pods of a namespace (optionally by label): phase, and when each was seen gone."""

    def __init__(self, api: client.ApiClient, namespace: str, selector: str = "") -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.selector = namespace, selector
        self.phase: dict[str, str] = {}
        self.seen_at: dict[str, float] = {}  # first seen: when it was created, as a watcher learns it
        self.running_at: dict[str, float] = {}
        self.gone_at: dict[str, float] = {}
        self._start(f"pods-{namespace}")

    def _events(self, **kwargs: Any) -> Iterator[dict]:
        return self._watch.stream(self.core.list_namespaced_pod, self.namespace, label_selector=self.selector,
                                  timeout_seconds=1800, **kwargs)

    def _note(self, kind: str, pod: Any, now: float) -> str | None:
        name = pod.metadata.name
        if kind == "DELETED":
            self.phase.pop(name, None)
            self.gone_at.setdefault(name, now)
        else:
            self.phase[name] = pod.status.phase
            self.seen_at.setdefault(name, now)
            self.gone_at.pop(name, None)
            if pod.status.phase == "Running":
                self.running_at.setdefault(name, now)
        return pod.metadata.resource_version

    def wait(self, predicate: Callable[["PodBook"], bool], timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}; pods now "
                                     f"{self.histogram()}")
                self._changed.wait(min(left, 1.0))
            return time.monotonic()

    def running(self) -> int:
        return sum(1 for p in self.phase.values() if p == "Running")

    def histogram(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in list(self.phase.values()):
            out[p] = out.get(p, 0) + 1
        return out

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()
