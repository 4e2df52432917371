"""The Schedule shell (store -> decide_schedule -> API) and TTL deletion, against the in-memory API."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from flux_api.errors import Failure
from flux_operator.builders import RunnerSettings
from flux_operator.metrics import Metrics
from flux_operator.reconcile import Reconciler
from flux_operator.schedules import ScheduleReconciler, ScheduleStore
from flux_operator.world import World
from fluxtest.fakeapi import FakeKubeApi

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 12, 0, 30, tzinfo=timezone.utc)
KEY = ("ns", "nightly")


def schedule(**spec) -> dict:
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Schedule",
            "metadata": {"name": "nightly", "namespace": "ns", "uid": "uid-s", "generation": 1,
                         "creationTimestamp": "2026-11-21T11:57:00Z"},
            "spec": {"schedule": "*/5 * * * *", "executionTemplate": {"spec": {"workflow": "pkg.mod:main"}}, **spec}}


def setup(**spec):
    api, store, world = FakeKubeApi(), ScheduleStore(), World()
    store.seen(api.put_schedule(schedule(**spec)))
    return api, store, world, ScheduleReconciler(store, world, api, clock=lambda: NOW)


def test_a_due_run_is_created_and_the_status_written():
    api, store, world, reconciler = setup()
    result = reconciler.reconcile(KEY)
    assert ("create_execution", "nightly-29921040") in api.calls
    status = api.schedules[KEY]["status"]
    assert status["lastScheduleTime"] == "2026-11-21T12:00:00.000Z"
    assert status["active"] == [{"name": "nightly-29921040"}]
    assert store.get(KEY)["status"] == status  # our own write feeds the store
    assert result.requeue_after == pytest.approx(270)
    # Deciding again from the written status creates nothing more.
    api.calls.clear()
    reconciler.reconcile(KEY)
    assert "create_execution" not in api.names()


def test_a_stale_copy_meets_a_conflict_reads_once_and_decides_again():
    api, store, world, reconciler = setup()
    api.patch_schedule("ns", "nightly", {"spec": {"suspend": True}})  # moved on behind the store's back
    result = reconciler.reconcile(KEY)
    assert result.requeue_after == 0
    assert store.get(KEY)["spec"]["suspend"] is True
    reconciler.reconcile(KEY)
    assert api.schedules[KEY]["status"]["conditions"][0]["reason"] == "Suspended"


def test_an_unschedule_request_suspends_the_schedule_with_its_reason():
    api, store, world, reconciler = setup()
    run = {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
           "metadata": {"name": "nightly-1", "namespace": "ns", "uid": "uid-r", "resourceVersion": "5",
                        "labels": {"workflows.flux.dev/schedule": "nightly"},
                        "ownerReferences": [{"uid": "uid-s", "kind": "Schedule", "name": "nightly"}]},
           "spec": {"workflow": "pkg.mod:main"},
           "status": {"phase": "Running", "unscheduleRequest": {"reason": "quota reached"}}}
    world.execution_seen(run)
    reconciler.reconcile(KEY)
    stored = api.schedules[KEY]
    assert stored["spec"]["suspend"] is True
    assert stored["metadata"]["annotations"]["workflows.flux.dev/unschedule-reason"] == "quota reached"
    assert "create_execution" not in api.names()


def test_ttl_deletes_the_execution_by_uid():
    api, world = FakeKubeApi(), World()
    finished = {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
                "metadata": {"name": "job", "namespace": "ns", "uid": "uid-job", "generation": 1},
                "spec": {"workflow": "pkg.mod:main", "ttlSecondsAfterFinished": 10},
                "status": {"phase": "Succeeded", "finishedAt": "2026-11-21T12:00:00.000Z", "observedGeneration": 1}}
    world.execution_seen(api.put(finished))
    reconciler = Reconciler(world, api, RunnerSettings(), Metrics(), clock=lambda: NOW)
    assert reconciler.reconcile(("ns", "job")).requeue_after is None
    assert ("delete_execution", "job", "uid-job") in api.calls and ("ns", "job") not in api.objects


def test_a_failed_delete_is_retried_like_any_api_failure():
    api, world = FakeKubeApi(), World()
    api.fail_next["delete_execution"] = [Failure.UNREACHABLE]
    finished = {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
                "metadata": {"name": "job", "namespace": "ns", "uid": "uid-job", "generation": 1},
                "spec": {"workflow": "pkg.mod:main", "ttlSecondsAfterFinished": 0},
                "status": {"phase": "Failed", "finishedAt": "2026-11-21T12:00:00.000Z", "observedGeneration": 1}}
    world.execution_seen(api.put(finished))
    reconciler = Reconciler(world, api, RunnerSettings(), Metrics(), clock=lambda: NOW)
    with pytest.raises(Exception, match="injected"):
        reconciler.reconcile(("ns", "job"))
