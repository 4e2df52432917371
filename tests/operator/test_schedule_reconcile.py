"""The Schedule shell (store -> decide_schedule -> API) and TTL deletion, against the in-memory API."""

from __future__ import annotations

import copy
import itertools
from datetime import datetime, timezone

import pytest
from flux_api.errors import Failure
from flux_operator.builders import RunnerSettings
from flux_operator.metrics import Metrics
from flux_operator.reconcile import Reconciler
from flux_operator.schedule_shell import ScheduleReconciler, ScheduleStore
from flux_operator.world import World
from flux_operator.testing import FakeKubeApi
from tests.operator.builders import Clock, api, seed, world  # noqa: F401 (fixtures)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, 30, tzinfo=timezone.utc)
KEY = ("ns", "nightly")


def schedule(**spec) -> dict:
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Schedule",
            "metadata": {"name": "nightly", "namespace": "ns", "uid": "uid-s", "generation": 1,
                         "creationTimestamp": "2026-11-21T11:57:00Z"},
            "spec": {"schedule": "*/5 * * * *", "executionTemplate": {"spec": {"workflow": "pkg.mod:main"}}, **spec}}


def tokens(start: int = 0):
    counter = itertools.count(start)
    return lambda: f"{next(counter):032x}"


def setup(clock: Clock | None = None, **spec):
    api, store, world = FakeKubeApi(), ScheduleStore(), World()
    store.seen(api.put_schedule(schedule(**spec)))
    return api, store, world, ScheduleReconciler(store, world, api, clock=clock or Clock(NOW), new_token=tokens())


def settle(reconciler: ScheduleReconciler, key=KEY) -> float | None:
    """Reconciles until the shell asks for no immediate look again (as the work queue would)."""
    for _ in range(10):
        result = reconciler.reconcile(key)
        if result.requeue_after != 0:
            return result.requeue_after
    raise AssertionError("the Schedule never settled")


def restarted(api: FakeKubeApi, clock: Clock | None = None) -> tuple[World, ScheduleReconciler]:
    """A new operator process: its World and store listed from the API, nothing in memory."""
    store, world = ScheduleStore(), World()
    for obj in api.schedules.values():
        store.seen(copy.deepcopy(obj))
    for obj in api.objects.values():
        world.execution_seen(copy.deepcopy(obj))
    return world, ScheduleReconciler(store, world, api, clock=clock or Clock(NOW), new_token=tokens(start=2**40))


def forged(name: str, phase: str = "Running", **status) -> dict:
    """A tenant's Execution dressed as a run: the label and a controller ownerReference to the Schedule."""
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": name, "namespace": "ns", "uid": f"forged-{name}",
                         "labels": {"workflows.flux.dev/schedule": "nightly"},
                         "annotations": {"workflows.flux.dev/run-token": "guess",
                                         "workflows.flux.dev/scheduled-at": "2026-11-21T11:55:00.000Z"},
                         "ownerReferences": [{"uid": "uid-s", "kind": "Schedule", "name": "nightly",
                                              "controller": True}]},
            "spec": {"workflow": "pkg.mod:main"},
            "status": {"phase": phase, "finishedAt": "2026-11-21T12:00:10.000Z", **status}}


def creates(api: FakeKubeApi) -> list[str]:
    return [c[1] for c in api.calls if c[0] == "create_execution"]


def test_a_due_run_is_created_then_recorded_and_the_status_written():
    api, store, world, reconciler = setup()
    assert reconciler.reconcile(KEY).requeue_after == 0  # the proof written, the run created
    assert creates(api) == ["nightly-29921040"]
    assert api.schedules[KEY]["status"]["starting"][0]["scheduledAt"] == "2026-11-21T12:00:00.000Z"
    result = reconciler.reconcile(KEY)  # the run seen: recorded
    status = api.schedules[KEY]["status"]
    assert status["lastScheduleTime"] == "2026-11-21T12:00:00.000Z"
    assert status["active"] == [{"name": "nightly-29921040"}]
    assert status["runs"] == ["uid-nightly-29921040"] and status.get("starting", []) == []
    assert store.get(KEY)["status"] == status  # our own write feeds the store
    assert result.requeue_after == pytest.approx(270)
    assert "RunStarted" in [e["reason"] for e in api.events.values()]
    # Deciding again from the written status creates nothing more.
    api.calls.clear()
    reconciler.reconcile(KEY)
    assert "create_execution" not in api.names()


def test_a_crash_between_the_create_and_the_record_adopts_the_run():
    api, store, world, reconciler = setup()
    reconciler.reconcile(KEY)  # created; the process dies before it records the run
    world, again = restarted(api)
    assert settle(again) == pytest.approx(270)
    assert creates(api) == ["nightly-29921040"]  # not a second run
    assert api.schedules[KEY]["status"]["runs"] == ["uid-nightly-29921040"]


def test_a_crash_between_the_proof_and_the_create_creates_the_run_once():
    api, store, world, reconciler = setup()
    api.fail_next["create_execution"] = [Failure.UNREACHABLE]  # the process died before its create arrived
    with pytest.raises(Exception, match="injected"):
        reconciler.reconcile(KEY)
    world, again = restarted(api)
    settle(again)
    assert creates(api) == ["nightly-29921040", "nightly-29921040"]  # the first never reached the server
    status = api.schedules[KEY]["status"]
    assert status["runs"] == ["uid-nightly-29921040"] and status["active"] == [{"name": "nightly-29921040"}]
    assert len(status["starting"]) == 1  # the unmatched proof of the lost attempt, dropped after 10 minutes


def test_a_forgery_of_the_run_made_during_the_crash_gap_is_not_adopted():
    api, store, world, reconciler = setup()
    api.fail_next["create_execution"] = [Failure.UNREACHABLE]
    with pytest.raises(Exception, match="injected"):
        reconciler.reconcile(KEY)
    # The tenant read the proof in the status and made the run's name first, with a guessed token.
    api.put(forged("nightly-29921040"))
    world, again = restarted(api)
    settle(again)
    status = api.schedules[KEY]["status"]
    assert "forged-nightly-29921040" not in status["runs"] and len(status["runs"]) == 1
    [spare] = [n for n in creates(api) if n != "nightly-29921040"]
    assert status["active"] == [{"name": spare}]
    assert any(e["reason"] == "RunNameTaken" and e["type"] == "Warning" for e in api.events.values())


def test_a_name_squatted_between_decision_and_create_is_learnt_and_the_run_renamed():
    api, store, world, reconciler = setup()
    api.put(forged("nightly-29921040"))  # on the server, not yet in the World
    assert reconciler.reconcile(KEY).requeue_after == 0
    assert ("get_execution", "nightly-29921040") in api.calls
    settle(reconciler)
    status = api.schedules[KEY]["status"]
    [spare] = [n for n in creates(api) if n != "nightly-29921040"]
    assert spare.startswith("nightly-x") and len(spare) == len("nightly-") + 10
    assert status["active"] == [{"name": spare}] and status["runs"] == [f"uid-{spare}"]
    [warning] = [e for e in api.events.values() if e["reason"] == "RunNameTaken"]
    assert "nightly-29921040 already exists" in warning["message"] and spare in warning["message"]


def test_forged_runs_neither_hold_back_forbid_nor_push_out_history_nor_unschedule():
    api, store, world, reconciler = setup(concurrencyPolicy="Forbid", successfulExecutionsHistoryLimit=1)
    world.execution_seen(api.put(forged("fake-active", "Running", unscheduleRequest={"reason": "stop it"})))
    for i in range(3):
        world.execution_seen(api.put(forged(f"fake-done-{i}", "Succeeded")))
    settle(reconciler)
    assert creates(api) == ["nightly-29921040"]
    status = api.schedules[KEY]["status"]
    assert status["active"] == [{"name": "nightly-29921040"}]
    assert "delete_execution" not in api.names() and "patch_schedule" not in api.names()
    assert "lastSuccessfulTime" not in status and "lastUnschedule" not in status


def test_a_stale_copy_meets_a_conflict_reads_once_and_decides_again():
    api, store, world, reconciler = setup()
    api.patch_schedule("ns", "nightly", {"spec": {"suspend": True}})  # moved on behind the store's back
    result = reconciler.reconcile(KEY)
    assert result.requeue_after == 0
    assert "create_execution" not in api.names()  # the proof was not written: no create
    assert store.get(KEY)["spec"]["suspend"] is True
    reconciler.reconcile(KEY)
    assert api.schedules[KEY]["status"]["conditions"][0]["reason"] == "Suspended"


def test_an_unschedule_request_suspends_the_schedule_with_its_reason():
    api, store, world, reconciler = setup()
    settle(reconciler)
    run = copy.deepcopy(api.objects[("ns", "nightly-29921040")])
    run["status"] = {"phase": "Running", "unscheduleRequest": {"reason": "quota reached"}}
    world.execution_seen(api.put(run))
    reconciler.reconcile(KEY)
    stored = api.schedules[KEY]
    assert stored["spec"]["suspend"] is True
    assert stored["metadata"]["annotations"]["workflows.flux.dev/unschedule-reason"] == "quota reached"


def test_a_cron_that_never_fires_is_reported_once_and_never_retried():
    api, store, world, reconciler = setup(schedule="0 0 31 4-11/5 *")
    assert reconciler.reconcile(KEY).requeue_after is None
    status = api.schedules[KEY]["status"]
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert "never fires" in ready["message"] and status["message"] == ready["message"]
    api.calls.clear()
    for _ in range(3):  # the safety pass looks again: nothing to write, nothing to post
        assert reconciler.reconcile(KEY).requeue_after is None
    assert api.calls == []


def finished(api: FakeKubeApi, world: World, phase: str, ttl: int) -> Reconciler:
    """An Execution that finished at 12:00:00 with ttlSecondsAfterFinished `ttl`, and a reconciler at NOW."""
    seed(api, world, {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
                      "metadata": {"name": "job", "namespace": "ns", "uid": "uid-job", "generation": 1},
                      "spec": {"workflow": "pkg.mod:main", "ttlSecondsAfterFinished": ttl},
                      "status": {"phase": phase, "finishedAt": "2026-11-21T12:00:00.000Z", "observedGeneration": 1}})
    return Reconciler(world, api, RunnerSettings(), Metrics(), clock=lambda: NOW)


def test_ttl_deletes_the_execution_by_uid(api, world):
    reconciler = finished(api, world, "Succeeded", ttl=10)
    assert reconciler.reconcile(("ns", "job")).requeue_after is None
    assert ("delete_execution", "job", "uid-job") in api.calls and ("ns", "job") not in api.objects


def test_a_failed_delete_is_retried_like_any_api_failure(api, world):
    api.fail_next["delete_execution"] = [Failure.UNREACHABLE]
    reconciler = finished(api, world, "Failed", ttl=0)
    with pytest.raises(Exception, match="injected"):
        reconciler.reconcile(("ns", "job"))


# --- a run the API server will not take (audit round 3) ---------------------------------------------------

def status_writes(api: FakeKubeApi) -> int:
    return sum(1 for c in api.calls if c[0] == "patch_schedule_status")


def test_a_run_refused_for_good_skips_its_cron_time_and_says_so_once():
    """A template the API server refuses (a label value with a space, 413, a policy): not retried pass after
    pass, each with a status write whose echo started the next pass at once."""
    clock = Clock(NOW)
    api, store, world, reconciler = setup(clock)
    api.fail_next["create_execution"] = [Failure.INVALID]
    assert settle(reconciler) == pytest.approx(270)
    assert creates(api) == ["nightly-29921040"]  # tried once
    status = api.schedules[KEY]["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RunRefused")
    assert ready["message"].startswith("the run of 2026-11-21T12:00:00.000Z was refused: injected")
    assert status["lastScheduleTime"] == "2026-11-21T12:00:00.000Z" and status["message"] == ready["message"]
    assert status.get("starting", []) == []
    warnings = [e for e in api.events.values() if e["reason"] == "RunRefused"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    writes = status_writes(api)
    for _ in range(5):  # the safety pass, a label change: nothing more to try or to write
        assert reconciler.reconcile(KEY).requeue_after == pytest.approx(270)
    assert creates(api) == ["nightly-29921040"] and status_writes(api) == writes
    assert next(c for c in api.schedules[KEY]["status"]["conditions"] if c["type"] == "Ready")["reason"] == "RunRefused"
    clock.advance(300)  # the next cron time tries again, and a run that starts clears the refusal
    settle(reconciler)
    assert creates(api) == ["nightly-29921040", "nightly-29921045"]
    ready = next(c for c in api.schedules[KEY]["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Scheduled")
    assert not api.schedules[KEY]["status"].get("message")


def test_a_new_spec_after_a_refusal_says_scheduled_again():
    api, store, world, reconciler = setup()
    api.fail_next["create_execution"] = [Failure.TOO_LARGE]
    settle(reconciler)
    fixed = copy.deepcopy(api.schedules[KEY])
    fixed["metadata"]["generation"] = 2
    store.seen(api.put_schedule(fixed))
    settle(reconciler)
    ready = next(c for c in api.schedules[KEY]["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Scheduled", 2)
    assert creates(api) == ["nightly-29921040"]  # the refused cron time stays skipped: the next one starts


def test_a_create_retried_after_a_full_quota_reuses_its_token_and_writes_no_status():
    api, store, world, reconciler = setup()
    api.fail_next["create_execution"] = [Failure.QUOTA] * 4
    for _ in range(4):
        with pytest.raises(Exception, match="injected"):
            reconciler.reconcile(KEY)
    assert status_writes(api) == 1  # the intent, once: a retry is no status write, so no echo
    assert len(api.schedules[KEY]["status"]["starting"]) == 1
    settle(reconciler)  # room again: created under the intent written first, and adopted by it
    assert creates(api) == ["nightly-29921040"] * 5
    status = api.schedules[KEY]["status"]
    assert status["runs"] == ["uid-nightly-29921040"] and status.get("starting", []) == []


def test_a_token_is_never_used_again_once_a_create_may_have_stored_it():
    """A run's token is in its annotation, which the namespace can read: the next run's must be new, or a
    tenant could make an object that matches its proof. A create that got no answer may have landed."""
    seen: list[str] = []
    api, store, world, _ = setup()
    new = tokens()
    reconciler = ScheduleReconciler(store, world, api, clock=Clock(NOW), new_token=lambda: seen.append(t := new()) or t)
    api.fail_next["create_execution"] = [Failure.UNREACHABLE]
    with pytest.raises(Exception, match="injected"):
        reconciler.reconcile(KEY)
    settle(reconciler)
    assert len(seen) >= 2 and len(set(seen)) == len(seen)
    made = api.objects[("ns", "nightly-29921040")]["metadata"]["annotations"]["workflows.flux.dev/run-token"]
    assert made == seen[1]


def test_the_echo_of_the_operators_own_status_write_is_not_news():
    api, store, world, reconciler = setup()
    reconciler.reconcile(KEY)  # writes the intent, and stores the write's answer
    echo = copy.deepcopy(api.schedules[KEY])
    assert store.changed(echo) == (KEY, False)
    touched = copy.deepcopy(echo)
    touched["metadata"]["resourceVersion"] = str(int(echo["metadata"]["resourceVersion"]) + 1)
    assert store.changed(touched) == (KEY, True)
    recreated = copy.deepcopy(touched)
    recreated["metadata"]["uid"] = "uid-other"
    assert store.changed(recreated) == (KEY, True)


def test_a_failure_that_keeps_coming_back_is_a_warning_event_on_the_schedule():
    api, store, world, reconciler = setup()
    reconciler.report_failure(KEY, "create execution ns/nightly-29921040: 403 QuotaExceeded: exceeded quota")
    event = next(e for e in api.events.values() if e["reason"] == "ReconcileFailed")
    assert event["type"] == "Warning" and event["involved"]["kind"] == "Schedule"
    assert event["message"].endswith("exceeded quota; retrying with backoff")


def test_only_the_schema_a_size_or_an_admission_policy_refuse_a_run_for_good():
    """An RBAC 403 (the operator's role mid-upgrade) or a policy whose TenancyPolicy is missing for a moment is
    retried with backoff: skipping the cron time for it would lose a run."""
    from flux_api.errors import classify
    from flux_operator.kube import ApiFailure
    from flux_operator.schedule_shell import refused_for_good

    def failure(status: int, detail: str) -> ApiFailure:
        return ApiFailure("create execution ns/nightly-1", classify(status, detail), detail, status)
    assert refused_for_good(failure(422, "metadata.labels: Invalid value: \"bad key\""))
    assert refused_for_good(failure(413, "Request entity too large"))
    assert refused_for_good(failure(403, "ValidatingAdmissionPolicy 'flux-tenant-secrets' with binding "
                                         "'flux-tenant-secrets' denied request: spec.podTemplate..."))
    assert not refused_for_good(failure(403, 'executions.workflows.flux.dev "nightly-1" is forbidden: User '
                                             '"system:serviceaccount:flux:flux-operator" cannot create resource '
                                             '"executions" in API group "workflows.flux.dev" in the namespace "ns"'))
    assert not refused_for_good(failure(403, "ValidatingAdmissionPolicy 'x' with binding 'x' denied "
                                             "request: failed to configure binding: no params found"))
    assert not refused_for_good(failure(403, "exceeded quota: count/executions"))
    assert not refused_for_good(failure(403, "unable to create new content in namespace ns because it is being "
                                             "terminated"))


def test_a_token_kept_for_a_retry_is_never_used_for_another_cron_times_run():
    """Each token proves one name: the run of a later cron time, created once the earlier one's intent is still
    in status, gets a token of its own."""
    seen: list[str] = []
    clock = Clock(NOW)
    api, store, world, _ = setup(clock)
    new = tokens()
    reconciler = ScheduleReconciler(store, world, api, clock=clock, new_token=lambda: seen.append(t := new()) or t)
    api.fail_next["create_execution"] = [Failure.QUOTA] * 2
    for _ in range(2):
        with pytest.raises(Exception, match="injected"):
            reconciler.reconcile(KEY)
    assert len(set(seen)) == 1  # the same run: the same token
    clock.advance(300)  # the next cron time: room again
    settle(reconciler)
    made = {n: o["metadata"]["annotations"]["workflows.flux.dev/run-token"] for (_, n), o in api.objects.items()}
    assert set(made) == {"nightly-29921045"} and made["nightly-29921045"] != seen[0]

