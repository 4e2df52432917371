"""The host processes behind a pod's container, for tests that crash one (a kill is not a pod delete)."""

from __future__ import annotations

from pathlib import Path


def container_pids(container_id: str) -> list[int]:
    """Host PIDs of a running container (`status.containerStatuses[].containerID`). The process node's ID
    is `process://<pid>`; a real node's `containerd://<id>` is part of the cgroup path of every process of
    that container (runc names the container's cgroup after it)."""
    kind, _, ident = container_id.partition("://")
    if kind == "process":
        return [int(ident)]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if ident in (entry / "cgroup").read_text():
                found.append(int(entry.name))
        except OSError:
            continue  # it exited meanwhile
    return found
