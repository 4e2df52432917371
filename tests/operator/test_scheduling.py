"""The Schedule state machine with an injected clock: cron times, concurrency, deadlines, history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from flux_api import Execution
from flux_api.schedule import Schedule
from flux_api.timefmt import format_time
from flux_operator.schedule_machine import (
    CreateRun,
    DeleteRun,
    PatchScheduleStatus,
    ReplaceRun,
    ScheduleEvent,
    Suspend,
    decide_schedule,
    latest_due,
    proof,
    next_due,
    run_name,
    zone,
)
from tests.operator.builders import of, status_patch

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, 30, tzinfo=timezone.utc)
UID = "uid-sched"


def schedule(cron: str = "*/5 * * * *", status: dict | None = None, runs: list[Execution] = (), **spec) -> Schedule:
    """A Schedule whose status records `runs` as its own (the operator created them)."""
    status = {"runs": [r.metadata["uid"] for r in runs], **(status or {})}
    return Schedule.model_validate({
        "metadata": {"name": "nightly", "namespace": "ns", "uid": UID, "generation": 2,
                     "creationTimestamp": "2026-11-21T11:00:00Z"},
        "spec": {"schedule": cron, "executionTemplate": {
            "metadata": {"labels": {"team": "data"}},
            "spec": {"workflow": "pkg.mod:main", "input": {"x": 1}, "retry": {"limit": 1}}}, **spec},
        "status": status or {},
    })


def run(name: str, phase: str | None = None, finished: str | None = None, scheduled: str | None = None,
        **status) -> Execution:
    st = {"phase": phase, "finishedAt": finished, **status}
    annotations = {"workflows.flux.dev/scheduled-at": scheduled} if scheduled else {}
    return Execution.model_validate({
        "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "annotations": annotations,
                     "labels": {"workflows.flux.dev/schedule": "nightly"},
                     "ownerReferences": [{"uid": UID, "kind": "Schedule", "name": "nightly", "controller": True}]},
        "spec": {"workflow": "pkg.mod:main"}, "status": {k: v for k, v in st.items() if v is not None}})


def adopt(sched: Schedule, decision, now: datetime) -> tuple[Schedule, Execution]:
    """What the shell does with a CreateRun: write the status, create the run; the next decision records it."""
    [create] = of(decision, CreateRun)
    written = schedule_from(sched, patch(decision))
    created = Execution.model_validate({**create.body, "metadata": {**create.body["metadata"], "uid": "u-new"}})
    return written, created


def schedule_from(sched: Schedule, status_patch: dict) -> Schedule:
    status = {**sched.status.model_dump(mode="json", exclude_none=True), **status_patch}
    return Schedule.model_validate({**sched.model_dump(mode="json"),
                                    "status": {k: v for k, v in status.items() if v is not None}})


TOKEN = "f00d" * 8


def decide(sched: Schedule, runs: list[Execution], now: datetime, **kw):
    return decide_schedule(sched, runs, now, kw.pop("token", TOKEN), **kw)


def patch(decision) -> dict:
    return status_patch(decision, PatchScheduleStatus)


DUE = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
NAME = run_name("nightly", DUE)


def test_cron_times_in_a_time_zone():
    berlin = zone("Europe/Berlin")
    # 09:00 in Berlin is 08:00 UTC in November (CET).
    assert next_due("0 9 * * *", berlin, NOW) == datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
    assert latest_due("0 9 * * *", berlin, NOW) == datetime(2026, 11, 21, 8, 0, tzinfo=timezone.utc)
    assert latest_due("*/5 * * * *", zone(None), DUE) == DUE  # a time exactly now is due now


def test_a_due_run_is_created_from_the_template_owned_and_labelled():
    decision = decide(schedule(status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"}), [], NOW)
    [create] = of(decision, CreateRun)
    assert create.name == NAME == "nightly-29921040"
    meta = create.body["metadata"]
    assert meta["labels"] == {"team": "data", "workflows.flux.dev/schedule": "nightly"}
    assert meta["annotations"]["workflows.flux.dev/scheduled-at"] == "2026-11-21T12:00:00.000Z"
    assert meta["ownerReferences"][0]["uid"] == UID and meta["ownerReferences"][0]["kind"] == "Schedule"
    assert create.body["spec"]["input"] == {"x": 1}
    assert create.body["spec"]["retry"] == {"limit": 1, "backoffSeconds": 10}
    token = meta["annotations"]["workflows.flux.dev/run-token"]
    st = patch(decision)
    # First the proof of the run about to be made (the status patch comes before the create) ...
    assert [type(a) for a in decision.actions][-2:] == [PatchScheduleStatus, CreateRun]
    assert st["starting"] == [{"scheduledAt": "2026-11-21T12:00:00.000Z", "proof": proof(NAME, token),
                               "since": format_time(NOW)}]
    assert st["nextScheduleTime"] == "2026-11-21T12:05:00.000Z"
    assert decision.requeue_after == pytest.approx(270)
    # ... then, seeing the run, its UID in the record, and the run counts.
    written, created = adopt(schedule(status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"}), decision, NOW)
    recorded = decide(written, [created], NOW)
    st = patch(recorded)
    assert st["runs"] == ["u-new"] and st["starting"] == [] and st["active"] == [{"name": NAME}]
    assert st["lastScheduleTime"] == "2026-11-21T12:00:00.000Z"
    assert [e.reason for e in of(recorded, ScheduleEvent)] == ["RunStarted"] and not of(recorded, CreateRun)


def test_nothing_due_waits_for_the_next_time():
    decision = decide(schedule(status={"lastScheduleTime": format_time(DUE)}), [], NOW)
    assert not of(decision, CreateRun)
    assert decision.requeue_after == pytest.approx(270)


def test_after_downtime_at_most_one_missed_run_starts():
    # Down for three hours: 36 times were missed; only the latest one runs.
    decision = decide(schedule(status={"lastScheduleTime": "2026-11-21T09:00:00.000Z"}), [], NOW)
    assert [c.name for c in of(decision, CreateRun)] == [NAME]


def test_a_run_missed_by_more_than_the_starting_deadline_is_skipped():
    late = NOW + timedelta(seconds=100)
    decision = decide(schedule(startingDeadlineSeconds=60,
                                        status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"}), [], late)
    assert not of(decision, CreateRun)
    assert "MissedSchedule" in [e.reason for e in of(decision, ScheduleEvent)]
    assert patch(decision)["lastScheduleTime"] == format_time(DUE)  # skipped for good, not started late
    within = decide(schedule(startingDeadlineSeconds=60,
                                      status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"}), [], NOW)
    assert of(within, CreateRun)


def test_an_existing_run_is_not_created_twice():
    mine = run(NAME, "Running", scheduled=format_time(DUE))
    decision = decide(schedule(status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"}, runs=[mine]),
                               [mine], NOW, taken={NAME})
    assert not of(decision, CreateRun)
    assert patch(decision)["lastScheduleTime"] == format_time(DUE)


def prev_active():
    return [run("nightly-29395435", "Running")]


def test_allow_starts_beside_an_active_run():
    sched = schedule(status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"}, runs=prev_active())
    decision = decide(sched, prev_active(), NOW)
    assert of(decision, CreateRun) and not of(decision, ReplaceRun)
    written, created = adopt(sched, decision, NOW)
    assert patch(decide(written, [*prev_active(), created], NOW))["active"] == [
        {"name": "nightly-29395435"}, {"name": NAME}]


def test_forbid_waits_while_a_run_is_active():
    sched = schedule(concurrencyPolicy="Forbid", status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"},
                     runs=prev_active())
    decision = decide(sched, prev_active(), NOW)
    assert not of(decision, CreateRun)
    [event] = [e for e in of(decision, ScheduleEvent) if e.reason == "SkippedForbid"]
    assert event.key == str(int(DUE.timestamp()) // 60)  # one Event per held-back cron time
    # Once it finished, the waiting run starts (the finished run's event wakes the Schedule).
    decision = decide(sched, [run("nightly-29395435", "Succeeded")], NOW + timedelta(seconds=20))
    assert [c.name for c in of(decision, CreateRun)] == [NAME]


def test_replace_cancels_the_active_run_saying_so_and_starts_the_new_one():
    sched = schedule(concurrencyPolicy="Replace", status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"},
                     runs=prev_active())
    decision = decide(sched, prev_active(), NOW)
    [replace] = of(decision, ReplaceRun)
    assert replace.name == "nightly-29395435"
    assert replace.reason == f"replaced by {NAME}: schedule nightly has concurrencyPolicy Replace"
    assert replace.uid == prev_active()[0].metadata["uid"], "the patch's precondition: this run, no namesake"
    assert [c.name for c in of(decision, CreateRun)] == [NAME]


def test_replace_of_many_active_runs_cancels_a_pass_at_a_time_and_starts_the_new_one_after_the_last():
    """A queue of thousands of Pending runs (held by a ConcurrencyLimit) switched to Replace: one pass sending
    every cancel would hold one of the two schedule workers, every namespace's, for minutes."""
    from flux_operator.schedule_machine import MAX_REPLACES_A_PASS, MORE_SOON

    active = [run(f"nightly-{29395000 + i}", "Pending") for i in range(3 * MAX_REPLACES_A_PASS + 5)]
    sched = schedule(concurrencyPolicy="Replace", status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"}, runs=active)
    told: list[str] = []
    for _ in range(3):
        decision = decide(sched, active, NOW)
        sent = [r.name for r in of(decision, ReplaceRun)]
        assert len(sent) == MAX_REPLACES_A_PASS and not set(sent) & set(told)
        assert not of(decision, CreateRun) and decision.requeue_after == MORE_SOON
        told += sent
        active = [r.model_copy(update={"spec": r.spec.model_copy(update={"cancel": {"reason": "x"}})})
                  if r.name in sent else r for r in active]
    decision = decide(sched, active, NOW)
    assert len(of(decision, ReplaceRun)) == 5 and [c.name for c in of(decision, CreateRun)] == [NAME]


def test_suspended_starts_nothing_and_has_no_next_time():
    decision = decide(schedule(suspend=True, status={"lastScheduleTime": "2026-11-21T11:00:00.000Z",
                                                              "nextScheduleTime": "2026-11-21T13:00:00.000Z"}), [], NOW)
    assert not of(decision, CreateRun)
    assert patch(decision)["nextScheduleTime"] is None
    assert decision.requeue_after is None


def test_history_limits_delete_the_oldest_finished_runs():
    runs = [run(f"nightly-{i}", "Succeeded", f"2026-11-21T11:{i:02d}:00Z") for i in range(5)] + \
           [run(f"nightly-f{i}", "Failed", f"2026-11-21T11:{i:02d}:30Z") for i in range(3)] + \
           [run("nightly-c1", "Cancelled", "2026-11-21T11:00:00Z"), run("nightly-r", "Running")]
    decision = decide(schedule(successfulExecutionsHistoryLimit=2, failedExecutionsHistoryLimit=0,
                                        cancelledExecutionsHistoryLimit=1,
                                        status={"lastScheduleTime": format_time(DUE)}, runs=runs), runs, NOW)
    assert sorted(d.name for d in of(decision, DeleteRun)) == [
        "nightly-0", "nightly-1", "nightly-2", "nightly-f0", "nightly-f1", "nightly-f2"]


def test_an_unschedule_request_suspends_the_schedule_once():
    asking = run("nightly-29395435", "Running", unscheduleRequest={"reason": "quota reached"})
    decision = decide(schedule(status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"}, runs=[asking]),
                               [asking], NOW)
    assert of(decision, Suspend) == [Suspend("quota reached")]
    assert not of(decision, CreateRun)  # suspended from this moment
    assert patch(decision)["lastUnschedule"]["execution"] == "nightly-29395435"
    # Resumed later by a user: the same old request does not suspend it again.
    answered = schedule(status={"lastScheduleTime": "2026-11-21T11:55:00.000Z",
                                "lastUnschedule": {"execution": "nightly-29395435", "reason": "quota reached"}},
                        runs=[asking])
    assert not of(decide(answered, [asking], NOW), Suspend)


def test_a_resume_is_not_undone_by_requests_made_before_the_suspend():
    early = run("nightly-a", "Running", unscheduleRequest={"reason": "quota", "requestedAt": "2026-11-21T11:56:00Z"})
    also = run("nightly-b", "Running", unscheduleRequest={"reason": "quota too", "requestedAt": "2026-11-21T11:57:00Z"})
    status = {"lastScheduleTime": "2026-11-21T11:55:00.000Z"}
    first = decide(schedule(status=status, runs=[early, also]), [early, also], NOW)
    assert of(first, Suspend) == [Suspend("quota")]
    answered = schedule(status={**status, "lastUnschedule": patch(first)["lastUnschedule"]}, runs=[early, also])
    assert not of(decide(answered, [early, also], NOW + timedelta(minutes=5)), Suspend), "b's older ask undid a resume"
    later = run("nightly-c", "Running", unscheduleRequest={"reason": "again", "requestedAt": format_time(
        NOW + timedelta(minutes=1))})
    recorded = schedule(status={**status, "lastUnschedule": patch(first)["lastUnschedule"]}, runs=[early, also, later])
    assert of(decide(recorded, [early, also, later], NOW + timedelta(minutes=5)), Suspend) == [Suspend("again")]


@pytest.mark.parametrize("phase, finished", [("Succeeded", "2026-11-21T11:59:00Z"), ("Running", None)])
def test_two_runs_asking_in_the_future_do_not_take_turns_undoing_each_resume(phase, finished):
    """The runner writes requestedAt: "2099" is not believed (not after now, nor after the run ended), so one
    suspend answers both, and each resume of the Schedule holds."""
    ends = {"finished": finished} if finished else {}
    a = run("nightly-a", phase, unscheduleRequest={"reason": "A", "requestedAt": "2099-01-01T00:00:00Z"}, **ends)
    b = run("nightly-b", phase, unscheduleRequest={"reason": "B", "requestedAt": "2099-01-01T00:00:00Z"}, **ends)
    sched, now, suspends = schedule(runs=[a, b], successfulExecutionsHistoryLimit=2), NOW, []
    for _ in range(4):  # an admin resumes it every ten minutes
        decision = decide(sched, [a, b], now)
        suspends += [s.reason for s in of(decision, Suspend)]
        sched = schedule_from(sched, patch(decision))
        now += timedelta(minutes=10)
    assert suspends == ["A"], suspends


def test_an_invalid_cron_or_zone_is_reported_not_raised():
    decision = decide(schedule(cron="* * * *"), [], NOW)
    assert not of(decision, CreateRun)
    ready = patch(decision)["conditions"][0]
    assert ready["status"] == "False" and ready["reason"] == "InvalidSchedule"
    decision = decide(schedule(timeZone="Mars/Olympus"), [], NOW)
    assert "unknown time zone" in patch(decision)["message"]


def test_deciding_again_writes_nothing():
    sched = schedule(status={"lastScheduleTime": "2026-11-21T11:55:00.000Z"})
    written, created = adopt(sched, decide(sched, [], NOW), NOW)
    recorded = schedule_from(written, patch(decide(written, [created], NOW)))
    again = decide(recorded, [created], NOW + timedelta(seconds=3))
    assert again.actions == [] and again.requeue_after == pytest.approx(267)


def test_resuming_does_not_make_up_the_runs_missed_while_suspended():
    suspended = schedule(suspend=True, status={"lastScheduleTime": "2026-11-21T10:00:00.000Z"})
    decision = decide(suspended, [], NOW)
    status = {k: v for k, v in {**suspended.status.model_dump(mode="json"), **patch(decision)}.items()
              if v is not None}
    resumed = schedule(status=status)
    decision = decide(resumed, [], NOW + timedelta(seconds=5))
    assert not of(decision, CreateRun)
    assert patch(decision)["nextScheduleTime"] == "2026-11-21T12:05:00.000Z"
    # And not on the next look either; the next cron time does run.
    again = schedule(status={k: v for k, v in {**status, **patch(decision)}.items() if v is not None})
    assert not of(decide(again, [], NOW + timedelta(seconds=20)), CreateRun)
    assert of(decide(again, [], NOW + timedelta(minutes=5)), CreateRun)
