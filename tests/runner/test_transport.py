"""The runner's HTTP/1.1 transport against a small HTTP server on loopback: keep-alive, streamed bodies, the
server's closes and silences, and every failure as the httpx error the client retries on. TLS to a real API
server is what every cluster test's runner uses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from flux_runner.transport import H11Transport

pytestmark = pytest.mark.unit

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's head and body (Content-Length only, as httpx sends it); None once the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


class Server:
    """Counts connections and requests; `reply` answers one request and says whether to keep the connection."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests.append(request)
                if not await self.reply(reader, writer, request):
                    break
        finally:
            writer.close()


def answer(body: bytes = b'{"ok": true}', status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n".encode()
            + extra + b"\r\n" + body)


async def ok(reader, writer, request) -> bool:
    writer.write(answer())
    await writer.drain()
    return True


def client(server: Server, keep_idle: float = 60.0, **timeouts: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, transport=H11Transport(keep_idle=keep_idle),
                             timeout=httpx.Timeout(timeouts.pop("default", 5.0), **timeouts))


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_requests_one_after_another_share_one_connection():
    async def scenario():
        async with Server(ok) as server, client(server) as http:
            for _ in range(3):
                response = await http.get("/apis/x")
                assert response.status_code == 200 and response.json() == {"ok": True}
            assert server.connections == 1 and len(server.requests) == 3
    run(scenario)


def test_a_body_and_the_headers_arrive_whole():
    async def scenario():
        async with Server(ok) as server, client(server) as http:
            body = b'{"status": {"phase": "Running"}}'
            await http.patch("/apis/x/status?dryRun=All", content=body,
                             headers={"Content-Type": "application/merge-patch+json", "Authorization": "Bearer t"})
            request = server.requests[0]
            assert request.startswith(b"PATCH /apis/x/status?dryRun=All HTTP/1.1\r\n")
            assert b"authorization: Bearer t" in request.lower().replace(b"bearer", b"Bearer")
            assert request.endswith(b"\r\n\r\n" + body)
    run(scenario)


def test_a_streamed_body_arrives_as_it_is_sent():
    seen_before_end: list[str] = []
    more = asyncio.Event()

    async def chunked(reader, writer, request) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        line = b'{"type": "ADDED"}\n'
        writer.write(b"%x\r\n%s\r\n" % (len(line), line))
        await writer.drain()
        await more.wait()  # the client must see the first event while the answer is still open
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def scenario():
        async with Server(chunked) as server, client(server) as http:
            async with http.stream("GET", "/watch") as response:
                async for line in response.aiter_lines():
                    seen_before_end.append(line)
                    more.set()
            assert seen_before_end == ['{"type": "ADDED"}']
            await http.get("/again")
            assert server.connections == 1  # read to its end: the connection was kept
    run(scenario)


def test_a_stream_left_unread_is_not_reused():
    async def endless(reader, writer, request) -> bool:
        if request.startswith(b"GET /watch"):
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nab\n\r\n")
            await writer.drain()
            await asyncio.sleep(30)
            return False
        return await ok(reader, writer, request)

    async def scenario():
        async with Server(endless) as server, client(server) as http:
            async with http.stream("GET", "/watch") as response:
                async for _ in response.aiter_lines():
                    break
            assert (await http.get("/other")).json() == {"ok": True}
            assert server.connections == 2
    run(scenario)


def test_a_request_during_an_open_stream_takes_its_own_connection():
    async def slow_stream(reader, writer, request) -> bool:
        if request.startswith(b"GET /watch"):
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.5)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        return await ok(reader, writer, request)

    async def scenario():
        async with Server(slow_stream) as server, client(server) as http:
            async with http.stream("GET", "/watch") as response:
                assert (await http.get("/status")).status_code == 200
                await response.aread()
            assert server.connections == 2
            await asyncio.gather(http.get("/a"), http.get("/b"))
            assert server.connections == 2  # both went back to the pool and were used again
    run(scenario)


def test_a_connection_the_server_closed_while_idle_is_replaced():
    async def once(reader, writer, request) -> bool:
        await ok(reader, writer, request)
        return False  # close after each answer, without saying so

    async def scenario():
        async with Server(once) as server, client(server) as http:
            await http.get("/one")
            await asyncio.sleep(0.1)  # the close reaches the client's idle connection
            assert (await http.get("/two")).status_code == 200
            assert server.connections == 2
    run(scenario)


def test_a_connection_idle_too_long_is_not_trusted():
    async def scenario():
        async with Server(ok) as server, client(server, keep_idle=0.2) as http:
            await http.get("/one")
            await http.get("/two")
            assert server.connections == 1
            await asyncio.sleep(0.3)
            await http.get("/three")
            assert server.connections == 2
    run(scenario)


def test_connection_close_is_honoured():
    async def closing(reader, writer, request) -> bool:
        writer.write(answer(extra=b"connection: close\r\n"))
        await writer.drain()
        return False

    async def scenario():
        async with Server(closing) as server, client(server) as http:
            await http.get("/one")
            await http.get("/two")
            assert server.connections == 2
    run(scenario)


def test_an_error_status_is_an_answer_not_an_exception():
    async def refusing(reader, writer, request) -> bool:
        writer.write(answer(b'{"kind": "Status", "message": "no"}', "403 Forbidden"))
        await writer.drain()
        return True

    async def scenario():
        async with Server(refusing) as server, client(server) as http:
            response = await http.get("/x")
            assert response.status_code == 403 and response.json()["message"] == "no"
            assert response.reason_phrase == "Forbidden"
    run(scenario)


def test_a_silent_server_is_a_read_timeout():
    async def silent(reader, writer, request) -> bool:
        await asyncio.sleep(30)
        return False

    async def scenario():
        async with Server(silent) as server, client(server, default=5.0, read=0.3) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get("/x")
    run(scenario)


def test_an_answer_cut_short_is_a_protocol_error():
    async def cut(reader, writer, request) -> bool:
        writer.write(answer(b'{"ok": true}')[:-4])
        await writer.drain()
        return False

    async def scenario():
        async with Server(cut) as server, client(server) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get("/x")
    run(scenario)


def test_garbage_is_a_protocol_error():
    async def garbage(reader, writer, request) -> bool:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        return False

    async def scenario():
        async with Server(garbage) as server, client(server) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get("/x")
    run(scenario)


def test_nothing_listening_is_a_connect_error():
    async def scenario():
        async with Server(ok) as server:
            url = server.url
        async with httpx.AsyncClient(base_url=url, transport=H11Transport()) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get("/x")
    run(scenario)


def test_the_transport_errors_are_what_the_client_retries_on():
    for error in (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ReadError,
                  httpx.WriteError, httpx.RemoteProtocolError):
        assert issubclass(error, httpx.TransportError)


def test_a_kept_connection_closed_as_the_request_goes_out_is_tried_once_more_on_a_new_one():
    async def answers_once(reader, writer, request) -> bool:
        if request.startswith(b"GET /one"):
            return await ok(reader, writer, request)
        return False  # reads the request and closes without a word: the race with the server's idle close

    async def scenario():
        async with Server(answers_once) as server, client(server) as http:
            await http.get("/one")
            assert (await http.get("/one")).status_code == 200
            assert server.connections == 1
            with pytest.raises(httpx.RemoteProtocolError):  # sent twice, on the kept and on a new connection
                await http.get("/two")
            assert [r.split(b" ")[1] for r in server.requests] == [b"/one", b"/one", b"/two", b"/two"]
            with pytest.raises(httpx.RemoteProtocolError):  # a new connection's silence is not tried again
                await http.get("/two")
            assert len(server.requests) == 5
    run(scenario)
