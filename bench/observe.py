"""Observing a benchmark's objects as they change: a container's log followed through the API server, and
an Execution's phases through a watch, each noting when what it waits for arrived (perf_counter())."""

from __future__ import annotations

import threading
import time

from benchkit import BenchError
from flux_api import GROUP, PLURAL, VERSION
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

TERMINAL = ("Cancelled", "Succeeded", "Failed")


class LogTail:
    """Follows a container's log through the API server (`kubectl logs -f`), the same way on the process node
    and on a real kubelet, noting when each chunk arrived (perf_counter()). A 400 while the container is
    still starting is tried again; the stream ends when the container exits or the pod goes."""

    def __init__(self, core: client.CoreV1Api, namespace: str, pod: str, container: str) -> None:
        self.where = f"{namespace}/{pod} ({container})"
        self.text = ""
        self._arrivals: list[tuple[float, int]] = []  # (arrival, len(text) after the chunk)
        self._ended = False
        self._error: Exception | None = None
        self._response = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(core, namespace, pod, container), daemon=True)
        self._thread.start()

    def _run(self, core: client.CoreV1Api, namespace: str, pod: str, container: str) -> None:
        try:
            for _ in range(200):
                try:
                    self._response = core.read_namespaced_pod_log(pod, namespace, container=container, follow=True,
                                                                  _preload_content=False)
                    break
                except ApiException as err:
                    if err.status != 400:
                        raise
                    time.sleep(0.05)
            else:
                raise BenchError(f"the container of {self.where} did not start")
            for chunk in self._response.stream(amt=None, decode_content=False):
                arrived = time.perf_counter()
                with self._changed:
                    self.text += chunk.decode(errors="replace")
                    self._arrivals.append((arrived, len(self.text)))
                    self._changed.notify_all()
        except (ApiException, BenchError, HTTPError, OSError) as err:
            self._error = err
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def wait_for(self, mark: str, timeout: float) -> float:
        """perf_counter() of the arrival of the chunk that completed the first `mark`."""
        with self._changed:
            self._changed.wait_for(lambda: mark in self.text or self._ended, timeout)
            at = self.text.find(mark)
            if at < 0:
                why = f"the stream failed: {self._error}" if self._error else \
                    "the stream ended" if self._ended else f"not within {timeout:.0f}s"
                raise BenchError(f"{mark!r} not in the log of {self.where}: {why}; last lines:\n"
                                 + "\n".join(self.text.splitlines()[-5:]))
            return next(arrived for arrived, length in self._arrivals if length >= at + len(mark))

    def close(self) -> None:
        """Nothing to do: the follow ends by itself with the container or the pod (closing the response
        from here would race the reading thread)."""


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
