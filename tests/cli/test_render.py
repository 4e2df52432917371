"""Rendering: the text carries the facts, the JSON has stable keys, user text is never markup."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from flux_api import CANCEL_ANNOTATION, PARENT_LABEL
from flux_cli import main
from flux_cli.executions import render
from flux_cli.rendering import to_text
from flux_cli.terminal import json_text
from flux_cli.executions.actions import StatusView
from flux_cli.executions.cancelling import CancelResult
from flux_cli.executions.family import Node, PodRef

pytestmark = pytest.mark.unit

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def ex(name: str, phase: str | None = "Running", namespace: str = "team-a", **more: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2024-06-01T11:55:00Z", **more.pop("metadata", {})},
        "spec": {"workflow": "pkg.mod:main", **more.pop("spec", {})},
        "status": {"phase": phase, **more.pop("status", {})} if phase else more.pop("status", {}),
    }
    return obj


# cancel


def accepted() -> CancelResult:
    return CancelResult(
        name="etl",
        namespace="team-a",
        phase="Cancelling",
        accepted=True,
        cancelled_count=3,
        reason="nightly cleanup",
        children=["etl-child-1", "etl-child-2"],
        message="cancel requested",
    )


def test_cancel_text_shows_every_fact() -> None:
    text = to_text(render.cancel_text([accepted()]))
    assert lines(text) == [
        "etl  cancel requested",
        "  namespace:  team-a",
        "  status:     Cancelling",
        "  cancelled:  3 executions (itself and 2 children)",
        "  reason:     nightly cleanup",
        "  children:   etl-child-1",
        "              etl-child-2",
    ]


def test_cancel_text_blocks_are_separated_and_ordered() -> None:
    finished = CancelResult("old", "team-a", phase="Succeeded", already_finished=True, message="already finished (Succeeded)")
    missing = CancelResult("gone", "team-a", error=True, message='execution "gone" in namespace "team-a" not found')
    out = lines(to_text(render.cancel_text([accepted(), finished, missing])))
    assert out[0] == "etl  cancel requested"
    assert "" in out
    assert "old  already finished (Succeeded)" in out and "  cancelled:  0" in out and "  children:   <none>" in out
    assert out[-2:] == ['gone  execution "gone" in namespace "team-a" not found', "  namespace:  team-a"]


def test_cancel_text_singular_forms() -> None:
    one = CancelResult("a", "ns", phase="Running", accepted=True, cancelled_count=1, reason="r", message="cancel requested")
    assert "  cancelled:  1 execution (itself)" in lines(to_text(render.cancel_text([one])))
    two = CancelResult("a", "ns", phase="Running", accepted=True, cancelled_count=2, children=["a-1"], reason="r")
    assert "  cancelled:  2 executions (itself and 1 child)" in lines(to_text(render.cancel_text([two])))


def test_dry_run_text_shows_the_tree_with_pods() -> None:
    result = CancelResult("etl", "team-a", phase="Running", accepted=True, cancelled_count=2, children=["etl-1"], reason="r",
                          message="would cancel (dry run)", dry_run=True)
    result.tree = Node("etl", "team-a", "Running", pods=[PodRef("etl-pod", "Running")],
                       children=[Node("etl-1", "team-a", "Pending", pods=[PodRef("etl-1-pod", None)])])
    out = lines(to_text(render.cancel_text([result])))
    assert out[0] == "etl  would cancel (dry run)"
    assert "  would cancel:  2 executions (itself and 1 child)" in out
    assert out[out.index("  would touch:") + 1 :] == [
        "  etl  Running",
        "  ├── pod etl-pod  Running",
        "  └── etl-1  Pending",
        "      └── pod etl-1-pod  <none>",
    ]


def test_cancel_json_is_a_list_of_result_objects() -> None:
    data = json.loads(json_text(render.cancel_json([accepted()])))
    assert isinstance(data, list) and len(data) == 1
    assert {"name", "namespace", "phase", "accepted", "alreadyFinished", "cancelledCount", "reason", "children", "message"} <= set(data[0])
    assert data[0]["children"] == ["etl-child-1", "etl-child-2"] and data[0]["cancelledCount"] == 3


def test_user_text_is_never_parsed_as_markup() -> None:
    result = CancelResult("a", "ns", phase="Running", accepted=True, cancelled_count=1, reason="[red]boom[/red] :smile:", message="ok")
    assert "  reason:     [red]boom[/red] :smile:" in lines(to_text(render.cancel_text([result])))


def test_to_text_has_no_ansi_codes() -> None:
    assert "\x1b" not in to_text(render.cancel_text([accepted()]))


# list


def test_list_table_columns() -> None:
    objs = [ex("b", "Failed"), ex("a", "Cancelled", status={"cancellation": {"reason": "too slow", "source": "spec"}})]
    out = lines(to_text(render.list_table(objs, NOW, all_namespaces=False)))
    assert out[0].split() == ["NAME", "PHASE", "REASON", "AGE"]
    assert out[1].split() == ["b", "Failed", "<none>", "5m"]
    assert out[2].split() == ["a", "Cancelled", "too", "slow", "5m"]


def test_list_table_with_all_namespaces_starts_with_the_namespace() -> None:
    out = lines(to_text(render.list_table([ex("a", namespace="prod")], NOW, all_namespaces=True)))
    assert out[0].split() == ["NAMESPACE", "NAME", "PHASE", "REASON", "AGE"]
    assert out[1].split()[:2] == ["prod", "a"]


def test_list_json() -> None:
    rows = render.list_json([ex("a", phase=None)], NOW)
    assert rows == [{"name": "a", "namespace": "team-a", "phase": "Pending", "reason": None, "createdAt": "2024-06-01T11:55:00Z", "age": "5m"}]
    json.dumps(rows)


# tree


def test_tree_text_and_json() -> None:
    root = Node("p", "ns", "Cancelling", reason="stop", children=[Node("p-a", "ns", "Cancelled"), Node("p-b", "ns", "Running", children=[Node("p-b-1", "ns", "Pending")])])
    assert lines(to_text(render.execution_tree(root))) == [
        "p  Cancelling  stop",
        "├── p-a  Cancelled",
        "└── p-b  Running",
        "    └── p-b-1  Pending",
    ]
    assert render.tree_json(root)["children"][1]["children"][0]["name"] == "p-b-1"


# status


def full_execution() -> dict[str, Any]:
    return ex(
        "etl",
        "Cancelling",
        spec={"cancel": {"reason": "nightly", "cascade": True, "force": False}},
        status={
            "podName": "etl-pod",
            "startedAt": "2024-06-01T11:56:00Z",
            "message": "cancelling",
            "conditions": [
                {"type": "Started", "status": "True", "reason": "PodRunning", "message": "", "lastTransitionTime": "2024-06-01T11:56:00Z"},
                {"type": "CancelRequested", "status": "True", "reason": "Spec", "message": "by user", "lastTransitionTime": "2024-06-01T11:59:00Z"},
            ],
            "cancellation": {
                "reason": "nightly",
                "source": "spec",
                "requestedAt": "2024-06-01T11:59:00Z",
                "signalledAt": "2024-06-01T11:59:01Z",
                "outcome": None,
                "children": [{"name": "etl-1", "phase": "Cancelling"}],
            },
            "checkpoint": {
                "state": "Running",
                "sequence": 7,
                "steps": [{"name": "extract", "result": 1, "completedAt": "2024-06-01T11:57:00Z"}, {"name": "transform", "completedAt": "2024-06-01T11:58:00Z"}],
                "data": {"cursor": 42},
                "updatedAt": "2024-06-01T11:58:00Z",
            },
            "children": [{"name": "etl-1", "phase": "Running", "result": None, "error": None}, {"name": "etl-0", "phase": "Failed", "error": "boom"}],
        },
    )


def test_status_text_has_every_section() -> None:
    child = ex("etl-1", "Cancelling", metadata={"labels": {PARENT_LABEL: "etl"}})
    out = lines(to_text(render.status_text(StatusView(full_execution(), [child]), NOW)))
    assert "Name:       etl" in out and "Phase:      Cancelling" in out and "Pod:        etl-pod" in out
    assert "Started:    2024-06-01T11:56:00Z (4m ago)" in out
    assert any(line.split()[:3] == ["CancelRequested", "True", "Spec"] for line in out)
    for expected in ["Reason:        nightly", "Source:        spec", "Outcome:       <none>", "Children:      etl-1 (Cancelling)", "Cascade:       yes", "Force:         no"]:
        assert "  " + expected in out
    for expected in ["State:      Running", "Sequence:   7", "Steps:      2", "Last step:  transform (completed 2m ago)", 'Data:       {"cursor": 42}']:
        assert "  " + expected in out
    children = out[out.index("Children:") + 1 :]
    assert children[0].split() == ["NAME", "PHASE", "ERROR"]
    assert children[1].split() == ["etl-1", "Cancelling"]  # the live phase wins over the mirrored one
    assert children[2].split() == ["etl-0", "Failed", "boom"]


def test_status_text_when_nothing_happened_yet() -> None:
    out = lines(to_text(render.status_text(StatusView(ex("new", None), []), NOW)))
    assert "Phase:      Pending" in out
    assert out[out.index("Conditions:") + 1] == "  <none>"
    assert out[out.index("Cancellation:") + 1] == "  not requested"
    assert out[out.index("Checkpoint:") + 1] == "  none yet"
    assert out[out.index("Children:") + 1] == "  <none>"


def test_status_text_shows_a_request_the_operator_has_not_handled() -> None:
    requested = ex("a", spec={"cancel": {"reason": "now"}})
    assert "  requested (reason: now), not yet handled by the operator" in lines(to_text(render.status_text(StatusView(requested, []), NOW)))
    annotated = ex("a", metadata={"annotations": {CANCEL_ANNOTATION: "via kubectl"}})
    out = lines(to_text(render.status_text(StatusView(annotated, []), NOW)))
    assert "  requested by annotation (reason: via kubectl), not yet handled by the operator" in out


def test_status_text_truncates_huge_data() -> None:
    obj = ex("a", status={"checkpoint": {"state": "Running", "data": {"blob": "x" * 5000}}})
    text = to_text(render.status_text(StatusView(obj, []), NOW))
    assert "-o json shows all" in text and len(text) < 3000


def test_status_json() -> None:
    data = render.status_json(StatusView(full_execution(), []))
    assert data["name"] == "etl" and data["phase"] == "Cancelling" and data["workflow"] == "pkg.mod:main"
    assert [c["type"] for c in data["conditions"]] == ["Started", "CancelRequested"]
    assert data["cancelRequest"] == {"reason": "nightly", "cascade": True, "force": False}
    assert data["cancellation"]["source"] == "spec"
    assert data["checkpoint"] == {
        "state": "Running",
        "sequence": 7,
        "stepsCount": 2,
        "lastStep": {"name": "transform", "completedAt": "2024-06-01T11:58:00Z"},
        "data": {"cursor": 42},
        "result": None,
        "error": None,
        "updatedAt": "2024-06-01T11:58:00Z",
    }
    assert [c["name"] for c in data["children"]] == ["etl-1", "etl-0"]
    json.dumps(data)


def test_merge_children_adds_children_found_only_by_label() -> None:
    merged = render.merge_children([{"name": "a-2", "phase": "Succeeded", "result": 5}], [ex("a-1", "Running"), ex("a-2", "Succeeded")])
    assert merged == [
        {"name": "a-2", "phase": "Succeeded", "result": 5, "error": None},
        {"name": "a-1", "phase": "Running", "result": None, "error": None},
    ]


def test_version_text() -> None:
    out = lines(to_text(main.version_text("0.1.0", "workflows.flux.dev/v1alpha1", "v1.31.0", False)))
    assert out == ["Plugin:         0.1.0", "Execution API:  workflows.flux.dev/v1alpha1", "Server:         v1.31.0", "API installed:  no: install the Flux CRD"]
