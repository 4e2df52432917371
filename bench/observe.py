"""Observing a benchmark's Execution as it changes: its phases through a watch, noting when each arrived
(perf_counter()); a container's log is followed by fluxtest.podlogs.LogFollower."""

from __future__ import annotations

import threading
import time

from bench.benchkit import BenchError
from flux_api import GROUP, PLURAL, VERSION
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

TERMINAL = ("Cancelled", "Succeeded", "Failed")


class PhaseWatch:
    """Watches one Execution and notes when each phase was first delivered (perf_counter())."""

    def __init__(self, custom: client.CustomObjectsApi, namespace: str, name: str) -> None:
        self.name = name
        self.seen: dict[str, float] = {}
        self.latest: dict = {}
        self.error: Exception | None = None
        self._changed = threading.Condition()
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(custom, namespace), daemon=True)
        self._thread.start()

    def _run(self, custom: client.CustomObjectsApi, namespace: str) -> None:
        try:
            for event in self._watch.stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace,
                                            PLURAL, field_selector=f"metadata.name={self.name}",
                                            timeout_seconds=600):
                delivered = time.perf_counter()
                phase = (event["object"].get("status") or {}).get("phase")
                with self._changed:
                    self.latest = event["object"]
                    self.seen.setdefault(phase, delivered)
                    self._changed.notify_all()
                if phase in TERMINAL:
                    return
        except (ApiException, HTTPError, OSError) as err:
            with self._changed:
                self.error = err
                self._changed.notify_all()
        finally:
            self._watch.stop()

    def wait_for(self, phase: str, timeout: float) -> float:
        def reached() -> bool:
            return phase in self.seen or self.error is not None or any(p in self.seen for p in TERMINAL)

        with self._changed:
            self._changed.wait_for(reached, timeout)
            if phase in self.seen:
                return self.seen[phase]
            ended = [p for p in TERMINAL if p in self.seen]
            raise BenchError(f"execution {self.name} never reached {phase}: "
                             + (f"watch failed: {self.error}" if self.error else
                                f"it ended {ended[0]}" if ended else f"not within {timeout:.0f}s"))
