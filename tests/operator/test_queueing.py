"""Concurrency limits as pure decisions: who holds a slot, who is next in line, what a queued one says, and
what the machine does with a verdict. No cluster; the clock is injected."""

from __future__ import annotations

from datetime import timedelta

import pydantic
import pytest
from flux_api import PARENT_LABEL, Execution
from flux_api.conditions import StartedReason
from flux_api.timefmt import format_time
from flux_api.limits import ConcurrencyLimit, LabelSelector, SelectorOperator, SelectorRequirement, selects
from flux_operator.execution import timing
from flux_operator.execution.machine import EnsureRunner, PatchStatus, cancel_intent, decide
from flux_operator.execution.queueing import Member, Queued, could_start_now, lineup, member, verdict
from tests.operator.builders import NOW

pytestmark = pytest.mark.unit


def usage(lim: ConcurrencyLimit, limits: list[ConcurrencyLimit], crowd: list[Member]) -> tuple[int, int]:
    return lineup(limits, crowd).usage(lim)


def limit(name: str = "etl", max_: int = 2, labels: dict | None = None, children: bool = False) -> ConcurrencyLimit:
    return ConcurrencyLimit.model_validate({"metadata": {"name": name, "namespace": "ns"},
                                            "spec": {"max": max_, "selector": {"matchLabels": labels or {}},
                                                     "includeChildren": children}})


def raw(name: str, minute: int, phase: str | None = None, labels: dict | None = None, spec: dict | None = None,
        status: dict | None = None, owner: str | None = None) -> dict:
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels or {},
            "creationTimestamp": f"2026-11-21T11:{minute:02d}:00Z"}
    if owner:
        meta["ownerReferences"] = [{"kind": "Execution", "uid": f"uid-{owner}", "name": owner, "controller": True}]
    return {"metadata": meta, "spec": {"workflow": "m:f", **(spec or {})},
            "status": {**({"phase": phase} if phase else {}), **(status or {})}}


def members(*raws: dict, pods: tuple[str, ...] = (), parents: dict | None = None) -> list[Member]:
    found = (member(r, r["metadata"]["name"] in pods, parents or {}, NOW) for r in raws)
    return [m for m in found if m is not None]


# --- selectors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("selector", "labels", "matched"), [
    ({}, {}, True),
    ({"matchLabels": {"team": "a"}}, {"team": "a", "x": "y"}, True),
    ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
    ({"matchLabels": {"team": "a"}}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]}, {"tier": "gold"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]}, {"tier": "gold"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": "x"}, False),
    ({"matchLabels": {"team": "a"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"team": "a"}, False),
])
def test_a_selector_means_what_kubernetes_means(selector, labels, matched):
    assert selects(LabelSelector.model_validate(selector), labels) is matched


def test_a_selector_requirement_takes_its_operator_as_an_enum():
    term = SelectorRequirement(key="k", operator="NotIn", values=["v"])
    assert term.operator is SelectorOperator.NOT_IN


# --- who holds a slot, who waits -----------------------------------------------------------------

def test_running_and_a_pending_cancelling_or_suspending_one_with_a_pod_hold_slots_the_rest_do_not():
    found = {m.name: m for m in members(
        raw("run", 1, "Running"), raw("cancelling", 2, "Cancelling"), raw("suspending", 3, "Suspending"),
        raw("made", 4, "Pending"), raw("new", 5), raw("suspended", 6, "Suspended", spec={"suspend": True}),
        raw("waiting", 7, "Waiting"), raw("done", 8, "Succeeded"), raw("stopped", 9, "Cancelling"),
        raw("paused", 10, "Suspending"), raw("lost", 11, "Running"), raw("lingering", 12, "Waiting"),
        pods=("run", "cancelling", "suspending", "made", "lingering"))}
    # A Running one whose pod is lost gets a new one: it keeps its slot. A stopping one whose runner is gone
    # (its final write, or its children, still to come) has left it: the next in line need not wait for that.
    # A Waiting one whose runner runs on (a lying workflow, a long grace period) holds its slot until it goes.
    assert {n for n, m in found.items() if m.holds} == {"run", "cancelling", "suspending", "made", "lost",
                                                        "lingering"}
    assert {n for n, m in found.items() if m.ready} == {"new"}
    assert "done" not in found


@pytest.mark.parametrize(("spec", "status"), [
    ({"suspend": True}, {}),
    ({"cancel": {"reason": "no"}}, {}),
    ({"startAt": "2026-11-21T13:00:00Z"}, {}),
    ({}, {"nextRetryAt": "2026-11-21T13:00:00Z"}),
])
def test_one_that_could_not_start_anyway_does_not_stand_in_line(spec, status):
    (found,) = members(raw("x", 1, "Pending", spec=spec, status=status))
    assert not found.ready and not found.holds


def test_a_start_time_that_has_come_and_a_resumed_one_stand_in_line():
    found = members(raw("due", 1, "Pending", spec={"startAt": "2026-11-21T11:00:00Z"}),
                    raw("resumed", 2, "Suspended", spec={"suspend": False}))
    assert all(m.ready for m in found)


def test_a_child_is_one_its_parent_owns_and_asked_for_not_one_merely_labelled():
    parents = {"uid-root": {"kid"}}
    found = {m.name: m for m in members(
        raw("kid", 1, labels={PARENT_LABEL: "root"}, owner="root"),
        raw("forged", 2, labels={PARENT_LABEL: "root"}, owner="root"),
        raw("label-only", 3, labels={PARENT_LABEL: "root"}), parents=parents)}
    assert found["kid"].child and not found["forged"].child and not found["label-only"].child


# --- verdicts ------------------------------------------------------------------------------------

def test_a_full_limit_queues_in_creation_order_and_says_how_full_it_is():
    crowd = members(raw("a", 1, "Running"), raw("b", 2, "Running"), raw("c", 3), raw("d", 4))
    assert verdict(crowd[2], [limit()], crowd) == Queued("etl", 2, 2)
    assert Queued("etl", 2, 2).message == "waiting: 2 of 2 running under limit etl"
    assert lineup([limit()], crowd).admitted == []
    assert usage(limit(), [limit()], crowd) == (2, 2)


def test_a_freed_slot_goes_to_the_oldest_in_line_not_to_whoever_asks_first():
    crowd = members(raw("a", 1, "Succeeded"), raw("b", 2, "Running"), raw("late", 4), raw("early", 3))
    assert verdict(next(m for m in crowd if m.name == "late"), [limit()], crowd) is not None
    assert verdict(next(m for m in crowd if m.name == "early"), [limit()], crowd) is None
    assert lineup([limit()], crowd).admitted == ["early"]


def test_same_creation_second_is_ordered_by_name():
    crowd = members(raw("b", 1), raw("a", 1))
    assert lineup([limit(max_=1)], crowd).admitted == ["a"]


def test_a_lowered_limit_stops_nothing_running_and_says_it_is_over():
    crowd = members(*(raw(f"r{i}", i, "Running") for i in range(4)), raw("next", 9))
    assert verdict(crowd[-1], [limit(max_=2)], crowd) == Queued("etl", 4, 2)
    assert usage(limit(max_=2), [limit(max_=2)], crowd) == (4, 1)


def test_every_limit_that_counts_it_must_have_room():
    roomy, full = limit("roomy", 5), limit("full", 1, labels={"team": "a"})
    crowd = members(raw("a", 1, "Running", labels={"team": "a"}), raw("b", 2, labels={"team": "a"}),
                    raw("c", 3, labels={"team": "b"}))
    assert verdict(crowd[1], [roomy, full], crowd) == Queued("full", 1, 1)
    assert verdict(crowd[2], [roomy, full], crowd) is None
    assert lineup([roomy, full], crowd).admitted == ["c"]
    assert usage(roomy, [roomy, full], crowd) == (1, 1)  # b waits, on the other limit


def test_one_held_back_by_a_full_limit_blocks_no_one_behind_it_in_another():
    everyone, gpu = limit("everyone", 3), limit("gpu", 1, labels={"gpu": "yes"})
    crowd = members(raw("g0", 1, "Running", labels={"gpu": "yes"}), raw("c0", 2, "Running"),
                    raw("g1", 3, labels={"gpu": "yes"}), raw("c1", 4), raw("c2", 5))
    assert lineup([everyone, gpu], crowd).admitted == ["c1"]
    assert verdict(crowd[2], [everyone, gpu], crowd) == Queued("gpu", 1, 1)
    assert verdict(crowd[4], [everyone, gpu], crowd) == Queued("everyone", 3, 3)


def test_an_execution_no_limit_counts_is_never_queued_nor_woken():
    crowd = members(raw("a", 1, "Running", labels={"team": "a"}), raw("b", 2))
    assert verdict(crowd[1], [limit(max_=1, labels={"team": "a"})], crowd) is None
    assert lineup([limit(max_=1, labels={"team": "a"})], crowd).admitted == []


def test_children_never_wait_for_their_ancestors_slot_unless_the_limit_counts_children():
    parents = {"uid-root": {"kid"}}
    crowd = members(raw("root", 1, "Running"), raw("kid", 2, labels={PARENT_LABEL: "root"}, owner="root"),
                    parents=parents)
    assert verdict(crowd[1], [limit(max_=1)], crowd) is None
    assert verdict(crowd[1], [limit(max_=1, children=True)], crowd) == Queued("etl", 1, 1)


def test_a_waiting_one_whose_time_has_come_lines_up_by_creation_when_it_asks():
    crowd = members(raw("old", 1, "Waiting"), raw("a", 2, "Running"), raw("b", 3))
    assert verdict(crowd[0], [limit(max_=2)], crowd) is None  # ahead of b: its creation is older
    assert verdict(crowd[0], [limit(max_=1)], crowd) == Queued("etl", 1, 1)


def waiting_raw(name: str, minute: int, wake: timedelta | None = None, signal: str | None = None,
                sent: bool = False) -> dict:
    checkpoint = {"state": "Waiting", "sequence": 3, "steps": []}
    if wake is not None:
        checkpoint["wakeAt"] = format_time(NOW + wake)
    if signal:
        checkpoint["signal"] = {"name": signal, "occurrence": 1}
    spec = {"signals": [{"name": signal, "reason": "go"}]} if sent else {}
    return raw(name, minute, "Waiting", spec=spec,
               status={"checkpoint": checkpoint, "waitingSince": format_time(NOW - timedelta(minutes=5))})


def test_a_due_wait_stands_in_line_by_creation_and_is_the_one_a_freed_slot_wakes():
    due, later = waiting_raw("due", 1, wake=-timedelta(seconds=1)), waiting_raw("later", 2, wake=timedelta(minutes=1))
    signalled = waiting_raw("signalled", 3, signal="go", sent=True)
    unsignalled = waiting_raw("unsignalled", 4, signal="go")
    crowd = members(due, later, signalled, unsignalled, raw("young", 5))
    assert [m.name for m in crowd if m.ready] == ["due", "signalled", "young"]
    assert lineup([limit(max_=2)], crowd).admitted == ["due", "signalled"], "a due wait was passed over"
    assert not members(due, pods=("due",))[0].ready, "its last pod is not gone yet"
    (woken,) = members(later)
    assert woken.at(NOW + timedelta(minutes=1)).ready, "the wake time came and went unseen"


# --- the machine with a verdict --------------------------------------------------------------------

def execution(phase: str | None = None, deadline: int | None = None, conditions: list | None = None) -> Execution:
    return Execution.model_validate({
        "metadata": {"name": "job", "namespace": "ns", "uid": "uid-job", "generation": 1,
                     "creationTimestamp": "2026-11-21T11:00:00Z"},
        "spec": {"workflow": "m:f", **({"activeDeadlineSeconds": deadline} if deadline else {})},
        "status": {**({"phase": phase} if phase else {}), "conditions": conditions or [], "observedGeneration": 1}})


def test_a_queued_execution_is_pending_with_reason_queued_and_no_runner():
    actions = decide(execution(), None, [], NOW, queued=Queued("etl", 5, 5))
    assert not any(isinstance(a, EnsureRunner) for a in actions)
    (write,) = [a for a in actions if isinstance(a, PatchStatus)]
    status = write.patch
    assert status["phase"] == "Pending" and status["message"] == "waiting: 5 of 5 running under limit etl"
    (started,) = [c for c in status["conditions"] if c["type"] == "Started"]
    assert (started["status"], started["reason"]) == ("False", StartedReason.QUEUED)


def test_a_queued_execution_that_still_waits_writes_nothing_again():
    queued = Queued("etl", 5, 5)
    ex = execution("Pending")
    ex.status.message = queued.message
    assert not [a for a in decide(ex, None, [], NOW, queued=queued) if isinstance(a, PatchStatus)]


def test_admitted_it_starts_its_runner():
    assert any(isinstance(a, EnsureRunner) for a in decide(execution("Pending"), None, [], NOW, queued=None))


def test_a_cancel_of_a_queued_execution_ends_it_not_started_at_once():
    ex = Execution.model_validate({**execution("Pending").model_dump(mode="json"),
                                   "spec": {"workflow": "m:f", "cancel": {"reason": "not now"}}})
    (write,) = [a for a in decide(ex, None, [], NOW, queued=Queued("etl", 5, 5)) if isinstance(a, PatchStatus)]
    assert write.patch["phase"] == "Cancelled"
    assert write.patch["cancellation"]["outcome"] == "NotStarted"


def test_time_spent_queued_is_not_counted_toward_the_deadline():
    queued = [{"type": "Started", "status": "False", "reason": "Queued", "message": "m",
               "lastTransitionTime": "2026-11-21T11:00:00Z"}]
    assert timing.deadline_at(execution("Pending", deadline=60, conditions=queued)) is None
    assert timing.deadline_at(execution("Pending", deadline=60)) is not None
    started = execution("Running", deadline=60)
    started.status.startedAt, started.status.queuedSeconds = NOW, 30
    assert timing.deadline_at(started) == NOW + timedelta(seconds=90), "a resumed run's wait for admission counted"


def test_a_tenant_cannot_pile_on_labels_to_slip_out_from_under_a_limit():
    from flux_operator.payloads import LABELS_CUT, metadata

    few = metadata({"name": "x", "labels": {"team": "etl"}})
    assert few["labels"] == {"team": "etl"} and LABELS_CUT not in few
    many = metadata({"name": "x", "labels": {f"pad-{i}": "v" * 60 for i in range(200)}})
    assert many[LABELS_CUT] is True and "labels" not in many
    crowd = members(raw("a", 1, "Running", labels={"team": "etl"}),
                    {**raw("b", 2), "metadata": {**raw("b", 2)["metadata"], LABELS_CUT: True}})
    assert verdict(crowd[1], [limit(max_=1, labels={"team": "etl"})], crowd) == Queued("etl", 1, 1)


def test_a_suspend_of_a_queued_execution_makes_it_suspended_at_once():
    ex = Execution.model_validate({**execution("Pending").model_dump(mode="json"),
                                   "spec": {"workflow": "m:f", "suspend": True}})
    (write,) = [a for a in decide(ex, None, [], NOW, queued=Queued("etl", 5, 5)) if isinstance(a, PatchStatus)]
    assert write.patch["phase"] == "Suspended"
    assert not any(isinstance(a, EnsureRunner) for a in decide(ex, None, [], NOW, queued=None))


# --- Kueue: a runner pod its admission gate holds back ---------------------------------------------

def gated_pod(started: bool = False) -> dict:
    return {"metadata": {"name": "job-runner", "uid": "pod-uid", "labels": {"kueue.x-k8s.io/queue-name": "lq"},
                         "ownerReferences": [{"uid": "uid-job", "controller": True}]},
            "spec": {"schedulingGates": [{"name": "kueue.x-k8s.io/admission"}]},
            "status": {"phase": "Pending"}}


def test_a_pod_held_by_kueues_gate_shows_as_queued_naming_the_local_queue():
    from flux_operator.podview import pod_view

    view = pod_view(gated_pod())
    assert (view.gate, view.queue) == ("kueue.x-k8s.io/admission", "lq")
    both = gated_pod()
    both["spec"]["schedulingGates"].insert(0, {"name": "kueue.x-k8s.io/topology"})
    assert pod_view(both).gate == "kueue.x-k8s.io/admission", "Kueue's admission gate is the one to name"
    ex = execution("Pending")
    ex.status.podName = "job-runner"
    writes = [a for a in decide(ex, view, [], NOW) if isinstance(a, PatchStatus)]
    (write,) = writes
    assert write.patch["message"] == "waiting: admission by Kueue (LocalQueue lq)"
    (started,) = [c for c in write.patch["conditions"] if c["type"] == "Started"]
    assert started["reason"] == StartedReason.QUEUED


def test_a_cancel_while_the_gate_holds_ends_not_started_at_once_and_removes_the_pod():
    from flux_operator.execution.machine import DeletePod
    from flux_operator.podview import pod_view

    ex = Execution.model_validate({**execution("Pending").model_dump(mode="json"),
                                   "spec": {"workflow": "m:f", "cancel": {"reason": "not now"}}})
    ex.status.podName = "job-runner"
    actions = decide(ex, pod_view(gated_pod()), [], NOW)
    (write,) = [a for a in actions if isinstance(a, PatchStatus)]
    assert write.patch["phase"] == "Cancelled" and write.patch["cancellation"]["outcome"] == "NotStarted"
    assert [(a.name, a.grace_seconds) for a in actions if isinstance(a, DeletePod)] == [("job-runner", 0)]


def test_a_resumed_run_waiting_for_kueue_again_stays_running_says_queued_and_its_deadline_pauses():
    from flux_operator.podview import pod_view
    from tests.operator.builders import pod

    began = NOW - timedelta(minutes=10)
    ex = execution("Running", deadline=3600, conditions=[
        {"type": "Started", "status": "True", "reason": "RunnerStarted", "message": "m",
         "lastTransitionTime": format_time(began)}])
    ex.status.startedAt, ex.status.podName, ex.status.resumes = began, "job-runner", 1
    (write,) = [a for a in decide(ex, pod_view(gated_pod()), [], NOW) if isinstance(a, PatchStatus)]
    assert "phase" not in write.patch and write.patch["message"] == "waiting: admission by Kueue (LocalQueue lq)"
    regated = Execution.model_validate({**ex.model_dump(mode="json"),
                                        "status": {**ex.status.model_dump(mode="json"), **write.patch}})
    assert timing.deadline_at(regated) is None, "the deadline ran on while Kueue held the resumed run back"
    admitted_at = NOW + timedelta(minutes=5)
    (write,) = [a for a in decide(regated, pod_view(pod()), [], admitted_at) if isinstance(a, PatchStatus)]
    assert write.patch["queuedSeconds"] == 300 and write.patch["message"] is None
    (started,) = [c for c in write.patch["conditions"] if c["type"] == "Started"]
    assert (started["status"], started["reason"]) == ("True", StartedReason.RUNNER_STARTED)
    running = Execution.model_validate({**regated.model_dump(mode="json"),
                                        "status": {**regated.status.model_dump(mode="json"), **write.patch}})
    assert timing.deadline_at(running) == began + timedelta(seconds=3600 + 300)


def test_a_retry_that_waited_for_a_slot_does_not_have_the_wait_counted_once_it_starts():
    from flux_operator.podview import pod_view
    from tests.operator.builders import pod

    began = NOW - timedelta(minutes=10)
    failed = NOW - timedelta(minutes=6)  # Started went False then (RetryBackoff), and stays False while queued
    queued_since = NOW - timedelta(minutes=4)  # the backoff ended: from here on only the limit held it back
    ex = execution("Pending", deadline=3600, conditions=[
        {"type": "Started", "status": "False", "reason": "Queued", "message": "waiting: 1 of 1 running under limit etl",
         "lastTransitionTime": format_time(failed)}])
    ex.status.startedAt, ex.status.podName, ex.status.retries = began, "job-runner", 1
    ex.status.nextRetryAt = queued_since
    assert timing.deadline_at(ex) is None
    (write,) = [a for a in decide(ex, pod_view(pod()), [], NOW) if isinstance(a, PatchStatus)]
    assert write.patch["phase"] == "Running" and write.patch["queuedSeconds"] == 240, \
        "the retry's backoff was counted as time queued (and so left out of the deadline)"
    first = execution("Pending", deadline=3600, conditions=ex.model_dump(mode="json")["status"]["conditions"])
    first.status.podName = "job-runner"
    (write,) = [a for a in decide(first, pod_view(pod()), [], NOW) if isinstance(a, PatchStatus)]
    assert "queuedSeconds" not in write.patch, "a first start counts from startedAt: nothing to add"


# --- the shell's kept Members (queues.py) --------------------------------------------------------

def test_kept_members_follow_every_change_of_object_pod_and_clock() -> None:
    from flux_operator.queues import LimitStore, Queues
    from flux_operator.world import World

    world, limits = World(), LimitStore()
    limits.seen({"metadata": {"name": "etl", "namespace": "ns", "uid": "l", "generation": 1}, "spec": {"max": 1}})
    queues = Queues(world, limits)
    later = raw("later", 1, spec={"startAt": format_time(NOW + timedelta(seconds=30))})
    for one in (raw("a", 2, "Running"), raw("b", 3), later):
        one["metadata"]["resourceVersion"] = "1"
        world.execution_seen(one)
    first = {m.name: m for m in queues.members("ns", NOW)}
    again = {m.name: m for m in queues.members("ns", NOW)}
    assert again["b"] is first["b"], "an unchanged execution was parsed again on every pass"
    assert queues.to_wake("ns", NOW) == []
    world.execution_seen({**raw("a", 2, "Succeeded"), "metadata": {**raw("a", 2)["metadata"], "resourceVersion": "2"}})
    assert "a" not in {m.name for m in queues.members("ns", NOW)}, "a finished one still held its slot"
    assert queues.to_wake("ns", NOW) == [("ns", "b")], "the start time to come was admitted, or b was not"
    assert {m.name: m.ready for m in queues.members("ns", NOW + timedelta(seconds=31))}["later"], \
        "a start time that came due was not seen: its Member was kept"
    world.pod_seen({"metadata": {"name": "b-runner", "namespace": "ns", "uid": "p", "resourceVersion": "1",
                                 "labels": {"workflows.flux.dev/execution": "b"}}, "status": {"phase": "Pending"}})
    assert {m.name: m.holds for m in queues.members("ns", NOW)}["b"], "a pod made for it was not seen"


def test_the_limits_of_a_namespace_are_found_without_walking_every_namespaces() -> None:
    from flux_operator.queues import LimitStore

    limits = LimitStore()

    def body(name: str, ns: str, uid: str) -> dict:
        return {"metadata": {"name": name, "namespace": ns, "uid": uid, "generation": 1}, "spec": {"max": 1}}
    for i in range(100):
        limits.seen(body(f"l{i}", "crowded", f"c{i}"))
    limits.seen(body("etl", "ns", "e"))
    assert [limit.name for limit in limits.in_namespace("ns")] == ["etl"] and len(limits.in_namespace("crowded")) > 1
    limits.gone(body("etl", "ns", "not-e"))  # a predecessor's deletion
    assert [limit.name for limit in limits.in_namespace("ns")] == ["etl"]
    limits.gone(body("etl", "ns", "e"))
    assert limits.in_namespace("ns") == [] and limits.get(("ns", "etl")) is None
    limits.seen({"metadata": {"name": "bad", "namespace": "ns", "uid": "b"}, "spec": {"max": "lots"}})
    assert limits.in_namespace("ns") == [], "a limit that does not parse is left out"


@pytest.mark.parametrize("selector", [
    {"matchLabels": {"team": "v" * 64}},
    {"matchLabels": {"k" * 318: "v"}},
    {"matchExpressions": [{"key": "team", "operator": "In", "values": ["v" * 64]}]},
    {"matchExpressions": [{"key": f"k{i}", "operator": "In", "values": [str(n) for n in range(64)]} for i in range(3)]},
])
def test_a_selector_past_its_bounds_does_not_parse_as_the_api_server_refuses_it(selector) -> None:
    with pytest.raises(pydantic.ValidationError):
        LabelSelector.model_validate(selector)


def test_a_selector_at_its_bounds_parses() -> None:
    LabelSelector.model_validate({"matchLabels": {"k" * 317: "v" * 63}, "matchExpressions": [
        {"key": f"k{i}", "operator": "In", "values": [str(n) for n in range(64)]} for i in range(2)]})


# --- whose verdict is worth a pass down the line ---------------------------------------------------

def _ex(phase: str | None, spec: dict | None = None, status: dict | None = None) -> Execution:
    return Execution.model_validate(raw("x", 1, phase, spec=spec, status=status))


@pytest.mark.parametrize(("ex", "cancelling"), [
    (_ex("Pending", {"suspend": True}), False),
    (_ex("Suspended", {"suspend": True}), False),
    (_ex(None, {"startAt": "8999-01-01T00:00:00Z"}), False),
    (_ex("Pending", {}, {"nextRetryAt": "2026-11-21T13:00:00Z", "retries": 1}), False),
    (_ex("Waiting", {}, {"checkpoint": {"state": "Waiting", "wakeAt": "2026-11-21T13:00:00Z"}}), False),
    (_ex("Pending", {"cancel": {"reason": "no"}}), True),
])
def test_one_that_cannot_start_now_is_not_worth_a_verdict_and_the_machine_agrees(ex, cancelling):
    """A tenant's thousand suspended or far-scheduled executions must not cost a pass down the line each on every
    reconcile; and what could_start_now rules out, the machine never starts, whatever the verdict."""
    assert (cancel_intent(ex, NOW) is not None) is cancelling, "as reconcile.py asks it"
    assert not could_start_now(ex, cancel_intent(ex, NOW) is not None, NOW)
    assert not [a for a in decide(ex, None, [], NOW, queued=None) if isinstance(a, EnsureRunner)]


@pytest.mark.parametrize("ex", [
    _ex(None), _ex("Pending"), _ex("Suspended", {"suspend": False}),
    _ex(None, {"startAt": "2026-11-21T11:00:00Z"}),
    _ex("Waiting", {}, {"checkpoint": {"state": "Waiting", "wakeAt": "2026-11-21T11:00:00Z"}}),
])
def test_one_that_may_start_now_gets_its_verdict(ex):
    assert could_start_now(ex, False, NOW)
    assert [a for a in decide(ex, None, [], NOW, queued=None) if isinstance(a, EnsureRunner)]


def test_a_pending_one_whose_runner_was_evicted_after_its_cleanup_checkpoint_takes_its_turn_in_line():
    """Still Pending (its Running write not yet made), it held no slot: its new runner must wait like any start."""
    ex = Execution.model_validate({**execution("Pending").model_dump(mode="json", exclude_none=True),
                                   "status": {"phase": "Pending", "podName": "job-runner",
                                              "checkpoint": {"state": "Cancelled", "steps": []}}})
    actions = decide(ex, None, [], NOW, queued=Queued("etl", 5, 5))
    assert not [a for a in actions if isinstance(a, EnsureRunner)]
    (write,) = [a for a in actions if isinstance(a, PatchStatus)]
    assert write.patch["message"] == "waiting: 5 of 5 running under limit etl"
    assert [a for a in decide(ex, None, [], NOW, queued=None) if isinstance(a, EnsureRunner)], "admitted, it runs"
