"""What `up`, the supervisor and `down` ask of a node, whatever runs its pods."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from localcluster.layout import Layout


@dataclass
class Hooks:
    """The supervisor's hooks, by component name: a node adds its own components' steps here."""

    health: dict[str, Callable[[], bool]] = field(default_factory=dict)
    before_start: dict[str, Callable[[], None]] = field(default_factory=dict)  # must succeed before it starts
    after_start: dict[str, Callable[[], None]] = field(default_factory=dict)  # once it is healthy
    before_stop: dict[str, Callable[[], None]] = field(default_factory=dict)  # just before it is stopped


class Node(Protocol):
    """One kind of node. `up` calls, in order: binaries, plan, make_pki, write_configs; the supervisor
    calls commands and hooks; `up` calls after_ready once the API server is ready. `down` calls
    before_down while the API still answers and after_down once every process is gone."""

    kind: str  # what FLUX_NODE names
    name: str  # the Node object the scheduler binds pods to
    runner_image: str | None  # what operators put in runner pods (FLUX_RUNNER_IMAGE), None: their default
    python_image: str | None  # an image with python3 for a bare Python container; None: the host's python
    settle_seconds: float  # how long a freshly started container takes before a delete acts at once
    serves_exec: bool  # whether `kubectl exec` reaches a pod's container

    def binaries(self) -> Path: ...

    def plan(self, layout: Layout) -> None:
        """Before any file is written: where the API server listens (layout.server), ports, images."""

    def make_pki(self, layout: Layout) -> None: ...

    def write_configs(self, layout: Layout) -> None: ...

    def apiserver_flags(self, layout: Layout) -> list[str]:
        """Where the API server listens, its Service range and how it reaches the node's kubelet."""

    def commands(self, layout: Layout) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """The node's components: (started before the control plane, started after it)."""

    def hooks(self, layout: Layout) -> Hooks: ...

    def after_ready(self, layout: Layout) -> None: ...

    def before_down(self, layout: Layout) -> None: ...

    def after_down(self, root: Path) -> None: ...
