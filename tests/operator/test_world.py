"""The watched state: small, ordered by resourceVersion, matched by UID."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from flux_operator.eventnames import event_name, sealed
from flux_operator.trimmed import cancel_asked_at, trim_execution
from flux_operator.world import World

pytestmark = pytest.mark.unit


def execution(name="job", rv="10", uid="u1", phase=None, labels=None, owner=None, **extra) -> dict:
    meta = {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": rv, "generation": 1,
            "labels": labels or {}, "managedFields": [
                {"manager": "kubectl", "time": "2026-11-21T11:59:58Z", "fieldsV1": {"f:spec": {"f:cancel": {}}}}]}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True}]
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution", "metadata": meta,
            "spec": {"workflow": "a:b", "input": {"huge": "x" * 10_000}},
            "status": {"phase": phase, "checkpoint": {"state": "Running", "steps": [{"name": "s"}] * 100,
                                                      "data": "d" * 10_000}} if phase else {}, **extra}


def test_trim_keeps_what_decisions_read_and_drops_the_rest() -> None:
    trimmed = trim_execution(execution(phase="Running"))
    assert "input" not in trimmed["spec"]
    assert "managedFields" not in trimmed["metadata"]
    assert not [k for k in trimmed["metadata"] if k.startswith("flux.internal/cancel")]
    assert trimmed["status"]["checkpoint"] == {"state": "Running"}
    assert len(repr(trimmed)) < 1000


def test_the_time_a_cancel_reached_the_api_is_kept_beside_the_copy() -> None:
    world = World()
    world.execution_seen(execution(phase="Running", spec={"workflow": "a:b", "cancel": {"reason": "stop"}}))
    snapshot = world.snapshot(("ns", "job"))
    assert snapshot is not None
    assert snapshot.cancel_requested_at == datetime(2026, 11, 21, 11, 59, 58, tzinfo=timezone.utc)


def test_a_late_event_never_overwrites_a_newer_copy() -> None:
    world = World()
    world.execution_seen(execution(rv="20", phase="Cancelling"))
    assert world.execution_seen(execution(rv="15", phase="Running")) == []
    assert world.snapshot(("ns", "job")).execution.status.phase == "Cancelling"


def test_a_new_object_under_the_same_name_replaces_the_old() -> None:
    world = World()
    world.execution_seen(execution(rv="20", uid="old", phase="Cancelled"))
    world.execution_seen(execution(rv="5", uid="new"))
    assert world.snapshot(("ns", "job")).execution.metadata["uid"] == "new"


def test_deleting_a_predecessor_keeps_its_successor() -> None:
    world = World()
    world.execution_seen(execution(uid="new"))
    world.execution_gone(execution(uid="old"))
    assert world.snapshot(("ns", "job")) is not None


def test_candidate_children_are_the_named_ones_never_those_a_label_claims() -> None:
    """Which of them the operator really made, decide() works out (spawning.owned_children); a label claiming
    the parent proves nothing, and a tenant may put it on as many executions as they like."""
    world = World()
    world.execution_seen(execution(status={"spawnRequests": [{"name": "asked", "workflow": "a:b"}],
                                           "children": [{"name": "recorded"}]}))
    world.execution_seen(execution(name="kid", labels={"workflows.flux.dev/parent": "job"}, owner="u1"))
    world.execution_seen(execution(name="asked", uid="u2"))
    world.execution_seen(execution(name="recorded", uid="u3"))
    world.execution_seen(execution(name="unrelated", uid="u4"))
    assert [c.name for c in world.snapshot(("ns", "job")).children] == ["asked", "recorded"]
    world.execution_gone(execution(name="recorded", uid="u3"))
    assert [c.name for c in world.snapshot(("ns", "job")).children] == ["asked"]


def test_pods_come_and_go() -> None:
    world = World()
    world.execution_seen(execution())
    pod = {"metadata": {"name": "job-runner", "namespace": "ns", "uid": "p1",
                        "labels": {"workflows.flux.dev/execution": "job"},
                        "ownerReferences": [{"uid": "u1", "controller": True}]},
           "status": {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}}
    assert world.pod_seen(pod) == ("ns", "job")
    view = world.snapshot(("ns", "job")).pod
    assert (view.name, view.uid, view.started) == ("job-runner", "p1", True)
    world.pod_gone(pod)
    assert world.snapshot(("ns", "job")).pod is None


def runner_pod(rv: str, running: bool, uid: str = "p1") -> dict:
    status = {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]} if running else {"phase": "Pending"}
    return {"metadata": {"name": "job-runner", "namespace": "ns", "uid": uid, "resourceVersion": rv,
                         "labels": {"workflows.flux.dev/execution": "job"},
                         "ownerReferences": [{"uid": "u1", "controller": True}]}, "status": status}


def test_a_create_answer_arriving_after_the_watch_never_hides_a_running_pod() -> None:
    # The create's response (rv 100, Pending) reached the worker after the watch had already
    # delivered the pod Running (rv 102): the World must keep Running, or no event ever comes again.
    world = World()
    world.execution_seen(execution())
    assert world.pod_seen(runner_pod("102", running=True)) == ("ns", "job")
    assert world.pod_seen(runner_pod("100", running=False)) is None
    assert world.snapshot(("ns", "job")).pod.started


def test_a_new_pod_under_the_same_name_replaces_the_old_view() -> None:
    world = World()
    world.execution_seen(execution())
    world.pod_seen(runner_pod("500", running=True, uid="old"))
    world.pod_seen(runner_pod("20", running=False, uid="p1"))
    assert world.snapshot(("ns", "job")).pod.uid == "p1"


def test_an_object_that_does_not_parse_is_reported_not_raised() -> None:
    world = World()
    bad = execution()
    bad["spec"]["workflow"] = "not a workflow reference"
    world.execution_seen(bad)
    assert world.snapshot(("ns", "job")) is None
    assert "workflow" in world.unparseable(("ns", "job"))


def test_phase_counts() -> None:
    world = World()
    world.execution_seen(execution(phase="Running"))
    world.execution_seen(execution(name="b"))
    assert world.phase_counts() == {"Running": 1, "Pending": 1}


def progressed(obj: dict, rv: str, step: int, **checkpoint) -> dict:
    """What a runner's checkpoint write leaves: new steps, data, sequence and time, a new resourceVersion."""
    status = dict(obj["status"], checkpoint={
        "state": "Running", "sequence": step, "stepCount": step, "steps": [{"name": f"s{step}"}],
        "done": {"runs": [{"prefix": "s", "first": 0, "last": step}], "names": []}, "data": {"at": step},
        "updatedAt": f"2026-11-21T12:00:{step:02}.000Z", **checkpoint})
    return dict(obj, metadata=dict(obj["metadata"], resourceVersion=rv), status=status)


def test_a_checkpoint_that_only_progressed_asks_for_no_reconcile_but_is_stored() -> None:
    world, key = World(), ("ns", "job")
    first = execution(phase="Running")
    assert world.execution_changed(first) == [key]
    for step in range(1, 50):
        assert world.execution_changed(progressed(first, str(10 + step), step)) == [], step
    assert world.snapshot(key).raw["metadata"]["resourceVersion"] == "59", "the next write carries the newest"


# Changes a decision reads, each with the checkpoint's progress beside it.
DECIDED_ON = [
    lambda o: progressed(o, "12", 2, state="Cancelled"),  # the runner's verdict
    lambda o: progressed(o, "12", 2, state="Failed", error="boom"),
    lambda o: progressed(o, "12", 2, state="Succeeded", result={"r": 1}),
    lambda o: progressed(o, "12", 2, state="Waiting", waiting="for a signal"),
    lambda o: dict(progressed(o, "12", 2), spec=dict(o["spec"], cancel={"reason": "stop"})),
    lambda o: dict(progressed(o, "12", 2), status=dict(progressed(o, "12", 2)["status"], phase="Cancelling")),
]


@pytest.mark.parametrize("fields", [{"error": "boom"}, {"result": {"r": 1}},
                                    {"waiting": "x", "wakeAt": "2030-01-01T00:00:00Z"},
                                    {"signal": {"name": "go", "occurrence": 1}}])
def test_while_running_a_checkpoints_other_fields_are_progress(fields) -> None:
    """Nothing but the state is read while it is Running: a runner that changes them on every write costs what
    one that only progresses does (it once sent each write through a reconcile)."""
    world, key = World(), ("ns", "job")
    first = progressed(execution(phase="Running"), "11", 1)
    world.execution_changed(first)
    assert world.progress_only(progressed(first, "12", 2, **fields))


@pytest.mark.parametrize("change", DECIDED_ON)
def test_anything_a_decision_reads_still_asks_for_a_reconcile(change) -> None:
    world, key = World(), ("ns", "job")
    first = progressed(execution(phase="Running"), "11", 1)
    world.execution_changed(first)
    assert world.execution_changed(change(first)) == [key]


def test_the_index_storing_first_does_not_hide_a_change_from_the_event() -> None:
    world, key = World(), ("ns", "job")
    first = execution(phase="Running")
    world.execution_changed(first)
    cancelled = dict(first, metadata=dict(first["metadata"], resourceVersion="11"),
                     spec=dict(first["spec"], cancel={"reason": "stop"}))
    world.execution_seen(cancelled)  # kopf's index handler runs before the event handler
    assert world.execution_changed(cancelled) == [key]


# --- progress_only: what the watch boundary turns into a bookmark -------------------------------------------

def test_progress_only_takes_just_the_resource_version() -> None:
    world, key = World(), ("ns", "job")
    first = execution(phase="Running")
    world.execution_changed(first)
    for step in range(1, 20):
        assert world.progress_only(progressed(first, str(10 + step), step)), step
    assert world.snapshot(key).raw["metadata"]["resourceVersion"] == "29", "the next write is fenced on it"
    assert world.execution_changed(progressed(first, "30", 20)) == [], "and nothing was hidden from decisions"


@pytest.mark.parametrize("change", [
    *DECIDED_ON,
    lambda o: dict(progressed(o, "12", 2), metadata=dict(progressed(o, "12", 2)["metadata"],
                                                     labels={"workflows.flux.dev/parent": "p"})),
    lambda o: dict(progressed(o, "12", 2), metadata=dict(progressed(o, "12", 2)["metadata"], uid="u2")),
    lambda o: progressed(o, "9", 2),  # older than what is held
])
def test_anything_a_decision_reads_is_not_progress(change) -> None:
    world, key = World(), ("ns", "job")
    first = progressed(execution(phase="Running"), "11", 1)
    world.execution_changed(first)
    changed = change(first)
    assert not world.progress_only(changed)
    assert world.snapshot(key).raw["metadata"]["resourceVersion"] == "11", "left for the usual path"


def test_a_new_time_of_the_cancel_request_is_not_progress() -> None:
    """The cancel itself unchanged, but managedFields say it reached the API at another time (re-applied)."""
    world = World()
    cancelled = dict(execution(phase="Running"), spec={"workflow": "a:b", "cancel": {"reason": "stop"}})
    first = progressed(cancelled, "11", 1)
    world.execution_changed(first)
    later = progressed(cancelled, "12", 2)
    later["metadata"]["managedFields"] = [
        {"manager": "kubectl", "time": "2026-11-21T12:30:00Z", "fieldsV1": {"f:spec": {"f:cancel": {}}}}]
    assert not world.progress_only(later)


def test_an_execution_nobody_cancelled_has_no_cancel_time_whatever_its_managed_fields() -> None:
    """No spec.cancel and no cancel annotation: no walk through managedFields (they cannot name a cancel)."""
    raw = execution()  # its managedFields name a cancel (made up: the spec has none), which is not looked at
    assert raw["metadata"]["managedFields"] and cancel_asked_at(raw) is None
    annotated = execution()
    annotated["metadata"]["annotations"] = {"workflows.flux.dev/cancel": "stop"}
    annotated["metadata"]["managedFields"] = [{"manager": "kubectl", "time": "2026-11-21T12:30:00Z", "fieldsV1": {
        "f:metadata": {"f:annotations": {"f:workflows.flux.dev/cancel": {}}}}}]
    assert cancel_asked_at(annotated) == datetime(2026, 11, 21, 12, 30, tzinfo=timezone.utc)


def test_an_execution_not_held_yet_is_not_progress() -> None:
    assert not World().progress_only(execution(phase="Running"))


def owned_tree(world: World, tree: dict[str, list[str]], phases: dict[str, str] | None = None) -> None:
    """Executions made as the operator makes children: recorded by name and UID, controlled by their parent."""
    parents = {kid: parent for parent, kids in tree.items() for kid in kids}
    for name in {*tree, *parents}:
        status = {"phase": (phases or {}).get(name, "Running"),
                  "children": [{"name": kid, "uid": f"u-{kid}"} for kid in tree.get(name, [])]}
        world.execution_seen(execution(name=name, uid=f"u-{name}", owner=f"u-{parents[name]}" if name in parents
                                       else None, status=status))


def test_family_walks_the_live_children_each_parent_owns_and_is_bounded() -> None:
    world = World()
    owned_tree(world, {"root": ["root-a", "root-b", "root-done"], "root-a": ["root-a-1"], "root-a-1": ["root-a-1-x"],
                       "root-done": ["root-done-1"]}, {"root-done": "Succeeded"})
    family = world.family(("ns", "root"))
    assert {k: [c.name for c in v] for k, v in family.items()} == {
        "root-a": ["root-a-1"], "root-b": [], "root-a-1": ["root-a-1-x"], "root-a-1-x": []}
    assert len(world.family(("ns", "root"), limit=2)) == 2


def test_family_does_not_walk_into_names_a_runner_wrote_or_a_label_claims() -> None:
    """A runner may list any name in spawnRequests, a tenant may label anything as a child: neither is walked
    into, so a cascade reads its own tree, not the namespace."""
    world = World()
    owned_tree(world, {"root": ["root-a"], "other": ["other-1", "other-2"]})
    forged = {"phase": "Running", "children": [{"name": "root-a", "uid": "u-root-a"}],
              "spawnRequests": [{"name": "other", "workflow": "a:b"}]}
    world.execution_seen(execution(name="root", uid="u-root", status=forged))
    world.execution_seen(execution(name="claimer", uid="u-c", labels={"workflows.flux.dev/parent": "root-a"},
                                   owner="u-root-a", status={"phase": "Running"}))
    family = world.family(("ns", "root"))
    assert {k: [c.name for c in v] for k, v in family.items()} == {"root-a": []}


def test_the_echo_of_the_operators_own_write_is_not_quieted_and_wakes_the_parent() -> None:
    """A child's Cancelled, written by the operator, is in the World before its watch event comes back:
    that event must still reach the handlers, which wake the parent waiting for its children."""
    world, key = World(), ("ns", "kid")
    first = progressed(execution(name="kid", phase="Running", labels={"workflows.flux.dev/parent": "p"}), "11", 1)
    world.execution_changed(first)
    written = dict(first, metadata=dict(first["metadata"], resourceVersion="12"),
                   status=dict(first["status"], phase="Cancelled"))
    world.execution_seen(written)  # the answer to the operator's own status write
    assert not world.progress_only(written), "the echo goes on to kopf"
    assert world.execution_changed(written) == [key, ("ns", "p")]
    assert world.progress_only(progressed(written, "13", 2)), "and progress after it is quiet again"


def test_a_pod_the_scheduler_cannot_place_is_seen_with_its_message() -> None:
    from flux_operator.world import pod_view
    raw = {"metadata": {"name": "job-runner"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/1 nodes are available: 1 Insufficient cpu."}]}}
    assert pod_view(raw).unschedulable == "0/1 nodes are available: 1 Insufficient cpu."
    raw["status"]["conditions"][0]["reason"] = "SchedulingGated"  # held back on purpose: not a problem to report
    assert pod_view(raw).unschedulable == ""
    raw["status"]["conditions"][0].update(status="True", reason="")
    assert pod_view(raw).unschedulable == ""
    raw["status"]["containerStatuses"] = [{"name": "runner", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": "Back-off pulling image \"mine:1\""}}}]
    view = pod_view(raw)
    assert (view.waiting, view.waiting_message) == ("ImagePullBackOff", 'Back-off pulling image "mine:1"')


def test_signals_are_kept_without_their_data_and_with_who_sent_them():
    raw = {"metadata": {"name": "x", "namespace": "ns", "uid": "u", "resourceVersion": "1", "managedFields": [
        {"manager": "kubectl-flux", "time": "2026-12-01T10:02:00Z", "fieldsV1": {"f:spec": {"f:signals": {}}}}]},
        "spec": {"workflow": "a:b", "signals": [{"name": "approve", "data": "x" * 4000, "reason": "ok", "sentBy": "al"}]}}
    trimmed = trim_execution(raw)
    assert trimmed["spec"]["signals"] == [{"name": "approve", "reason": "ok", "sentBy": "al"}]
    assert trimmed["metadata"]["flux.internal/signalsFieldManager"] == "kubectl-flux"


def test_the_oldest_cancelling_and_pending_times_come_from_the_watched_objects() -> None:
    from flux_operator.metric_values import cancelling_since, pending_since

    world = World()
    cancelling = execution("c", phase="Cancelling", spec={"workflow": "a:b", "cancel": {"reason": "r"}})
    world.execution_seen(cancelling)
    deadline = execution("d", phase="Cancelling")
    deadline["status"]["cancellation"] = {"reason": "deadline", "source": "deadline",
                                          "requestedAt": "2026-11-21T12:00:05Z"}
    world.execution_seen(deadline)
    world.execution_seen(execution("r", phase="Running"))
    for name, extra in (("p", {}), ("later", {"startAt": "2026-11-21T13:00:00Z"}), ("held", {"suspend": True})):
        pending = execution(name)
        pending["metadata"]["creationTimestamp"] = "2026-11-21T12:00:00Z"
        pending["spec"].update(extra)
        world.execution_seen(pending)
    queued = execution("queued")  # waits on purpose, for a ConcurrencyLimit or Kueue: no alert
    queued["metadata"]["creationTimestamp"] = "2026-11-21T11:00:00Z"
    queued["status"] = {"phase": "Pending", "conditions": [{"type": "Started", "status": "False", "reason": "Queued",
                                                            "message": "waiting", "lastTransitionTime": "2026-11-21T12:00:00Z"}]}
    world.execution_seen(queued)
    quota = execution("quota")  # its namespace's own ResourceQuota is full: the tenant's, not the platform's
    quota["metadata"]["creationTimestamp"] = "2026-11-21T10:00:00Z"
    quota["status"] = {"phase": "Pending", "conditions": [{
        "type": "Started", "status": "False", "reason": "QuotaExceeded", "message": "exceeded quota",
        "lastTransitionTime": "2026-11-21T12:00:00Z"}]}
    world.execution_seen(quota)
    stuck = execution("stuck")  # refused for quota once, then its pod was made and sticks: the platform's to see
    stuck["metadata"]["creationTimestamp"] = "2026-11-21T08:00:00Z"
    stuck["status"] = {**quota["status"], "runnerObjects": {"pod": {"name": "stuck-runner", "uid": "p1"}}}
    world.execution_seen(stuck)
    unschedulable = execution("unschedulable")  # no node fits: the platform's to see
    unschedulable["metadata"]["creationTimestamp"] = "2026-11-21T09:00:00Z"
    unschedulable["status"] = {"phase": "Pending", "conditions": [{
        "type": "Started", "status": "False", "reason": "RunnerUnschedulable", "message": "0/1 nodes",
        "lastTransitionTime": "2026-11-21T12:00:00Z"}]}
    world.execution_seen(unschedulable)
    assert sorted(cancelling_since(world.watched())) == [datetime(2026, 11, 21, 11, 59, 58, tzinfo=timezone.utc),
                                                datetime(2026, 11, 21, 12, 0, 5, tzinfo=timezone.utc)]
    # Past its grace period: the spec's (an hour, a tenant's choice), else the operator's default.
    cancelling["spec"]["gracePeriodSeconds"] = 3600
    world.execution_seen(cancelling)
    assert sorted(cancelling_since(world.watched(), default_grace=30)) == [
        datetime(2026, 11, 21, 12, 0, 35, tzinfo=timezone.utc), datetime(2026, 11, 21, 12, 59, 58, tzinfo=timezone.utc)]
    assert sorted(pending_since(world.watched())) == [datetime(2026, 11, 21, 8, 0, tzinfo=timezone.utc),
                                                      datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc),
                                                      datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc),
                                                      datetime(2026, 11, 21, 13, 0, tzinfo=timezone.utc)]


@pytest.mark.parametrize("key", ["a/b", "100%", "..", "x" * 64, "with space"])
def test_an_event_key_the_api_server_would_refuse_is_hashed_the_same_each_time(key) -> None:
    meta = {"name": "job", "uid": "0123456789"}
    name = event_name(meta, "Waiting", key)
    assert name.startswith("job.01234567.waiting.k") and name == event_name(meta, "Waiting", key)
    assert "/" not in name and "%" not in name and " " not in name and len(name) <= 253
    assert event_name(meta, "Waiting", key + "!") != name


@pytest.mark.parametrize("key", ["approve", "job-kid", "step_2", "Approve.v2"])
def test_an_event_key_that_is_a_safe_name_part_is_kept(key) -> None:
    assert event_name({"name": "job", "uid": "0123456789"}, "Waiting", key) == f"job.01234567.waiting.{key}"


def test_a_namespace_is_looked_at_by_its_own_executions_only() -> None:
    world = World()
    for i in range(200):
        other = execution(f"other-{i}", uid=f"o{i}")
        other["metadata"]["namespace"] = "elsewhere"
        world.execution_seen(other)
    world.execution_seen(execution("a", uid="a"))
    world.execution_seen(execution("b", uid="b"))
    assert sorted(world.keys_in("ns")) == [("ns", "a"), ("ns", "b")] and len(world.keys_in("elsewhere")) == 200
    world.execution_gone(execution("a", uid="a"))
    world.execution_gone(execution("b", uid="not-b"))  # a predecessor's deletion: b stays
    assert world.keys_in("ns") == [("ns", "b")]
    raws, _, _ = world.namespace_view("ns")
    assert [r["metadata"]["name"] for r in raws] == ["b"]
    world.execution_gone(execution("b", uid="b"))
    assert world.keys_in("ns") == [] and world.namespace_view("ns")[0] == []


def test_a_container_the_kubelet_cannot_make_for_the_tenants_own_reasons_holds_no_platform_alert() -> None:
    """An image of its own (spec.image) not pulled, or a Secret its template names missing: the tenant's to fix.
    The runner image itself not pulled is the platform's, and the oldest-pending alert sees it."""
    from flux_operator.metric_values import pending_since

    world = World()
    own_template = {"env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}
    for name, reason, spec, hour in (("own-image", "RunnerImageNotPulled", {"image": "mine:1"}, 8),
                                     ("runner-image", "RunnerImageNotPulled", {}, 9),
                                     ("no-secret", "RunnerConfigMissing", {"podTemplate": own_template}, 10),
                                     ("platforms-secret", "RunnerConfigMissing", {}, 11)):
        pending = execution(name)
        pending["metadata"]["creationTimestamp"] = f"2026-11-21T{hour:02d}:00:00Z"
        pending["spec"].update(spec)
        pending["status"] = {"phase": "Pending", "conditions": [{
            "type": "Started", "status": "False", "reason": reason, "message": "waiting",
            "lastTransitionTime": "2026-11-21T12:00:00Z"}]}
        world.execution_seen(pending)
    assert sorted(pending_since(world.watched())) == [datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc),
                                                      datetime(2026, 11, 21, 11, 0, tzinfo=timezone.utc)]


def test_a_sealed_name_depends_on_its_key_and_stays_a_valid_event_name():
    longest = event_name({"name": "x" * 63, "uid": "0123456789"}, "RunnerUnschedulable", "k" * 63)
    first, again, other = sealed(longest, b"uid-1"), sealed(longest, b"uid-1"), sealed(longest, b"uid-2")
    assert first == again != other and first.startswith(longest + ".")
    assert len(first) <= 253 and re.fullmatch(r"[a-z0-9A-Z_.-]+", first)
    assert sealed(longest, b"") == longest, "no key (an identity without a UID): the name as it was"
