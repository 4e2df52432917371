"""The process node's kubelet endpoint for container logs, so `kubectl logs` works through the API server.

The API server proxies GET /api/v1/namespaces/NS/pods/POD/log to
https://<node address>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/NS/POD/CONTAINER with the
query parameters follow, previous, timestamps, sinceSeconds, sinceTime, tailLines, limitBytes (and
stream, behind a feature gate). This server answers that one path over TLS on 127.0.0.1, with a
serving certificate from the cluster CA, and only to clients that present a certificate from that CA.

Each container writes every run (restarts included) to one append-only file; the node records the
byte offset where each run began, so "the current run" and "the previous run" are byte ranges of it.
The files carry no per-line times, so timestamps and sinceSeconds/sinceTime are refused with a 400.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

# A follower sees a new line within 10 ms, near a kubelet's (it is woken by inotify): the cancel-latency
# benchmark times the runner's SIGTERM by the line's arrival through `kubectl logs -f`.
FOLLOW_POLL_SECONDS = 0.01
CHUNK = 64 * 1024
HANDSHAKE_TIMEOUT = 10
# Who may read logs: the API server's kubelet client (its group), as a kubelet authorizes it.
ALLOWED_GROUPS = frozenset({"system:masters"})


class LogError(Exception):
    """An answer other than 200: the status and the kubelet-like message the API server passes on."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Runs:
    """One container's log as the node knows it right now."""

    path: Path
    starts: list[int]  # byte offset where each run began, oldest first
    running: bool  # whether the last run is still going
    waiting_reason: str = "ContainerCreating"


# (namespace, pod, container) -> Runs; raises LogError for an unknown pod or container.
Lookup = Callable[[str, str, str], Runs]


@dataclass
class Query:
    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None


def _flag(values: dict[str, list[str]], name: str) -> bool:
    return (values.get(name) or ["false"])[-1].lower() in ("true", "1")


def _count(values: dict[str, list[str]], name: str) -> int | None:
    if name not in values:
        return None
    try:
        number = int(values[name][-1])
    except ValueError:
        raise LogError(HTTPStatus.BAD_REQUEST, f"{name}: not an integer: {values[name][-1]!r}") from None
    if number < 0:
        raise LogError(HTTPStatus.BAD_REQUEST, f"{name}: must not be negative")
    return number


def parse_query(raw: str) -> Query:
    values = parse_qs(raw, keep_blank_values=True)
    if _flag(values, "timestamps") or "sinceSeconds" in values or "sinceTime" in values:
        raise LogError(HTTPStatus.BAD_REQUEST, "the process node keeps no per-line times: timestamps, "
                       "sinceSeconds and sinceTime are not supported (use tailLines)")
    stream = (values.get("stream") or ["All"])[-1]
    if stream != "All":
        raise LogError(HTTPStatus.BAD_REQUEST, f"stream {stream!r}: the process node keeps stdout and stderr "
                       "in one log; only stream=All is supported")
    return Query(follow=_flag(values, "follow"), previous=_flag(values, "previous"),
                 tail_lines=_count(values, "tailLines"), limit_bytes=_count(values, "limitBytes"))


def parse_path(path: str) -> tuple[str, str, str]:
    parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
    if len(parts) != 4 or parts[0] != "containerLogs":
        raise LogError(HTTPStatus.NOT_FOUND, f"no such endpoint: {urlsplit(path).path}")
    return parts[1], parts[2], parts[3]


def tail(data: bytes, lines: int) -> bytes:
    """The last `lines` lines of `data` (a last line without a newline counts as one)."""
    if lines == 0:
        return b""
    body = data[:-1] if data.endswith(b"\n") else data
    cut = len(body)
    for _ in range(lines):
        cut = body.rfind(b"\n", 0, cut)
        if cut < 0:
            return data
    return data[cut + 1:]


def choose_run(runs: Runs, container: str, pod: str, previous: bool) -> tuple[int, int | None, int]:
    """(start, end or None for "to the end of the file", index) of the run a query asks for."""
    if previous:
        if len(runs.starts) < 2:
            raise LogError(HTTPStatus.BAD_REQUEST,
                           f'previous terminated container "{container}" in pod "{pod}" not found')
        index = len(runs.starts) - 2
        return runs.starts[index], runs.starts[index + 1], index
    if not runs.starts:
        raise LogError(HTTPStatus.BAD_REQUEST,
                       f'container "{container}" in pod "{pod}" is waiting to start: {runs.waiting_reason}')
    return runs.starts[-1], None, len(runs.starts) - 1


def _read(path: Path, start: int, end: int | None) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return f.read() if end is None else f.read(max(0, end - start))
    except FileNotFoundError:
        return b""


class _Handler(BaseHTTPRequestHandler):
    server: "LogServer"
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: right for a follow stream

    def setup(self) -> None:
        # The handshake happens here, in the request's own thread, so a slow client stalls nobody else.
        self.request.settimeout(HANDSHAKE_TIMEOUT)
        self.request.do_handshake()
        self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # one line per request would drown the node's log

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        try:
            self._authorize()
            namespace, pod, container = parse_path(self.path)
            query = parse_query(urlsplit(self.path).query)
            self._serve(namespace, pod, container, query)
        except LogError as err:
            self._fail(err.status, str(err))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client went away (kubectl interrupted): nothing to answer

    def _authorize(self) -> None:
        cert = self.request.getpeercert() or {}
        groups = {value for rdn in cert.get("subject", ()) for key, value in rdn if key == "organizationName"}
        if not groups & ALLOWED_GROUPS:
            raise LogError(HTTPStatus.FORBIDDEN, "forbidden: only the API server's kubelet client may read logs")

    def _fail(self, status: HTTPStatus, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, namespace: str, pod: str, container: str, query: Query) -> None:
        lookup = lambda: self.server.lookup(namespace, pod, container)  # noqa: E731
        runs = lookup()
        start, end, index = choose_run(runs, container, pod, query.previous)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        budget = query.limit_bytes
        data = _read(runs.path, start, end)
        position = start + len(data)
        if query.tail_lines is not None:
            data = tail(data, query.tail_lines)
        budget = self._send(data, budget)
        if not query.follow or end is not None:
            return
        while budget != 0 and not self.server.stopping.is_set():
            try:
                runs = lookup()
            except LogError:
                # The pod left the node (deleted with grace 0): what its run wrote last is still sent.
                self._send(_read(runs.path, position, None), budget)
                return
            # This run is over once a later one began or it stopped; read what it wrote, then end.
            later = runs.starts[index + 1] if len(runs.starts) > index + 1 else None
            over = later is not None or not runs.running
            data = _read(runs.path, position, later)
            position += len(data)
            budget = self._send(data, budget)
            if over:
                return
            if not data:
                time.sleep(FOLLOW_POLL_SECONDS)

    def _send(self, data: bytes, budget: int | None) -> int | None:
        if budget is not None:
            data, budget = data[:budget], budget - min(budget, len(data))
        for offset in range(0, len(data), CHUNK):
            self.wfile.write(data[offset:offset + CHUNK])
        return budget


class LogServer(ThreadingHTTPServer):
    daemon_threads = True  # an open follow stream must not keep the node from exiting
    request_queue_size = 64

    def __init__(self, lookup: Lookup, cert: Path, key: Path, ca: Path, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.lookup = lookup
        self.stopping = threading.Event()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        context.load_verify_locations(cafile=str(ca))
        context.verify_mode = ssl.CERT_REQUIRED  # a kubelet asks for a client certificate from the cluster CA
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request, client_address) -> None:
        # A client without a certificate from the cluster CA fails its handshake: one line, no traceback.
        print(f"process-node: log request from {client_address[0]} failed", flush=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True,
                         name="log-server").start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
