"""A cancel that cascades reaches every descendant the World knows in one pass (execution/cancel.py:cascade),
with what each parent would itself ask of its children, word for word (spec.cancel is immutable)."""

from __future__ import annotations

from typing import Any

import pytest
from flux_api import PARENT_LABEL, Execution
from flux_operator.execution.cancel import cascade
from flux_operator.execution.machine import CancelChild, PodView, decide
from tests.operator.builders import NOW, of

pytestmark = pytest.mark.unit


def node(name: str, parent: str | None, phase: str = "Running", kids: tuple[str, ...] = (),
         cancel: dict | None = None, owned: bool = True) -> Execution:
    """`name` under `parent` (controlled by it unless not `owned`), with its records of `kids` (by UID)."""
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1,
                            "creationTimestamp": "2026-11-21T11:58:00Z", "labels": {}}
    if parent:
        meta["labels"] = {PARENT_LABEL: parent}
        if owned:
            meta["ownerReferences"] = [{"uid": f"uid-{parent}", "controller": True, "kind": "Execution",
                                        "name": parent}]
    spec: dict[str, Any] = {"workflow": "pkg.mod:main", "gracePeriodSeconds": 30}
    if cancel:
        spec["cancel"] = {"cascade": True, "force": False, **cancel}
    return Execution.model_validate({"metadata": meta, "spec": spec, "status": {
        "phase": phase, "startedAt": "2026-11-21T11:59:00.000Z", "podName": f"{name}-runner",
        "children": [{"name": k, "uid": f"uid-{k}", "phase": "Running"} for k in kids]}})


def tree() -> tuple[Execution, list[Execution], dict[str, list[Execution]]]:
    """root -> a, b; a -> a1, a2; b -> b1; a1 -> a1x."""
    root = node("root", None, kids=("a", "b"), cancel={"reason": "stop"})
    a, b = node("a", "root", kids=("a1", "a2")), node("b", "root", kids=("b1",))
    family = {"a": [node("a1", "a", kids=("a1x",)), node("a2", "a")], "b": [node("b1", "b")],
              "a1": [node("a1x", "a1")], "a2": [], "b1": [], "a1x": []}
    return root, [a, b], family


def test_one_pass_reaches_every_level_with_each_parents_own_words() -> None:
    root, children, family = tree()
    cancels = of(decide(root, PodView("root-runner", phase="Running", started=True), children, NOW,
                        family=family), CancelChild)
    assert [(c.name, c.parent) for c in cancels] == [
        ("a", "root"), ("b", "root"), ("a1", "a"), ("a2", "a"), ("b1", "b"), ("a1x", "a1")]
    reasons = {c.name: c.reason for c in cancels}
    assert reasons["a"] == "parent root cancelled: stop"
    assert reasons["a1"] == "parent a cancelled: parent root cancelled: stop", "what a itself would ask"
    assert reasons["a1x"] == "parent a1 cancelled: parent a cancelled: parent root cancelled: stop"


def test_a_descendant_already_cancelled_passes_its_own_cancel_on_and_is_not_asked_again() -> None:
    root, children, family = tree()
    children[0] = node("a", "root", kids=("a1", "a2"), cancel={"reason": "mine", "force": True})
    cancels = {c.name: c for c in cascade("root", "stop", False, children, family)}
    assert "a" not in cancels
    assert (cancels["a1"].reason, cancels["a1"].force) == ("parent a cancelled: mine", True)
    assert cancels["b1"].force is False


def test_below_a_cancel_without_cascade_nothing_is_touched() -> None:
    root, children, family = tree()
    children[0] = node("a", "root", kids=("a1", "a2"), cancel={"reason": "only me", "cascade": False})
    assert [c.name for c in cascade("root", "stop", False, children, family)] == ["b", "b1"]


def test_only_owned_live_descendants_are_cancelled() -> None:
    root, children, family = tree()
    family["a"] = [node("a1", "a", kids=("a1x",), owned=False), node("a2", "a", phase="Succeeded")]
    family["b"] = [node("b1", "b"), node("intruder", "b")]  # claims b as parent; b never recorded it
    names = [c.name for c in cascade("root", "stop", False, children, family)]
    assert names == ["a", "b", "b1"]


def test_a_family_unknown_below_a_level_stops_there() -> None:
    root, children, _ = tree()
    assert [c.name for c in cascade("root", "stop", False, children, {})] == ["a", "b"]
