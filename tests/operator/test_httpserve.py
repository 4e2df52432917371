"""The operator's HTTP servers hold a bounded number of connections, and a silent one only for a while."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest
from flux_operator import httpserve
from flux_operator.health import Health

pytestmark = pytest.mark.unit


def health_on_a_free_port() -> tuple[Health, int]:
    health = Health("me", time.monotonic, lambda: True, lambda: "me", lambda: 3)
    server = health.serve(0, "127.0.0.1")
    return health, server.server_address[1]


@pytest.mark.timeout(30)
def test_one_client_holding_idle_connections_cannot_crowd_out_another():
    """A tenant's pod opening connections that send nothing: past its few, each is closed at once; the
    kubelet (another address) is still answered. Here 127.0.0.2 stands in for the kubelet."""
    _, port = health_on_a_free_port()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    time.sleep(0.3)
    closed = 0
    for sock in idle:
        sock.settimeout(0.2)  # well inside CLIENT_TIMEOUT: a held one is still held
        try:
            closed += sock.recv(1) == b""
        except socket.timeout:
            pass
    assert closed == 50 - httpserve.MAX_PER_CLIENT, closed
    with socket.socket() as kubelet:
        kubelet.settimeout(5)
        kubelet.bind(("127.0.0.2", 0))
        kubelet.connect(("127.0.0.1", port))
        kubelet.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        answer = b"".join(iter(lambda: kubelet.recv(4096), b""))
    assert answer.startswith(b"HTTP/1.0 200"), answer
    for sock in idle:
        sock.close()


def test_a_remote_caller_is_told_only_ok_and_a_local_one_everything():
    _, port = health_on_a_free_port()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        assert b'"queue": 3' in answer.read()
    from flux_operator.health import _local
    assert _local("127.0.0.1") and _local("::1") and not _local("10.0.0.7") and not _local("garbage")
