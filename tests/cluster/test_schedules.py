"""Schedules on a real cluster: runs on cron times, concurrency, history, suspend and unschedule from
every side (kubectl patch, the plugin, the workflow itself). A cron minute is the unit: each test
waits for one or two minute boundaries."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from fluxtest import REPO, Executions, Schedules, schedule, wait_for
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


@pytest.fixture
def sched(custom, namespace, operator) -> Schedules:
    return Schedules(custom, namespace)


@pytest.fixture
def flux(kube_env, namespace):
    env = {**{k: v for k, v in kube_env.items() if k != "COLUMNS"}, "NO_COLOR": "1"}
    assert shutil.which("kubectl-flux", path=env["PATH"])

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl-flux", *args, "-n", namespace], env=env, capture_output=True, text=True,
                              timeout=60)
    return run


@pytest.mark.cron_minutes
def test_runs_start_on_cron_times_owned_by_the_schedule_with_history_kept(sched, fx, kubectl, namespace):
    body = schedule("quick", "flux_examples.quick:main", {"name": "cron"}, successfulExecutionsHistoryLimit=1)
    created = sched.create(body)
    wait_for(lambda: sched.status("quick").get("nextScheduleTime"), timeout=30, what="a next schedule time")
    first = sched.wait_runs("quick", 1)[0]
    name = first["metadata"]["name"]
    owner = first["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Schedule" and owner["uid"] == created["metadata"]["uid"] and owner["controller"]
    assert first["metadata"]["labels"]["workflows.flux.dev/schedule"] == "quick"
    assert fx.wait_phase(name, "Succeeded")["checkpoint"]["result"]["greeting"] == "hello, cron"
    status = wait_for(lambda: (s := sched.status("quick")).get("lastSuccessfulTime") and s, timeout=30,
                      what="lastSuccessfulTime")
    assert status["lastScheduleTime"] and status["nextScheduleTime"] > status["lastScheduleTime"]
    assert status.get("active", []) == []
    table = kubectl("get", "fxs", "-n", namespace).stdout
    assert "quick" in table and "* * * * *" in table
    # The next minute's run succeeds too, and the history limit of 1 deletes the first.
    second = wait_for(lambda: [r for r in sched.runs("quick") if r["metadata"]["name"] != name], timeout=90,
                      interval=0.5, what="the second run")[0]["metadata"]["name"]
    fx.wait_phase(second, "Succeeded")
    wait_for(lambda: not fx.exists(name), timeout=30, what="the oldest run to go (history limit 1)")
    # Deleting the Schedule deletes its runs: they are its dependents.
    sched.delete("quick")
    wait_for(lambda: not fx.exists(second), timeout=60, what="the runs to go with their Schedule")


@pytest.mark.cron_minutes
def test_forbid_waits_for_the_active_run_then_starts(sched, fx, core, namespace):
    sched.create(schedule("single", "flux_examples.longrun:main", {"steps": 600, "stepSeconds": 0.5},
                          concurrencyPolicy="Forbid"))
    first = sched.wait_runs("single", 1)[0]["metadata"]["name"]
    fx.wait_step(first)
    def skipped():
        events = core.list_namespaced_event(namespace).items
        return any(e.reason == "SkippedForbid" and e.involved_object.name == "single" for e in events)
    wait_for(skipped, timeout=75, interval=0.5, what="the next cron time to be held back")
    assert [r["metadata"]["name"] for r in sched.runs("single")] == [first]
    assert sched.status("single")["active"] == [{"name": first}]
    fx.cancel(first, "make room")
    fx.wait_phase(first, "Cancelled")
    runs = sched.wait_runs("single", 2, timeout=30)  # the held-back run starts once the first finished
    assert fx.wait_phase(runs[-1]["metadata"]["name"], "Pending", "Running")
    sched.patch("single", {"spec": {"suspend": True}})


@pytest.mark.cron_minutes
def test_replace_cancels_the_running_run_saying_it_was_replaced(sched, fx):
    sched.create(schedule("long", "flux_examples.longrun:main", {"steps": 600, "stepSeconds": 0.5},
                          concurrencyPolicy="Replace"))
    first = sched.wait_runs("long", 1)[0]["metadata"]["name"]
    fx.wait_step(first)
    runs = sched.wait_runs("long", 2)
    second = runs[-1]["metadata"]["name"]
    assert second != first
    status = fx.wait_phase(first, "Cancelled", timeout=60)
    assert status["cancellation"]["source"] == "replaced"
    assert status["cancellation"]["reason"].startswith(f"replaced by {second}")
    assert status["cancellation"]["outcome"] == "Graceful"
    assert fx.phase(second) in ("Pending", "Running")
    sched.patch("long", {"spec": {"suspend": True}})


def test_kubectl_patch_suspend_and_plugin_resume(sched, kubectl, namespace, flux):
    sched.create(schedule("paused", "flux_examples.quick:main"))
    wait_for(lambda: sched.status("paused").get("nextScheduleTime"), timeout=30, what="a next schedule time")
    kubectl("patch", "fxs", "paused", "-n", namespace, "--type", "merge", "-p", '{"spec":{"suspend":true}}')
    wait_for(lambda: "nextScheduleTime" not in sched.status("paused"), timeout=30, what="no next time")
    listing = flux("schedule", "list")
    assert listing.returncode == 0, listing.stderr
    assert "paused" in listing.stdout and "True" in listing.stdout
    resumed = flux("schedule", "resume", "paused")
    assert resumed.returncode == 0 and 'schedule "paused" resumed' in resumed.stdout
    assert sched.get("paused")["spec"]["suspend"] is False
    wait_for(lambda: sched.status("paused").get("nextScheduleTime"), timeout=30, what="a next time again")


@pytest.mark.cron_minutes  # about a minute of cron time: `make test-cron`, not CI
def test_plugin_unschedule_cancels_running_runs_with_the_reason(sched, fx, flux):
    sched.create(schedule("busy", "flux_examples.longrun:main", {"steps": 600, "stepSeconds": 0.5}))
    run = sched.wait_runs("busy", 1)[0]["metadata"]["name"]
    fx.wait_step(run)
    result = flux("unschedule", "busy", "--reason", "maintenance window", "--cancel-running")
    assert result.returncode == 0, result.stderr
    assert 'schedule "busy" suspended (reason: maintenance window)' in result.stdout
    assert f'execution "{run}" cancel requested' in result.stdout
    schedule_obj = sched.get("busy")
    assert schedule_obj["spec"]["suspend"] is True
    assert schedule_obj["metadata"]["annotations"]["workflows.flux.dev/unschedule-reason"] == "maintenance window"
    status = fx.wait_phase(run, "Cancelled")
    assert status["cancellation"]["reason"] == "unscheduled: maintenance window"
    listed = json.loads(flux("schedule", "list", "-o", "json").stdout)
    assert listed[0]["suspend"] is True and listed[0]["reason"] == "maintenance window"
    assert flux("unschedule", "nope").returncode == 1


@pytest.mark.cron_minutes  # waits for its Schedule's first cron minute: `make test-cron`, not CI
def test_the_workflow_unschedules_itself(sched, fx, flux):
    sched.create(schedule("selfstop", "flux_examples.unschedule:main", {"reason": "quota reached"}))
    run = sched.wait_runs("selfstop", 1)[0]["metadata"]["name"]
    status = fx.wait_phase(run, "Cancelled", "Failed", "Succeeded")
    assert status["phase"] == "Cancelled", status.get("message")
    assert status["cancellation"]["reason"] == "quota reached"
    assert status["cancellation"]["source"] == "unschedule"
    assert status["checkpoint"]["data"] == {"unscheduled": True}
    wait_for(lambda: sched.get("selfstop")["spec"].get("suspend") is True, timeout=30, what="suspended")
    assert sched.status("selfstop")["lastUnschedule"]["execution"] == run
    shown = flux("status", run)
    assert "Schedule" in shown.stdout and "selfstop" in shown.stdout and "quota reached" in shown.stdout


@pytest.mark.parametrize("spec, message", [
    ({"schedule": "61 * * * *"}, "spec.schedule must be a cron expression"),
    ({"schedule": "* * * *"}, "spec.schedule must be a cron expression"),
    ({"schedule": "0 0 31 2 *"}, "spec.schedule never fires"),
    ({"schedule": "0 0 30,31 FEB ?"}, "spec.schedule never fires"),
    ({"schedule": "0 0 31 apr,6,9,nov *"}, "spec.schedule never fires"),
    ({"schedule": "0 0 30-31/2 2 *"}, "spec.schedule never fires"),
    ({"timeZone": "Europe/Atlantis"}, "spec.timeZone must be an IANA time zone"),
    ({"successfulExecutionsHistoryLimit": -1}, "successfulExecutionsHistoryLimit"),
    ({"concurrencyPolicy": "Sometimes"}, "concurrencyPolicy"),
])
def test_bad_schedules_are_refused_whole(sched, spec, message):
    body = schedule("bad", "flux_examples.quick:main")
    body["spec"].update(spec)
    with pytest.raises(ApiException) as caught:
        sched.create(body)
    assert caught.value.status == 422 and message in caught.value.body
    with pytest.raises(ApiException):
        sched.get("bad")


@pytest.mark.parametrize("cron", ["0 0 29 2 *", "0 0 31 2 1", "0 0 31 1,2 *", "0 0 30 feb,MAR *", "0 0 31 */2 *",
                                  "0 0 31 4-11/5 *", "0 0 ? 2 *", "@yearly"])
def test_rare_dates_and_what_a_rule_cannot_judge_are_accepted(custom, namespace, cron):
    """The never-fires rule refuses only what it can prove; the operator reports the rest (0 0 31 4-11/5 *)."""
    body = schedule("rare", "flux_examples.quick:main", cron=cron)
    custom.create_namespaced_custom_object("workflows.flux.dev", "v1alpha1", namespace, "schedules", body,
                                           dry_run="All")


@pytest.mark.cron_minutes  # about a minute of cron time: `make test-cron`, not CI
def test_the_example_schedules_run_end_to_end(kubectl, namespace, sched, fx):
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "manifests" / "schedule.yaml"))
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "manifests" / "unschedule.yaml"))
    run = sched.wait_runs("every-minute", 1)[0]
    assert run["metadata"]["labels"]["team"] == "examples"
    fx.wait_step(run["metadata"]["name"])
    kubectl("patch", "fxs", "every-minute", "-n", namespace, "--type", "merge", "-p", '{"spec":{"suspend":true}}')
    stopped = sched.wait_runs("self-stopping", 1)[0]["metadata"]["name"]
    assert fx.wait_phase(stopped, "Cancelled", "Failed", "Succeeded")["cancellation"]["reason"] == "quota reached"
    wait_for(lambda: sched.get("self-stopping")["spec"].get("suspend") is True, timeout=30, what="suspended")


@pytest.mark.cron_minutes
def test_after_operator_downtime_one_missed_run_starts_never_a_burst(sched, fx, operator, core, namespace):
    """Down over two cron times: the schedule within its deadline starts exactly the latest missed run;
    one whose deadline passed starts none and says so."""
    import time
    from datetime import datetime, timezone

    sched.create(schedule("patient", "flux_examples.quick:main", startingDeadlineSeconds=600))
    sched.create(schedule("strict", "flux_examples.quick:main", startingDeadlineSeconds=5))
    wait_for(lambda: sched.status("patient").get("nextScheduleTime") and sched.status("strict").get(
        "nextScheduleTime"), timeout=30, what="both schedules to be seen")
    operator.stop()
    try:
        time.sleep(125)  # two or three minute boundaries pass unseen
        # Come back well inside a minute, so the latest missed time is more than 5 s late.
        while not 20 <= datetime.now(timezone.utc).second <= 40:
            time.sleep(1)
    finally:
        operator.start()
    runs = sched.wait_runs("patient", 1, timeout=30)
    time.sleep(5)
    runs = sched.runs("patient")
    assert len(runs) == 1, [r["metadata"]["name"] for r in runs]
    scheduled = runs[0]["metadata"]["annotations"]["workflows.flux.dev/scheduled-at"]
    latest = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    assert scheduled == latest.strftime("%Y-%m-%dT%H:%M:00.000Z")
    assert sched.runs("strict") == []
    reasons = [e.reason for e in core.list_namespaced_event(namespace).items if e.involved_object.name == "strict"]
    assert "MissedSchedule" in reasons
    for name in ("patient", "strict"):
        sched.patch(name, {"spec": {"suspend": True}})
