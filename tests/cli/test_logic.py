"""Pure logic of the plugin: facts, target selection, stale filtering, trees, cancel decisions, exit codes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flux_api import CANCEL_ANNOTATION, EXECUTION_LABEL, PARENT_LABEL, Phase
from flux_cli import objects
from flux_cli.executions.cancelling import (
    GONE,
    SEVERITY,
    CancelResult,
    ExitCode,
    Verdict,
    apply_wait,
    build_cancel_patch,
    drop_covered,
    mark_failed,
    plan,
    verdict,
    waits_for,
    worst,
)
from flux_cli.errors import ArgumentError
from flux_cli.executions.family import Node, attach_pods, build_tree, children_index, covered_by, prune
from flux_cli.executions.selection import Selection, check_name, is_stale, make_selection, split_finished, split_stale

pytestmark = pytest.mark.unit

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def stamp(ago: timedelta) -> str:
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def ex(
    name: str,
    phase: str | None = "Running",
    *,
    parent: str | None = None,
    namespace: str = "team-a",
    cancel: dict[str, Any] | None = None,
    created: str | None = "2024-06-01T00:00:00Z",
    started: str | None = None,
    checkpoint: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {PARENT_LABEL: parent} if parent else {}}
    if created:
        metadata["creationTimestamp"] = created
    if annotations:
        metadata["annotations"] = annotations
    body: dict[str, Any] = dict(status or {})
    if phase:
        body["phase"] = phase
    if started:
        body["startedAt"] = started
    if checkpoint is not None:
        body["checkpoint"] = checkpoint
    spec: dict[str, Any] = {"workflow": "pkg.mod:main"}
    if cancel is not None:
        spec["cancel"] = cancel
    return {"metadata": metadata, "spec": spec, "status": body}


# facts


def test_phase_defaults_to_pending_and_keeps_unknown_values() -> None:
    assert objects.phase_of(ex("a", phase=None)) == Phase.PENDING
    assert objects.phase_of({}) == Phase.PENDING
    assert objects.phase_of(ex("a", "Succeeded")) is Phase.SUCCEEDED
    assert objects.phase_of(ex("a", "Paused")) == "Paused"


@pytest.mark.parametrize(("phase", "terminal"), [(p.value, p in {Phase.CANCELLED, Phase.SUCCEEDED, Phase.FAILED}) for p in Phase])
def test_terminal_phases_follow_the_api(phase: str, terminal: bool) -> None:
    assert objects.is_terminal(ex("a", phase)) is terminal


def test_reason_prefers_the_cancellation_then_the_request_then_the_annotation() -> None:
    both = ex("a", "Cancelling", cancel={"reason": "from spec"}, status={"cancellation": {"reason": "recorded", "source": "spec"}})
    assert objects.reason_of(both) == "recorded"
    assert objects.reason_of(ex("a", cancel={"reason": "from spec"})) == "from spec"
    assert objects.reason_of(ex("a", annotations={CANCEL_ANNOTATION: "annotated"})) == "annotated"
    assert objects.reason_of(ex("a")) is None


def test_reason_of_a_finished_execution_is_its_finished_condition() -> None:
    condition = {"type": "Finished", "status": "True", "reason": "WorkflowFailed", "lastTransitionTime": "2024-01-01T00:00:00Z"}
    assert objects.reason_of(ex("a", "Failed", status={"conditions": [condition]})) == "WorkflowFailed"
    # A running execution has no reason even if an old condition says something.
    assert objects.reason_of(ex("a", "Running", status={"conditions": [condition]})) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-06-01T12:00:00Z", NOW),
        ("2024-06-01T12:00:00.123456Z", NOW + timedelta(microseconds=123456)),
        ("2024-06-01T14:00:00+02:00", NOW),
        ("2024-06-01T12:00:00", NOW),  # naive means UTC
        ("yesterday", None),
        ("", None),
        (None, None),
        (12, None),
    ],
)
def test_parse_time(value: Any, expected: datetime | None) -> None:
    assert objects.parse_time(value) == expected


def test_lenient_on_odd_objects() -> None:
    odd = {"metadata": {"labels": None, "name": "x"}, "status": {"conditions": "nope", "checkpoint": []}, "spec": None}
    assert objects.parent_of(odd) is None
    assert objects.conditions(odd) == []
    assert objects.checkpoint(odd) is None
    assert objects.spec_cancel(odd) is None


# selection


def test_selection_by_names_dedupes_in_order() -> None:
    assert make_selection(["b", "a", "b"], None, False, False) == Selection(names=("b", "a"))


def test_selection_by_selector_or_everything() -> None:
    assert make_selection(None, " app=x ", False, True) == Selection(selector="app=x", all_namespaces=True)
    assert make_selection([], None, True, False) == Selection(everything=True)


@pytest.mark.parametrize(
    ("names", "selector", "everything", "all_namespaces", "complaint"),
    [
        ([], None, False, False, "nothing to cancel"),
        (["a"], None, True, False, "NAME arguments or --all"),
        (["a"], "x=y", False, False, "NAME arguments or -l"),
        ([], "x=y", True, False, "--all or -l"),
        ([], "  ", False, False, "needs a label selector"),
        (["a"], None, False, True, "-A/--all-namespaces"),
        (["Not_A_Name"], None, False, False, "invalid execution name"),
    ],
)
def test_selection_rejects_bad_combinations(
    names: list[str], selector: str | None, everything: bool, all_namespaces: bool, complaint: str
) -> None:
    with pytest.raises(ArgumentError, match=complaint):
        make_selection(names, selector, everything, all_namespaces)


@pytest.mark.parametrize("name", ["a", "demo-1", "x.y", "a" * 253])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "-a", "a-", "a/b", "a_b", "a" * 254, "a..b"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ArgumentError):
        check_name(name)


# stale


def test_stale_uses_the_checkpoint_first() -> None:
    fresh_checkpoint = ex("a", started=stamp(timedelta(hours=5)), checkpoint={"state": "Running", "updatedAt": stamp(timedelta(minutes=1))})
    assert not is_stale(fresh_checkpoint, 3600, NOW)
    old_checkpoint = ex("a", started=stamp(timedelta(minutes=1)), checkpoint={"state": "Running", "updatedAt": stamp(timedelta(hours=2))})
    assert is_stale(old_checkpoint, 3600, NOW)


def test_stale_falls_back_to_start_then_creation() -> None:
    assert is_stale(ex("a", started=stamp(timedelta(hours=2)), created=stamp(timedelta(minutes=1))), 3600, NOW)
    assert not is_stale(ex("a", started=stamp(timedelta(minutes=2)), created=stamp(timedelta(hours=9))), 3600, NOW)
    assert is_stale(ex("a", created=stamp(timedelta(hours=2))), 3600, NOW)
    # A checkpoint without updatedAt (or an unparsable one) does not count.
    assert is_stale(ex("a", created=stamp(timedelta(hours=2)), checkpoint={"state": "Running", "updatedAt": "garbage"}), 3600, NOW)


def test_stale_threshold_is_inclusive() -> None:
    assert is_stale(ex("a", created=stamp(timedelta(seconds=60))), 60, NOW)
    assert not is_stale(ex("a", created=stamp(timedelta(seconds=59))), 60, NOW)


def test_without_any_timestamp_an_execution_is_not_stale() -> None:
    assert not is_stale(ex("a", created=None), 0, NOW)


def test_split_stale_without_threshold_keeps_everything() -> None:
    objs = [ex("a"), ex("b")]
    assert split_stale(objs, None, NOW) == (objs, [])
    old, new = ex("old", created=stamp(timedelta(days=1))), ex("new", created=stamp(timedelta(seconds=1)))
    assert split_stale([old, new], 3600, NOW) == ([old], [new])


def test_split_finished() -> None:
    running, done = ex("r"), ex("d", "Failed")
    assert split_finished([running, done]) == ([running], [done])


# family


def family() -> list[dict[str, Any]]:
    return [
        ex("root"),
        ex("root-b", "Succeeded", parent="root"),
        ex("root-a", parent="root"),
        ex("root-a-1", "Pending", parent="root-a"),
        ex("root-b-1", parent="root-b"),
        ex("unrelated"),
        ex("root-x", parent="root", namespace="elsewhere"),  # same parent name, other namespace
    ]


def test_tree_follows_parent_labels_recursively_in_one_namespace() -> None:
    objs = family()
    tree = build_tree(objs[0], objs)
    assert [child.name for child in tree.children] == ["root-a", "root-b"]  # sorted
    assert [n.name for n in tree.walk()] == ["root", "root-a", "root-a-1", "root-b", "root-b-1"]
    assert [n.phase for n in tree.walk()] == ["Running", "Running", "Pending", "Succeeded", "Running"]
    assert covered_by([tree]) == {("team-a", n) for n in ["root-a", "root-a-1", "root-b", "root-b-1"]}


def test_tree_survives_a_label_loop() -> None:
    a, b = ex("a", parent="b"), ex("b", parent="a")
    assert [n.name for n in build_tree(a, [a, b]).walk()] == ["a", "b"]


def test_children_index_keys_by_namespace_and_parent() -> None:
    index = children_index(family())
    assert [objects.name_of(o) for o in index[("team-a", "root")]] == ["root-a", "root-b"]
    assert [objects.name_of(o) for o in index[("elsewhere", "root")]] == ["root-x"]


def test_prune_keeps_paths_to_kept_nodes() -> None:
    objs = family()
    pruned = prune(build_tree(objs[0], objs), lambda n: not n.terminal)
    # root-b is finished but leads to the running root-b-1: it stays as context.
    assert [n.name for n in pruned.walk()] == ["root", "root-a", "root-a-1", "root-b", "root-b-1"]
    only_root = prune(build_tree(objs[0], objs), lambda n: False)
    assert only_root.children == [] and only_root.name == "root"
    leafless = prune(build_tree(objs[0], objs[:4]), lambda n: not n.terminal)
    assert [n.name for n in leafless.walk()] == ["root", "root-a", "root-a-1"]


def test_attach_pods_by_execution_label() -> None:
    objs = family()
    tree = build_tree(objs[0], objs)
    pods = [
        {"metadata": {"name": "p2", "namespace": "team-a", "labels": {EXECUTION_LABEL: "root"}}, "status": {"phase": "Running"}},
        {"metadata": {"name": "p1", "namespace": "team-a", "labels": {EXECUTION_LABEL: "root"}}, "status": {}},
        {"metadata": {"name": "q", "namespace": "team-a", "labels": {EXECUTION_LABEL: "root-a-1"}}},
        {"metadata": {"name": "stray", "namespace": "other", "labels": {EXECUTION_LABEL: "root"}}},
    ]
    attach_pods(tree, pods)
    assert [(p.name, p.phase) for p in tree.pods] == [("p1", None), ("p2", "Running")]
    assert [p.name for p in tree.children[0].children[0].pods] == ["q"]


def test_node_json_is_nested() -> None:
    node = Node("a", "ns", "Running", children=[Node("a-1", "ns", "Pending")])
    assert node.to_json() == {
        "name": "a",
        "namespace": "ns",
        "phase": "Running",
        "reason": None,
        "children": [{"name": "a-1", "namespace": "ns", "phase": "Pending", "reason": None, "children": []}],
    }
    assert node.to_json(with_pods=True)["pods"] == []


# the cancel patch


def test_cancel_patch_is_a_merge_patch_on_spec_cancel() -> None:
    assert build_cancel_patch("Cancelled by user") == {"spec": {"cancel": {"reason": "Cancelled by user", "cascade": True, "force": False}}}
    assert build_cancel_patch(" why ", cascade=False, force=True) == {"spec": {"cancel": {"reason": "why", "cascade": False, "force": True}}}


@pytest.mark.parametrize(("reason", "complaint"), [("", "must not be empty"), ("   ", "must not be empty"), ("x" * 1025, "at most 1024")])
def test_cancel_patch_rejects_bad_reasons(reason: str, complaint: str) -> None:
    with pytest.raises(ArgumentError, match=complaint):
        build_cancel_patch(reason)


def test_longest_reason_is_accepted() -> None:
    assert build_cancel_patch("x" * 1024)["spec"]["cancel"]["reason"] == "x" * 1024


# decisions


def test_verdict() -> None:
    assert verdict(ex("a")) is Verdict.CANCEL
    assert verdict(ex("a", phase=None)) is Verdict.CANCEL
    assert verdict(ex("a", "Cancelling")) is Verdict.CANCEL  # e.g. a deadline; no spec.cancel yet
    assert verdict(ex("a", cancel={"reason": "r"})) is Verdict.ALREADY_CANCELLING
    for phase in ("Succeeded", "Failed", "Cancelled"):
        # Finished beats cancelling: there is nothing left to stop.
        assert verdict(ex("a", phase, cancel={"reason": "r"})) is Verdict.ALREADY_FINISHED


def test_plan_counts_itself_and_unfinished_descendants() -> None:
    objs = family()
    result = plan(objs[0], build_tree(objs[0], objs), "nightly", cascade=True)
    assert result.accepted and not result.already_finished and not result.already_cancelling
    # root-b finished: its cancel reaches nothing below it (the operator's cascade stops there), so root-b-1
    # runs on and is not counted.
    assert result.children == ["root-a", "root-a-1"]
    assert result.cancelled_count == 3
    assert result.reason == "nightly" and result.message == "cancel requested" and result.exit_code is ExitCode.OK


def test_plan_without_cascade_cancels_only_itself() -> None:
    objs = family()
    result = plan(objs[0], build_tree(objs[0], objs), "r", cascade=False)
    assert result.children == [] and result.cancelled_count == 1


def test_plan_dry_run_says_so() -> None:
    result = plan(ex("a"), None, "r", cascade=True, dry_run=True)
    assert result.dry_run and result.message == "would cancel (dry run)" and result.cancelled_count == 1


def test_plan_already_finished() -> None:
    result = plan(ex("a", "Succeeded"), None, "r", cascade=True)
    assert result.already_finished and not result.accepted
    assert result.message == "already finished (Succeeded)"
    assert result.cancelled_count == 0 and result.exit_code is ExitCode.ALREADY_FINISHED


def test_plan_already_cancelling_keeps_the_first_reason() -> None:
    result = plan(ex("a", "Cancelling", cancel={"reason": "first"}), None, "second", cascade=True)
    assert result.already_cancelling and not result.accepted
    assert result.reason == "first" and "already cancelling" in result.message
    assert result.cancelled_count == 0 and result.exit_code is ExitCode.OK


def test_mark_failed_clears_what_was_planned() -> None:
    result = plan(ex("a"), build_tree(ex("a"), [ex("a-1", parent="a")]), "r", cascade=True)
    mark_failed(result, "forbidden: no")
    assert (result.error, result.accepted, result.cancelled_count, result.children) == (True, False, 0, [])
    assert result.exit_code is ExitCode.ERROR and result.message == "forbidden: no"


def test_drop_covered_reports_a_cascaded_child_inside_its_parent() -> None:
    objs = family()
    parent = plan(objs[0], build_tree(objs[0], objs), "r", cascade=True)
    child = plan(objs[2], build_tree(objs[2], objs), "r", cascade=True)
    other = plan(objs[5], build_tree(objs[5], objs), "r", cascade=True)
    kept, dropped = drop_covered([child, parent, other])
    assert kept == [parent, other] and dropped == [child]


def test_a_target_below_a_child_cancelled_without_its_children_is_cancelled_itself() -> None:
    """A -> B -> C, and B cancelled on its own with --no-cascade: cancelling A does not reach C (the operator's
    cascade stops at B), so C, named too, must get its own patch, not be reported inside A's block."""
    objs = [ex("a"), ex("b", "Cancelling", parent="a", cancel={"reason": "mine", "cascade": False}),
            ex("c", parent="b")]
    a = plan(objs[0], build_tree(objs[0], objs), "r", cascade=True)
    c = plan(objs[2], build_tree(objs[2], objs), "r", cascade=True)
    assert a.children == [] and a.cancelled_count == 1
    kept, dropped = drop_covered([a, c])
    assert kept == [a, c] and dropped == []


def test_drop_covered_ignores_parents_that_are_not_cancelled_now() -> None:
    parent = plan(ex("p", cancel={"reason": "r"}), None, "r", cascade=True)  # already cancelling
    child = plan(ex("p-1", parent="p"), None, "r", cascade=True)
    assert drop_covered([parent, child]) == ([parent, child], [])


def test_drop_covered_keeps_one_of_a_label_loop() -> None:
    a, b = ex("a", parent="b"), ex("b", parent="a")
    first, second = plan(a, build_tree(a, [a, b]), "r", True), plan(b, build_tree(b, [a, b]), "r", True)
    kept, dropped = drop_covered([first, second])
    assert kept == [second] and dropped == [first]


# exit codes


def test_severity_order_is_error_timeout_finished_ok() -> None:
    assert SEVERITY == (ExitCode.ERROR, ExitCode.TIMEOUT, ExitCode.ALREADY_FINISHED, ExitCode.OK)
    assert [int(code) for code in SEVERITY] == [1, 4, 3, 0]


@pytest.mark.parametrize("codes", list(itertools.permutations(list(ExitCode), 2)) + [tuple(ExitCode)])
def test_worst_picks_the_most_severe(codes: tuple[ExitCode, ...]) -> None:
    expected = next(code for code in SEVERITY if code in codes)
    assert worst(codes) is expected
    assert worst(reversed(codes)) is expected


def test_worst_of_nothing_is_ok() -> None:
    assert worst([]) is ExitCode.OK
    assert worst([ExitCode.OK, ExitCode.OK]) is ExitCode.OK


def test_result_exit_code_precedence() -> None:
    result = CancelResult("a", "ns", already_finished=True, timed_out=True, error=True)
    assert result.exit_code is ExitCode.ERROR
    result.error = False
    assert result.exit_code is ExitCode.TIMEOUT
    result.timed_out = False
    assert result.exit_code is ExitCode.ALREADY_FINISHED


def test_result_json_has_stable_keys() -> None:
    data = plan(ex("a"), None, "r", cascade=True).to_json()
    assert list(data) == [
        "name", "namespace", "phase", "accepted", "alreadyFinished", "alreadyCancelling",
        "cancelledCount", "reason", "children", "message", "error", "timedOut", "dryRun",
    ]
    assert data["name"] == "a" and data["namespace"] == "team-a" and data["phase"] == "Running"
    assert data["accepted"] is True and data["cancelledCount"] == 1 and data["children"] == []
    with_tree = CancelResult("a", "ns", tree=Node("a", "ns", "Running")).to_json()
    assert with_tree["tree"]["pods"] == []


# waiting


def test_waits_for_the_target_and_its_cascade() -> None:
    objs = family()
    result = plan(objs[0], build_tree(objs[0], objs), "r", cascade=True)
    assert waits_for(result) == [("team-a", "root"), ("team-a", "root-a"), ("team-a", "root-a-1")]
    assert waits_for(plan(ex("a", "Failed"), None, "r", True)) == []
    assert waits_for(plan(ex("a", cancel={"reason": "r"}), None, "r", True)) == [("team-a", "a")]
    assert waits_for(CancelResult("x", "ns", error=True)) == []


def test_apply_wait_success() -> None:
    result = plan(ex("a"), build_tree(ex("a"), [ex("a-1", parent="a")]), "r", cascade=True)
    apply_wait(result, {("team-a", "a"): Phase.CANCELLED, ("team-a", "a-1"): GONE}, 60)
    assert not result.timed_out and result.phase == Phase.CANCELLED and result.message == "cancelled"
    assert result.exit_code is ExitCode.OK


def test_apply_wait_timeout_names_what_still_runs() -> None:
    result = plan(ex("a"), build_tree(ex("a"), [ex("a-1", parent="a")]), "r", cascade=True)
    apply_wait(result, {("team-a", "a"): Phase.CANCELLED, ("team-a", "a-1"): Phase.CANCELLING}, 90)
    assert result.timed_out and result.exit_code is ExitCode.TIMEOUT
    assert result.message == "timed out after 1m30s: still running: a-1"


def test_apply_wait_reports_a_workflow_that_won_the_race() -> None:
    result = plan(ex("a"), None, "r", cascade=True)
    apply_wait(result, {("team-a", "a"): Phase.SUCCEEDED}, 60)
    assert result.message == "finished as Succeeded before the cancel took effect" and result.exit_code is ExitCode.OK


def test_apply_wait_leaves_finished_and_failed_results_alone() -> None:
    finished = plan(ex("a", "Failed"), None, "r", cascade=True)
    apply_wait(finished, {}, 60)
    assert finished.message == "already finished (Failed)" and not finished.timed_out


def test_a_cascade_is_reported_depth_first_as_the_tree_is_drawn() -> None:
    objs = [ex("t"), ex("t-l", parent="t"), ex("t-r", parent="t"), ex("t-l-x", parent="t-l"), ex("t-r-x", parent="t-r")]
    assert plan(objs[0], build_tree(objs[0], objs), "r", cascade=True).children == ["t-l", "t-l-x", "t-r", "t-r-x"]
