"""Memory independent of object size (payloads.py, world.py): the World keeps small values and stubs of large
or deep ones; an action that needs a large value reads the object once; a deep one is refused clearly."""

from __future__ import annotations

import json

import pytest
from flux_api import nesting
from flux_operator import payloads
from flux_operator.schedule_shell import ScheduleReconciler, ScheduleStore, trim_schedule
from flux_operator.trimmed import trim_execution
from flux_operator.world import World
from flux_operator.testing import FakeKubeApi
from tests.operator.builders import NOW, api, pod, reconciler, seed, world  # noqa: F401 (fixtures)

pytestmark = pytest.mark.unit

PADDING = 1_400_000  # the issue's ~1.4 MB podTemplate


def nested(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def padded_template(size: int = PADDING) -> dict:
    return {"env": [{"name": f"PAD{i}", "value": "x" * (size // 64)} for i in range(64)]}


def execution(name="job", status=None, labels=None, owner=None, **spec) -> dict:
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1,
            "creationTimestamp": "2026-11-21T11:58:00Z", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution",
                                    "name": owner, "uid": f"uid-{owner}", "controller": True}]
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution", "metadata": meta,
            "spec": {"workflow": "pkg.mod:main", "gracePeriodSeconds": 30, **spec}, "status": status or {}}


# --- what is kept ---------------------------------------------------------------------------------

def test_small_values_are_kept_large_ones_become_stubs_that_compare_like_the_values() -> None:
    small = {"a": [1, 2, {"b": "c"}]}
    assert payloads.shrink(small) is small and payloads.shrink("short") == "short"
    big = {"rows": ["x" * 100] * 100}
    stub = payloads.shrink(big)
    assert payloads.is_size_stub(stub) and stub == payloads.shrink(json.loads(json.dumps(big)))
    assert nesting.elided(stub)["bytes"] > payloads.KEEP_BYTES
    assert stub != payloads.shrink({"rows": ["x" * 100] * 99 + ["y" * 100]}), "a different value, another stub"
    assert payloads.shrink(dict(reversed(list({"k1": "x" * 3000, "k2": 1}.items())))) == \
        payloads.shrink({"k1": "x" * 3000, "k2": 1}), "key order does not matter"
    assert payloads.is_size_stub(payloads.shrink("x" * 5000))
    assert payloads.is_deep_stub(payloads.shrink(nested(nesting.PAYLOAD_DEPTH + 1)))
    assert payloads.shrink(nested(nesting.PAYLOAD_DEPTH)) == nested(nesting.PAYLOAD_DEPTH)
    decoder_stub = nesting.deep_stub(9000, 18000)
    assert payloads.shrink(decoder_stub) is decoder_stub


def test_of_the_metadata_only_what_decisions_read_is_kept_each_part_bounded() -> None:
    meta = {"name": "job", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 2,
            "labels": {**{f"team.example/l{i}": "v" for i in range(5000)}, "workflows.flux.dev/parent": "p"},
            "annotations": {**{f"a{i}": "x" * 1000 for i in range(200)},
                            "workflows.flux.dev/cancel": "why " * 100_000},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": f"c{i}", "uid": f"c{i}"}
                                for i in range(1000)] +
                               [{"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution", "name": f"e{i}",
                                 "uid": f"e{i}"} for i in range(100)] +
                               [{"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution", "name": "p",
                                 "uid": "p", "controller": True}],
            "managedFields": [{"manager": f"m{i}"} for i in range(1000)], "finalizers": ["x"] * 100}
    kept = payloads.metadata(meta)
    assert kept["labels"] == {"workflows.flux.dev/parent": "p"}
    assert list(kept["annotations"]) == ["workflows.flux.dev/cancel"]
    assert len(kept["annotations"]["workflows.flux.dev/cancel"]) == payloads.MAX_ANNOTATION
    assert kept["ownerReferences"][0]["uid"] == "p" and len(kept["ownerReferences"]) == payloads.MAX_OWNERS
    assert {"managedFields", "finalizers"}.isdisjoint(kept)
    assert len(json.dumps(kept)) < 12_000


def test_annotations_and_labels_under_our_prefix_that_we_do_not_read_are_not_kept() -> None:
    # 31 x 8 KiB under our prefix fits the API server's 256 KiB of annotations: 250 KiB an object in the World.
    meta = {"name": "job", "namespace": "ns", "uid": "u",
            "annotations": {**{f"workflows.flux.dev/pad-{i:02d}": "x" * 8192 for i in range(31)},
                            "workflows.flux.dev/cancel": "stop", "workflows.flux.dev/traceparent": "00-ab-cd-01"},
            "labels": {**{f"workflows.flux.dev/pad-{i}": "v" * 63 for i in range(1000)},
                       "workflows.flux.dev/parent": "p", "workflows.flux.dev/depth": "1"}}
    kept = payloads.metadata(meta)
    assert kept["annotations"] == {"workflows.flux.dev/cancel": "stop",
                                   "workflows.flux.dev/traceparent": "00-ab-cd-01"}
    assert kept["labels"] == {"workflows.flux.dev/parent": "p", "workflows.flux.dev/depth": "1"}
    assert kept[payloads.LABELS_CUT] is True
    assert len(json.dumps(kept)) < 1000


def test_every_annotation_a_decision_reads_is_kept() -> None:
    meta = {"annotations": {name: "v" for name in payloads.READ_ANNOTATIONS}}
    assert payloads.metadata(meta)["annotations"] == meta["annotations"]


def test_an_execution_padded_to_the_request_limit_is_kept_in_a_few_kilobytes() -> None:
    big = {"blob": "y" * 200_000}
    raw = execution(podTemplate=padded_template(), input=big, image="registry.example/runner:1",
                    status={"phase": "Running", "checkpoint": {"state": "Succeeded", "data": big, "result": big,
                                                               "results": {"s": big}, "steps": [{"name": "s"}]},
                            "spawnRequests": [{"name": "job-a", "workflow": "a.b:c", "input": big},
                                              {"name": "job-b", "workflow": "a.b:c", "input": {"x": 1}}],
                            "children": [{"name": "job-a", "phase": "Succeeded", "result": big}]})
    assert len(json.dumps(raw)) > PADDING
    trimmed = trim_execution(raw)
    assert len(json.dumps(trimmed)) < 4000
    assert "podTemplate" not in trimmed["spec"] and trimmed["spec"]["image"] == "registry.example/runner:1"
    assert payloads.kept_out(trimmed["metadata"]) == ["spec.podTemplate"]
    status = trimmed["status"]
    assert set(status["checkpoint"]) == {"state", "result"}
    assert payloads.is_size_stub(status["checkpoint"]["result"])
    assert payloads.is_size_stub(status["spawnRequests"][0]["input"]) and status["spawnRequests"][1]["input"] == {"x": 1}
    assert status["children"][0]["result"] == status["checkpoint"]["result"], "the same value, the same stub"
    world = World()
    world.execution_seen(raw)
    assert world.snapshot(("ns", "job")) is not None, "the trimmed copy still parses"


# --- actions that need the whole value read it once -----------------------------------------------

def test_a_large_pod_template_is_read_from_the_server_when_the_runner_pod_is_made(api, world, reconciler):
    seed(api, world, execution(podTemplate=padded_template()))
    reconciler.reconcile(("ns", "job"))
    assert ("get_execution", "job") in api.calls
    pod = next(body for body in api.created if body["kind"] == "Pod")
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["PAD0"] == "x" * (PADDING // 64) and len([n for n in env if n.startswith("PAD")]) == 64


def test_a_small_pod_template_needs_no_read(api, world, reconciler):
    seed(api, world, execution(podTemplate={"nodeSelector": {"pool": "batch"}}))
    reconciler.reconcile(("ns", "job"))
    assert "get_execution" not in api.names()
    assert next(b for b in api.created if b["kind"] == "Pod")["spec"]["nodeSelector"] == {"pool": "batch"}


def test_a_pod_template_nested_too_deep_fails_the_execution_with_a_message(api, world, reconciler):
    seed(api, world, execution(podTemplate={"affinity": {"x": nested(nesting.PAYLOAD_DEPTH)}}))
    reconciler.reconcile(("ns", "job"))
    status = api.objects[("ns", "job")]["status"]
    assert status["phase"] == "Failed" and not api.created
    assert status["message"] == f"spec.podTemplate nests deeper than {nesting.PAYLOAD_DEPTH} levels: Flux passes " \
                                f"on at most {nesting.PAYLOAD_DEPTH}"


def spawning(api, world, input_) -> None:
    seed(api, world, execution(status={"phase": "Running", "podName": "job-runner", "observedGeneration": 1,
                                       "startedAt": "2026-11-21T11:59:00Z",
                                       "spawnRequests": [{"name": "job-kid", "workflow": "a.b:c", "input": input_}]}))
    world.pod_seen(pod())


def test_a_large_spawn_input_is_read_from_the_server_when_the_child_is_made(api, world, reconciler):
    big = {"rows": ["r" * 1000] * 500}
    spawning(api, world, big)
    reconciler.reconcile(("ns", "job"))
    assert ("get_execution", "job") in api.calls
    assert api.objects[("ns", "job-kid")]["spec"]["input"] == big


def test_a_spawn_input_nested_too_deep_is_refused_with_a_message(api, world, reconciler):
    spawning(api, world, {"x": nested(nesting.PAYLOAD_DEPTH)})
    reconciler.reconcile(("ns", "job"))
    assert ("ns", "job-kid") not in api.objects
    child = api.objects[("ns", "job")]["status"]["children"][0]
    assert child["phase"] == "Failed" and "its input nests deeper than 100 levels" in child["error"]
    assert any(e["reason"] == "SpawnRefused" for e in api.events.values())


def parent_with_child(api, world, result) -> None:
    seed(api, world, execution(status={"phase": "Running", "podName": "job-runner", "observedGeneration": 1,
                                       "startedAt": "2026-11-21T11:59:00Z",
                                       "spawnRequests": [{"name": "job-kid", "workflow": "a.b:c"}],
                                       # made by the operator: its UID recorded (spawning.owned_children)
                                       "children": [{"name": "job-kid", "phase": "Running", "uid": "uid-job-kid"}]}))
    world.pod_seen(pod())
    seed(api, world, execution("job-kid", labels={"workflows.flux.dev/parent": "job"}, owner="job",
                               status={"phase": "Succeeded", "observedGeneration": 1,
                                       "checkpoint": {"state": "Succeeded", "result": result}}))


def test_a_large_child_result_is_mirrored_whole_once_and_then_left_alone(api, world, reconciler):
    big = {"rows": ["r" * 1000] * 200}  # larger than the World keeps, within the mirrored results' budget
    parent_with_child(api, world, big)
    reconciler.reconcile(("ns", "job"))
    assert api.objects[("ns", "job")]["status"]["children"] == [{"name": "job-kid", "phase": "Succeeded",
                                                                 "uid": "uid-job-kid", "result": big}]
    world.execution_seen(api.objects[("ns", "job")])
    api.calls.clear()
    reconciler.reconcile(("ns", "job"))
    assert "patch_status" not in api.names() and "get_execution" not in api.names(), "stub equals stub: no write"


def test_a_child_result_nested_too_deep_is_not_passed_on(api, world, reconciler):
    parent_with_child(api, world, nested(nesting.PAYLOAD_DEPTH + 1))
    reconciler.reconcile(("ns", "job"))
    child = api.objects[("ns", "job")]["status"]["children"][0]
    assert child["phase"] == "Failed" and "result" not in child
    assert child["error"].startswith("its result nests deeper than 100 levels")


def test_a_large_child_result_is_read_once_however_often_the_parent_rewrites_its_children(api, world, reconciler):
    """Each change of any child rewrites the parent's whole children list: a stubbed result already read is
    not read again (else a tree of 50 children with large results costs about 1,250 reads of them)."""
    big = {"rows": ["r" * 1000] * 200}
    children = [{"name": "job-kid", "phase": "Running", "uid": "uid-job-kid"},
                {"name": "job-kid2", "phase": "Running", "uid": "uid-job-kid2"}]
    seed(api, world, execution(status={"phase": "Running", "podName": "job-runner", "observedGeneration": 1,
                                       "startedAt": "2026-11-21T11:59:00Z", "children": children,
                                       "spawnRequests": [{"name": c["name"], "workflow": "a.b:c"} for c in children]}))
    world.pod_seen(pod())
    for name, phase in (("job-kid", "Succeeded"), ("job-kid2", "Running")):
        seed(api, world, execution(name, labels={"workflows.flux.dev/parent": "job"}, owner="job",
                                   status={"phase": phase, "observedGeneration": 1,
                                           "checkpoint": {"state": phase, "result": big if phase == "Succeeded"
                                                          else None}}))
    reconciler.reconcile(("ns", "job"))
    world.execution_seen(api.objects[("ns", "job")])
    seed(api, world, execution("job-kid2", labels={"workflows.flux.dev/parent": "job"}, owner="job",
                               status={"phase": "Failed", "observedGeneration": 1,
                                       "checkpoint": {"state": "Failed", "error": "no"}}))
    reconciler.reconcile(("ns", "job"))
    mirrored = {c["name"]: c for c in api.objects[("ns", "job")]["status"]["children"]}
    assert mirrored["job-kid"]["result"] == big and mirrored["job-kid2"]["phase"] == "Failed"
    assert api.calls.count(("get_execution", "job-kid")) == 1, api.calls


# --- Schedules ------------------------------------------------------------------------------------

def schedule(input_) -> dict:
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Schedule",
            "metadata": {"name": "nightly", "namespace": "ns", "uid": "uid-s", "generation": 1,
                         "creationTimestamp": "2026-11-21T11:57:00Z"},
            "spec": {"schedule": "*/5 * * * *",
                     "executionTemplate": {"spec": {"workflow": "pkg.mod:main", "input": input_}}}}


def schedule_setup(input_):
    api, store = FakeKubeApi(), ScheduleStore()
    store.seen(api.put_schedule(schedule(input_)))
    return api, store, ScheduleReconciler(store, World(), api, clock=lambda: NOW)


def test_a_schedule_keeps_a_large_template_on_the_server_and_its_run_gets_it_whole():
    big = {"rows": ["r" * 1000] * 500}
    api, store, reconciler = schedule_setup(big)
    assert len(json.dumps(store.get(("ns", "nightly")))) < 2000
    reconciler.reconcile(("ns", "nightly"))
    runs = [o for k, o in api.objects.items() if k[1].startswith("nightly-")]
    assert len(runs) == 1 and runs[0]["spec"]["input"] == big


def test_a_schedule_template_nested_too_deep_starts_no_run_and_says_why_once():
    api, store, reconciler = schedule_setup({"x": nested(nesting.PAYLOAD_DEPTH)})
    reconciler.reconcile(("ns", "nightly"))
    reconciler.reconcile(("ns", "nightly"))
    assert not api.objects, "no run"
    events = [c for c in api.calls if c[0] == "emit_event"]
    assert len(events) == 1 and events[0][1] == "InvalidTemplate"
    assert "spec.executionTemplate nests deeper than 100 levels" in api.events[events[0][2]]["message"]


def test_label_changes_to_a_schedule_that_starts_no_run_say_nothing_new_and_nothing_is_kept_after_it():
    """A tenant touching a label in a loop makes new resourceVersions, not new specs: one Event, and the
    operator keeps one entry per Schedule, dropped when the Schedule goes."""
    api, store, reconciler = schedule_setup({"x": nested(nesting.PAYLOAD_DEPTH)})
    for version in range(50):
        raw = schedule({"x": nested(nesting.PAYLOAD_DEPTH)})
        raw["metadata"].update(resourceVersion=str(100 + version), labels={"touched": str(version)})
        store.seen(api.put_schedule(raw))
        reconciler.reconcile(("ns", "nightly"))
    assert len([c for c in api.calls if c[0] == "emit_event"]) == 1
    store.gone(store.get(("ns", "nightly")))
    reconciler.reconcile(("ns", "nightly"))
    assert not reconciler._said


def test_a_trimmed_schedule_still_parses():
    from flux_api.schedule import Schedule
    trimmed = trim_schedule(schedule({"rows": ["r" * 1000] * 500}))
    assert Schedule.model_validate(trimmed).spec.executionTemplate.spec.workflow == "pkg.mod:main"
