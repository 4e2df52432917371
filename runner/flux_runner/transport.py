"""HTTP/1.1 to the API server over asyncio's own streams, framed by h11: the runner's httpx transport.

httpx's default transport brings httpcore and, under asyncio, anyio. Importing them at the first request is most
of the CPU a runner pod spends at its start beyond the imports every program of its image pays (bench/README.md,
issue 19), and a node starting forty runners at once pays it forty times. The runner talks to one API server, a
few requests at a time beside one watch, so a small pool of keep-alive connections is all it needs. A proxy set
in the pod's environment still goes through httpx's own transport (httpx mounts one for it).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import h11
import httpx

READ_SIZE = 64 * 1024
# Idle connections kept per server: the runner's requests come one or two at a time.
MAX_IDLE = 4
# An idle connection older than this is closed rather than used: a path that dropped it silently (a NAT's or
# a load balancer's idle timeout) would otherwise cost a read timeout. Go's own client keeps them 90 s.
KEEP_IDLE = 60.0
DEFAULT_PORTS = {"https": 443, "http": 80}

T = TypeVar("T")
Key = tuple[str, str, int]


class H11Transport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 connections, one request at a time on each; TLS with the given context."""

    def __init__(self, tls: ssl.SSLContext | None = None, max_idle: int = MAX_IDLE,
                 keep_idle: float = KEEP_IDLE) -> None:
        self._tls = tls
        self._max_idle = max_idle
        self._keep_idle = keep_idle
        self._idle: dict[Key, list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        url = request.url
        key = (url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme, 80))
        reused = self._reusable(key)
        connection = reused or await self._connect(key, timeouts.get("connect"))
        try:
            head = await self._exchange(connection, request, timeouts)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            if reused is None or connection.received:
                raise
            # The server closed the kept connection as the request went out and answered nothing on it: once more
            # on a new one, as Go's client does. The runner sends GETs and merge PATCHes of its status, which
            # come out the same if the first did arrive.
            connection = await self._connect(key, timeouts.get("connect"))
            head = await self._exchange(connection, request, timeouts)
        return httpx.Response(head.status_code, headers=head.headers,
                              stream=_Body(self, connection, timeouts.get("read")),
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason})

    async def _exchange(self, connection: _Connection, request: httpx.Request, timeouts: dict) -> h11.Response:
        try:
            await connection.send(request, timeouts.get("write"))
            return await connection.receive_head(timeouts.get("read"))
        except BaseException:
            connection.close()
            raise

    async def aclose(self) -> None:
        idle = [connection for connections in self._idle.values() for connection in connections]
        self._idle.clear()
        for connection in idle:
            connection.close()

    def release(self, connection: _Connection) -> None:
        """Back to the pool once its exchange is complete on both sides and the server keeps it open."""
        state = connection.h11
        if state.our_state is h11.DONE and state.their_state is h11.DONE:
            state.start_next_cycle()
            idle = self._idle.setdefault(connection.key, [])
            if len(idle) < self._max_idle:
                connection.idle_since = time.monotonic()
                idle.append(connection)
                return
        connection.close()

    def _reusable(self, key: Key) -> _Connection | None:
        idle = self._idle.get(key) or []
        while idle:
            connection = idle.pop()
            if connection.open() and time.monotonic() - connection.idle_since <= self._keep_idle:
                return connection
            connection.close()  # closed by the server while idle, or idle too long to trust
        return None

    async def _connect(self, key: Key, timeout: float | None) -> _Connection:
        scheme, host, port = key
        tls = (self._tls or ssl.create_default_context()) if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=tls,
                                                               server_hostname=host if tls else None)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} took over {timeout} s") from exc
        except OSError as exc:  # refused, unreachable, and TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(f"{host}:{port}: {exc}") from exc
        return _Connection(key, reader, writer)


class _Connection:
    def __init__(self, key: Key, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.key = key
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        self.received = 0  # bytes of the current answer: a request nothing came back for may go again elsewhere

    def open(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()

    async def send(self, request: httpx.Request, timeout: float | None) -> None:
        self.received = 0
        with _protocol_errors():
            out = [self.h11.send(h11.Request(method=request.method, target=request.url.raw_path,
                                             headers=request.headers.raw))]
            async for chunk in request.stream:  # type: ignore[union-attr]
                out.append(self.h11.send(h11.Data(data=chunk)))
            out.append(self.h11.send(h11.EndOfMessage()))
        self.writer.write(b"".join(data for data in out if data))
        await _within(self.writer.drain(), timeout, httpx.WriteTimeout, httpx.WriteError)

    async def receive_head(self, timeout: float | None) -> h11.Response:
        while True:
            event = await self.receive(timeout)
            if isinstance(event, h11.Response):
                return event
            if not isinstance(event, h11.InformationalResponse):  # a 1xx is followed by the real answer
                raise httpx.RemoteProtocolError(f"expected a response, got {type(event).__name__}")

    async def receive(self, timeout: float | None) -> h11.Event | type[h11.PAUSED]:
        while True:
            with _protocol_errors():
                event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await _within(self.reader.read(READ_SIZE), timeout, httpx.ReadTimeout, httpx.ReadError)
            self.received += len(data)
            with _protocol_errors():
                self.h11.receive_data(data)  # b"" says the server closed: h11 decides if that is an error


class _Body(httpx.AsyncByteStream):
    """A response's body as it arrives (a watch's events one by one); the connection goes back to the pool only
    when the body was read to its end."""

    def __init__(self, transport: H11Transport, connection: _Connection, timeout: float | None) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._timeout = timeout
        self._complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        while True:
            event = await connection.receive(self._timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._complete = True
                return
            else:
                raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} in a response body")

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._complete:
            self._transport.release(connection)
        else:
            connection.close()  # unread bytes would be taken for the next answer


@contextmanager
def _protocol_errors() -> Iterator[None]:
    """h11's protocol errors as httpx's, so the client's retry sees a transport error."""
    try:
        yield
    except h11.RemoteProtocolError as exc:
        raise httpx.RemoteProtocolError(str(exc)) from exc
    except h11.LocalProtocolError as exc:
        raise httpx.LocalProtocolError(str(exc)) from exc


async def _within(step: Awaitable[T], timeout: float | None, late: type[httpx.TimeoutException],
                  failed: type[httpx.NetworkError]) -> T:
    try:
        async with asyncio.timeout(timeout):
            return await step
    except TimeoutError as exc:
        raise late(f"no progress in {timeout} s") from exc
    except OSError as exc:
        raise failed(str(exc) or type(exc).__name__) from exc
