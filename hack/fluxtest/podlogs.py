"""Pod logs for tests, read through the API server (the kubelet's log endpoint), never from node files,
so the same tests run on the process node and on a real kubelet.

A pod's log goes with the pod: to keep what a pod wrote until it was deleted (a cancelled runner's last
lines), follow it with LogFollower while it lives.
"""

from __future__ import annotations

import threading
import time

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from localcluster.probes import wait_for

STARTING_TRIES = 200  # 400s while a container is only starting: tried again every 50 ms, for 10 s


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
    """Follows one container's log in a thread (`kubectl logs -f`), the same way on every node, from its
    start until the container exits or the pod goes; the text stays readable afterwards, with when each
    part of it arrived (perf_counter(), for benchmarks). With `wait_start` the constructor waits until the
    container runs; without, a 400 (the container is only starting) is tried again for a while."""

    def __init__(self, core: client.CoreV1Api, namespace: str, pod: str, container: str | None = None,
                 wait_start: bool = True) -> None:
        self.core, self.namespace, self.pod, self.container = core, namespace, pod, container
        self.where = f"{namespace}/{pod}" + (f" ({container})" if container else "")
        self._chunks: list[bytes] = []
        self._arrivals: list[tuple[float, int]] = []  # (perf_counter(), bytes so far) after each chunk
        self._changed = threading.Condition()
        self.error: str | None = None
        self.ended = False
        if wait_start:
            # Before its container starts a pod has no log to follow (before it is scheduled, the API server
            # even answers with an empty log): wait for the start.
            wait_for(self._started, timeout=60, interval=0.1, what=f"a container of {namespace}/{pod} to start")
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"follow-{pod}")
        self._thread.start()

    def _started(self) -> bool:
        statuses = self.core.read_namespaced_pod(self.pod, self.namespace).status.container_statuses or []
        return any((s.state.running or s.state.terminated) and s.name == (self.container or s.name)
                   for s in statuses)

    def _open(self):
        for _ in range(STARTING_TRIES):
            try:
                return self.core.read_namespaced_pod_log(self.pod, self.namespace, container=self.container,
                                                         follow=True, _preload_content=False)
            except ApiException as err:
                if err.status != 400:
                    raise
            time.sleep(0.05)
        raise OSError(f"the container of {self.where} did not start")

    def _run(self) -> None:
        try:
            for chunk in self._open().stream(amt=None, decode_content=False):
                arrived = time.perf_counter()
                with self._changed:
                    self._chunks.append(chunk)
                    self._arrivals.append((arrived, self._arrivals[-1][1] + len(chunk) if self._arrivals
                                           else len(chunk)))
                    self._changed.notify_all()
        except (ApiException, HTTPError, OSError) as err:
            self.error = str(err)  # the pod went mid-stream: what came so far is kept
        finally:
            with self._changed:
                self.ended = True
                self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return b"".join(self._chunks).decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        return wait_for(lambda: self.text if text in self.text else None, timeout=timeout, interval=0.1,
                        what=f"{text!r} in the followed log of {self.namespace}/{self.pod}")

    def arrival(self, mark: str, timeout: float, error: type[Exception] = AssertionError) -> float:
        """perf_counter() of the arrival of the chunk that completed the first `mark`."""
        wanted = mark.encode()
        with self._changed:
            self._changed.wait_for(lambda: wanted in b"".join(self._chunks) or self.ended, timeout)
            at = b"".join(self._chunks).find(wanted)
            if at < 0:
                why = f"the stream failed: {self.error}" if self.error else \
                    "the stream ended" if self.ended else f"not within {timeout:.0f}s"
                last = b"".join(self._chunks).decode(errors="replace").splitlines()[-5:]
                raise error(f"{mark!r} not in the log of {self.where}: {why}; last lines:\n" + "\n".join(last))
            return next(arrived for arrived, length in self._arrivals if length >= at + len(wanted))

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
        self.runs: dict[tuple[str, int], LogFollower] = {}
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
                    self.runs[key] = LogFollower(self.core, self.namespace, pod.metadata.name, self.container,
                                                 wait_start=False)

    @property
    def texts(self) -> list[str]:
        return [run.text for run in list(self.runs.values())]

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
