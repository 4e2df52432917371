"""kopf handlers only store what the watch delivered and name keys: no API call, no decision."""

from __future__ import annotations

import asyncio

import kopf
import pytest
from flux_operator import handlers
from flux_operator.namespaces import Namespaces
from flux_operator.schedule_shell import ScheduleStore
from kopf._cogs.structs import references
from tests.operator.builders import deliver, memo

pytestmark = pytest.mark.unit


def execution(name: str, parent: str | None = None) -> dict:
    labels = {"workflows.flux.dev/parent": parent} if parent else {}
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
            "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "resourceVersion": "1",
                         "labels": labels}, "spec": {"workflow": "a:b"}}


def test_an_execution_event_stores_it_and_names_it_and_its_parent() -> None:
    m = memo()
    deliver(handlers.execution_event, "ADDED", execution("kid", parent="job"), m)
    assert m.runtime.controller.keys == [("ns", "kid"), ("ns", "job")]
    assert m.runtime.world.keys() == [("ns", "kid")]


def test_a_deleted_execution_leaves_the_world() -> None:
    m = memo()
    deliver(handlers.execution_event, None, execution("job"), m)
    deliver(handlers.execution_event, "DELETED", execution("job"), m)
    assert m.runtime.world.keys() == []


def test_a_pod_event_names_its_execution() -> None:
    m = memo()
    pod = {"metadata": {"name": "job-runner", "namespace": "ns", "uid": "p",
                        "labels": {"workflows.flux.dev/execution": "job"}}, "status": {"phase": "Running"}}
    deliver(handlers.runner_pod_event, "MODIFIED", pod, m)
    deliver(handlers.runner_pod_event, "DELETED", pod, m)
    assert m.runtime.controller.keys == [("ns", "job"), ("ns", "job")]


def test_index_handlers_fill_the_world_before_any_event_handler() -> None:
    m = memo()
    asyncio.run(handlers.executions_watched(body=kopf.Body(execution("job")), memo=m))
    pod = {"metadata": {"name": "job-runner", "namespace": "ns", "uid": "p", "ownerReferences": [
        {"uid": "u-job", "controller": True}], "labels": {"workflows.flux.dev/execution": "job"}},
        "status": {"phase": "Running"}}
    asyncio.run(handlers.runner_pods_watched(body=kopf.Body(pod), memo=m))
    assert m.runtime.world.snapshot(("ns", "job")).pod.name == "job-runner"
    assert m.runtime.controller.keys == [], "indexing names nothing: event handlers do, once all is listed"


def test_a_run_of_a_schedule_names_the_schedule_too() -> None:
    m = memo()
    run = execution("nightly-29000000")
    run["metadata"]["labels"] = {"workflows.flux.dev/schedule": "nightly"}
    deliver(handlers.execution_event, "MODIFIED", run, m)
    deliver(handlers.execution_event, "DELETED", run, m)
    assert m.runtime.schedule_controller.keys == [("ns", "nightly"), ("ns", "nightly")]


def test_a_schedule_event_stores_it_and_names_it() -> None:
    m = memo()
    schedule = {"metadata": {"name": "nightly", "namespace": "ns", "uid": "s", "resourceVersion": "3"},
                "spec": {"schedule": "@daily", "executionTemplate": {"spec": {"workflow": "a:b"}}}}
    deliver(handlers.schedule_event, "ADDED", schedule, m)
    assert m.runtime.schedules.keys() == [("ns", "nightly")]
    deliver(handlers.schedule_event, "DELETED", schedule, m)
    assert m.runtime.schedules.keys() == []
    assert m.runtime.schedule_controller.keys == [("ns", "nightly"), ("ns", "nightly")]


def test_a_new_schedule_without_status_is_stored_parseable() -> None:
    from flux_api.schedule import Schedule

    store = ScheduleStore()
    key = store.seen({"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Schedule",
                      "metadata": {"name": "s", "namespace": "ns", "uid": "u", "resourceVersion": "1"},
                      "spec": {"schedule": "@daily", "executionTemplate": {"spec": {"workflow": "a:b"}}}})
    assert Schedule.model_validate(store.get(key)).status.active == []


def etl_limit(m: kopf.Memo) -> dict:
    """Limit etl, max 1, delivered as kopf delivers it: the index handler first, then the event handler."""
    limit = {"metadata": {"name": "etl", "namespace": "ns", "uid": "l", "generation": 1, "resourceVersion": "5"},
             "spec": {"max": 1}}
    asyncio.run(handlers.limits_watched(body=limit, memo=m))
    deliver(handlers.limit_event, "ADDED", limit, m)
    return limit


def first_then_second(m: kopf.Memo, phase: str) -> dict:
    """Execution `first` in `phase`, and `second`, a second younger and Pending, delivered; first's object."""
    first, second = execution("first"), execution("second")
    first["status"] = {"phase": phase}
    first["metadata"]["creationTimestamp"] = "2026-11-21T12:00:00Z"
    second["metadata"]["creationTimestamp"] = "2026-11-21T12:00:01Z"
    for raw in (first, second):
        deliver(handlers.execution_event, "ADDED", raw, m)
    return first


def test_a_limit_change_wakes_its_namespace_but_its_own_status_write_does_not() -> None:
    m = memo()
    deliver(handlers.execution_event, "ADDED", execution("queued"), m)
    m.runtime.controller.keys.clear()
    limit = etl_limit(m)
    assert m.runtime.controller.keys == [("ns", "queued")] and m.runtime.limit_controller.keys == [("ns", "etl")]
    m.runtime.controller.keys.clear()
    usage = {**limit, "metadata": {**limit["metadata"], "resourceVersion": "6"}, "status": {"active": 1, "queued": 0}}
    deliver(handlers.limit_event, "MODIFIED", usage, m)
    assert m.runtime.controller.keys == [], "the operator's own status write woke every execution of the namespace"
    raised = {**usage, "metadata": {**usage["metadata"], "generation": 2, "resourceVersion": "7"}, "spec": {"max": 2}}
    asyncio.run(handlers.limits_watched(body=raised, memo=m))
    deliver(handlers.limit_event, "MODIFIED", raised, m)
    assert m.runtime.controller.keys == [("ns", "queued")]


def test_a_burst_of_execution_changes_makes_one_later_pass_over_a_limit_and_a_freed_slot_wakes_at_once() -> None:
    from flux_operator.queues import USAGE_SETTLES_SECONDS

    m = memo()
    etl_limit(m)
    running = first_then_second(m, "Running")
    m.runtime.controller.keys.clear()
    m.runtime.limit_controller.keys.clear()
    finished = {**running, "metadata": {**running["metadata"], "resourceVersion": "9"}, "status": {"phase": "Succeeded"}}
    deliver(handlers.execution_event, "MODIFIED", finished, m)
    assert m.runtime.limit_controller.keys == [], "each execution event made a pass over the namespace at once"
    assert m.runtime.limit_controller.later == [(("ns", "etl"), USAGE_SETTLES_SECONDS)] * 3
    assert m.runtime.controller.keys == [("ns", "first")], "the line was looked at on the event loop"
    assert m.runtime.wakes.run_once() == 1
    assert ("ns", "second") in m.runtime.controller.keys, "the next in line waited for the safety pass"


def test_a_cancelling_executions_runner_gone_hands_its_slot_on_before_its_final_write() -> None:
    m = memo()
    etl_limit(m)
    pod = {"metadata": {"name": "first-runner", "namespace": "ns", "uid": "p", "resourceVersion": "3",
                        "labels": {"workflows.flux.dev/execution": "first"}}, "status": {"phase": "Running"}}
    deliver(handlers.runner_pod_event, "ADDED", pod, m)
    first_then_second(m, "Cancelling")
    m.runtime.controller.keys.clear()
    deliver(handlers.runner_pod_event, "MODIFIED", pod, m)  # its cleanup still runs: it keeps the slot
    m.runtime.wakes.run_once()
    assert ("ns", "second") not in m.runtime.controller.keys
    deliver(handlers.runner_pod_event, "DELETED", pod, m)
    m.runtime.wakes.run_once()
    assert ("ns", "second") in m.runtime.controller.keys, "the next in line waited for the Cancelled write"


def test_a_namespace_not_served_costs_no_pass_down_a_line_however_it_churns() -> None:
    m = memo(namespaces=Namespaces(["other"]))
    limit = etl_limit(m)
    running = first_then_second(m, "Running")
    for version in range(10, 60):
        gone = {**running, "metadata": {**running["metadata"], "resourceVersion": str(version)}}
        deliver(handlers.execution_event, "DELETED", gone, m)
    assert m.runtime.wakes.run_once() == 0 and m.runtime.limit_controller.later == []
    m.runtime.controller.keys.clear()
    raised = {**limit, "metadata": {**limit["metadata"], "generation": 2, "resourceVersion": "70"}, "spec": {"max": 2}}
    asyncio.run(handlers.limits_watched(body=raised, memo=m))
    deliver(handlers.limit_event, "MODIFIED", raised, m)
    assert m.runtime.controller.keys == [], "a limit's change there walked the World for its executions"


def test_a_burst_of_freed_slots_is_one_pass_down_the_line() -> None:
    m = memo()
    etl_limit(m)
    running = first_then_second(m, "Running")
    for version in range(10, 110):
        finished = {**running, "metadata": {**running["metadata"], "resourceVersion": str(version)},
                    "status": {"phase": "Succeeded"}}
        deliver(handlers.execution_event, "MODIFIED", finished, m)
    passes = []
    m.runtime.wakes.to_wake = lambda namespace, now: passes.append(namespace) or []
    m.runtime.wakes.run_once()
    assert passes == ["ns"], "a pass a freeing event"


def test_the_operator_asks_the_api_server_for_runner_pods_only() -> None:
    settings = kopf.OperatorSettings()
    handlers.pods_served_only(settings)
    selectors = settings.watching.label_selectors
    assert selectors.collect(references.Resource("", "v1", "pods")) == ["workflows.flux.dev/execution"]
    for other in (references.Resource("workflows.flux.dev", "v1alpha1", "executions"),
                  references.Resource("", "v1", "namespaces")):
        assert selectors.collect(other) == []
