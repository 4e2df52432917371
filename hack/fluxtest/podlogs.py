"""Pod logs for tests, read through the API server (the kubelet's log endpoint), never from node files,
so the same tests run on the process node and on a real kubelet.

A pod's log goes with the pod: to keep what a pod wrote until it was deleted (a cancelled runner's last
lines), follow it with LogFollower while it lives.
"""

from __future__ import annotations

import threading

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from fluxtest.waiting import wait_for


def _read(core: client.CoreV1Api, namespace: str, pod: str, container: str | None, previous: bool) -> str | None:
    """The log, or None while there is none (no pod, or its container not started yet)."""
    try:
        return core.read_namespaced_pod_log(pod, namespace, container=container, previous=previous,
                                            _preload_content=False).data.decode(errors="replace")
    except ApiException as err:
        if err.status in (400, 404):  # 400: waiting to start (or no previous run); 404: no such pod
            return None
        raise


def pod_log(core: client.CoreV1Api, namespace: str, pod: str, container: str | None = None,
            previous: bool = False) -> str:
    """The container's log now; "" while there is none (no pod, or its container not started yet)."""
    return _read(core, namespace, pod, container, previous) or ""


def wait_log(core: client.CoreV1Api, namespace: str, pod: str, text: str, container: str | None = None,
             timeout: float = 60) -> str:
    """Waits until the container's log contains `text`; returns the whole log."""
    def found() -> str | None:
        log = _read(core, namespace, pod, container, False)
        return log if log is not None and text in log else None

    return wait_for(found, timeout=timeout, interval=0.25,
                    what=f"{text!r} in the log of {namespace}/{pod}" + (f" ({container})" if container else ""))


class LogFollower:
    """Follows one pod's container log in a thread (`kubectl logs -f`), from its start until the container
    exits or the pod goes; the text stays readable afterwards."""

    def __init__(self, core: client.CoreV1Api, namespace: str, pod: str, container: str | None = None) -> None:
        self.core, self.namespace, self.pod, self.container = core, namespace, pod, container
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self.error: str | None = None
        # Before its container starts a pod has no log to follow (before it is scheduled, the API server
        # even answers with an empty log): wait for the start.
        wait_for(self._started, timeout=60, interval=0.1, what=f"a container of {namespace}/{pod} to start")
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"follow-{pod}")
        self._thread.start()

    def _started(self) -> bool:
        statuses = self.core.read_namespaced_pod(self.pod, self.namespace).status.container_statuses or []
        return any((s.state.running or s.state.terminated) and s.name == (self.container or s.name)
                   for s in statuses)

    def _run(self) -> None:
        try:
            response = self.core.read_namespaced_pod_log(self.pod, self.namespace, container=self.container,
                                                         follow=True, _preload_content=False)
            for chunk in response.stream(amt=None, decode_content=False):
                with self._lock:
                    self._chunks.append(chunk)
        except (ApiException, HTTPError, OSError) as err:
            self.error = str(err)  # the pod went mid-stream: what came so far is kept

    @property
    def text(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        return wait_for(lambda: self.text if text in self.text else None, timeout=timeout, interval=0.1,
                        what=f"{text!r} in the followed log of {self.namespace}/{self.pod}")

    def finish(self, timeout: float = 60) -> str:
        """Waits for the stream to end (the container exited or the pod was deleted); the whole log."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the log of {self.namespace}/{self.pod} still streams after {timeout}s"
        return self.text


class RunnerLogs:
    """Every run of an execution's runner, through the API: each pod (by UID) and each container restart
    in it is followed from its start, in a thread of its own, so nothing is lost when a pod is deleted.
    Start it before the execution's first pod; `text` joins the runs in the order they were seen."""

    def __init__(self, core: client.CoreV1Api, namespace: str, execution: str, container: str = "runner",
                 poll_seconds: float = 0.2) -> None:
        from flux_api import EXECUTION_LABEL
        self.core, self.namespace, self.container = core, namespace, container
        self.selector = f"{EXECUTION_LABEL}={execution}"
        self.poll_seconds = poll_seconds
        self.runs: dict[tuple[str, int], _RunStream] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._discover, daemon=True, name=f"runner-logs-{execution}")
        self._thread.start()

    def _discover(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
            except (ApiException, HTTPError, OSError):
                continue  # a fault test may hold the API server down: look again
            for pod in pods:
                status = next((s for s in pod.status.container_statuses or [] if s.name == self.container), None)
                if status is None:
                    continue
                started = bool(status.state.running or status.state.terminated or
                               (status.last_state and status.last_state.terminated))
                key = (pod.metadata.uid, status.restart_count or 0)
                if started and key not in self.runs:
                    self.runs[key] = _RunStream(self.core, self.namespace, pod.metadata.name, self.container)

    @property
    def texts(self) -> list[str]:
        return [run.text for run in list(self.runs.values())]

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class _RunStream:
    """One run of a container, followed until it exits (a 400 while it is only starting is tried again)."""

    def __init__(self, core: client.CoreV1Api, namespace: str, pod: str, container: str) -> None:
        self.core, self.namespace, self.pod, self.container = core, namespace, pod, container
        self._chunks: list[bytes] = []
        threading.Thread(target=self._run, daemon=True, name=f"run-{pod}").start()

    def _run(self) -> None:
        for _ in range(50):
            try:
                response = self.core.read_namespaced_pod_log(self.pod, self.namespace, container=self.container,
                                                             follow=True, _preload_content=False)
                for chunk in response.stream(amt=None, decode_content=False):
                    self._chunks.append(chunk)
                return
            except ApiException as err:
                if err.status != 400:
                    return  # 404: the pod is gone; what came so far is kept
            except (HTTPError, OSError):
                return
            threading.Event().wait(0.1)

    @property
    def text(self) -> str:
        return b"".join(list(self._chunks)).decode(errors="replace")
