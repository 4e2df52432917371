"""/healthz: red when this replica cannot make progress, and it says who leads.

Red when: the Execution API is not served (CRD missing), a permission the operator needs is
missing, the admission policies are not in force as this version generates them (admission_check.py),
the API server has not answered for `stale_after` seconds (a dropped or hung
connection), or a watch stream has failed or stayed silent too long although restarted
(watches.py), or a worker thread has ended. Served on its own small HTTP server so a stuck event loop
cannot fake health.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from flux_operator.httpserve import CLIENT_TIMEOUT, BoundedServer


class Health:
    def __init__(self, identity: str, last_contact: Callable[[], float], leading: Callable[[], bool],
                 holder: Callable[[], str | None], queue_depth: Callable[[], int], stale_after: float = 30.0,
                 watches: Callable[[], dict[str, str]] = dict, stopped: Callable[[], list[str]] = list) -> None:
        self.identity, self.last_contact, self.leading, self.holder = identity, last_contact, leading, holder
        self.queue_depth, self.stale_after, self.watches, self.stopped = queue_depth, stale_after, watches, stopped
        self.problems: dict[str, str] = {}  # set by start-up checks, e.g. {"crd": "..."}
        self._lock = threading.Lock()

    def set_problem(self, name: str, message: str | None) -> None:
        with self._lock:
            if message:
                self.problems[name] = message
            else:
                self.problems.pop(name, None)

    def report(self) -> tuple[bool, dict[str, Any]]:
        silent = time.monotonic() - self.last_contact()
        with self._lock:
            problems = dict(self.problems)
        if silent > self.stale_after:
            problems["api"] = f"no answer from the API server for {silent:.0f}s"
        if dead := self.watches():
            problems["watches"] = "; ".join(f"watch {key}: {why}" for key, why in sorted(dead.items()))
        if ended := self.stopped():
            problems["workers"] = f"worker threads ended: {', '.join(sorted(ended))}"
        return not problems, {"identity": self.identity, "leader": self.leading(), "holder": self.holder(),
                              "queue": self.queue_depth(), "lastApiContactSeconds": round(silent, 1),
                              "problems": problems}

    def serve(self, port: int, host: str = "0.0.0.0") -> BoundedServer:
        health = self

        class Handler(BaseHTTPRequestHandler):
            timeout = CLIENT_TIMEOUT

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                if self.path.split("?")[0] not in ("/healthz", "/livez", "/"):
                    self.send_error(404)
                    return
                ok, body = health.report()
                if not _local(self.client_address[0]):
                    # The kubelet reads the status code; who leads, the queue and the problems are for
                    # `kubectl port-forward` (loopback in the pod), not for every pod that can connect.
                    body = {"ok": ok}
                data = json.dumps(body).encode()
                self.send_response(200 if ok else 500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass  # probes every few seconds would drown the log

        server = BoundedServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
        return server


def _local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
