"""Starts one container process as PID 1 of a fresh PID, mount and UTS namespace.

Run as `python -m localcluster.pid1 SPEC.json` by the process node. This helper stays outside
the namespaces: it prints the container's host PID on stdout (the node signals that PID
directly, as a runtime does), waits, and exits with the container's status: the exit code, or
128+N when signal N killed it, as kubelet reports it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import stat
import sys
from pathlib import Path

STAGING = "/mnt"  # an empty directory on every Debian system; only used inside the new mount namespace
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 1, 32, 4096, 8192, 16384, 1 << 18
PR_SET_PDEATHSIG = 1

libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    _check(libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None),
           f"mount {source} on {target}")


def _die_with_parent() -> None:
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")


def _prepare_mount_point(target: Path, is_file: bool) -> None:
    # A bind mount needs something to cover; these placeholders are empty and harmless.
    if is_file:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    else:
        target.mkdir(parents=True, exist_ok=True)


def _reachable_for_everyone(path: Path) -> None:
    """Makes `path` exist and every ancestor traversable, inside this mount namespace only.

    The process node runs programs from the host (the project's virtualenv): a non-root
    container user must reach them even when the checkout sits under a private directory,
    or under a directory a volume (an emptyDir on /tmp) now covers.
    """
    current = Path("/")
    for part in path.parts[1:-1]:
        current = current / part
        if not current.exists():
            current.mkdir(mode=0o755)
        elif not current.stat().st_mode & 0o001:
            _mount("tmpfs", str(current), "tmpfs", 0)  # an empty, traversable stand-in
            os.chmod(current, 0o755)
    path.mkdir(mode=0o755, exist_ok=True)


def _become_container(spec: dict) -> None:
    """In the child: PID 1 of the new namespace. Never returns."""
    _die_with_parent()
    _mount("none", "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks to the host
    _mount("proc", "/proc", "proc", 0)  # /proc of the new PID namespace: `ps` shows the container only
    # Open everything we need from the host first: a volume mounted on /tmp may cover the
    # cluster directory itself, and with it the sources of later mounts and the log file.
    log_fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    sources = [os.open(m["source"], os.O_PATH | os.O_CLOEXEC) for m in spec["mounts"]]
    expose = spec.get("expose")
    if expose:
        _mount(expose, STAGING, None, MS_BIND | MS_REC)  # hold on to it before volumes may cover it
    for m, fd in zip(spec["mounts"], sources, strict=True):
        target = Path(m["target"])
        _prepare_mount_point(target, stat.S_ISREG(os.fstat(fd).st_mode))
        _mount(f"/proc/self/fd/{fd}", str(target), None, MS_BIND | MS_REC)
        if m.get("readOnly"):
            _mount("none", str(target), None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    if expose:
        _reachable_for_everyone(Path(expose))
        _check(libc.mount(STAGING.encode(), expose.encode(), None, MS_MOVE, None), f"move {expose}")
    hostname = spec["hostname"].encode()
    _check(libc.sethostname(hostname, len(hostname)), "sethostname")
    null_fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    if spec.get("gid") is not None:
        os.setgroups([])
        os.setgid(spec["gid"])
    if spec.get("uid") is not None:
        os.setuid(spec["uid"])
    _die_with_parent()  # a change of credentials clears the parent-death signal: set it again
    os.chdir(spec.get("workingDir") or "/")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    except OSError as err:
        os.write(2, f"exec {spec['argv'][0]!r} failed: {err.strerror}\n".encode())
        os._exit(127)


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    _die_with_parent()
    _check(libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    pid = os.fork()
    if pid == 0:
        try:
            _become_container(spec)
        except OSError as err:
            os.write(2, f"container setup failed: {err}\n".encode())
            os._exit(128)
    print(pid, flush=True)
    # The helper itself must not die of the signals meant for the container.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())
