"""Durable waits in the state machine: the runner's checkpoint state Waiting, with no cluster."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flux_api import Execution
from flux_operator.execution import timing
from flux_operator.execution.machine import CancelChild, DeletePod, EnsureRunner, PatchStatus, PodView, decide
from tests.operator.builders import NOW, apply, of, status_patch
from tests.operator.test_decide import POD, child, events, execution, parent, running_pod
from tests.operator.test_suspend import with_spec

pytestmark = pytest.mark.unit

WAKE = "2026-11-21T12:05:00.000Z"  # NOW + 5 minutes


def waited(**kw) -> Execution:
    """Running; its runner checkpointed Waiting (a durable sleep) and exited."""
    return execution("Running", checkpoint={"state": "Waiting", "wakeAt": WAKE, "waiting": f"sleeping until {WAKE}"},
                     **kw)


def waiting(**kw) -> Execution:
    ex = waited(**kw)
    return apply(ex, decide(ex, PodView(POD, phase="Succeeded", started=True, uid="p1"), [], NOW))


def test_a_runner_that_ended_to_wait_makes_the_execution_waiting_and_its_pod_goes():
    ex = waited()
    actions = decide(ex, PodView(POD, phase="Succeeded", started=True, uid="p1"), [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 0, "p1")]
    patch = status_patch(actions)
    assert patch["phase"] == "Waiting" and patch["message"] == f"sleeping until {WAKE}"
    assert "finishedAt" not in patch
    assert events(actions) == ["Waiting"]


def test_a_pod_that_says_it_waits_but_runs_on_is_stopped_with_its_grace():
    actions = decide(waited(), running_pod(uid="p1"), [], NOW)
    assert of(actions, DeletePod) == [DeletePod(POD, 30, "p1")]


def test_nothing_runs_before_the_wake_time_and_the_timer_is_set_for_it():
    ex = waiting()
    assert decide(ex, None, [], NOW + timedelta(minutes=4)) == []
    assert timing.next_wakeup(ex, NOW, None) == 300


def test_at_the_wake_time_a_new_pod_goes_on_from_the_checkpoint():
    ex = waiting()
    later = NOW + timedelta(minutes=5, seconds=1)
    actions = decide(ex, None, [], later)
    patch = status_patch(actions)
    assert patch["phase"] == "Pending" and patch["message"] is None
    assert patch["checkpoint"] == {"state": "Running", "error": None, "result": None, "wakeAt": None, "waiting": None,
                                   "signal": None}
    assert of(actions, EnsureRunner)
    assert events(actions) == ["Woken"]
    assert "1.0s after its wake time" in [a for a in actions if getattr(a, "reason", "") == "Woken"][0].message


def test_the_old_pod_must_be_gone_before_the_next_starts():
    assert not of(decide(waiting(), PodView(POD, phase="Succeeded", terminating=True), [],
                         NOW + timedelta(minutes=6)), EnsureRunner)


def test_a_cancel_while_waiting_ends_it_at_once():
    ex = with_spec(waiting(), cancel={"reason": "no need", "cascade": True, "force": False})
    actions = decide(ex, None, [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Cancelled" and patch["cancellation"]["outcome"] == "WhileWaiting"
    assert patch["message"] == "cancelled while waiting: no need"
    assert not of(actions, EnsureRunner)


def test_a_cancel_while_waiting_with_a_live_child_waits_for_it():
    kid = child("job-a", "Running")
    ex = with_spec(parent(waiting(), kid), cancel={"reason": "stop", "cascade": True, "force": False})
    actions = decide(ex, None, [kid], NOW)
    assert of(actions, CancelChild) and status_patch(actions)["phase"] == "Cancelling"
    done = apply(ex, actions)
    assert status_patch(decide(done, None, [child("job-a", "Cancelled")], NOW))["cancellation"]["outcome"] == \
        "Graceful", "it had ended its pod to wait: nothing was cut"


def test_a_suspend_while_waiting_is_suspended_at_once_and_its_resume_sleeps_on():
    ex = with_spec(waiting(), suspend=True)
    actions = decide(ex, None, [], NOW)
    assert status_patch(actions)["phase"] == "Suspended"
    assert status_patch(actions)["suspension"]["outcome"] == "Graceful"
    resumed = with_spec(apply(ex, actions), suspend=False)
    patch = status_patch(decide(resumed, None, [], NOW + timedelta(seconds=5)))
    assert patch["phase"] == "Pending" and patch["checkpoint"]["wakeAt"] is None, "the new pod's replay sleeps on"


def test_a_deadline_falls_while_waiting():
    ex = waiting(deadline=120)
    assert ex.phase == "Waiting"
    actions = decide(ex, None, [], NOW + timedelta(minutes=2))
    assert status_patch(actions)["cancellation"]["source"] == "deadline"
    assert status_patch(actions)["cancellation"]["outcome"] == "WhileWaiting"


# --- signals ---------------------------------------------------------------------------------------------

def waiting_for_signal(signals: list | None = None, manager: str | None = None, received: list | None = None):
    ex = execution("Running", checkpoint={"state": "Waiting", "waiting": "waiting for signal approve",
                                          "signal": {"name": "approve", "occurrence": 1}})
    ex = apply(ex, decide(ex, None, [], NOW))
    data = ex.model_dump(mode="json")
    data["spec"]["signals"] = signals or []
    data["status"]["signals"] = received or []
    if manager:
        data["metadata"]["flux.internal/signalsFieldManager"] = manager
    return Execution.model_validate(data)


def test_a_wait_for_a_signal_without_a_timeout_waits_for_ever():
    ex = waiting_for_signal()
    assert ex.phase == "Waiting" and ex.status.message == "waiting for signal approve"
    assert decide(ex, None, [], NOW + timedelta(days=30)) == []
    assert timing.next_wakeup(ex, NOW, None) is None


def test_the_signal_arriving_wakes_it_and_is_recorded_with_its_sender():
    ex = waiting_for_signal(signals=[{"name": "other"}, {"name": "approve", "reason": "looks good", "sentBy": "alice"}],
                            manager="kubectl-flux", received=[{"name": "other", "index": 0}])
    actions = decide(ex, None, [], NOW)
    patch = status_patch(actions)
    assert patch["phase"] == "Pending" and of(actions, EnsureRunner)
    assert patch["signals"][1] == {"name": "approve", "index": 1, "receivedAt": patch["signals"][1]["receivedAt"],
                                   "sentBy": "alice", "fieldManager": "kubectl-flux"}
    messages = {a.reason: a.message for a in actions if hasattr(a, "reason") and hasattr(a, "message")}
    assert messages["SignalReceived"] == "signal approve received from alice: looks good"
    assert "after its wake time" not in messages["Woken"]


def test_another_signal_does_not_wake_it_but_is_recorded():
    ex = waiting_for_signal(signals=[{"name": "other"}], manager="gitops")
    actions = decide(ex, None, [], NOW)
    assert not of(actions, EnsureRunner)
    recorded = status_patch(actions)["signals"][0]
    assert recorded["fieldManager"] == "gitops" and recorded.get("sentBy") is None, "a field manager is not a sender"
    assert events(actions) == ["SignalReceived"]
    messages = [a.message for a in actions if getattr(a, "reason", None) == "SignalReceived"]
    assert messages == ["signal other received from a sender not verified (field manager gitops)"]


def test_a_record_of_an_older_operator_names_its_field_manager_as_such_not_as_the_sender():
    # Before 143354c, sentBy held the field manager: a client's choice, which must not read as a checked sender.
    ex = waiting_for_signal(signals=[{"name": "other"}], received=[{"name": "other", "index": 0,
                                                                   "sentBy": "platform-admin"}])
    actions = decide(ex, None, [], NOW)
    recorded = status_patch(actions)["signals"]
    assert [(r["sentBy"], r["fieldManager"]) for r in recorded] == [(None, "platform-admin")]
    assert not events(actions), "no signal is new: no Event"
    again = apply(ex, actions)
    assert again.status.signals[0].fieldManager == "platform-admin"
    assert "signals" not in status_patch(decide(again, None, [], NOW)), "once fixed, never written again"


def test_a_signal_to_a_finished_execution_is_not_recorded():
    ex = execution("Succeeded", status={"finishedAt": "2026-11-21T11:59:30Z", "observedGeneration": 1})
    data = ex.model_dump(mode="json")
    data["spec"]["signals"] = [{"name": "approve"}]
    assert not of(decide(Execution.model_validate(data), None, [], NOW), PatchStatus)


def test_a_wake_time_in_the_past_still_waits_the_floor():
    """A runner lying about its wake time cannot make the operator start its pods back to back."""
    ex = execution("Running", checkpoint={"state": "Waiting", "wakeAt": "2026-11-21T11:00:00.000Z"})
    ex = apply(ex, decide(ex, None, [], NOW))
    assert ex.phase == "Waiting" and ex.status.waitingSince == NOW
    assert decide(ex, None, [], NOW + timedelta(seconds=9)) == []
    assert timing.next_wakeup(ex, NOW, None) == 10
    assert of(decide(ex, None, [], NOW + timedelta(seconds=10)), EnsureRunner)


def test_a_wait_for_a_signal_recorded_before_it_began_still_waits_the_floor():
    """A runner waiting, pod after pod, for a signal it already has cannot start its pods back to back either;
    a signal that arrives while it waits, or in the same pass as the wait, wakes it at once."""
    before = (NOW - timedelta(seconds=1)).isoformat()
    ex = waiting_for_signal(signals=[{"name": "approve"}], received=[{"name": "approve", "index": 0,
                                                                     "receivedAt": before}])
    assert ex.phase == "Waiting" and ex.status.waitingSince == NOW
    assert decide(ex, None, [], NOW + timedelta(seconds=9)) == []
    assert timing.next_wakeup(ex, NOW, None) == 10
    assert of(decide(ex, None, [], NOW + timedelta(seconds=10)), EnsureRunner)
    for arrived in (NOW, NOW + timedelta(seconds=1)):
        ex = waiting_for_signal(signals=[{"name": "approve"}], received=[{"name": "approve", "index": 0,
                                                                         "receivedAt": arrived.isoformat()}])
        assert of(decide(ex, None, [], NOW + timedelta(seconds=1)), EnsureRunner)
        assert timing.next_wakeup(ex, NOW, None) is None  # the signal's own event wakes it, no timer


def test_a_wait_after_one_that_timed_out_has_an_event_of_its_own():
    """The first wait for approve gave up (it had a timeout, so a wake time); the next waits for the same first
    approve, without one: two Waiting Events, not one folded into the other."""
    from flux_operator.execution.machine import EmitEvent

    def keys(checkpoint: dict) -> list[str]:
        ex = execution("Running", checkpoint={"state": "Waiting", "waiting": "waiting for signal approve",
                                              "signal": {"name": "approve", "occurrence": 1}, **checkpoint})
        return [e.key for e in of(decide(ex, None, [], NOW), EmitEvent)]

    timed, untimed = keys({"wakeAt": WAKE}), keys({})
    assert len(timed) == len(untimed) == 1 and timed != untimed
    assert untimed == ["approve-1"]
