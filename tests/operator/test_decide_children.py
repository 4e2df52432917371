"""Children decided purely: only what the operator made counts, no list or value makes a decision raise,
names already taken and results too big end clearly (execution/children.py, ownership.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flux_api import PARENT_LABEL, Execution
from flux_api.errors import Failure
from flux_api.names import CREATE_TOKEN_ANNOTATION
from flux_api.types import MAX_CHILDREN, MIRRORED_RESULTS_BUDGET
from flux_operator.execution.machine import (
    CancelChild, CreateChild, EmitEvent, ObserveRefusal, PatchStatus, PodView, decide,
)
from flux_operator.ownership import Memory, refusal, token_hash
from flux_operator.execution.children import _size, children_view
from tests.operator.builders import NOW, apply, of, status_patch, tokens

pytestmark = pytest.mark.unit

POD = PodView("job-runner", phase="Running", started=True)
BEYOND = "9999-12-31T23:59:59-23:59"


def job(phase: str = "Running", **status: Any) -> Execution:
    spec: dict[str, Any] = {"workflow": "pkg.mod:main", "gracePeriodSeconds": 30}
    if "cancel" in status:
        spec["cancel"] = {"reason": status.pop("cancel")}
    if "deadline" in status:
        spec["activeDeadlineSeconds"] = status.pop("deadline")
    return Execution.model_validate({
        "metadata": {"name": "job", "namespace": "ns", "uid": "uid-job", "generation": 1,
                     "creationTimestamp": "2026-11-21T11:58:00Z"},
        "spec": spec,
        "status": {"phase": phase, "startedAt": "2026-11-21T11:59:00.000Z", "podName": "job-runner",
                   "observedGeneration": 1, **status}})


def kid(name: str, phase: str = "Running", owner: str | None = "uid-job", token: str | None = None,
        result: Any = None, labels: dict | None = None, **meta: Any) -> Execution:
    metadata: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                                "labels": {PARENT_LABEL: "job"} if labels is None else labels, **meta}
    if owner:
        metadata["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "Execution", "name": "job"}]
    if token:
        metadata["annotations"] = {CREATE_TOKEN_ANNOTATION: token}
    status: dict[str, Any] = {"phase": phase}
    if result is not None:
        status["checkpoint"] = {"state": phase, "result": result}
    return Execution.model_validate({"metadata": metadata, "spec": {"workflow": "a.b:c"}, "status": status})


def requests(*names: str) -> list[dict]:
    return [{"name": n, "workflow": "a.b:c"} for n in names]


def asked(name: str, memory: Memory) -> Execution:
    """`job` after its first decision on a request for the child `name`: the token's hash recorded."""
    ex = job(spawnRequests=requests(name))
    return apply(ex, decide(ex, POD, [], NOW, memory))


FORGED = [kid(f"job-forged-{i}", phase="Pending") for i in range(MAX_CHILDREN + 1)]


# --- forged children: a label and an ownerReference prove nothing -----------------------------------------

@pytest.mark.parametrize("case", ["cancel", "deadline", "running"])
def test_forged_children_are_not_children_on_any_path(case):
    ex = job(**({"cancel": "stop"} if case == "cancel" else {"deadline": 30} if case == "deadline" else {}))
    actions = decide(ex, POD, FORGED, NOW, tokens())  # 51 of them: more than any status list holds
    assert not of(actions, CancelChild), "not the execution's to cancel"
    if case == "running":
        assert "children" not in status_patch(actions)
        return
    assert status_patch(actions)["phase"] == "Cancelling"
    assert status_patch(actions)["cancellation"]["children"] == []
    done = decide(apply(ex, actions), None, FORGED, NOW, tokens())
    assert status_patch(done)["phase"] == "Cancelled", "not waited for either"


def test_a_recorded_child_under_another_uid_is_not_the_child():
    ex = job(children=[{"name": "job-a", "uid": "uid-job-a", "phase": "Running"}], cancel="stop")
    impostor = kid("job-a", uid="someone-else")
    assert status_patch(decide(ex, POD, [impostor], NOW))["cancellation"]["children"] == []


def test_children_recorded_by_an_operator_before_tokens_are_still_recognised():
    ex = job(children=[{"name": "job-a", "phase": "Running"}], spawnRequests=requests("job-a"))
    actions = decide(ex, POD, [kid("job-a", phase="Succeeded", result=7)], NOW, tokens())
    assert status_patch(actions)["children"] == [{"name": "job-a", "uid": "uid-job-a", "phase": "Succeeded", "result": 7}]


# --- making children: the token's hash first, then the create, then the UID ------------------------------

def test_a_new_request_records_its_token_then_creates_the_child_carrying_it():
    actions = decide(job(spawnRequests=requests("job-a")), POD, [], NOW, tokens())
    assert status_patch(actions)["children"] == [{"name": "job-a", "phase": "Pending", "tokens": [token_hash("t1")]}]
    assert of(actions, CreateChild) == [CreateChild("job-a", "a.b:c", {}, "t1")]
    assert actions.index(of(actions, PatchStatus)[0]) < actions.index(of(actions, CreateChild)[0])


def test_the_made_child_is_recognised_by_its_token_and_its_uid_recorded():
    memory = tokens()
    ex = job(spawnRequests=requests("job-a"))
    ex = apply(ex, decide(ex, POD, [], NOW, memory))
    made = kid("job-a", phase="Pending", token="t1")
    actions = decide(ex, POD, [made], NOW, memory)
    assert status_patch(actions)["children"] == [{"name": "job-a", "uid": "uid-job-a", "phase": "Pending"}]
    assert not of(actions, CreateChild)
    ex = apply(ex, actions)
    assert decide(ex, POD, [made], NOW, memory) == [], "level-triggered: nothing more to do"


def test_a_create_not_seen_yet_is_sent_again_with_the_same_token():
    memory = tokens()
    ex = job(spawnRequests=requests("job-a"))
    ex = apply(ex, decide(ex, POD, [], NOW, memory))
    again = decide(ex, POD, [], NOW, memory)
    assert of(again, CreateChild) == [CreateChild("job-a", "a.b:c", {}, "t1")]
    assert not status_patch(again), "the same token: nothing new to record"


def test_a_restart_between_the_create_and_the_record_still_recognises_the_child():
    """The operator recorded t1's hash, created the child with t1, and died before recording its UID."""
    ex = asked("job-a", tokens())
    restarted = Memory(new_token=lambda: "fresh")  # the successor never knew t1
    actions = decide(ex, POD, [kid("job-a", token="t1")], NOW, restarted)
    assert status_patch(actions)["children"][0]["uid"] == "uid-job-a"
    assert not of(actions, CreateChild)


def test_a_restart_before_the_create_adds_a_token_and_keeps_the_old_one():
    ex = asked("job-a", tokens())
    actions = decide(ex, POD, [], NOW, Memory(new_token=lambda: "fresh"))
    assert status_patch(actions)["children"][0]["tokens"] == [token_hash("t1"), token_hash("fresh")]
    assert of(actions, CreateChild)[0].token == "fresh"


# --- names taken ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("squatter", [
    kid("job-a", owner=None, labels={}),  # an unrelated Execution
    kid("job-a"),  # one forging the parent label and a controlling ownerReference
    kid("job-a", token="guessed"),  # and a token of its own
])
def test_a_name_taken_by_an_execution_the_operator_did_not_make_is_refused_clearly(squatter):
    memory = tokens()
    ex = job(spawnRequests=requests("job-a"))
    actions = decide(ex, POD, [squatter], NOW, memory)
    assert not of(actions, CreateChild)
    entry = status_patch(actions)["children"][0]
    assert (entry["phase"], entry["reason"]) == ("Failed", "NameTaken")
    assert "job-a is taken" in entry["error"] and "name=" in entry["error"]
    assert [(e.reason, e.type, e.key) for e in of(actions, EmitEvent)] == [("SpawnConflict", "Warning", "job-a")]
    after = apply(ex, actions)
    cancel = decide(job(cancel="stop", spawnRequests=requests("job-a"), children=after.status.model_dump(
        mode="json")["children"]), POD, [squatter], NOW, memory)
    assert not of(cancel, CancelChild), "the squatter is not cancelled with the parent"


def test_a_name_taken_after_the_intent_by_someone_else_is_refused_too():
    memory = tokens()
    ex = asked("job-a", memory)
    actions = decide(ex, POD, [kid("job-a", token="not-t1")], NOW, memory)
    assert status_patch(actions)["children"][0]["reason"] == "NameTaken"


def test_a_name_held_by_an_execution_being_deleted_is_waited_for_then_made():
    memory = tokens()
    going = kid("job-a", owner=None, labels={}, deletionTimestamp="2026-11-21T11:59:59Z")
    ex = job(spawnRequests=requests("job-a"))
    actions = decide(ex, POD, [going], NOW, memory)
    assert not of(actions, CreateChild) and not of(actions, EmitEvent)
    assert status_patch(actions)["children"] == [{"name": "job-a", "phase": "Pending", "tokens": [token_hash("t1")]}]
    still = decide(apply(ex, actions), POD, [going], NOW, memory)
    assert not of(still, CreateChild) and status_patch(still) == {}
    # Once the predecessor is gone the child is made, with the token on record (before, the entry had none
    # and every later pass took it for an older operator's record: the child stayed Pending for good).
    gone = decide(apply(ex, actions), POD, [], NOW, memory)
    assert [(a.name, a.token) for a in of(gone, CreateChild)] == [("job-a", "t1")]


# --- the cap counts every name ever asked for -------------------------------------------------------------

def full_house() -> list[dict]:
    return [{"name": f"job-a{i}", "uid": f"uid-job-a{i}", "phase": "Running"} for i in range(MAX_CHILDREN)]


def test_rewriting_spawn_requests_cannot_pass_the_cap():
    ex = job(children=full_house(), spawnRequests=requests(*(f"job-b{i}" for i in range(MAX_CHILDREN))))
    actions = decide(ex, POD, [], NOW, tokens())
    assert not of(actions, CreateChild)
    assert "children" not in status_patch(actions) and status_patch(actions)["childrenRefused"] == MAX_CHILDREN
    assert [(e.reason, e.key) for e in of(actions, EmitEvent)] == [("SpawnRefused", "limit")]
    assert "at most 50 children" in of(actions, EmitEvent)[0].message
    assert of(actions, ObserveRefusal) == [ObserveRefusal("TooManyChildren", MAX_CHILDREN)]
    assert status_patch(decide(apply(ex, actions), POD, [], NOW, tokens())) == {}
    fewer = job(children=full_house(), spawnRequests=requests(*(f"job-b{i}" for i in range(MAX_CHILDREN - 2))))
    first = decide(fewer, POD, [], NOW, tokens())
    assert of(first, ObserveRefusal) == [ObserveRefusal("TooManyChildren", MAX_CHILDREN - 2)]
    grown = decide(apply(ex, first), POD, [], NOW, tokens())
    assert of(grown, ObserveRefusal) == [ObserveRefusal("TooManyChildren", 2)], "only the requests new since"


def test_the_cap_counts_refused_names_too():
    taken = [{"name": f"job-a{i}", "phase": "Failed", "reason": "NameTaken", "error": "x"} for i in range(MAX_CHILDREN)]
    actions = decide(job(children=taken, spawnRequests=requests("job-new")), POD, [], NOW, tokens())
    assert status_patch(actions)["childrenRefused"] == 1 and not of(actions, CreateChild)


# --- children the API server refuses ----------------------------------------------------------------------

def test_a_child_the_api_server_refuses_for_good_is_failed_with_its_message():
    memory = tokens()
    ex = asked("job-a", memory)
    memory.refusals["child/job-a"] = refusal("child job-a", Failure.DENIED, "denied by policy x", NOW, None)
    actions = decide(ex, POD, [], NOW, memory)
    entry = status_patch(actions)["children"][0]
    assert (entry["phase"], entry["reason"]) == ("Failed", "Refused") and "denied by policy x" in entry["error"]
    assert ("SpawnRefused", "Warning") in [(e.reason, e.type) for e in of(actions, EmitEvent)]


def test_a_child_refused_for_now_is_retried_after_its_backoff():
    memory = tokens()
    ex = asked("job-a", memory)
    memory.refusals["child/job-a"] = refusal("child job-a", Failure.QUOTA, "exceeded quota", NOW, None)
    assert not of(decide(ex, POD, [], NOW, memory), CreateChild)
    assert of(decide(ex, POD, [], NOW + timedelta(seconds=2), memory), CreateChild)


# --- mirrored results have a total budget -----------------------------------------------------------------

def big(kib: int) -> str:
    return "x" * (kib * 1024)


def recorded(*names: str) -> list[dict]:
    return [{"name": n, "uid": f"uid-{n}", "phase": "Running"} for n in names]


def test_results_past_the_budget_are_left_on_their_children():
    names = ("job-a", "job-b", "job-c")
    kids = [kid(n, phase="Succeeded", result=big(100)) for n in names]
    actions = decide(job(children=recorded(*names)), POD, kids, NOW, tokens())
    children = status_patch(actions)["children"]
    assert [("result" in c, c.get("resultOmitted")) for c in children] == [
        (True, None), (True, None), (False, _size(big(100)))]
    assert sum(_size(c["result"]) for c in children if "result" in c) <= MIRRORED_RESULTS_BUDGET


def test_a_mirrored_result_stays_when_a_later_one_would_not_fit():
    """What a runner has read it reads again after a restart: a result once mirrored is never dropped."""
    ex = job(children=[{"name": "job-b", "uid": "uid-job-b", "phase": "Succeeded", "result": big(200)},
                       *recorded("job-a")])
    kids = [kid("job-a", phase="Succeeded", result=big(100)), kid("job-b", phase="Succeeded", result=big(200))]
    children = status_patch(decide(ex, POD, kids, NOW, tokens()))["children"]
    assert children[0]["resultOmitted"] and "result" not in children[0]
    assert children[1]["result"] == big(200)


def test_a_result_that_cannot_be_encoded_counts_as_too_large():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert _size(deep) > MIRRORED_RESULTS_BUDGET


def test_a_childs_long_error_is_mirrored_shortened():
    failed = kid("job-a", phase="Failed")
    failed.status.message = "boom " * 2000
    entry = status_patch(decide(job(children=recorded("job-a")), POD, [failed], NOW, tokens()))["children"][0]
    assert entry["phase"] == "Failed" and len(entry["error"]) == 2048


# --- no list or value makes a decision raise --------------------------------------------------------------

def test_the_cancellation_list_is_bounded_with_a_count():
    view = children_view([kid(f"job-{i:02}") for i in range(60)])
    assert len(view["children"]) == MAX_CHILDREN and view["childrenOmitted"] == 10


def test_a_count_of_children_left_out_goes_once_they_all_fit():
    listed = [{"name": f"job-{i:02}", "phase": "Running"} for i in range(MAX_CHILDREN)]
    ex = job("Cancelling", cancel="stop", cancellation={
        "reason": "stop", "source": "spec", "requestedAt": "2026-11-21T11:59:30Z", "children": listed,
        "childrenOmitted": 10}, children=recorded("job-00", "job-01", "job-02"))
    left = [kid(f"job-{i:02}") for i in range(3)]
    cancellation = status_patch(decide(ex, POD, left, NOW))["cancellation"]
    assert cancellation["childrenOmitted"] is None  # null: the merge patch removes the old count
    assert [c["name"] for c in cancellation["children"]] == ["job-00", "job-01", "job-02"]
    assert cancellation["reason"] == "stop" and cancellation["requestedAt"] == "2026-11-21T11:59:30.000Z"


def test_an_overflowing_runner_timestamp_does_not_stop_the_cancel():
    ex = job(cancel="stop")
    ex = apply(ex, decide(ex, POD, [], NOW - timedelta(seconds=2)))
    ex = Execution.model_validate({**ex.model_dump(mode="json"), "status": {
        **ex.status.model_dump(mode="json"), "checkpoint": {"state": "Cancelled", "updatedAt": BEYOND}}})
    done = status_patch(decide(ex, None, [], NOW))
    assert done["phase"] == "Cancelled"
    assert done["cancellation"]["acknowledgedAt"] == "2026-11-21T12:00:00.000Z", "the operator's own time instead"


def test_sixteen_foreign_conditions_leave_room_for_the_operators_own():
    foreign = [{"type": f"Other{i}", "status": "True", "reason": "R", "message": "",
                "lastTransitionTime": "2026-11-21T11:00:00Z"} for i in range(16)]
    conditions = status_patch(decide(job(cancel="stop", conditions=foreign), POD, [], NOW))["conditions"]
    assert len(conditions) == 16 and conditions[-1]["type"] == "CancelRequested"
