"""Fault injection for the local cluster: stop, continue, kill and restart its components, and cut the
operator off from the API server without refusing its connections.

Two halves:

- The supervisor's side (`Components`): it writes `<cluster>/components.json` (each component's pid,
  state and number of starts) and honours hold files `<cluster>/faults/hold-<component>`. A component
  that exits while its hold file exists is left down instead of taking the whole cluster with it; once
  the hold file is removed the supervisor starts it again with the same command. Without hold files the
  supervisor behaves exactly as before: any component that exits stops the cluster.
- The test's side (`ClusterFaults`, `BlackholeProxy`, `proxy_kubeconfig`): what a fault test calls.

Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from localcluster.layout import Layout, write_kubeconfig
from localcluster.probes import apiserver_ok, http_ok, wait_for
from localcluster.procs import in_cgroup, session_members

COMPONENTS_FILE = "components.json"
FAULTS_DIR = "faults"
# Each node kind's components, in the order they start: what kill_node takes down, start_node brings back.
NODE_COMPONENTS = {"process": ("process-node",), "real": ("containerd", "kubelet")}
KUBEPODS = ":/kubepods/"  # a pod's cgroup under the real kubelet's (cgroupfs driver), in /proc/<pid>/cgroup


def hold_file(root: Path, name: str) -> Path:
    return root / FAULTS_DIR / f"hold-{name}"


# --- the supervisor's side ------------------------------------------------------------------------

class Components:
    """What the supervisor tells fault tests about its children, and the hold files it honours."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state: dict[str, dict] = {}
        self.held: set[str] = set()

    def started(self, name: str, pid: int) -> None:
        entry = self.state.setdefault(name, {"starts": 0})
        entry.update(pid=pid, state="running", starts=entry["starts"] + 1, since=time.time())
        self.held.discard(name)
        self._write()

    def exited(self, name: str, code: int | None) -> str:
        """A child exited: 'hold' (leave it down), 'restart' (its hold was lifted) or 'fail' (as before)."""
        if hold_file(self.root, name).exists():
            if name not in self.held:
                self.held.add(name)
                self.state.setdefault(name, {"starts": 0}).update(state="held", exitCode=code, since=time.time())
                self._write()
                print(f"supervisor: {name} exited with {code} while held by a fault test; left down", flush=True)
            return "hold"
        return "restart" if name in self.held else "fail"

    def _write(self) -> None:
        tmp = self.root / f"{COMPONENTS_FILE}.tmp"
        tmp.write_text(json.dumps({"supervisor": os.getpid(), "components": self.state}, indent=2))
        tmp.replace(self.root / COMPONENTS_FILE)


# --- the test's side ------------------------------------------------------------------------------

class ClusterFaults:
    """Stops, continues, kills and restarts the components of a cluster whose supervisor has the hooks."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.root = layout.root

    @property
    def supported(self) -> bool:
        """False for a cluster started by a supervisor without the hooks (it writes no components.json)."""
        return (self.root / COMPONENTS_FILE).exists()

    def components(self) -> dict[str, dict]:
        return json.loads((self.root / COMPONENTS_FILE).read_text())["components"]

    def pid(self, name: str) -> int:
        entry = self.components()[name]
        if entry.get("state") != "running":
            raise RuntimeError(f"{name} is not running: {entry}")
        return int(entry["pid"])

    @property
    def node_components(self) -> tuple[str, ...]:
        return NODE_COMPONENTS[self.layout.node]

    def healthy(self, name: str) -> bool:
        if name == "etcd":
            return http_ok(f"http://127.0.0.1:{self.layout.ports.etcd_client}/health")
        if name == "kube-apiserver":
            return apiserver_ok(self.layout.server, self.layout.pki, "/readyz")
        if self.components().get(name, {}).get("state") != "running":
            return False
        check = self._node_health.get(name)  # the supervisor's own check (a real node's kubelet, containerd)
        try:
            return check() if check else True
        except (OSError, subprocess.SubprocessError):
            return False

    @functools.cached_property
    def _node_health(self) -> dict:
        from localcluster.nodes import choice
        return choice.of(self.layout).hooks(self.layout).health

    # --- SIGSTOP / SIGCONT: a hung process, its sockets open --------------------------------------

    @contextlib.contextmanager
    def paused(self, name: str) -> Iterator[int]:
        pid = self.pid(name)
        os.kill(pid, signal.SIGSTOP)
        try:
            yield pid
        finally:
            os.kill(pid, signal.SIGCONT)

    # --- down and up again -----------------------------------------------------------------------

    def stop(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30, kill_after: float | None = None) -> float:
        """Sends `name` `sig` (then SIGKILL once `kill_after` seconds have passed, if given) and keeps it
        down; returns the monotonic time of the first signal."""
        pid = int(self.components()[name]["pid"])
        hold = hold_file(self.root, name)
        hold.parent.mkdir(exist_ok=True)
        hold.touch()
        killed_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        held = lambda: self.components()[name].get("state") == "held"  # noqa: E731
        if kill_after is not None:
            try:
                wait_for(held, kill_after, what=f"{name} to exit", error=TimeoutError)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        wait_for(held, timeout, what=f"the supervisor to hold {name}", error=TimeoutError)
        return killed_at

    def start(self, name: str, timeout: float = 90, healthy: bool = True) -> int:
        """Lets the supervisor start `name` again; waits for its new process (and health); returns its pid."""
        starts = self.components()[name]["starts"]
        hold_file(self.root, name).unlink(missing_ok=True)
        wait_for(lambda: self.components()[name]["starts"] > starts and self.components()[name]["state"] == "running",
                 timeout, what=f"the supervisor to start {name} again", error=TimeoutError)
        if healthy:
            wait_for(lambda: self.healthy(name), timeout, 0.2, f"{name} to be healthy again", TimeoutError)
        return self.pid(name)

    def restart(self, name: str, sig: int = signal.SIGTERM, down_seconds: float = 0, timeout: float = 90,
                kill_after: float | None = None) -> float:
        """Stops and starts `name`; returns how long it was down (first signal to healthy)."""
        killed_at = self.stop(name, sig, timeout, kill_after)
        if down_seconds:
            time.sleep(down_seconds)
        self.start(name, timeout)
        return time.monotonic() - killed_at

    def kill_node(self, timeout: float = 30) -> dict[int, str]:
        """The node dies as a machine does: its components (the process node; a real node's kubelet and
        containerd) and every process they ran, at once (SIGKILL). Returns the other processes killed, pid
        to command name (its containers; a real node's shims too). The supervisor holds the node down until
        `start_node`.

        Killing the node process alone is not enough: a container that changed its user (runAsUser)
        lost the parent-death signal with it (prctl(2)), so it would outlive its node and keep working.
        A real node's containers are in sessions of their own (runc makes one): found by their cgroup."""
        names = self.node_components
        supervisor = json.loads((self.root / COMPONENTS_FILE).read_text())["supervisor"]
        keep = {supervisor, os.getpid(), *(int(e["pid"]) for n, e in self.components().items()
                              if n not in names and e.get("state") == "running")}
        nodes = [self.pid(name) for name in names]

        def members() -> list[int]:
            found = session_members(supervisor) + (in_cgroup(KUBEPODS) if self.layout.node == "real" else [])
            return [pid for pid in dict.fromkeys(found) if pid not in keep]

        doomed = {pid: _command(pid) for pid in members() if pid not in nodes}
        for name in names:
            hold = hold_file(self.root, name)
            hold.parent.mkdir(exist_ok=True)
            hold.touch()
        for pid in [*nodes, *doomed]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Anything a container forked meanwhile is in the same session (or cgroup): sweep until none is left.
        def swept() -> bool:
            left = members()
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return not left
        wait_for(swept, timeout, 0.2, "every process of the node to die", TimeoutError)
        for name in names:
            wait_for(lambda: self.components()[name].get("state") == "held", timeout,
                     what=f"the supervisor to hold {name}", error=TimeoutError)
        return doomed

    def start_node(self, timeout: float = 90) -> None:
        """The node back after `kill_node`: its components in their order, each healthy before the next."""
        for name in self.node_components:
            self.start(name, timeout)

    def release_all(self) -> None:
        """Lifts every hold (for a test's cleanup): the supervisor starts what it held."""
        for hold in (self.root / FAULTS_DIR).glob("hold-*") if (self.root / FAULTS_DIR).exists() else []:
            hold.unlink(missing_ok=True)


# --- the operator cut off from the API server: drop, not refuse ---------------------------------

class BlackholeProxy:
    """A TCP proxy on 127.0.0.1 in front of the API server, in this process's threads.

    Forwarding, it copies bytes both ways. Black-holed (`drop()`), it keeps every connection open and
    accepts new ones, but moves no byte in either direction: to the client it is a network that drops
    packets, not a server that refuses or resets (no RST, no FIN). `restore()` resumes forwarding on
    the connections it held, as a healed network delivers what TCP retransmits; new connections made
    meanwhile reach the API server only then. TLS passes through untouched (the API server's
    certificate names 127.0.0.1, so a kubeconfig pointing here verifies as usual).
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._abandoned: set[socket.socket] = set()
        self.connections = 0
        self.bytes = 0
        self.dropped_at: float | None = None
        threading.Thread(target=self._accept, name=f"blackhole-proxy-{self.port}", daemon=True).start()

    @property
    def forwarding(self) -> bool:
        return self._forwarding.is_set()

    def drop(self) -> None:
        self.dropped_at = time.monotonic()
        self._forwarding.clear()

    def restore(self, abandon_held: bool = False) -> None:
        """Forwards again. With `abandon_held`, the connections held during the drop stay silent for
        good (neither forwarded nor closed), as after a NAT or conntrack flush: only new ones work."""
        if abandon_held:
            with self._lock:
                self._abandoned.update(self._sockets)
        self._forwarding.set()

    def close(self) -> None:
        self._closed.set()
        self._forwarding.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> "BlackholeProxy":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        # A connection accepted while black-holed reaches the API server only once the network heals.
        while not self._forwarding.wait(0.2):
            if self._closed.is_set():
                return
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets.append(upstream)
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                if source in self._abandoned or sink in self._abandoned:
                    self._closed.wait(0.5)  # a dead path: nothing moves, nothing closes
                    continue
                if not self._forwarding.is_set():
                    self._forwarding.wait(0.2)  # read nothing: the peer's writes pile up unacknowledged
                    continue
                readable, _, _ = select.select([source], [], [], 0.2)
                if not readable:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                while not self._forwarding.is_set() and not self._closed.is_set():
                    self._forwarding.wait(0.2)  # dropped mid-flight: hold it until the network heals
                sink.sendall(data)
                self.bytes += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"  # it exited meanwhile


def proxy_kubeconfig(layout: Layout, port: int, path: Path) -> Path:
    """The admin kubeconfig, pointing at `port` on 127.0.0.1 instead of the API server."""
    pki = layout.pki
    write_kubeconfig(path, f"https://127.0.0.1:{port}", pki / "ca.crt", pki / "admin.crt", pki / "admin.key",
                     "admin")
    return path

