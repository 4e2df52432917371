"""Which Executions are a Schedule's runs: only those the operator made (its record in status.runs) with a
controller ownerReference. Forged look-alikes, squatted names and the crash gap, with an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from flux_api import Execution
from flux_api.schedule import MAX_RECORDED_RUNS, MAX_STARTING, Schedule
from flux_api.timefmt import format_time
from flux_operator.schedule_machine import (
    CreateRun,
    DeleteRun,
    PatchScheduleStatus,
    ScheduleEvent,
    Suspend,
    decide_schedule,
    proof,
    run_name,
    spare_name,
)
from tests.operator.builders import of, status_patch

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, 30, tzinfo=timezone.utc)
DUE = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
NAME = run_name("nightly", DUE)
UID = "uid-sched"
TOKEN = "5ec7e7" * 6
LAST = "2026-11-21T11:55:00.000Z"


def schedule(status: dict | None = None, **spec) -> Schedule:
    return Schedule.model_validate({
        "metadata": {"name": "nightly", "namespace": "ns", "uid": UID, "generation": 2,
                     "creationTimestamp": "2026-11-21T11:00:00Z"},
        "spec": {"schedule": "*/5 * * * *", "executionTemplate": {"spec": {"workflow": "pkg.mod:main"}}, **spec},
        "status": {"lastScheduleTime": LAST, "runs": [], **(status or {})}})


def execution(name: str, phase: str | None = "Running", controller: bool = True, token: str | None = None,
              uid: str | None = None, **status) -> Execution:
    annotations = {"workflows.flux.dev/scheduled-at": LAST}
    if token is not None:
        annotations["workflows.flux.dev/run-token"] = token
    return Execution.model_validate({
        "metadata": {"name": name, "namespace": "ns", "uid": uid or f"u-{name}", "annotations": annotations,
                     "labels": {"workflows.flux.dev/schedule": "nightly"},
                     "ownerReferences": [{"uid": UID, "kind": "Schedule", "name": "nightly", "controller": controller}]},
        "spec": {"workflow": "pkg.mod:main"},
        "status": {k: v for k, v in {"phase": phase, "finishedAt": "2026-11-21T11:59:00Z", **status}.items() if v}})


def decide(sched: Schedule, runs: list[Execution], now: datetime = NOW, **kw):
    return decide_schedule(sched, runs, now, kw.pop("token", TOKEN), **kw)


def patch(decision) -> dict:
    return status_patch(decision, PatchScheduleStatus)


def events(decision) -> dict[str, ScheduleEvent]:
    return {e.reason: e for e in of(decision, ScheduleEvent)}


def intent(name: str, token: str, since: datetime = NOW, at: datetime = DUE) -> dict:
    return {"scheduledAt": format_time(at), "proof": proof(name, token), "since": format_time(since)}


# --- forged runs count for nothing ----------------------------------------------------------------

def test_an_unrecorded_active_run_does_not_hold_back_forbid():
    forged = execution("nightly-forged", "Running")
    decision = decide(schedule(concurrencyPolicy="Forbid"), [forged])
    assert [c.name for c in of(decision, CreateRun)] == [NAME]
    assert "active" not in patch(decision)  # nothing active: the forged run is not listed


def test_a_recorded_run_without_a_controller_reference_does_not_count():
    demoted = execution("nightly-1", "Running", controller=False)
    decision = decide(schedule({"runs": ["u-nightly-1"]}, concurrencyPolicy="Forbid"), [demoted])
    assert of(decision, CreateRun)


def test_unrecorded_finished_runs_are_neither_kept_nor_deleted_nor_successes():
    mine = [execution(f"nightly-{i}", "Succeeded", finishedAt=f"2026-11-21T11:0{i}:00Z") for i in range(2)]
    forged = [execution(f"nightly-f{i}", "Succeeded", finishedAt=f"2026-11-21T11:5{i}:00Z") for i in range(3)]
    decision = decide(schedule({"runs": ["u-nightly-0", "u-nightly-1"]}, successfulExecutionsHistoryLimit=2),
                      [*mine, *forged])
    assert not of(decision, DeleteRun)  # the two real ones fit the limit; forged ones are not ours to delete
    decision = decide(schedule({"runs": ["u-nightly-0", "u-nightly-1"]}, successfulExecutionsHistoryLimit=1),
                      [*mine, *forged])
    assert of(decision, DeleteRun) == [DeleteRun("nightly-0", "u-nightly-0")]
    assert "lastSuccessfulTime" in patch(decision)
    assert "lastSuccessfulTime" not in patch(decide(schedule(), forged))


def test_an_unrecorded_run_cannot_unschedule():
    forged = execution("nightly-forged", "Running", unscheduleRequest={"reason": "stop"})
    assert not of(decide(schedule(), [forged]), Suspend)
    assert of(decide(schedule({"runs": ["u-nightly-forged"]}), [forged]), Suspend)


def test_the_record_forgets_runs_that_are_gone_and_keeps_unparsed_ones():
    mine = execution("nightly-1", "Succeeded")
    decision = decide(schedule({"runs": ["u-nightly-1", "u-gone", "u-unparsed"], "lastScheduleTime":
                                format_time(DUE)}), [mine], present={"u-nightly-1", "u-unparsed"})
    assert patch(decision)["runs"] == ["u-nightly-1", "u-unparsed"]


# --- making a run: proof, create, record ----------------------------------------------------------

def test_a_run_is_recorded_only_with_the_token_behind_its_proof():
    sched = schedule({"starting": [intent(NAME, TOKEN)]})
    genuine = execution(NAME, None, token=TOKEN, uid="u-real")
    assert patch(decide(sched, [genuine]))["runs"] == ["u-real"]
    for impostor in (execution(NAME, None, token="guessed", uid="u-x"),  # a guessed token
                     execution(NAME, None, token=None, uid="u-x"),  # none
                     execution("nightly-other", None, token=TOKEN, uid="u-x"),  # the token copied to another name
                     execution(NAME, None, token=TOKEN, uid="u-x", controller=False)):  # not controlled
        assert patch(decide(sched, [impostor])).get("runs", []) == [], impostor.metadata


def test_an_empty_or_short_token_is_refused():
    with pytest.raises(ValueError, match="randomness"):
        decide(schedule(), [], token="")


def test_a_proof_expires_after_ten_minutes_and_at_most_three_are_kept():
    stale = intent("nightly-old", "t" * 32, since=NOW - timedelta(minutes=11))
    fresh = [intent(f"nightly-{i}", f"{i}" * 32) for i in range(MAX_STARTING)]
    starting = patch(decide(schedule({"starting": [stale, *fresh[:2]]}), []))["starting"]
    assert starting[:2] == fresh[:2] and len(starting) == MAX_STARTING  # the stale one went
    starting = patch(decide(schedule({"starting": fresh}), []))["starting"]
    assert starting[:2] == fresh[1:] and len(starting) == MAX_STARTING  # the oldest made room
    assert starting[-1]["proof"] == proof(NAME, TOKEN)  # the newest attempt is always kept


def test_each_attempt_has_a_fresh_secret():
    first, second = (of(decide(schedule(), [], token=t), CreateRun)[0] for t in ("a" * 32, "b" * 32))
    tokens = {c.body["metadata"]["annotations"]["workflows.flux.dev/run-token"] for c in (first, second)}
    assert tokens == {"a" * 32, "b" * 32}


# --- squatted names -------------------------------------------------------------------------------

def test_a_squatted_name_gets_a_warning_and_the_run_an_unguessable_name():
    decision = decide(schedule(), [], taken={NAME})
    [create] = of(decision, CreateRun)
    assert create.name == spare_name("nightly", TOKEN) != NAME
    warning = events(decision)["RunNameTaken"]
    assert warning.type == "Warning" and warning.key == NAME
    assert warning.message == f"{NAME} already exists and is not a run of this Schedule: the run of " \
                              f"{format_time(DUE)} starts as {create.name}"
    assert patch(decision)["starting"][-1]["proof"] == proof(create.name, TOKEN)


def test_spare_names_fit_a_label_value_and_never_look_like_a_cron_time():
    longest = "s" * 52
    names = {spare_name(longest, f"{i:032x}") for i in range(500)}
    assert len(names) == 500  # unguessable: a new one per token
    for name in names:
        suffix = name.removeprefix(longest + "-")
        assert len(name) == 63 and suffix.startswith("x") and suffix.isalnum() and suffix.islower()


def test_our_own_run_of_that_time_is_not_a_squatter():
    mine = execution(NAME, "Running")
    mine.metadata["annotations"]["workflows.flux.dev/scheduled-at"] = format_time(DUE)
    decision = decide(schedule({"runs": [f"u-{NAME}"]}), [mine], taken={NAME})
    assert not of(decision, CreateRun) and "RunNameTaken" not in events(decision)


def test_runs_of_an_operator_from_before_the_record_are_taken_over_once():
    legacy = Schedule.model_validate({**schedule().model_dump(mode="json", exclude={"status"}),
                                      "status": {"lastScheduleTime": LAST, "active": [{"name": NAME}]}})
    old_run = execution(NAME, "Running", uid="u-old")
    old_run.metadata["annotations"]["workflows.flux.dev/scheduled-at"] = format_time(DUE)
    lookalike = execution("nightly-forged", "Running", uid="u-fake")  # not the old naming: not taken over
    decision = decide(legacy, [old_run, lookalike])
    assert patch(decision)["runs"] == ["u-old"] and not of(decision, CreateRun)
    # Written once (even empty), the record alone counts from then on.
    assert patch(decide(Schedule.model_validate({**legacy.model_dump(mode="json", exclude={"status"}),
                                                 "status": {"lastScheduleTime": LAST}}), []))["runs"] == []
    assert patch(decide(schedule(), [old_run])).get("runs", []) == []


# --- limits, invalid schedules --------------------------------------------------------------------

def test_a_full_record_starts_nothing_and_says_why():
    record = [f"u-{i}" for i in range(MAX_RECORDED_RUNS)]
    decision = decide(schedule({"runs": record}), [], present=set(record))
    assert not of(decision, CreateRun)
    assert events(decision)["TooManyRuns"].type == "Warning"
    assert "4000 runs exist" in patch(decision)["message"]


@pytest.mark.parametrize("cron, zone", [("0 0 31 4-11/5 *", None), ("0 0 30 2 *", "Europe/Berlin"),
                                        ("0 0 31 2 ?", "UTC")])
def test_a_cron_that_never_fires_is_invalid_and_said_once(cron, zone):
    decision = decide(schedule(schedule=cron, timeZone=zone), [])
    ready = patch(decision)["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert ready["message"] == f"the cron expression {cron!r} never fires: no date matches it"
    assert decision.requeue_after is None and not of(decision, CreateRun)
    assert events(decision)["InvalidSchedule"].key == "2"  # one Event per generation
    said = schedule({"conditions": [ready], "message": ready["message"], "observedGeneration": 2}, schedule=cron,
                    timeZone=zone)
    again = decide(said, [], NOW + timedelta(minutes=5))
    assert again.actions == [] and again.requeue_after is None


def test_a_lowered_history_limit_deletes_a_bounded_batch_a_pass_and_comes_back_soon():
    from flux_operator.schedule_machine import MAX_DELETES_A_PASS, MORE_SOON
    done = [execution(f"nightly-{i}", "Succeeded", finishedAt=format_time(DUE - timedelta(minutes=i + 1)))
            for i in range(100)]
    sched = schedule({"runs": [r.metadata["uid"] for r in done]}, successfulExecutionsHistoryLimit=0)
    decision = decide(sched, done)
    deleted = of(decision, DeleteRun)
    assert len(deleted) == MAX_DELETES_A_PASS
    assert decision.requeue_after == MORE_SOON
    assert [c.name for c in of(decision, CreateRun)] == [NAME], "the run due now is not held back"
    fits = decide(schedule({"runs": ["u-nightly-0"]}, successfulExecutionsHistoryLimit=0), done[:1])
    assert len(of(fits, DeleteRun)) == 1 and fits.requeue_after != MORE_SOON
