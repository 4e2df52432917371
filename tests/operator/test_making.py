"""The creates decide() asks for, carried out against an in-memory API: what is found under the runner's or a
child's name is the operator's only if it proves it, a restart between a create and its record loses
nothing, refusals end or wait as they should, and retries send only what is missing (making.py)."""

from __future__ import annotations

import pytest
from flux_api.errors import Failure
from flux_api.names import CREATE_TOKEN_ANNOTATION
from flux_operator.builders import RunnerSettings
from flux_operator.kube import ApiFailure
from flux_operator.metrics import Metrics
from flux_operator.ownership import token_hash
from flux_operator.reconcile import Reconciler
from flux_operator.testing import FakeKubeApi
from tests.operator.builders import KEY, Clock, api, execution, pod, seed, world  # noqa: F401 (fixtures)

pytestmark = pytest.mark.unit


@pytest.fixture
def clock() -> Clock:
    return Clock()


def operator(api, world, clock) -> Reconciler:
    """One operator process (a restart is a new one: its Memory is gone)."""
    return Reconciler(world, api, RunnerSettings(), Metrics(), clock=clock)


def creates(api) -> list[str]:
    """The runner's objects created, in order; its ExecutionProgress (best effort, no stage) aside."""
    return [c[1] for c in api.calls if c[0] == "create" and c[1] != "ExecutionProgress"]


def settle(reconciler, times: int = 3) -> None:
    for _ in range(times):
        reconciler.reconcile(KEY)


# --- never adopted ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, name", [("ServiceAccount", "flux-runner-job"), ("Role", "flux-runner-job"),
                                        ("RoleBinding", "flux-runner-job"), ("Pod", "job-runner")])
def test_an_object_with_a_forged_owner_reference_is_never_adopted(api, world, clock, kind, name):
    api.owners[(kind, name)] = "uid-job"  # made by someone else, claiming to be the execution's
    seed(api, world, execution())
    settle(operator(api, world, clock))
    status = api.objects[KEY]["status"]
    assert status["phase"] == "Failed"
    assert f"{kind} {name} exists and was not made by the operator" in status["message"]
    assert ("RunnerRefused", "Warning") in [(e["reason"], e["type"]) for e in api.events.values()]
    stages = [{"ServiceAccount", "Role"}, {"RoleBinding"}, {"Pod"}]
    upto = next(i for i, stage in enumerate(stages) if kind in stage)
    made = creates(api)
    assert sorted(made) == sorted(k for stage in stages[:upto + 1] for k in stage), \
        "nothing of a later stage is made (nothing binds to it, nothing runs as it)"


def test_a_pod_with_a_forged_owner_reference_in_the_watch_is_not_the_runner(api, world, clock):
    seed(api, world, execution())
    world.pod_seen(pod(uid="forged"))  # listed before the operator's first decision
    api.owners[("Pod", "job-runner")] = "uid-job"
    settle(operator(api, world, clock))
    status = api.objects[KEY]["status"]
    assert status["phase"] == "Failed" and "Pod job-runner exists and was not made" in status["message"]
    assert "delete_pod" not in api.names(), "not ours to delete either"


# --- the crash gap ---------------------------------------------------------------------------------------------

def test_a_restart_between_a_create_and_its_record_recognises_what_was_made(api, world, clock, monkeypatch):
    seed(api, world, execution())
    first = operator(api, world, clock)
    real = api.create

    def crash_after_the_account(body):
        if body["kind"] == "Role":
            api.calls.append(("create", "Role", body["metadata"]["name"]))
            raise RuntimeError("the operator died here")
        return real(body)

    monkeypatch.setattr(api, "create", crash_after_the_account)
    with pytest.raises(RuntimeError):
        first.reconcile(KEY)
    monkeypatch.setattr(api, "create", real)
    assert "uid" not in api.objects[KEY]["status"]["runnerObjects"]["serviceAccount"], "made, not yet recorded"
    settle(operator(api, world, clock))  # its successor holds other tokens
    status = api.objects[KEY]["status"]
    assert status["phase"] == "Pending" and "message" not in status, status
    made = creates(api)
    assert sorted(made[:2]) == sorted(made[2:4]) == ["Role", "ServiceAccount"], made
    assert made[4:] == ["RoleBinding", "Pod"], made
    assert "read_metadata" in api.names(), "the existing account was looked at once, and proved ours"


# --- refusals ----------------------------------------------------------------------------------------------------

def test_a_pod_the_api_server_refuses_fails_the_execution_at_once(api, world, clock):
    said = 'Pod "job-runner" is invalid: spec.tolerations[0].operator: Unsupported value: "Bogus"'

    def refuse(body):
        if body["kind"] == "Pod":
            api.calls.append(("create", "Pod", "job-runner"))
            raise ApiFailure("create Pod ns/job-runner", Failure.INVALID, said, 422)
        return FakeKubeApi.create(api, body)

    api.create = refuse
    seed(api, world, execution())
    reconciler = operator(api, world, clock)
    assert reconciler.reconcile(KEY).requeue_after == 0
    reconciler.reconcile(KEY)
    status = api.objects[KEY]["status"]
    assert status["phase"] == "Failed" and said in status["message"]
    assert reconciler.reconcile(KEY).requeue_after is None, "nothing more to try"


def test_a_full_quota_waits_and_the_retry_sends_only_the_pod(api, world, clock):
    quota = ['pods "job-runner" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1']

    def full(body):
        if body["kind"] == "Pod" and quota:
            api.calls.append(("create", "Pod", "job-runner"))
            raise ApiFailure("create Pod ns/job-runner", Failure.QUOTA, quota[0], 403)
        return FakeKubeApi.create(api, body)

    api.create = full
    seed(api, world, execution())
    reconciler = operator(api, world, clock)
    settle(reconciler)
    status = api.objects[KEY]["status"]
    assert status["phase"] == "Pending" and "exceeded quota" in status["message"]
    assert sorted(creates(api)[:2]) == ["Role", "ServiceAccount"] and creates(api)[2:] == ["RoleBinding", "Pod"], \
        "no retry before the backoff"
    assert reconciler.reconcile(KEY).requeue_after == pytest.approx(1.0), "woken for the retry"
    clock.advance(1.0)
    reconciler.reconcile(KEY)
    assert creates(api)[4:] == ["Pod"], "the account, Role and binding it made are not sent again"
    quota.clear()  # another pod finished
    clock.advance(2.0)
    reconciler.reconcile(KEY)
    assert creates(api)[5:] == ["Pod"]
    assert world.snapshot(KEY).pod is not None


# --- children ----------------------------------------------------------------------------------------------------

def running_parent(*names: str) -> dict:
    obj = execution(phase="Running", started="2026-11-21T11:59:00.000Z", checkpoint={"state": "Running"})
    obj["status"]["spawnRequests"] = [{"name": n, "workflow": "a.b:c"} for n in names]
    return obj


def test_a_child_is_created_carrying_the_token_whose_hash_was_recorded(api, world, clock):
    seed(api, world, running_parent("job-a"))
    world.pod_seen(pod())
    reconciler = operator(api, world, clock)
    reconciler.reconcile(KEY)
    child = api.objects[("ns", "job-a")]
    token = child["metadata"]["annotations"][CREATE_TOKEN_ANNOTATION]
    assert api.objects[KEY]["status"]["children"][0]["tokens"] == [token_hash(token)]
    reconciler.reconcile(KEY)
    assert api.objects[KEY]["status"]["children"] == [{"name": "job-a", "uid": "uid-job-a", "phase": "Pending"}]


def test_a_taken_child_name_the_watch_has_not_brought_yet_is_found_and_refused(api, world, clock):
    api.put({"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
             "metadata": {"name": "job-a", "namespace": "ns", "uid": "squatter"}, "spec": {"workflow": "x.y:z"}})
    seed(api, world, running_parent("job-a"))
    world.pod_seen(pod())
    settle(operator(api, world, clock))
    entry = api.objects[KEY]["status"]["children"][0]
    assert (entry["phase"], entry["reason"]) == ("Failed", "NameTaken")
    assert api.names().count("make_execution") == 1 and api.names().count("get_execution") == 1
    assert ("SpawnConflict", "Warning") in [(e["reason"], e["type"]) for e in api.events.values()]


RUNNING_CHECKPOINT = {"state": "Running", "sequence": 1, "stepCount": 1}


def progress_creates(api) -> list:
    return [c for c in api.calls if c[0] == "create" and c[1] == "ExecutionProgress"]


def test_a_start_makes_no_progress_object(api, world, clock):
    seed(api, world, execution())
    settle(operator(api, world, clock))
    assert progress_creates(api) == [], "a start costs no request more"


def test_the_progress_object_is_made_once_its_runner_checkpoints(api, world, clock):
    seed(api, world, execution(phase="Running", started="2026-11-21T11:59:00.000Z", checkpoint=RUNNING_CHECKPOINT))
    world.pod_seen(pod())
    settle(operator(api, world, clock))
    assert progress_creates(api) == [("create", "ExecutionProgress", "job")], "once, however often it decides"
    made = next(b for b in api.created if b["kind"] == "ExecutionProgress")
    assert made["metadata"]["ownerReferences"][0]["uid"] == api.objects[KEY]["metadata"]["uid"]


def test_no_progress_object_before_the_runner_checkpoints(api, world, clock):
    seed(api, world, execution(phase="Running", started="2026-11-21T11:59:00.000Z"))
    world.pod_seen(pod())
    settle(operator(api, world, clock))
    assert progress_creates(api) == [], "a run too short to checkpoint never gets one"


@pytest.mark.parametrize("failure", [Failure.NOT_FOUND, Failure.FORBIDDEN, Failure.SERVER])
def test_a_refused_progress_object_changes_nothing_else(api, world, clock, failure):
    """Without it (its CRD not installed yet, RBAC not upgraded) the runner writes every checkpoint to the
    Execution, as before the object existed: no message, no Event, not asked again by this replica."""
    before = seed(api, world, execution(phase="Running", started="2026-11-21T11:59:00.000Z",
                                        checkpoint=RUNNING_CHECKPOINT))
    world.pod_seen(pod())
    api.fail_next["create_progress"] = [failure]
    settle(operator(api, world, clock))
    assert len(progress_creates(api)) == 1, "not asked again"
    assert api.objects[KEY]["status"] == before["status"] and not api.events
