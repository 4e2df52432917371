"""Process helpers: children that die with their parent, and finding a session's leftovers."""

from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """preexec_fn: the kernel SIGKILLs this child when its parent dies, so nothing is orphaned."""
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def stop(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL once `timeout` seconds have passed: the kubelet's rule, for our own children."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# Below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default): a port the kernel picked
# for bind(0) is ephemeral, so any client socket could take it before the server that was promised it binds.
_SERVER_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, never handed out before by this process and outside the ephemeral
    range, so outgoing connections cannot take it between this call and the server's bind."""
    for _ in range(200):
        port = random.choice(_SERVER_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError(f"no free loopback port in {_SERVER_PORTS.start}-{_SERVER_PORTS.stop - 1}")


def _live_processes(also: str = "") -> Iterator[tuple[int, list[str], str]]:
    """Every process that is not a zombie: its pid, the fields of /proc/<pid>/stat after the parenthesised
    command (state ppid pgrp session ...) and the text of /proc/<pid>/`also` ("" when not asked for)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat, extra = (entry / "stat").read_text(), (entry / also).read_text() if also else ""
        except OSError:
            continue  # it exited meanwhile
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            yield int(entry.name), fields, extra


def session_members(sid: int) -> list[int]:
    """Every live process whose session id is `sid` (the supervisor makes its own session)."""
    return [pid for pid, fields, _ in _live_processes() if int(fields[3]) == sid]


def named(command: str) -> list[int]:
    """Every live process whose command name (/proc/<pid>/comm, at most 15 characters) is `command`."""
    return [pid for pid, _, comm in _live_processes("comm") if comm.strip() == command[:15]]


def in_cgroup(fragment: str) -> list[int]:
    """Every live process whose cgroup path (any hierarchy) contains `fragment`."""
    return [pid for pid, _, cgroups in _live_processes("cgroup") if fragment in cgroups]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
