"""Parent/child trees of executions, built from the parent label on a flat list of objects."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flux_api.cancel import requested_cancel

from flux_cli import objects


@dataclass
class PodRef:
    name: str
    phase: str | None = None


@dataclass
class Node:
    name: str
    namespace: str
    phase: str
    reason: str | None = None
    children: list[Node] = field(default_factory=list)
    pods: list[PodRef] = field(default_factory=list)
    passes_cancel_on: bool = True  # False: cancelled on its own without its children, which it keeps running

    @property
    def terminal(self) -> bool:
        return objects.is_terminal_phase(self.phase)

    def walk(self) -> Iterator[Node]:
        """This node, then every descendant, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def descendants(self) -> list[Node]:
        return list(self.walk())[1:]

    def cascade_reach(self) -> list[Node]:
        """The descendants a cascading cancel of this node stops, as the operator's cascade reaches them: not
        a finished child or what is below it, nor one cancelled without its children or what is below that."""
        reached = []
        for child in self.children:  # depth first, as `walk`: the order the report lists them in
            if not child.terminal and child.passes_cancel_on:
                reached += [child, *child.cascade_reach()]
        return reached

    def to_json(self, with_pods: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "phase": self.phase, "reason": self.reason}
        if with_pods:
            data["pods"] = [{"name": pod.name, "phase": pod.phase} for pod in self.pods]
        data["children"] = [child.to_json(with_pods) for child in self.children]
        return data


ChildrenIndex = dict[tuple[str, str], list[dict[str, Any]]]


def children_index(executions: Iterable[dict[str, Any]]) -> ChildrenIndex:
    """(namespace, parent name) -> child objects, sorted by name for stable output."""
    index: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for obj in executions:
        parent = objects.parent_of(obj)
        if parent:
            index[(objects.namespace_of(obj), parent)].append(obj)
    return {key: sorted(children, key=objects.name_of) for key, children in index.items()}


def build_tree(root: dict[str, Any], executions: Iterable[dict[str, Any]]) -> Node:
    """The root and all its descendants found in `executions` (which may include the root)."""
    return _build(root, children_index(executions), seen=set())


def _build(obj: dict[str, Any], index: ChildrenIndex, seen: set[tuple[str, str]]) -> Node:
    key = objects.key_of(obj)
    # A hand-edited label could form a loop; each execution appears once.
    seen.add(key)
    own = requested_cancel(obj)
    node = Node(name=key[1], namespace=key[0], phase=objects.phase_of(obj), reason=objects.reason_of(obj),
                passes_cancel_on=own is None or own.cascade)
    for child in index.get(key, []):
        if objects.key_of(child) not in seen and objects.is_child_of(child, obj):
            node.children.append(_build(child, index, seen))
    return node


def prune(node: Node, keep: Callable[[Node], bool]) -> Node:
    """A copy with only the descendants that `keep` accepts, plus the ancestors that lead to them."""
    kept = [pruned for child in node.children if (pruned := _prune(child, keep)) is not None]
    return Node(node.name, node.namespace, node.phase, node.reason, kept, list(node.pods), node.passes_cancel_on)


def _prune(node: Node, keep: Callable[[Node], bool]) -> Node | None:
    pruned = prune(node, keep)
    return pruned if keep(node) or pruned.children else None


def attach_pods(root: Node, pods: Iterable[dict[str, Any]]) -> None:
    """Hang each pod under the execution named by its execution label."""
    by_execution: dict[tuple[str, str], list[PodRef]] = defaultdict(list)
    for pod in pods:
        owner = objects.execution_label_of(pod)
        if owner:
            phase = objects.status(pod).get("phase")
            by_execution[(objects.namespace_of(pod), owner)].append(PodRef(objects.name_of(pod), phase))
    for node in root.walk():
        node.pods = sorted(by_execution.get((node.namespace, node.name), []), key=lambda pod: pod.name)


def covered_by(ancestors: Iterable[Node]) -> set[tuple[str, str]]:
    """Keys of every descendant of the given nodes."""
    return {(d.namespace, d.name) for node in ancestors for d in node.descendants()}
