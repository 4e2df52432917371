"""The host processes behind a pod's container, for tests that crash one (a kill is not a pod delete)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def container_pids(container_id: str) -> list[int]:
    """Host PIDs of a running container (`status.containerStatuses[].containerID`). The process node's ID
    is `process://<pid>`; a real node's `containerd://<id>` is part of the cgroup path of every process of
    that container (runc names the container's cgroup after it)."""
    kind, _, ident = container_id.partition("://")
    if kind == "process":
        return [int(ident)]
    return pids_where("cgroup", lambda raw: ident.encode() in raw)


def pids_where(file: str, holds: Callable[[bytes], bool]) -> list[int]:
    """Host PIDs of the live processes whose /proc/<pid>/<file> `holds`; one that exits meanwhile is passed over."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if holds((entry / file).read_bytes()):
                found.append(int(entry.name))
        except OSError:
            continue  # it exited meanwhile
    return found
