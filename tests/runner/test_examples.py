"""The example workflows, run by the runner against the in-memory API (children by a fake operator)."""

import asyncio
from pathlib import Path

import pytest
from flux_runner.main import EXIT_OK, run
from flux_runner.testing import FakeExecutionApi, new_execution, operator_finishes_children

pytestmark = pytest.mark.unit


def run_example(token: Path, name: str, workflow: str, input: dict, operator=None) -> FakeExecutionApi:
    api = FakeExecutionApi(new_execution(name, workflow, input))
    if operator:
        api.hooks.append(operator)
    assert asyncio.run(run(api.client(token), termination_log=Path("/nonexistent"), poll_interval=0.001)) == EXIT_OK
    return api


def test_longrun_runs_every_step(token):
    api = run_example(token, "long", "flux_examples.longrun:main", {"steps": 3, "stepSeconds": 0})
    assert api.checkpoint["state"] == "Succeeded"
    assert api.checkpoint["result"] == {"completedSteps": 3}
    assert [s["name"] for s in api.checkpoint["steps"]] == ["step-1", "step-2", "step-3"]


def test_longrun_rejects_negative_input(token):
    api = run_example(token, "long", "flux_examples.longrun:main", {"steps": -1})
    assert api.checkpoint["state"] == "Failed"
    assert "must not be negative" in api.checkpoint["error"]


def test_tree_spawns_two_branches_and_returns_their_results(token):
    operator = operator_finishes_children(result=lambda request: {"from": request["name"]})
    api = run_example(token, "tree", "flux_examples.tree:main", {"steps": 2, "stepSeconds": 0}, operator)
    assert api.checkpoint["state"] == "Succeeded"
    assert api.checkpoint["result"] == {"left": {"from": "tree-left"}, "right": {"from": "tree-right"}}
    assert api.status["spawnRequests"] == [
        {"name": "tree-left", "workflow": "flux_examples.tree:branch", "input": {"steps": 2, "stepSeconds": 0}},
        {"name": "tree-right", "workflow": "flux_examples.tree:branch", "input": {"steps": 2, "stepSeconds": 0}},
    ]


def test_a_tree_branch_spawns_a_longrun_leaf(token):
    operator = operator_finishes_children(result=lambda request: {"completedSteps": request["input"]["steps"]})
    api = run_example(token, "tree-left", "flux_examples.tree:branch", {"steps": 2, "stepSeconds": 0}, operator)
    assert api.checkpoint["result"] == {"leaf": {"completedSteps": 2}}
    assert api.status["spawnRequests"] == [
        {"name": "tree-left-leaf", "workflow": "flux_examples.longrun:main", "input": {"steps": 2, "stepSeconds": 0}},
    ]


def test_a_failed_branch_fails_the_tree(token):
    operator = operator_finishes_children("Failed", error="leaf broke")
    api = run_example(token, "tree", "flux_examples.tree:main", {}, operator)
    assert api.checkpoint["state"] == "Failed"
    assert api.checkpoint["error"] == "ChildFailed: child execution tree-left ended Failed: leaf broke"


def test_a_full_tree_spawns_fanout_children_one_level_down(token):
    operator = operator_finishes_children(result=lambda request: {"from": request["name"]})
    api = run_example(token, "t", "flux_examples.tree:full", {"depth": 2, "fanout": 3, "stepSeconds": 0}, operator)
    assert api.checkpoint["state"] == "Succeeded"
    assert api.checkpoint["result"] == {"children": 3}
    assert api.status["spawnRequests"] == [
        {"name": f"t-c{i}", "workflow": "flux_examples.tree:full", "input": {"depth": 1, "fanout": 3, "stepSeconds": 0}}
        for i in range(3)
    ]


def test_a_full_tree_leaf_works_one_step(token):
    api = run_example(token, "leaf", "flux_examples.tree:full", {"depth": 0, "stepSeconds": 0})
    assert api.checkpoint["result"] == {"seconds": 0.0}
    assert [s["name"] for s in api.checkpoint["steps"]] == ["work"]
    assert "spawnRequests" not in api.status or not api.status["spawnRequests"]


@pytest.mark.parametrize("input", [{"depth": -1}, {"fanout": 0}, {"fanout": 9}])
def test_a_full_tree_refuses_a_shape_out_of_range(token, input):
    api = run_example(token, "t", "flux_examples.tree:full", input)
    assert api.checkpoint["state"] == "Failed"
    assert "fanout must be 1..8" in api.checkpoint["error"]
