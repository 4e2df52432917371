"""`up`, `down` and the supervisor that owns every control-plane process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from localcluster import procs
from localcluster.faults import Components
from localcluster.layout import Layout, Ports, control_plane_commands, write_kubeconfigs
from localcluster.nodes import choice
from localcluster.nodes.protocol import Node
from localcluster.probes import apiserver_ok, http_ok

READY_TIMEOUT = 120


class ClusterError(RuntimeError):
    pass


def _ready(layout: Layout) -> bool:
    return apiserver_ok(layout.server, layout.pki, "/readyz")


def is_up(layout: Layout | None) -> bool:
    return bool(layout and layout.supervisor_pid and procs.alive(layout.supervisor_pid) and _ready(layout))


def component_commands(layout: Layout, node: Node) -> dict[str, list[str]]:
    """Every process the supervisor starts, in order: the node's runtime, the control plane, the node."""
    before, after = node.commands(layout)
    return {**before, **control_plane_commands(layout, node.apiserver_flags(layout)), **after}


# --- the supervisor: a session leader whose children die with it -------------------------------

def supervise(root: Path) -> int:
    layout = Layout.load(root)
    assert layout is not None, "supervise runs only after up wrote state.json"
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    node = choice.of(layout)
    hooks = node.hooks(layout)
    health = {
        "etcd": lambda: http_ok(f"http://127.0.0.1:{layout.ports.etcd_client}/health"),
        "kube-apiserver": lambda: _ready(layout),
        **hooks.health,
    }
    after_start, before_start, before_stop = hooks.after_start, hooks.before_start, hooks.before_stop
    began = time.monotonic()
    components = Components(root)  # fault tests read pids here and may hold a component down
    commands = component_commands(layout, node)

    def start(name: str) -> subprocess.Popen:
        log = open(layout.logs / f"{name}.log", "ab")
        child = subprocess.Popen(commands[name], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 preexec_fn=procs.die_with_parent, cwd=layout.root)
        components.started(name, child.pid)
        return child

    try:
        for name in commands:
            if name in before_start:
                try:
                    before_start[name]()
                except RuntimeError as err:
                    print(f"supervisor: cannot start {name}: {err}", flush=True)
                    return 1
            children[name] = start(name)
            check = health.get(name)
            deadline = time.monotonic() + 60
            while check and not check() and not stopping:
                if children[name].poll() is not None or time.monotonic() > deadline:
                    print(f"supervisor: {name} did not become healthy", flush=True)
                    return 1
                time.sleep(0.1)
            if name in after_start:
                after_start[name]()
            print(f"supervisor: started {name} (pid {children[name].pid}) at {time.monotonic() - began:.2f}s",
                  flush=True)
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    verdict = components.exited(name, child.returncode)
                    if verdict == "hold":
                        continue
                    if verdict == "restart":
                        children[name] = start(name)
                        print(f"supervisor: restarted {name} (pid {children[name].pid})", flush=True)
                        continue
                    print(f"supervisor: {name} exited with {child.returncode}; stopping the cluster", flush=True)
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        _stop_children(children, before_stop)


def _stop_children(children: dict[str, subprocess.Popen], before_stop: dict) -> None:
    # Reverse order: the node stops its pods first, and the apiserver outlives its clients.
    for name in reversed(list(children)):
        if name in before_stop and children[name].poll() is None:
            before_stop[name]()
        procs.stop(children[name], timeout=10)


# --- up / down -----------------------------------------------------------------------------------

def up(root: Path) -> Layout:
    existing = Layout.load(root)
    if is_up(existing):
        print(f"cluster already up: KUBECONFIG={existing.kubeconfig}")
        return existing
    if existing:
        down(root, quiet=True)
    started = time.monotonic()
    node = choice.chosen()
    bin_dir = node.binaries()
    if root.exists():
        shutil.rmtree(root)
    ports = Ports(*(procs.free_port() for _ in range(5)))
    layout = Layout(root=root, bin=bin_dir, ports=ports, node=node.kind)
    layout.logs.mkdir(parents=True)
    node.plan(layout)
    node.make_pki(layout)
    write_kubeconfigs(layout)
    node.write_configs(layout)
    layout.save()
    log = open(layout.logs / "supervisor.log", "ab")
    supervisor = subprocess.Popen([sys.executable, "-m", "localcluster", "supervise", f"--dir={root}"],
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True, cwd=root)
    layout.supervisor_pid = supervisor.pid
    layout.save()
    try:
        _wait_ready(layout, supervisor)
        node.after_ready(layout)
    except (ClusterError, RuntimeError) as err:
        down(root, quiet=True)
        raise ClusterError(str(err)) from err
    print(f"cluster up in {time.monotonic() - started:.1f}s: export KUBECONFIG={layout.kubeconfig}")
    return layout


def _wait_ready(layout: Layout, supervisor: subprocess.Popen) -> None:
    from localcluster import kube  # the Python client is slow to import; only up needs it

    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if supervisor.poll() is not None:
            raise ClusterError(f"the supervisor exited ({supervisor.returncode}); see {layout.logs}")
        if _ready(layout) and kube.cluster_ready(layout.kubeconfig):
            return
        time.sleep(0.2)
    raise ClusterError(f"cluster not ready after {READY_TIMEOUT}s; see {layout.logs}")


def down(root: Path, quiet: bool = False) -> list[int]:
    """Stops the supervisor, then kills anything left in its session. Returns what had to be killed."""
    layout = Layout.load(root)
    if layout is None or not layout.supervisor_pid:
        if not quiet:
            print("cluster is not up")
        return []
    sid = layout.supervisor_pid
    node = choice.of(layout)
    if procs.alive(sid) and _ready(layout):
        node.before_down(layout)
    if procs.alive(sid):
        try:
            os.kill(sid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while procs.session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftovers = procs.session_members(sid)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.after_down(root)
    (root / "state.json").unlink(missing_ok=True)
    if not quiet:
        print("cluster down" + (f" (killed {len(leftovers)} stragglers)" if leftovers else ""))
    return leftovers
