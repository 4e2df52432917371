"""The operator shell: World -> decide() -> API, against an in-memory API (no cluster)."""

from __future__ import annotations

import logging

import json
import threading
import time
from datetime import timedelta

import pytest
from flux_api.errors import Failure
from flux_api.names import CREATE_TOKEN_ANNOTATION
from flux_operator import budget
from flux_operator.builders import RunnerSettings
from flux_operator.controller import Controller
from flux_operator.health import Health
from flux_operator.metrics import Metrics
from flux_operator.ownership import token_hash
from flux_operator.reconcile import Reconciler
from flux_operator.workqueue import WorkQueue
from flux_operator.world import World
from tests.operator.builders import KEY, NOW, Clock, api, execution, pod, reconciler, seed, world  # noqa: F401 (fixtures)

pytestmark = pytest.mark.unit



def test_new_execution_records_its_creation_tokens_then_creates_its_runner(api, world, reconciler):
    seed(api, world, execution())
    reconciler.reconcile(KEY)
    kinds = [c[1] for c in api.calls if c[0] == "create" and c[1] != "ExecutionProgress"]
    assert sorted(kinds[:2]) == ["Role", "ServiceAccount"] and kinds[2:] == ["RoleBinding", "Pod"]
    assert api.names()[0] == "patch_status", "the tokens' hashes are on record before anything is created"
    status = api.objects[KEY]["status"]
    assert status["phase"] == "Pending"
    recorded = status["runnerObjects"]
    keys = {"ServiceAccount": "serviceAccount", "Role": "role", "RoleBinding": "roleBinding", "Pod": "pod"}
    for body, key in ((body, keys[body["kind"]]) for body in api.created if body["kind"] in keys):
        token = body["metadata"]["annotations"][CREATE_TOKEN_ANNOTATION]
        assert recorded[key]["tokens"] == [token_hash(token)], key


def test_a_start_sends_the_account_and_the_role_together(api, world, reconciler):
    """Each of the two creates waits here until the other has been sent: one round trip, not two."""
    seed(api, world, execution())
    both_sent = threading.Barrier(2, timeout=5)
    original, lanes = api.create, []

    def in_flight_together(body):
        if body["kind"] in ("ServiceAccount", "Role"):
            lanes.append(budget.current_lane())
            both_sent.wait()  # broken (and the reconcile fails) if they went one after the other
        return original(body)

    api.create = in_flight_together
    with budget.lane("ns"):
        reconciler.reconcile(KEY)
    assert lanes == ["ns", "ns"], "each waits in its namespace's lane of the client budget"
    assert [c[1] for c in api.calls if c[0] == "create" and c[1] != "ExecutionProgress"][2:] == ["RoleBinding", "Pod"]


def test_no_reads_in_steady_state(api, world, reconciler):
    seed(api, world, execution(phase="Running", started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    api.calls.clear()
    reconciler.reconcile(KEY)
    assert api.calls == [], "nothing changed: nothing read, nothing written"


def test_status_write_carries_the_resource_version_it_decided_on(api, world, reconciler):
    stored = seed(api, world, execution())
    reconciler.reconcile(KEY)
    patch = [c for c in api.calls if c[0] == "patch_status"][0]
    assert patch[2] == stored["metadata"]["resourceVersion"]


def test_own_write_feeds_the_world(api, world, reconciler):
    seed(api, world, execution())
    reconciler.reconcile(KEY)
    assert world.snapshot(KEY).execution.status.phase == "Pending"


def test_cancel_signals_before_any_other_write(api, world, reconciler):
    seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    reconciler.reconcile(KEY)
    names = api.names()
    assert names[0] == "delete_pod", "the SIGTERM waits behind no other write"
    assert api.calls[0] == ("delete_pod", "job-runner", 30, "pod-uid"), "deleted only if still our pod"
    assert names == ["delete_pod", "patch_status"], "the Event waits for the conclusion (TOLD_AFTER_SECONDS)"
    assert api.objects[KEY]["status"]["phase"] == "Cancelling"


def test_the_deletes_answer_is_news_a_second_decision_does_not_signal_again(api, world, reconciler):
    """The echo of the Cancelling write can come before the pod's MODIFIED event: the DELETE's answer (the pod,
    terminating) already told the World, so the next decision neither deletes again nor says Signalled."""
    seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    api.pod_answers["job-runner"] = dict(pod(terminating=True), kind="Pod")
    reconciler.reconcile(KEY)
    assert world.snapshot(KEY).pod.terminating
    api.calls.clear()
    reconciler.reconcile(KEY)
    assert api.names() == [], "nothing to do until the pod is gone or the request's Event is due"


def test_a_deletes_late_answer_does_not_bring_back_a_pod_the_watch_saw_go(world):
    world.pod_seen(pod())
    world.pod_gone(pod())
    assert world.pod_seen(dict(pod(terminating=True), kind="Pod"), held_only=True) is None
    assert KEY not in world._pods
    world.pod_seen(pod(uid="other"))
    answer = dict(pod(terminating=True), kind="Pod")
    assert world.pod_seen(answer, held_only=True) is None, "another pod under that name"
    assert not world._pods[KEY]["job-runner"].terminating


def test_a_pending_cancel_is_one_status_write_and_one_event(api, world, reconciler):
    seed(api, world, execution(cancel="not needed"))
    api.calls.clear()
    reconciler.reconcile(KEY)
    assert api.names() == ["emit_event", "patch_status"], "nothing created, nothing deleted, one Event"
    (told,) = api.events.values()
    assert (told["reason"], told["message"]) == (
        "Cancelled", "cancel requested (spec): not needed; cancelled before it started (NotStarted)")
    assert api.objects[KEY]["status"]["phase"] == "Cancelled"


def test_the_record_of_a_cancel_is_not_lost_to_the_runners_final_checkpoint(api, world, reconciler):
    """The SIGTERM's answer (the runner's final checkpoint) lands before the operator records the cancel:
    the record goes in anyway, with no Conflict, no second write, and the checkpoint kept."""
    stored = seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    original = api.delete_pod

    def delete_then_runner_writes(*args, **kwargs):
        answer = original(*args, **kwargs)
        api.put(dict(api.objects[KEY], status={**api.objects[KEY]["status"],
                                               "checkpoint": {"state": "Cancelled", "sequence": 9}}))
        return answer

    api.delete_pod = delete_then_runner_writes
    reconciler.reconcile(KEY)
    writes = [c for c in api.calls if c[0] == "patch_status"]
    assert writes == [("patch_status", "job", None)], "one write, without a precondition"
    status = api.objects[KEY]["status"]
    assert status["phase"] == "Cancelling" and status["checkpoint"]["sequence"] == 9
    assert stored["metadata"]["resourceVersion"] != api.objects[KEY]["metadata"]["resourceVersion"]


def test_a_signal_that_failed_is_not_claimed_in_the_folded_event(api, world, reconciler):
    seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    api.fail_next["delete_pod"] = [Failure.UNREACHABLE]
    with pytest.raises(Exception):
        reconciler.reconcile(KEY)
    assert [e["reason"] for e in api.events.values()] == ["SignalFailed"], "no Event claims the signal"
    reconciler.reconcile(KEY)  # the retry signals, and records it
    world.pod_gone(pod())
    reconciler.reconcile(KEY)
    (told,) = [e for e in api.events.values() if e["reason"] == "Cancelled"]
    assert told["message"].startswith("cancel requested (spec): stop; runner pod job-runner deleted"), \
        "claimed once the delete went through"


def test_a_crash_before_the_status_write_ends_the_same_with_each_event_once(api, world, reconciler):
    """The operator died after deleting the pod and posting Events, before writing Cancelling."""
    seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    api.fail_next["patch_status"] = [Failure.UNREACHABLE]
    with pytest.raises(Exception):
        reconciler.reconcile(KEY)
    # Restarted: the pod is terminating now; then it is gone with a graceful final checkpoint.
    world.pod_seen(pod(terminating=True))
    reconciler.reconcile(KEY)
    assert api.objects[KEY]["status"]["phase"] == "Cancelling"
    world.pod_gone(pod())
    stored = api.objects[KEY]
    stored["status"]["checkpoint"] = {"state": "Cancelled", "sequence": 4, "updatedAt": "2026-11-21T12:00:00.500Z"}
    world.execution_seen(api.put(stored))
    reconciler.reconcile(KEY)
    status = api.objects[KEY]["status"]
    assert (status["phase"], status["cancellation"]["outcome"]) == ("Cancelled", "Graceful")
    reasons = [e["reason"] for e in api.events.values()]
    assert reasons == ["Cancelled"], "one Event, once: the request concluded within TOLD_AFTER_SECONDS"
    assert len([c for c in api.calls if c[0] == "delete_pod"]) == 1


def test_runner_gone_before_the_cancel_was_recorded_is_not_reported_as_never_started(api, world, reconciler):
    seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z",
                               checkpoint={"state": "Cancelled", "sequence": 3}))
    reconciler.reconcile(KEY)
    status = api.objects[KEY]["status"]
    assert (status["phase"], status["cancellation"]["outcome"]) == ("Cancelled", "Graceful")


def test_conflict_waits_for_the_watch_and_reads_only_if_it_brought_nothing(api, world, reconciler):
    stored = seed(api, world, execution())
    newer = dict(stored, status={"checkpoint": {"state": "Running", "sequence": 1}})
    api.put(newer)  # the runner wrote meanwhile; our copy is stale
    result = reconciler.reconcile(KEY)
    assert result.requeue_after == pytest.approx(0.1), "decide again shortly, from what the watch brings"
    assert "get_execution" not in api.names()
    reconciler.reconcile(KEY)  # the watch brought nothing: read once, then write
    assert api.names().count("get_execution") == 1
    assert world.snapshot(KEY).execution.status.checkpoint.state == "Running"  # what the runner wrote is in
    assert api.objects[KEY]["status"]["phase"] == "Pending"


def test_conflict_then_the_watch_delivers_means_no_read_at_all(api, world, reconciler):
    stored = seed(api, world, execution())
    newer = api.put(dict(stored, status={"checkpoint": {"state": "Running", "sequence": 1}}))
    reconciler.reconcile(KEY)
    world.execution_seen(newer)  # the watch event
    reconciler.reconcile(KEY)
    assert "get_execution" not in api.names()
    assert api.objects[KEY]["status"]["phase"] == "Pending"


def test_events_are_not_posted_again_when_a_conflict_repeats_the_decision(api, world, reconciler):
    stored = seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z",
                                        checkpoint={"state": "Succeeded", "sequence": 3}))
    world.pod_seen(pod(running=False, phase="Succeeded"))
    newer = api.put(dict(stored, status={**stored["status"], "checkpoint": {"state": "Succeeded", "sequence": 4}}))
    reconciler.reconcile(KEY)  # the Event, then a Conflict on the (fenced) final status
    assert api.objects[KEY]["status"]["phase"] == "Running"
    world.execution_seen(newer)
    reconciler.reconcile(KEY)
    assert [c[1] for c in api.calls if c[0] == "emit_event"] == ["CancelIgnored"], "posted once"
    assert api.objects[KEY]["status"]["phase"] == "Succeeded"


def test_a_pod_of_a_predecessor_with_the_same_name_is_not_ours(api, world, reconciler):
    seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z",
                               checkpoint={"state": "Running", "sequence": 1}))
    world.pod_seen(pod(owner="uid-of-the-deleted-one"))
    reconciler.reconcile(KEY)
    assert "delete_pod" not in api.names()


def test_deadline_is_a_timer_not_a_poll(api, world, reconciler):
    seed(api, world, execution(phase="Running", deadline=90, started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    result = reconciler.reconcile(KEY)
    assert result.requeue_after == pytest.approx(30.0)


def test_deleted_execution_is_left_to_the_garbage_collector(api, world, reconciler):
    obj = execution()
    obj["metadata"]["deletionTimestamp"] = "2026-11-21T12:00:00Z"
    seed(api, world, obj)
    reconciler.reconcile(KEY)
    assert api.calls == []


def test_child_event_names_its_parent_too(world):
    keys = world.execution_seen(execution(name="kid", labels={"workflows.flux.dev/parent": "job"},
                                          owner_uid="uid-job"))
    assert keys == [("ns", "kid"), ("ns", "job")]


# --- the controller: failures of one key never stop the others ---------------------------------

@pytest.fixture
def controller(world, api, reconciler) -> Controller:
    return Controller(world, reconciler.reconcile, WorkQueue(base_delay=0.2), Metrics(), workers=1)


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def drain(controller: Controller, limit: int = 20) -> list:
    seen = []
    for _ in range(limit):
        key = controller.queue.get(timeout=0)
        if key is None:
            break
        seen.append(key)
        try:
            controller.process(key)
        finally:
            controller.queue.done(key)
    return seen


def test_transient_failure_is_retried_with_backoff_and_others_go_on(api, world, controller):
    seed(api, world, execution())
    seed(api, world, execution(name="other"))
    api.fail_next["patch_status"] = [Failure.SERVER]
    controller.enqueue([KEY, ("ns", "other")])
    drain(controller)
    assert api.objects[("ns", "other")]["status"]["phase"] == "Pending"
    assert controller.queue.failures(KEY) == 1
    assert "phase" not in api.objects[KEY]["status"]
    key = controller.queue.get(timeout=1)  # the retry comes back by itself, after its backoff
    assert key == KEY
    controller.process(key)
    controller.queue.done(key)
    assert api.objects[KEY]["status"]["phase"] == "Pending"
    assert controller.queue.failures(KEY) == 0, "success resets the backoff"


def test_a_key_gone_meanwhile_forgets_its_failures(api, world, controller, monkeypatch):
    """So a namesake made later does not start in the deleted one's backoff."""
    from flux_operator.kube import ApiFailure
    seed(api, world, execution())
    api.fail_next["patch_status"] = [Failure.SERVER]
    controller.enqueue([KEY])
    drain(controller)
    assert controller.queue.failures(KEY) == 1
    monkeypatch.setattr(controller, "reconcile", exploding_at(KEY, ApiFailure("x", Failure.NOT_FOUND),
                                                              controller.reconcile))
    key = controller.queue.get(timeout=1)
    controller.process(key)
    controller.queue.done(key)
    assert controller.queue.failures(KEY) == 0


def exploding_at(bad, error: BaseException, reconcile):
    """`reconcile`, except that the key `bad` raises `error`."""
    def explode(key):
        if key == bad:
            raise error
        return reconcile(key)
    return explode


def test_a_poison_object_is_retried_alone(api, world, controller, monkeypatch):
    seed(api, world, execution())
    seed(api, world, execution(name="other"))
    monkeypatch.setattr(controller, "reconcile", exploding_at(KEY, KeyError("boom"), controller.reconcile))
    controller.enqueue([KEY, ("ns", "other")])
    drain(controller)
    assert api.objects[("ns", "other")]["status"]["phase"] == "Pending"
    assert controller.queue.failures(KEY) == 1
    assert controller.metrics.reconcile_errors.labels("Poison")._value.get() == 1


@pytest.mark.parametrize("error", [ArithmeticError("decimal.Overflow"), RuntimeError("a bug"), MemoryError()])
def test_whatever_one_object_raises_the_workers_live_on_and_serve_the_others(api, world, reconciler, error):
    seed(api, world, execution())
    seed(api, world, execution(name="other"))
    controller = Controller(world, exploding_at(KEY, error, reconciler.reconcile), WorkQueue(base_delay=5), Metrics(),
                            workers=1)
    controller.enqueue([KEY, KEY, ("ns", "other")])
    controller.start(safety_seconds=3600)
    try:
        wait_until(lambda: api.objects[("ns", "other")]["status"].get("phase") == "Pending")
        assert controller.stopped_workers() == [], "the worker that met the poison still works"
    finally:
        controller.stop()
    assert controller.queue.failures(KEY) >= 1
    assert controller.metrics.reconcile_errors.labels("Poison")._value.get() >= 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_that_ended_is_named_and_turns_health_red(world):
    def leave(key):
        raise SystemExit  # not an Exception: nothing in the worker catches it

    controller = Controller(world, leave, WorkQueue(), Metrics(), workers=1)
    controller.start(safety_seconds=3600)
    try:
        controller.enqueue([KEY])
        wait_until(lambda: controller.stopped_workers() == ["execution-worker-0"])
        health = Health("me", lambda: time.monotonic(), lambda: True, lambda: "me", lambda: 0,
                        stopped=controller.stopped_workers)
        ok, report = health.report()
        assert not ok and report["problems"]["workers"] == "worker threads ended: execution-worker-0"
    finally:
        controller.stop()
    assert controller.stopped_workers() == [], "a controller told to stop has nothing missing"


def test_nothing_acts_without_the_lease(api, world, reconciler):
    controller = Controller(world, reconciler.reconcile, WorkQueue(), Metrics(), workers=1, leading=lambda: False)
    seed(api, world, execution())
    controller.enqueue([KEY])
    controller.start(safety_seconds=3600)
    try:
        time.sleep(0.3)
    finally:
        controller.stop()
    assert api.calls == []


def test_safety_pass_walks_the_world_not_the_api(api, world, controller):
    seed(api, world, execution())
    seed(api, world, execution(name="done", phase="Succeeded"))
    api.calls.clear()
    assert controller.enqueue_live() == 1
    assert api.calls == []


def test_deadline_fires_from_the_queue(api, world):
    clock = [NOW]
    reconciler = Reconciler(world, api, RunnerSettings(), Metrics(), clock=lambda: clock[0])
    controller = Controller(world, reconciler.reconcile, WorkQueue(), Metrics(), workers=1)
    seed(api, world, execution(phase="Running", deadline=61, started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    controller.process(KEY)
    assert controller.queue.get(timeout=0) is None, "nothing due yet"
    clock[0] = NOW + timedelta(seconds=1)
    key = controller.queue.get(timeout=2)
    assert key == KEY
    controller.process(key)
    assert api.calls[0][0] == "delete_pod"
    assert api.objects[KEY]["status"]["cancellation"]["source"] == "deadline"


def test_a_signal_that_fails_still_records_the_cancel_and_is_retried(api, world, reconciler):
    seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    api.fail_next["delete_pod"] = [Failure.FORBIDDEN]
    with pytest.raises(Exception, match="Forbidden"):
        reconciler.reconcile(KEY)
    assert api.objects[KEY]["status"]["phase"] == "Cancelling", "users see the cancel was taken"
    reasons = {e["reason"] for e in api.events.values()}
    assert "SignalFailed" in reasons and "Signalled" not in reasons


def test_a_predecessors_leftovers_are_never_adopted(api, world):
    """Deleted and recreated under the same name: the old pod still terminates, owned by the old UID."""
    clock = Clock()
    reconciler = Reconciler(world, api, RunnerSettings(), Metrics(), clock=clock)
    api.owners[("Pod", "job-runner")] = "uid-of-the-deleted-one"
    seed(api, world, execution())
    assert reconciler.reconcile(KEY).requeue_after == 0, "decide at once what the refusal means"
    reconciler.reconcile(KEY)
    status = api.objects[KEY]["status"]
    assert status["phase"] == "Pending" and "waiting for the garbage collector" in status["message"]
    del api.owners[("Pod", "job-runner")]  # the garbage collector took it
    clock.advance(1.5)
    reconciler.reconcile(KEY)
    assert api.others[("Pod", "job-runner")]["metadata"]["ownerReferences"][0]["uid"] == "uid-job"


def test_the_created_pod_is_known_at_once(api, world, reconciler):
    seed(api, world, execution())
    reconciler.reconcile(KEY)
    assert world.snapshot(KEY).pod is not None, "no second create while the watch catches up"


def test_an_overdue_pod_wakes_the_operator_on_time(api, world):
    clock = NOW
    reconciler = Reconciler(world, api, RunnerSettings(), Metrics(), clock=lambda: clock)
    seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    reconciler.reconcile(KEY)  # -> Cancelling
    terminating = pod(terminating=True)
    terminating["metadata"]["deletionTimestamp"] = "2026-11-21T12:00:30Z"  # grace ends in 30 s
    world.pod_seen(terminating)
    result = reconciler.reconcile(KEY)
    assert result.requeue_after == pytest.approx(5.0), "a slow cancel's CancelRequested Event comes first"
    clock = NOW + timedelta(seconds=5)
    result = reconciler.reconcile(KEY)
    assert [e["reason"] for e in api.events.values()] == ["CancelRequested"]
    assert result.requeue_after == pytest.approx(40.0), "then grace + the escalation margin"


def test_a_failure_that_is_not_transient_is_an_event_on_the_object(api, world, reconciler):
    controller = Controller(world, reconciler.reconcile, WorkQueue(base_delay=0.01), Metrics(), workers=1,
                            on_failure=reconciler.report_failure)
    seed(api, world, execution())
    api.fail_next["patch_status"] = [Failure.FORBIDDEN]
    controller.enqueue([KEY])
    drain(controller)
    events = [e for e in api.events.values() if e["reason"] == "ReconcileFailed"]
    assert len(events) == 1 and events[0]["type"] == "Warning"
    assert "Forbidden" in events[0]["message"]


def test_a_pod_the_watch_missed_going_is_learned_from_the_delete(api, world, reconciler):
    """After an API server restart the watch can miss a DELETED event; the escalation's delete says 404."""
    seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z",
                               checkpoint={"state": "Running", "sequence": 1}))
    world.pod_seen(pod())
    reconciler.reconcile(KEY)  # Cancelling
    stale = pod(terminating=True)
    stale["metadata"]["deletionTimestamp"] = "2026-11-21T11:59:00Z"  # long overdue
    world.pod_seen(stale)
    api.delete_pod = lambda *a, **k: None  # the server: 404, it is gone already
    reconciler.reconcile(KEY)
    assert world.snapshot(KEY).pod is None
    reconciler.reconcile(KEY)
    assert api.objects[KEY]["status"]["phase"] == "Cancelled"


def test_a_phase_change_is_logged_about_its_object(api, world, reconciler, caplog):
    from kopf._core.actions.loggers import ObjectJsonFormatter
    seed(api, world, execution())
    with caplog.at_level("INFO", logger="flux_operator"):
        reconciler.reconcile(KEY)
    record = next(r for r in caplog.records if "-> Pending" in r.getMessage())
    line = json.loads(ObjectJsonFormatter().format(record))  # as --log-format=json writes it
    assert line["object"]["name"] == "job" and line["object"]["kind"] == "Execution"
    assert record.k8s_skip is True, "a log line, never an Event"


def test_a_cascades_cancels_go_out_together_not_one_round_trip_after_another(api, world, reconciler):
    """Six children's cancels are all in flight at once: each waits here until the other five have been sent."""
    from flux_api import PARENT_LABEL
    kids = [f"c{i}" for i in range(6)]
    parent = execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z")
    parent["status"]["children"] = [{"name": k, "uid": f"uid-{k}", "phase": "Running"} for k in kids]
    seed(api, world, parent)
    for kid in kids:
        seed(api, world, execution(kid, phase="Running", started="2026-11-21T11:59:00.000Z",
                                   labels={PARENT_LABEL: "job"}, owner_uid="uid-job"))
    world.pod_seen(pod())
    all_sent = threading.Barrier(len(kids), timeout=5)
    original = api.patch_execution

    lanes = []

    def in_flight_together(*args, **kwargs):
        lanes.append(budget.current_lane())
        all_sent.wait()  # broken (and the reconcile fails) if the cancels went one after another
        return original(*args, **kwargs)

    api.patch_execution = in_flight_together
    with budget.lane("ns"):
        reconciler.reconcile(KEY)
    assert sorted(c[1] for c in api.calls if c[0] == "patch_execution") == kids
    assert lanes == ["ns"] * len(kids), "each waits in its namespace's lane of the client budget"
    assert api.objects[KEY]["status"]["phase"] == "Cancelling"
    assert not [e for e in api.events.values() if e["reason"] == "SignalFailed"]


def test_a_big_cascade_goes_out_a_pass_at_a_time_and_sends_each_cancel_once(api, world, reconciler):
    """50 children with two children each: 64 cancels a pass, queued again at once, so one tree never holds a
    worker for the whole of it; the answers in the World keep any cancel from going out twice."""
    from flux_api import PARENT_LABEL
    from flux_operator.reconcile import CANCELS_PER_PASS
    started = "2026-11-21T11:59:00.000Z"
    kids = [f"c{i:02d}" for i in range(50)]
    parent = execution(phase="Running", cancel="stop", started=started)
    parent["status"]["children"] = [{"name": k, "uid": f"uid-{k}", "phase": "Running"} for k in kids]
    seed(api, world, parent)
    for kid in kids:
        child = execution(kid, phase="Running", started=started, labels={PARENT_LABEL: "job"}, owner_uid="uid-job")
        child["status"]["children"] = [{"name": f"{kid}-{g}", "uid": f"uid-{kid}-{g}", "phase": "Running"}
                                       for g in "ab"]
        seed(api, world, child)
        for g in "ab":
            seed(api, world, execution(f"{kid}-{g}", phase="Running", started=started,
                                       labels={PARENT_LABEL: kid}, owner_uid=f"uid-{kid}"))
    world.pod_seen(pod())
    per_pass, results = [], []
    while len(per_pass) < 5:
        before = len([c for c in api.calls if c[0] == "patch_execution"])
        results.append(reconciler.reconcile(KEY))
        per_pass.append(len([c for c in api.calls if c[0] == "patch_execution"]) - before)
        if not per_pass[-1]:
            break
    sent = [c[1] for c in api.calls if c[0] == "patch_execution"]
    assert per_pass[:3] == [CANCELS_PER_PASS, CANCELS_PER_PASS, 150 - 2 * CANCELS_PER_PASS], per_pass
    assert set(kids) <= set(sent[:CANCELS_PER_PASS]), "every child in the first pass"
    assert len(sent) == len(set(sent)) == 150
    assert [r.requeue_after for r in results[:2]] == [0.0, 0.0] and results[2].requeue_after != 0.0


def test_a_cancelled_childs_answer_wakes_it_and_its_parent_sends_nothing_twice(api, world, reconciler):
    """The root's pass reaches a grandchild; the child's own decision, before any watch echo, finds it cancelled
    in the World and does not patch it again, and each child cancelled is woken at once."""
    from flux_api import PARENT_LABEL
    root = execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z")
    root["status"]["children"] = [{"name": "c", "uid": "uid-c", "phase": "Running"}]
    seed(api, world, root)
    child = execution("c", phase="Running", started="2026-11-21T11:59:00.000Z", labels={PARENT_LABEL: "job"},
                      owner_uid="uid-job")
    child["status"]["children"] = [{"name": "g", "uid": "uid-g", "phase": "Running"}]
    seed(api, world, child)
    seed(api, world, execution("g", phase="Running", started="2026-11-21T11:59:00.000Z",
                               labels={PARENT_LABEL: "c"}, owner_uid="uid-c"))
    world.pod_seen(pod())
    woken: list = []
    reconciler.on_wake = woken.extend
    reconciler.reconcile(KEY)
    assert sorted(c[1] for c in api.calls if c[0] == "patch_execution") == ["c", "g"]
    assert ("ns", "c") in woken and ("ns", "g") in woken
    assert world.snapshot(("ns", "g")).execution.spec.cancel is not None, "the answer is in the World"
    api.calls.clear()
    reconciler.reconcile(("ns", "c"))
    assert "patch_execution" not in api.names(), "g's cancel is not sent again"


def test_a_child_deciding_during_its_ancestors_pass_does_not_send_what_the_pass_is_sending(api, world, reconciler):
    from flux_api import PARENT_LABEL
    root = execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z")
    root["status"]["children"] = [{"name": "c", "uid": "uid-c", "phase": "Running"}]
    seed(api, world, root)
    child = execution("c", phase="Running", cancel="parent job cancelled: stop", started="2026-11-21T11:59:00.000Z",
                      labels={PARENT_LABEL: "job"}, owner_uid="uid-job")
    child["status"]["children"] = [{"name": "g", "uid": "uid-g", "phase": "Running"}]
    seed(api, world, child)
    seed(api, world, execution("g", phase="Running", started="2026-11-21T11:59:00.000Z",
                               labels={PARENT_LABEL: "c"}, owner_uid="uid-c"))
    original = api.patch_execution

    entered = []

    def while_sending(namespace, name, patch, urgent=False):
        if name == "g" and not entered:
            entered.append(name)
            reconciler.reconcile(("ns", "c"))  # the child's own decision, as g's cancel is on its way
        return original(namespace, name, patch, urgent)

    api.patch_execution = while_sending
    reconciler.reconcile(KEY)
    assert [c[1] for c in api.calls if c[0] == "patch_execution"] == ["g"], "sent once, by the root's pass"
    api.patch_execution = original
    api.calls.clear()
    world.execution_seen(dict(api.objects[("ns", "g")], spec={**api.objects[("ns", "g")]["spec"], "cancel": None}))
    reconciler.reconcile(("ns", "c"))
    assert [c[1] for c in api.calls if c[0] == "patch_execution"] == ["g"], "once the pass is done, no longer held"


def test_an_end_written_is_measured_once_and_not_when_the_write_conflicts(api, world, reconciler):
    stored = seed(api, world, execution(phase="Running", cancel="stop", started="2026-11-21T11:59:00.000Z",
                                        checkpoint={"state": "Succeeded", "sequence": 3}))
    world.pod_seen(pod(running=False, phase="Succeeded"))
    newer = api.put(dict(stored, status={**stored["status"], "checkpoint": {"state": "Succeeded", "sequence": 4}}))
    durations = reconciler.metrics.duration.labels("Succeeded")
    reconciler.reconcile(KEY)  # a Conflict: nothing was written, nothing is measured
    assert durations._sum.get() == 0
    world.execution_seen(newer)
    reconciler.reconcile(KEY)
    reconciler.reconcile(KEY)
    assert api.objects[KEY]["status"]["phase"] == "Succeeded"
    count = next(s.value for m in reconciler.metrics.duration.collect() for s in m.samples
                 if s.name.endswith("_count") and s.labels == {"phase": "Succeeded"})
    assert count == 1 and durations._sum.get() > 0


def test_a_reconciles_log_lines_name_the_execution_and_its_uid(api, world, controller, monkeypatch):
    from flux_api import logfields
    seed(api, world, execution())
    seen: list[logging.LogRecord] = []

    def explode(key):
        logging.getLogger("flux_operator").warning("looking at it")
        raise KeyError("boom")

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record)

    handler = Keep()
    handler.addFilter(logfields.FieldsFilter())
    logging.getLogger().addHandler(handler)
    monkeypatch.setattr(controller, "reconcile", explode)
    try:
        controller.process(KEY)
    finally:
        logging.getLogger().removeHandler(handler)
    assert len(seen) >= 2, "its own line and the failure's"
    uid = api.objects[KEY]["metadata"]["uid"]
    assert all((r.namespace, r.execution, r.uid) == (KEY[0], KEY[1], uid) for r in seen)


def test_a_limited_execution_that_finishes_hands_its_slot_on_at_once(api, world, reconciler):
    from flux_operator.queues import LimitStore, Queues

    limits = LimitStore()
    limits.seen({"metadata": {"name": "one", "namespace": "ns", "uid": "l", "generation": 1}, "spec": {"max": 1}})
    reconciler.queues, woken = Queues(world, limits), []
    reconciler.on_wake = woken.extend
    seed(api, world, execution(phase="Running", started="2026-11-21T11:59:00Z",
                               checkpoint={"state": "Succeeded", "sequence": 2}))
    world.pod_seen(pod(phase="Succeeded"))
    waiting = execution("next")
    waiting["metadata"]["creationTimestamp"] = "2026-11-21T11:59:30Z"
    seed(api, world, waiting)
    reconciler.reconcile(KEY)
    assert api.objects[KEY]["status"]["phase"] == "Succeeded"
    assert woken == [("ns", "next")], "the next in line waits for the watch to say the slot is free"
