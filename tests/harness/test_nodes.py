"""The node interface: FLUX_NODE picks one of three nodes, each says what its part of the cluster is."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fluxtest import wait_for
from localcluster.cluster import component_commands
from localcluster.faults import NODE_COMPONENTS
from localcluster.layout import Layout, Ports
from localcluster.nodes import choice
from localcluster.nodes.kwok import KWOK_NODE, STAGES, KwokNode
from localcluster.nodes.process import NODE_NAME, ProcessNode
from localcluster.nodes.protocol import Node
from localcluster.nodes.real import RealNode
from localcluster.procs import in_cgroup, named

pytestmark = pytest.mark.unit

CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]


def layout(node: Node, **extra) -> Layout:
    found = Layout(root=Path("/clusters/c1"), bin=Path("/cache/bin"), ports=Ports(1, 2, 6443, 4, 5),
                   node=node.kind, extra=extra)
    return found


@pytest.mark.parametrize("kind, cls", [("process", ProcessNode), ("real", RealNode), ("kwok", KwokNode)])
def test_flux_node_picks_the_node_and_the_layout_remembers_it(monkeypatch, kind, cls) -> None:
    monkeypatch.setenv("FLUX_NODE", kind)
    assert isinstance(choice.chosen(), cls)
    monkeypatch.setenv("FLUX_NODE", "process")  # what FLUX_NODE says later does not change a cluster that is up
    assert isinstance(choice.of(layout(cls())), cls)


def test_the_process_node_runs_after_the_control_plane() -> None:
    node = ProcessNode()
    lay = layout(node)
    node.plan(lay)
    commands = component_commands(lay, node)
    assert list(commands) == [*CONTROL_PLANE, "process-node"]
    assert lay.server == "https://127.0.0.1:6443"
    apiserver = commands["kube-apiserver"]
    assert "--secure-port=6443" in apiserver and "--service-cluster-ip-range=10.0.0.0/24" in apiserver
    assert f"--name={NODE_NAME}" in commands["process-node"]


def test_the_real_kubelet_node_has_its_own_flags_not_the_process_nodes_minus_some() -> None:
    node = RealNode()
    lay = layout(node, slot=117)
    commands = component_commands(lay, node)
    assert list(commands) == ["containerd", *CONTROL_PLANE, "kubelet"]
    apiserver = commands["kube-apiserver"]
    for prefix in ("--secure-port=", "--bind-address=", "--service-cluster-ip-range=",
                   "--kubelet-preferred-address-types="):
        assert len([f for f in apiserver if f.startswith(prefix)]) == 1, prefix
    assert "--secure-port=443" in apiserver and "--bind-address=127.0.117.1" in apiserver
    assert node.runner_image and node.python_image and node.serves_exec


def test_the_kwok_node_runs_kwok_in_the_nodes_place() -> None:
    node = KwokNode()
    lay = layout(node)
    commands = component_commands(lay, node)
    assert list(commands) == [*CONTROL_PLANE, "kwok"]
    assert commands["kwok"][0] == "/cache/bin/kwok" and f"--config={STAGES}" in commands["kwok"]
    assert STAGES.is_file()
    assert node.name == KWOK_NODE and not node.serves_exec


def test_every_node_has_the_whole_interface() -> None:
    wanted = {n for n in dir(Node) if not n.startswith("_")} | set(Node.__annotations__)
    for cls in choice.KINDS.values():
        missing = {n for n in wanted if not hasattr(cls, n)}
        assert not missing, f"{cls.__name__} lacks {missing}"


def test_a_cluster_brought_up_before_the_node_interface_still_loads(tmp_path) -> None:
    import json

    state = {"root": str(tmp_path), "bin": "/cache/bin", "supervisor_pid": 7,
             "ports": {"etcd_client": 1, "etcd_peer": 2, "apiserver": 6443, "controller_manager": 4, "scheduler": 5}}
    (tmp_path / "state.json").write_text(json.dumps(state))
    old = Layout.load(tmp_path)
    assert (old.node, old.server) == ("process", "https://127.0.0.1:6443")
    state["extra"] = {"node": "real", "slot": 117}
    (tmp_path / "state.json").write_text(json.dumps(state))
    old = Layout.load(tmp_path)
    assert (old.node, old.server) == ("real", "https://127.0.117.1:443")
    old.save()
    assert Layout.load(tmp_path) == old


@pytest.mark.parametrize("cls", [ProcessNode, RealNode])
def test_the_fault_hooks_kill_and_start_the_nodes_own_components_in_order(cls) -> None:
    node = cls()
    commands = component_commands(layout(node, slot=117), node)
    assert [n for n in commands if n not in CONTROL_PLANE] == list(NODE_COMPONENTS[node.kind])


def test_a_cgroup_search_finds_this_process_and_no_pod_of_a_kubelet_not_running_here() -> None:
    assert os.getpid() in in_cgroup(":/")
    assert os.getpid() not in in_cgroup(":/no-such-cgroup-of-flux/")


def test_a_search_by_command_name_finds_a_child_by_its_name_and_not_by_a_prefix(tmp_path) -> None:
    """What tells the host-clean test that another real node runs: a kubelet process, by its name."""
    program = tmp_path / "fx-sleeper-with-a-long-name"
    program.symlink_to("/bin/sleep")
    child = subprocess.Popen([str(program), "30"])
    try:
        wait_for(lambda: child.pid in named("fx-sleeper-with-a-long-name"), timeout=5, what="the child by name")
        assert child.pid not in named("fx-sleeper")
        assert named("fx-no-such-command") == []
    finally:
        child.kill()
        child.wait()
