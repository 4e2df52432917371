"""ConcurrencyLimits on a real cluster: a full limit queues in creation order, a freed slot goes to the next
in line, max changes at once (lowering it stops nothing), several limits must all have room, children never
wait on their ancestor's slot, a queued execution cancelled ends NotStarted, and an operator restarted while
executions are queued derives the same queue from the cluster (a failover while queued: test_failover.py)."""

from __future__ import annotations

import json
import subprocess

import pytest
from flux_api import GROUP, VERSION
from flux_api.names import LIMIT_PLURAL
from fluxtest import Executions, longrun, manifest, wait_for
from fluxtest.limits import Limits, assert_queued, started
from fluxtest.tenancy import grant, impersonating
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

STEP_SECONDS = 0.5
# A freed slot or a raised max starts the next at once: well within this, and well before the operator's
# safety pass (every 60 s) would find it anyway.
SOON = 20


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


@pytest.fixture
def limits(custom, namespace) -> Limits:
    return Limits(custom, namespace)


def run(fx: Executions, name: str, labels: dict | None = None) -> None:
    body = longrun(name, steps=600, seconds=STEP_SECONDS)
    body["metadata"]["labels"] = labels or {}
    fx.create(body)


def test_a_full_limit_queues_and_each_freed_slot_goes_to_the_next_in_creation_order(fx, limits, kubectl,
                                                                                   kube_env, operator):
    limits.create("etl", 2, {"team": "etl"})
    for i in range(5):
        run(fx, f"etl-{i}", {"team": "etl"})
    run(fx, "other")  # no limit counts it: it starts at once
    for name in ("etl-0", "etl-1", "other"):
        fx.wait_phase(name, "Running")
    for name in ("etl-2", "etl-3", "etl-4"):
        assert_queued(fx, name, "waiting: 2 of 2 running under limit etl")
    limits.wait_usage("etl", 2, 3)
    wait_for(lambda: f'flux_limit_queued{{limit="{fx.ns}/etl"}} 3.0' in operator.metrics(), timeout=10,
             what="the operator's metrics to show the limit's queue")
    table = kubectl("get", "fxcl", "-n", fx.ns, check=True).stdout.split()
    assert table[:5] == ["NAME", "MAX", "ACTIVE", "QUEUED", "AGE"] and table[5:9] == ["etl", "2", "2", "3"], table
    listing = subprocess.run(["kubectl-flux", "list", "-n", fx.ns], env=kube_env, capture_output=True, text=True,
                             timeout=60)
    assert "2 of 2 running under limit etl" in listing.stdout, listing.stdout + listing.stderr

    fx.cancel("etl-0", "make room")
    fx.wait_phase("etl-2", "Running", timeout=SOON)
    assert_queued(fx, "etl-3", "waiting: 2 of 2 running under limit etl")
    # A suspended execution holds no slot either.
    fx.patch("etl-1", {"spec": {"suspend": True}})
    fx.wait_phase("etl-1", "Suspended")
    fx.wait_phase("etl-3", "Running", timeout=SOON)
    assert fx.phase("etl-4") == "Pending"
    limits.wait_usage("etl", 2, 1)

    # Cancelled while queued: ends at once, never admitted.
    fx.cancel("etl-4", "not needed")
    status = fx.wait_phase("etl-4", "Cancelled", timeout=30)
    assert status["cancellation"]["outcome"] == "NotStarted", status["cancellation"]
    assert "startedAt" not in status
    limits.wait_usage("etl", 2, 0)


def test_raising_max_starts_the_next_at_once_and_lowering_it_stops_nothing(fx, limits):
    limits.create("cap", 1)
    for i in range(3):
        run(fx, f"cap-{i}")
    fx.wait_phase("cap-0", "Running")
    assert_queued(fx, "cap-2", "waiting: 1 of 1 running under limit cap")
    limits.set_max("cap", 3)
    for name in ("cap-1", "cap-2"):  # at once: well before a safety pass (60 s) would find them
        fx.wait_phase(name, "Running", timeout=SOON)
    limits.set_max("cap", 1)
    run(fx, "cap-3")
    assert_queued(fx, "cap-3", "waiting: 3 of 1 running under limit cap")
    limits.wait_usage("cap", 3, 1)
    assert [fx.phase(f"cap-{i}") for i in range(3)] == ["Running"] * 3, "lowering max stopped running work"


def test_every_limit_that_counts_an_execution_must_have_room(fx, limits):
    limits.create("everyone", 3)
    limits.create("gpu", 1, {"gpu": "yes"})
    run(fx, "gpu-0", {"gpu": "yes"})
    fx.wait_phase("gpu-0", "Running")
    run(fx, "gpu-1", {"gpu": "yes"})
    assert_queued(fx, "gpu-1", "waiting: 1 of 1 running under limit gpu")
    # gpu-1, older, waits for the gpu limit: it keeps no one behind it out of a free slot of the other limit.
    run(fx, "cpu-0")
    fx.wait_phase("cpu-0", "Running")
    run(fx, "cpu-1")
    fx.wait_phase("cpu-1", "Running")
    run(fx, "cpu-2")
    assert_queued(fx, "cpu-2", "waiting: 3 of 3 running under limit everyone")
    limits.wait_usage("everyone", 3, 2)


def test_children_never_wait_for_the_slot_their_ancestor_holds(fx, limits):
    limits.create("one", 1)
    fx.spawn_tree()  # the root holds the only slot; its four descendants run all the same
    for name in ("tree-left", "tree-right", "tree-left-leaf", "tree-right-leaf"):
        assert fx.phase(name) == "Running", name
    run(fx, "second")
    assert_queued(fx, "second", "waiting: 1 of 1 running under limit one")


def test_with_include_children_a_label_selector_counts_the_children_too(fx, limits):
    """A child carries its parent's own labels, so a limit that picks the parent by label and includes children
    counts them (they once carried only the operator's labels and started past it)."""
    limits.create("etl", 2, {"pipeline": "etl"}, children=True)
    body = manifest("tree", "flux_examples.tree:main", {"steps": 600, "stepSeconds": 0.5})
    body["metadata"]["labels"] = {"pipeline": "etl"}
    fx.create(body)
    branches = ("tree-left", "tree-right")
    wait_for(lambda: all(fx.exists(b) for b in branches), timeout=60, what="both branches to be spawned")
    assert {k["metadata"]["labels"].get("pipeline") for k in fx.children("tree")} == {"etl"}
    queued = wait_for(lambda: next((b for b in branches if started(fx, b).get("reason") == "Queued"), None),
                      timeout=SOON, what="a branch to wait for a slot")
    assert_queued(fx, queued, "waiting: 2 of 2 running under limit etl")
    limits.wait_usage("etl", 2, 2)  # the other branch, and the leaf the running branch spawned


def test_an_operator_restarted_while_executions_queue_derives_the_same_queue(fx, limits, operator):
    limits.create("solo", 1)
    run(fx, "solo-0")
    fx.wait_phase("solo-0", "Running")
    run(fx, "solo-1")
    assert_queued(fx, "solo-1", "waiting: 1 of 1 running under limit solo")
    operator.stop()
    run(fx, "solo-2")  # created while no operator runs
    operator.start()
    assert_queued(fx, "solo-2", "waiting: 1 of 1 running under limit solo")
    assert fx.phase("solo-1") == "Pending" and fx.pod("solo-1") is None, "a restart forgot the queue"
    fx.cancel("solo-0", "hand over")
    fx.wait_phase("solo-1", "Running", timeout=SOON)
    assert fx.phase("solo-2") == "Pending", "the slot went to the later one"


def test_a_tenant_cannot_slip_out_from_under_a_limit_by_dressing_as_a_child(fx, limits, tenant):
    limits.create("team", 1)
    run(fx, "holder")
    fx.wait_phase("holder", "Running")
    owner = [{"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution", "name": "holder",
              "uid": fx.get("holder")["metadata"]["uid"]}]
    # What the operator's own children carry, the parent label and an ownerReference: the API server refuses
    # the label to anyone but the operator.
    dressed = longrun("dressed", steps=600, seconds=STEP_SECONDS)
    dressed["metadata"].update(labels={"workflows.flux.dev/parent": "holder"}, ownerReferences=owner)
    with pytest.raises(ApiException) as refused:
        tenant.fx.create(dressed)
    assert refused.value.status == 403 and "workflows.flux.dev/parent" in refused.value.body, refused.value.body
    # Nor the ownerReference alone (the operator's own check, queueing._child, is the second wall).
    owned = longrun("owned", steps=600, seconds=STEP_SECONDS)
    owned["metadata"]["ownerReferences"] = owner
    with pytest.raises(ApiException) as refused:
        tenant.fx.create(owned)
    assert refused.value.status == 403 and "ownerReferences" in refused.value.body, refused.value.body
    tenant.fx.create(longrun("plain", steps=600, seconds=STEP_SECONDS))
    assert_queued(fx, "plain", "waiting: 1 of 1 running under limit team")
    # Nor may a tenant raise the limit.
    with pytest.raises(ApiException) as forbidden:
        Limits(tenant.custom, fx.ns).set_max("team", 100)
    assert forbidden.value.status == 403, forbidden.value


def test_a_namespace_cannot_make_the_operator_weigh_more_than_sixteen_limits(fx, limits, custom):
    for i in range(17):
        limits.create(f"l-{i:02d}", 100, seen=False)
    run(fx, "counted")
    fx.wait_phase("counted", "Running")
    limits.wait_usage("l-15", 1, 0)
    wait_for(lambda: "not applied" in (limits.status("l-16").get("message") or ""), timeout=30,
             what="the seventeenth limit to say it is not applied")
    assert limits.status("l-16").get("active") is None


def test_a_user_who_may_make_limits_cannot_make_one_the_operator_must_hold_megabytes_of(api, kubeconfig, namespace):
    """The operator holds every limit of every namespace: a selector's keys, values and number of values are
    bounded by the API server, so one limit is a few KB, not the 1.4 MB an object may otherwise be."""
    user = f"limit-maker-{namespace}"
    grant(api, namespace, user, [{"apiGroups": [GROUP], "resources": [LIMIT_PLURAL], "verbs": ["create"]}])
    maker = impersonating(kubeconfig, user)

    def create(name: str, selector: dict) -> ApiException | None:
        try:
            client.CustomObjectsApi(maker).create_namespaced_custom_object(GROUP, VERSION, namespace, LIMIT_PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "ConcurrencyLimit", "metadata": {"name": name},
                "spec": {"max": 1, "selector": selector}})
        except ApiException as err:
            return err
        return None

    def values(n: int, width: int = 63) -> list[str]:
        return [f"{i:0{width}d}" for i in range(n)]

    try:
        refused = {
            "value": create("long-value", {"matchLabels": {"team": "v" * 700}}),
            "key": create("long-key", {"matchLabels": {"k" * 400: "v"}}),
            "expression value": create("long-in", {"matchExpressions": [
                {"key": "team", "operator": "In", "values": values(1, 64)}]}),
            "values in all": create("many-in", {"matchExpressions": [
                {"key": f"k{i}", "operator": "In", "values": values(64)} for i in range(3)]}),
        }
        at_bounds = create("at-bounds", {"matchLabels": {"k" * 317: "v" * 63}, "matchExpressions": [
            {"key": f"k{i}", "operator": "In", "values": values(64)} for i in range(2)]})
    finally:
        maker.close()
    for what, err in refused.items():
        assert err is not None and err.status == 422, (what, err)
    messages = {what: json.loads(err.body)["message"] for what, err in refused.items()}
    assert "spec.selector.matchLabels.team" in messages["value"], messages
    assert "at most 317 characters" in messages["key"], messages
    assert "spec.selector.matchExpressions[0].values[0]" in messages["expression value"], messages
    assert "at most 128 values in all" in messages["values in all"], messages
    assert at_bounds is None, at_bounds
