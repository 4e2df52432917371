"""Where a window's CPU went on this machine, by kind of process (a diagnosis: `--starts-cpu`).

Two snapshots of /proc, at the window's start and end. A process's share is its own CPU plus that of the
children it reaped (`cutime`, `cstime`), so the short-lived ones (runc, its init) count towards whoever
waited for them: containerd's shims. One alive at both ends counts its difference; one born in between
counts all it used. One that ended in between is not seen, but its parent's reaped time holds it, unless that
parent is PID 1, which reaps orphans whose CPU was mostly spent before the window (left out). Every
process of the local cluster, its node's containers included, runs on this machine, so this sees them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")

# The cluster's own binaries, by the name they were started as; then Python processes, by what they run.
BINARIES = ("kube-apiserver", "etcd", "kubelet", "containerd", "kube-controller-manager", "kube-scheduler", "runc",
            "pause")
_PYTHON_KINDS = (
    ("bench", "bench.run"),
    ("operator", "flux-operator"),
    ("comparable", "import flux_runner.main"),
    ("runner", "flux-runner"),
)


def kind_of(cmdline: str) -> str:
    if not cmdline:
        return "kernel"  # a kernel thread (kworker, ksoftirqd, ...): the kernel's own work, such as a pod's teardown
    program = Path(cmdline.split(" ", 1)[0]).name
    if program in BINARIES:
        return program
    if program.startswith("containerd-shim"):
        return "containerd-shim"
    for kind, mark in _PYTHON_KINDS:
        if program.startswith("python") and mark in cmdline or program == mark:
            return kind
    return "other"


def _cmdline(pid: str) -> str:
    try:
        raw = (PROC / pid / "cmdline").read_bytes()
    except OSError:
        return ""
    # The arguments, NUL-separated, as one line: a `-c` program keeps its newlines.
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _ticks(pid: str) -> tuple[int, int] | None:
    """(start time, utime + stime + cutime + cstime), in clock ticks."""
    try:
        stat = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after the command's name, which may hold spaces
    utime, stime, cutime, cstime, start = (int(fields[i]) for i in (11, 12, 13, 14, 19))
    if pid == "1":  # init reaps every orphan: their whole lives' CPU, mostly spent before the window
        return start, utime + stime
    return start, utime + stime + cutime + cstime


@dataclass
class Snapshot:
    used: dict[tuple[str, int], int] = field(default_factory=dict)  # (pid, start) -> ticks
    kinds: dict[tuple[str, int], str] = field(default_factory=dict)

    @classmethod
    def take(cls) -> Snapshot:
        snap = cls()
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            ticks = _ticks(entry.name)
            if ticks is None:
                continue
            key = (entry.name, ticks[0])
            snap.used[key] = ticks[1]
            snap.kinds[key] = kind_of(_cmdline(entry.name))
        return snap


def used_between(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per kind of process from `before` to `after`, the largest first."""
    out: dict[str, float] = {}
    for key, ticks in after.used.items():
        spent = ticks - before.used.get(key, 0)
        if spent > 0:
            kind = after.kinds[key]
            out[kind] = out.get(kind, 0.0) + spent / CLOCK_TICKS
    return dict(sorted(((k, round(v, 2)) for k, v in out.items()), key=lambda kv: -kv[1]))


@contextmanager
def recorded(into: list[dict[str, float]] | None) -> Iterator[None]:
    """Appends to `into` the CPU used while the block ran (used_between); with None, records nothing."""
    if into is None:
        yield
        return
    before = Snapshot.take()
    yield
    into.append(used_between(before, Snapshot.take()))
