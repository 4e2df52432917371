"""A counting proxy in front of the API server: every request an operator makes, by verb and resource, with
its time (benchmarks count what the operator costs the API server). Listens on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from localcluster.layout import Layout
from localcluster.procs import free_port

from bench.benchkit import BenchError


@dataclass
class Request:
    at: float  # time.monotonic() when it arrived
    method: str
    resource: str  # e.g. pods, executions/status, leases, events
    kind: str  # write, read (get or list), watch
    status: int = 0


def classify(method: str, path_qs: str) -> tuple[str, str]:
    """(resource[/subresource], write|read|watch) of one API request."""
    parts = urlsplit(path_qs)
    segments = [s for s in parts.path.split("/") if s]
    query = parse_qs(parts.query)
    if segments[:1] == ["api"]:
        rest = segments[2:]  # /api/v1/...
    elif segments[:1] == ["apis"]:
        rest = segments[3:]  # /apis/group/version/...
    else:
        rest = []
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    resource = "/".join([rest[0]] + rest[2:3]) if rest else (parts.path or "/")
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        return resource, "write"
    watching = query.get("watch", ["false"])[0].lower() in ("true", "1")
    return resource, "watch" if watching else "read"


_HOP_HEADERS = {"host", "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                "upgrade", "content-length"}


class CountingProxy:
    """Plain HTTP on 127.0.0.1 in, the cluster's TLS apiserver (as admin) out; notes every request.

    The operator is given a kubeconfig pointing here. Watches stream through unchanged.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.port = free_port()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)
        self.kubeconfig = layout.root / f"proxy-{self.port}.kubeconfig"

    def start(self) -> "CountingProxy":
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy", "namespace": "default"}}],
        }))
        self._thread.start()
        if not self._ready.wait(20):
            raise BenchError("the counting proxy did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    async def _serve(self) -> None:
        import aiohttp
        from aiohttp import web

        ctx = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.layout.pki / "admin.crt"), str(self.layout.pki / "admin.key"))
        self._session = aiohttp.ClientSession(
            auto_decompress=False, connector=aiohttp.TCPConnector(ssl=ctx, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        upstream = self.layout.server

        async def handle(request: web.Request) -> web.StreamResponse:
            resource, kind = classify(request.method, request.path_qs)
            entry = Request(time.monotonic(), request.method, resource, kind)
            with self._lock:
                self.requests.append(entry)
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
            async with self._session.request(request.method, upstream + request.path_qs, data=body or None,
                                             headers=headers, allow_redirects=False) as up:
                entry.status = up.status
                response = web.StreamResponse(status=up.status, reason=up.reason, headers={
                    k: v for k, v in up.headers.items() if k.lower() not in _HOP_HEADERS})
                await response.prepare(request)
                try:
                    async for chunk in up.content.iter_any():
                        await response.write(chunk)
                    await response.write_eof()
                except (ConnectionResetError, aiohttp.ClientError, asyncio.CancelledError):
                    pass  # the operator hung up (a watch it restarts): nothing to forward any more
                return response

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        # A watch the operator drops must drop its upstream stream too, not wait for the server's timeout.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._ready.set()

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, mark: int, until: int | None = None) -> list[Request]:
        with self._lock:
            return list(self.requests[mark:until])

    def between(self, start: float, end: float) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if start <= r.at < end]

    def stop(self) -> None:
        async def close() -> None:
            await self._session.close()  # ends every upstream stream, so no handler waits on one
            await asyncio.wait_for(self._runner.cleanup(), 10)

        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=15)
            except (TimeoutError, asyncio.TimeoutError):
                pass  # a daemon thread: it goes with the process
            self._loop.call_soon_threadsafe(self._loop.stop)
        self.kubeconfig.unlink(missing_ok=True)


def tally(requests: Iterable[Request]) -> dict[str, int]:
    """Counts by 'kind verb resource', e.g. 'write PATCH executions/status'."""
    out: dict[str, int] = {}
    for r in requests:
        key = f"{r.kind} {r.method} {r.resource}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))
