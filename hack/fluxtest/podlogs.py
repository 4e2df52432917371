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
        # A follow of a container not started yet is refused: wait until its log is readable.
        wait_for(lambda: _read(core, namespace, pod, container, False) is not None, timeout=60, interval=0.1,
                 what=f"the log of {namespace}/{pod} to be readable")
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"follow-{pod}")
        self._thread.start()

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
