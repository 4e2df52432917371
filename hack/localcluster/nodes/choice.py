"""The one place that picks the node: FLUX_NODE when a cluster comes up, the layout's record after."""

from __future__ import annotations

import os

from localcluster.layout import Layout
from localcluster.nodes.kwok import KwokNode
from localcluster.nodes.process import ProcessNode
from localcluster.nodes.protocol import Node
from localcluster.nodes.real import RealNode

KINDS: dict[str, type[Node]] = {"process": ProcessNode, "real": RealNode, "kwok": KwokNode}


def node_kind() -> str:
    """FLUX_NODE: which node a cluster brought up now gets (process unless it says otherwise)."""
    kind = os.environ.get("FLUX_NODE", "process")
    if kind not in KINDS:
        raise ValueError(f"FLUX_NODE must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


def chosen() -> Node:
    return KINDS[node_kind()]()


def of(layout: Layout) -> Node:
    """The node of a cluster that is already up: what `up` recorded, whatever FLUX_NODE says now."""
    return KINDS[layout.node]()
