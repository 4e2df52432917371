"""The harness's server ports: never ephemeral, never handed out twice, never one that is listening."""

from __future__ import annotations

import socket

from localcluster import procs


def _ephemeral_range() -> range:
    low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    return range(low, high + 1)


def test_ports_lie_outside_the_ephemeral_range_and_are_never_repeated():
    ports = [procs.free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert not set(ports) & set(_ephemeral_range())


def test_a_listening_port_is_never_handed_out(monkeypatch):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        taken = listener.getsockname()[1]
        listener.listen()
        monkeypatch.setattr(procs, "_SERVER_PORTS", range(taken, taken + 1))
        try:
            port = procs.free_port()
        except OSError as error:
            assert "no free loopback port" in str(error)
        else:
            raise AssertionError(f"handed out {port}, the only port of the range, which is listening")
