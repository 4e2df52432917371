"""actions.cancel end to end over an in-memory stand-in for kube.Kube (same methods, no HTTP)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flux_api import EXECUTION_LABEL, PARENT_LABEL, Phase, progress
from flux_cli.executions import actions
from flux_cli.executions.actions import CancelOptions
from flux_cli.executions.cancelling import ExitCode
from flux_cli.errors import ArgumentError
from flux_cli.kube import ForbiddenError, KubeError, NotFoundError, RejectedError, UnreachableError
from flux_cli.executions.selection import Selection

pytestmark = pytest.mark.unit

NS = "team-a"
NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ex(name: str, phase: str | None = "Running", parent: str | None = None, namespace: str = NS, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {PARENT_LABEL: parent} if parent else {}, "creationTimestamp": "2024-06-01T00:00:00Z"},
        "spec": {"workflow": "pkg.mod:main", **spec},
        "status": {"phase": phase} if phase else {},
    }


class FakeKube:
    """Holds objects; records patches; `errors[(verb, name)]` makes a call fail."""

    default_namespace = NS

    def __init__(self, *objs: dict[str, Any]) -> None:
        self.objs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}
        self.pods: list[dict[str, Any]] = []
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.errors: dict[tuple[str, str], KubeError] = {}
        self.calls: list[str] = []
        self.on_patch: Callable[[dict[str, Any]], None] | None = None
        self.progress: dict[tuple[str, str], dict[str, Any]] = {}  # ExecutionProgress objects by (ns, name)

    def _fail(self, verb: str, name: str) -> None:
        if (verb, name) in self.errors:
            raise self.errors[(verb, name)]

    def get_execution(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(f"get {name}")
        self._fail("get", name)
        if (namespace, name) not in self.objs:
            raise NotFoundError(f'execution "{name}" in namespace "{namespace}" not found')
        return copy.deepcopy(self.objs[(namespace, name)])

    def get_with_progress(self, namespace: str, name: str) -> dict[str, Any]:
        return progress.with_progress(self.get_execution(namespace, name), self.progress.get((namespace, name)))

    def get_progress(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.progress.get((namespace, name)))

    def progress_of(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        self.calls.append(f"progress of {len(keys)}")
        return {key: copy.deepcopy(self.progress[key]) for key in keys if key in self.progress}

    def list_executions(self, namespace: str | None, selector: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(f"list {namespace} {selector}")
        self._fail("list", namespace or "*")
        key, _, value = (selector or "").partition("=")
        return [
            copy.deepcopy(o)
            for (ns, _), o in sorted(self.objs.items())
            if (namespace is None or ns == namespace) and (not selector or o["metadata"]["labels"].get(key) == value)
        ]

    def list_children(self, namespace: str, names: list[str]) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (ns, _), o in sorted(self.objs.items()) if ns == namespace and o["metadata"]["labels"].get(PARENT_LABEL) in names]

    def list_descendants(self, namespace: str, names: list[str]) -> list[dict[str, Any]]:
        self.calls.append(f"descendants {','.join(names)}")
        found, generation = [], list(names)
        while generation:
            children = self.list_children(namespace, generation)
            found += children
            generation = [c["metadata"]["name"] for c in children]
        return found

    def patch_execution(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._fail("patch", name)
        self.patches.append((namespace, name, patch))
        obj = self.objs[(namespace, name)]
        obj["spec"].update(patch["spec"])
        if self.on_patch:
            self.on_patch(obj)
        return copy.deepcopy(obj)

    def list_pods(self, namespace: str, names: list[str]) -> list[dict[str, Any]]:
        self._fail("list", "pods")
        return [p for p in self.pods if p["metadata"]["namespace"] == namespace and p["metadata"]["labels"][EXECUTION_LABEL] in names]

    def set_phase(self, name: str, phase: str) -> None:
        self.objs[(NS, name)]["status"]["phase"] = phase


class Clock:
    """Fake monotonic clock; each sleep can move the fake cluster along."""

    def __init__(self, kube: FakeKube, on_sleep: Callable[[int], None] | None = None) -> None:
        self.now, self.sleeps, self.kube, self.on_sleep = 0.0, 0, kube, on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds
        self.sleeps += 1
        if self.on_sleep:
            self.on_sleep(self.sleeps)


def run(kube: FakeKube, selection: Selection, clock: Clock | None = None, **options: Any) -> actions.CancelRun:
    clock = clock or Clock(kube)
    return actions.cancel(kube, selection, NS, CancelOptions(**options), now=NOW, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def by_name(*names: str) -> Selection:
    return Selection(names=names)


def family() -> FakeKube:
    return FakeKube(
        ex("etl"),
        ex("etl-child-1", parent="etl"),
        ex("etl-child-2", "Succeeded", parent="etl"),
        ex("etl-child-1-child-1", "Pending", parent="etl-child-1"),
        ex("solo"),
        ex("done", "Succeeded"),
        ex("stopping", "Cancelling", cancel={"reason": "earlier", "cascade": True, "force": False}),
    )


# by name


def test_cancel_patches_spec_cancel_and_reports_the_cascade() -> None:
    kube = family()
    outcome = run(kube, by_name("etl"), reason="nightly", force=True)
    assert kube.patches == [(NS, "etl", {"spec": {"cancel": {"reason": "nightly", "cascade": True, "force": True}}})]
    [result] = outcome.results
    assert result.accepted and result.cancelled_count == 3
    assert result.children == ["etl-child-1", "etl-child-1-child-1"]
    assert outcome.exit_code is ExitCode.OK


def test_no_cascade_sends_cascade_false_and_lists_no_children() -> None:
    kube = family()
    [result] = run(kube, by_name("etl"), cascade=False).results
    assert kube.patches[0][2]["spec"]["cancel"]["cascade"] is False
    assert result.cancelled_count == 1 and result.children == []
    assert not any(call.startswith("descendants") for call in kube.calls)


def test_finished_and_cancelling_are_not_patched() -> None:
    kube = family()
    outcome = run(kube, by_name("done", "stopping"))
    assert kube.patches == []
    done, stopping = outcome.results
    assert done.already_finished and done.message == "already finished (Succeeded)"
    assert stopping.already_cancelling and stopping.reason == "earlier"
    assert outcome.exit_code is ExitCode.ALREADY_FINISHED


def test_only_cancelling_targets_exit_zero() -> None:
    assert run(family(), by_name("stopping")).exit_code is ExitCode.OK


def test_not_found_is_an_error_but_the_others_still_run_in_order() -> None:
    kube = family()
    outcome = run(kube, by_name("solo", "ghost", "done"))
    assert [r.name for r in outcome.results] == ["solo", "ghost", "done"]
    assert outcome.results[1].error and "not found" in outcome.results[1].message
    assert [p[1] for p in kube.patches] == ["solo"]
    assert outcome.exit_code is ExitCode.ERROR


def test_forbidden_patch_is_reported_per_execution() -> None:
    kube = family()
    kube.errors[("patch", "solo")] = ForbiddenError('executions "solo" is forbidden: User "dev" cannot patch')
    outcome = run(kube, by_name("solo", "etl"))
    solo, etl = outcome.results
    assert solo.error and not solo.accepted and solo.cancelled_count == 0 and "forbidden" in solo.message
    assert etl.accepted
    assert outcome.exit_code is ExitCode.ERROR


def test_unreachable_stops_the_whole_command() -> None:
    kube = family()
    kube.errors[("get", "solo")] = UnreachableError("cannot reach the API server")
    with pytest.raises(UnreachableError):
        run(kube, by_name("solo"))


def test_a_rejected_patch_after_someone_else_cancelled_is_already_cancelling() -> None:
    kube = family()
    kube.errors[("patch", "solo")] = RejectedError("rejected by the API server: cancel cannot be changed once set")
    original = kube.get_execution

    def get(namespace: str, name: str) -> dict[str, Any]:
        obj = original(namespace, name)
        if kube.calls.count("get solo") > 1:  # the re-read after the rejection sees a colleague's cancel
            obj["spec"]["cancel"] = {"reason": "by a colleague", "cascade": True, "force": False}
        return obj

    kube.get_execution = get  # type: ignore[method-assign]
    [result] = run(kube, by_name("solo")).results
    assert result.already_cancelling and result.reason == "by a colleague" and not result.error


def test_a_rejected_patch_for_another_reason_is_an_error() -> None:
    kube = family()
    kube.errors[("patch", "solo")] = RejectedError("rejected by the API server: admission webhook said no")
    [result] = run(kube, by_name("solo")).results
    assert result.error and result.message == "rejected by the API server: admission webhook said no"


def test_bad_reason_fails_before_any_api_call() -> None:
    kube = family()
    with pytest.raises(ArgumentError):
        run(kube, by_name("solo"), reason="")
    assert kube.calls == []


def test_naming_a_parent_and_its_child_patches_only_the_parent() -> None:
    kube = family()
    outcome = run(kube, by_name("etl-child-1", "etl"))
    assert [p[1] for p in kube.patches] == ["etl"]
    assert [r.name for r in outcome.results] == ["etl"]
    assert "etl-child-1" in outcome.results[0].children


def test_without_cascade_a_parent_and_its_child_are_both_patched() -> None:
    kube = family()
    run(kube, by_name("etl-child-1", "etl"), cascade=False)
    assert [p[1] for p in kube.patches] == ["etl-child-1", "etl"]


# selectors


def test_all_skips_finished_executions_and_covered_children() -> None:
    kube = family()
    outcome = run(kube, Selection(everything=True))
    assert sorted(p[1] for p in kube.patches) == ["etl", "solo"]
    assert [r.name for r in outcome.results] == ["etl", "solo", "stopping"]
    assert any("2 matching execution(s) that already finished" in note for note in outcome.notes)
    # --all listed the namespace already: no extra calls for descendants.
    assert not any(call.startswith("descendants") for call in kube.calls)
    assert outcome.exit_code is ExitCode.OK


def _owned(obj: dict[str, Any], uid: str, owner_uid: str | None = None) -> dict[str, Any]:
    obj["metadata"]["uid"] = uid
    if owner_uid:
        obj["metadata"]["ownerReferences"] = [{"kind": "Execution", "name": "p", "uid": owner_uid, "controller": True}]
    return obj


def test_a_label_alone_does_not_make_a_child_so_an_orphaned_runaway_is_cancelled_too() -> None:
    """`kubectl delete fx p --cascade=orphan` leaves `runaway` labelled parent=p; a new `p` is not its parent (the
    operator's cascade from it never reaches runaway), so --all must not count runaway as covered by p's cancel."""
    kube = FakeKube(_owned(ex("p"), "uid-p2"), _owned(ex("runaway", parent="p"), "uid-r"),
                    _owned(ex("p-left", parent="p"), "uid-l", owner_uid="uid-p2"))
    outcome = run(kube, Selection(everything=True))
    assert sorted(patch[1] for patch in kube.patches) == ["p", "runaway"]
    [p] = [r for r in outcome.results if r.name == "p"]
    assert p.children == ["p-left"]
    assert [c["metadata"]["name"] for c in actions.status(kube, NS, "p").children] == ["p-left"]


def test_selector_uses_the_namespace_or_all_namespaces() -> None:
    kube = family()
    kube.objs[("prod", "elsewhere")] = ex("elsewhere", namespace="prod")
    run(kube, Selection(selector="team=data"))
    run(kube, Selection(everything=True, all_namespaces=True), dry_run=True)
    assert "list team-a team=data" in kube.calls and "list None None" in kube.calls


def test_nothing_matching_exits_three_with_a_note() -> None:
    kube = family()
    outcome = run(kube, Selection(selector="team=nobody"))
    assert outcome.results == [] and outcome.exit_code is ExitCode.ALREADY_FINISHED
    assert outcome.notes == ['no execution matches "team=nobody" in namespace "team-a"']


def test_everything_finished_exits_three() -> None:
    outcome = run(FakeKube(ex("a", "Succeeded"), ex("b", "Failed")), Selection(everything=True))
    assert outcome.results == [] and outcome.exit_code is ExitCode.ALREADY_FINISHED


# --stale


def test_stale_skips_executions_with_recent_progress() -> None:
    recent, idle = ex("recent"), ex("idle")
    recent["status"]["checkpoint"] = {"state": "Running", "updatedAt": "2024-06-01T11:59:00Z"}
    idle["status"]["checkpoint"] = {"state": "Running", "updatedAt": "2024-06-01T09:00:00Z"}
    kube = FakeKube(recent, idle)
    outcome = run(kube, Selection(everything=True), stale_seconds=3600)
    assert [p[1] for p in kube.patches] == ["idle"]
    assert outcome.notes == ["skipped 1 execution(s) with progress in the last 1h: recent"]


def test_stale_reads_the_progress_a_runner_writes_to_its_progress_object() -> None:
    busy = ex("busy")  # its status.checkpoint is as of its start; its runner has written progress since
    busy["metadata"]["uid"] = "uid-busy"
    busy["status"]["checkpoint"] = {"state": "Running", "sequence": 1, "updatedAt": "2024-06-01T09:00:00Z"}
    kube = FakeKube(busy, ex("done", "Succeeded"))
    kube.progress[(NS, "busy")] = {
        "metadata": {"ownerReferences": [{"uid": "uid-busy", "controller": True}]},
        "status": {"checkpoint": {"state": "Running", "sequence": 40, "updatedAt": "2024-06-01T11:59:00Z"}}}
    outcome = run(kube, Selection(everything=True), stale_seconds=3600)
    assert kube.patches == [], "it is busy, not stale"
    assert kube.calls.count("progress of 1") == 1, "asked once, for the one still running"
    assert outcome.notes == ["skipped 1 matching execution(s) that already finished",
                             "skipped 1 execution(s) with progress in the last 1h: busy"]


def _child_of(child: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    parent["metadata"]["uid"] = f"uid-{parent['metadata']['name']}"
    child["metadata"]["ownerReferences"] = [{"kind": "Execution", "name": parent["metadata"]["name"],
                                             "uid": parent["metadata"]["uid"], "controller": True}]
    return child


def test_stale_spares_a_quiet_parent_whose_cascade_would_stop_a_busy_child() -> None:
    """The parent waits on its child and writes nothing meanwhile; cancelling it would kill the child."""
    parent, child = ex("p"), ex("p-1", parent="p")
    parent["status"]["checkpoint"] = {"state": "Running", "updatedAt": "2024-06-01T09:00:00Z"}
    child["status"]["checkpoint"] = {"state": "Running", "updatedAt": "2024-06-01T11:59:00Z"}
    kube = FakeKube(parent, _child_of(child, parent))
    outcome = run(kube, Selection(everything=True), stale_seconds=3600)
    assert kube.patches == []
    assert "skipped 1 execution(s) whose cancel would stop a descendant with progress in the last 1h: p" \
        in outcome.notes


def test_stale_never_takes_a_wait_or_a_suspend_nor_a_checkpoint_time_from_the_future() -> None:
    waiting, suspended, liar = ex("waiting", "Waiting"), ex("suspended", "Suspended"), ex("liar")
    for obj in (waiting, suspended):
        obj["status"]["checkpoint"] = {"state": "Waiting", "updatedAt": "2024-06-01T09:00:00Z"}
    liar["status"]["checkpoint"] = {"state": "Running", "updatedAt": "8999-01-01T00:00:00Z"}  # its own word
    kube = FakeKube(waiting, suspended, liar)
    run(kube, Selection(everything=True), stale_seconds=3600)
    assert [p[1] for p in kube.patches] == ["liar"], "idle since its creation, whatever it wrote"


def test_stale_with_names_is_a_guard() -> None:
    recent = ex("recent")
    recent["metadata"]["creationTimestamp"] = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kube = FakeKube(recent)
    outcome = run(kube, by_name("recent"), stale_seconds=3600)
    assert kube.patches == [] and outcome.exit_code is ExitCode.ALREADY_FINISHED


# --dry-run


def test_dry_run_changes_nothing_and_shows_executions_and_pods() -> None:
    kube = family()
    kube.pods = [
        {"metadata": {"name": "etl-pod", "namespace": NS, "labels": {EXECUTION_LABEL: "etl"}}, "status": {"phase": "Running"}},
        {"metadata": {"name": "etl-child-1-pod", "namespace": NS, "labels": {EXECUTION_LABEL: "etl-child-1"}}, "status": {"phase": "Running"}},
    ]
    outcome = run(kube, by_name("etl", "done"), dry_run=True)
    assert kube.patches == []
    etl, done = outcome.results
    assert etl.dry_run and etl.accepted and etl.message == "would cancel (dry run)" and etl.tree is not None
    # The finished child is not touched, so it is not in the tree.
    assert [n.name for n in etl.tree.walk()] == ["etl", "etl-child-1", "etl-child-1-child-1"]
    assert [p.name for p in etl.tree.pods] == ["etl-pod"]
    assert [p.name for p in etl.tree.children[0].pods] == ["etl-child-1-pod"]
    assert done.tree is None and done.already_finished
    assert outcome.exit_code is ExitCode.ALREADY_FINISHED


def test_dry_run_without_pod_access_still_shows_executions() -> None:
    kube = family()
    kube.errors[("list", "pods")] = ForbiddenError("pods is forbidden")
    outcome = run(kube, by_name("solo"), dry_run=True)
    assert outcome.results[0].tree is not None
    assert outcome.notes == ["pods not shown: pods is forbidden"]


# --wait


def test_wait_returns_once_the_target_and_its_cascade_finished() -> None:
    kube = family()

    def operator(sleeps: int) -> None:
        if sleeps == 1:
            kube.set_phase("etl-child-1-child-1", Phase.CANCELLED)
        if sleeps == 2:
            kube.set_phase("etl-child-1", Phase.CANCELLED)
            kube.set_phase("etl", Phase.CANCELLED)

    clock = Clock(kube, operator)
    outcome = run(kube, by_name("etl"), clock=clock, wait=True, timeout_seconds=60)
    [result] = outcome.results
    assert result.phase == Phase.CANCELLED and result.message == "cancelled" and not result.timed_out
    assert clock.sleeps == 2 and outcome.exit_code is ExitCode.OK


def test_wait_times_out_with_exit_four() -> None:
    kube = family()
    clock = Clock(kube)
    outcome = run(kube, by_name("etl"), clock=clock, wait=True, timeout_seconds=5)
    [result] = outcome.results
    assert result.timed_out and result.message == "timed out after 5s: still running: etl, etl-child-1, etl-child-1-child-1"
    assert clock.now == pytest.approx(5) and outcome.exit_code is ExitCode.TIMEOUT


def test_wait_counts_a_deleted_execution_as_finished() -> None:
    kube = family()
    clock = Clock(kube, lambda sleeps: kube.objs.pop((NS, "solo"), None))
    [result] = run(kube, by_name("solo"), clock=clock, wait=True).results
    assert not result.timed_out and result.message == "deleted while waiting"


def test_wait_also_waits_for_executions_already_cancelling() -> None:
    kube = family()
    clock = Clock(kube, lambda sleeps: kube.set_phase("stopping", Phase.CANCELLED))
    [result] = run(kube, by_name("stopping"), clock=clock, wait=True).results
    assert result.phase == Phase.CANCELLED and clock.sleeps == 1


def test_wait_with_many_targets_lists_instead_of_getting_each() -> None:
    kube = FakeKube(*[ex(f"job-{i:02d}") for i in range(12)])
    kube.on_patch = lambda obj: obj["status"].update(phase=Phase.CANCELLED)
    outcome = run(kube, Selection(everything=True), wait=True)
    assert outcome.exit_code is ExitCode.OK and len(outcome.results) == 12
    assert not any(call.startswith("get ") for call in kube.calls)


def test_worst_exit_code_across_targets() -> None:
    kube = family()
    outcome = run(kube, by_name("done", "solo"), wait=True, timeout_seconds=1)
    # solo times out (4) and done had finished (3): 4 wins.
    assert [r.exit_code for r in outcome.results] == [ExitCode.ALREADY_FINISHED, ExitCode.TIMEOUT]
    assert outcome.exit_code is ExitCode.TIMEOUT


# read-only views


def _progress(uid: str, sequence: int, steps: int) -> dict[str, Any]:
    return {"metadata": {"ownerReferences": [{"kind": "Execution", "uid": uid, "controller": True}]},
            "status": {"checkpoint": {"state": "Running", "sequence": sequence, "stepCount": steps}}}


@pytest.mark.parametrize(("owner", "sequence", "shown"), [
    ("uid-etl", 9, 7),  # its own and newer: the running progress
    ("uid-etl", 2, 1),  # older than status.checkpoint (the final word came after): the Execution's
    ("uid-other", 9, 1),  # a deleted namesake's: never
])
def test_status_shows_the_newer_checkpoint_of_its_own_progress_object(owner, sequence, shown) -> None:
    running = ex("etl")
    running["metadata"]["uid"] = "uid-etl"
    running["status"]["checkpoint"] = {"state": "Running", "sequence": 3, "stepCount": 1}
    kube = FakeKube(running)
    kube.progress[(NS, "etl")] = _progress(owner, sequence, 7)
    view = actions.status(kube, NS, "etl")  # type: ignore[arg-type]
    assert view.execution["status"]["checkpoint"]["stepCount"] == shown
    assert view.execution["status"]["phase"] == "Running", "the rest of the status is the Execution's"


def test_without_a_progress_object_the_execution_is_shown_as_it_is() -> None:
    running = ex("etl")
    assert progress.with_progress(running, None) is running


def test_status_tree_and_list_views() -> None:
    kube = family()
    view = actions.status(kube, NS, "etl")  # type: ignore[arg-type]
    assert view.execution["metadata"]["name"] == "etl"
    assert sorted(c["metadata"]["name"] for c in view.children) == ["etl-child-1", "etl-child-2"]
    root = actions.tree(kube, NS, "etl")  # type: ignore[arg-type]
    assert [n.name for n in root.walk()] == ["etl", "etl-child-1", "etl-child-1-child-1", "etl-child-2"]
    assert [o["metadata"]["name"] for o in actions.list_executions(kube, NS, phase=Phase.PENDING)] == ["etl-child-1-child-1"]  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        actions.status(kube, NS, "ghost")  # type: ignore[arg-type]
