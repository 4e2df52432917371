"""The operator's small HTTP servers (/healthz, /metrics): a thread per connection, but a bounded number of them.

The pod network reaches these ports, so any tenant's pod may connect. Without a bound, connections that send
nothing would each hold a thread for ever: a few thousand and the shared operator runs out of memory or pids.
So each source address holds at most MAX_PER_CLIENT connections and all of them at most MAX_CONNECTIONS (one
pod cannot crowd out the kubelet's probe; many pods cost the operator a few MB at most); one past either bound
is closed at once, and each handler gives up on a silent client after CLIENT_TIMEOUT.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import ThreadingHTTPServer
from typing import Any

MAX_CONNECTIONS = 256
MAX_PER_CLIENT = 4  # a probe or a scrape needs one; a kubelet probing several containers a few
CLIENT_TIMEOUT = 10.0  # seconds a connection may stay silent before its thread gives up on it


class BoundedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        super().__init__(address, handler)

    def _admit(self, client: str) -> bool:
        with self._lock:
            if self._open[client] >= MAX_PER_CLIENT or sum(self._open.values()) >= MAX_CONNECTIONS:
                return False
            self._open[client] += 1
            return True

    def _release(self, client: str) -> None:
        with self._lock:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]

    def process_request(self, request: Any, client_address: Any) -> None:
        client = str(client_address[0])
        if not self._admit(client):
            self.shutdown_request(request)  # full: closed before any thread or byte is spent on it
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(client)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(str(client_address[0]))
