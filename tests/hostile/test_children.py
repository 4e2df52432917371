"""Children the operator did not make, lists longer than a status can hold, names already taken, results too
big to mirror, timestamps past the end of the calendar: none may stop a decision (issue 16 items 3 and 4)."""

from __future__ import annotations

import json
import time

import pytest
from flux_api import GROUP, PARENT_LABEL, PLURAL, VERSION
from flux_api.names import ROOT_LABEL
from flux_api.types import MAX_CHILDREN, MAX_DEPTH
from fluxtest import TERMINAL, longrun, manifest, policies, wait_for
from fluxtest.faults import as_runner, log_tail
from fluxtest.tenancy import grant
from kubernetes import client
from kubernetes.client.rest import ApiException

OWNED = "flux-operator-owned-metadata"  # the admission policy that refuses forged labels and ownerReferences
POD_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]
NEVER = "2099-01-01T00:00:00Z"  # a start time that keeps an execution Pending without a pod


def forged_child(name: str, victim: dict) -> dict:
    """An Execution that claims to be `victim`'s child: its label and a controlling ownerReference."""
    body = manifest(name, "flux_examples.quick:main", startAt=NEVER)
    body["metadata"]["labels"] = {PARENT_LABEL: victim["metadata"]["name"]}
    body["metadata"]["ownerReferences"] = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Execution",
                                            "name": victim["metadata"]["name"], "uid": victim["metadata"]["uid"],
                                            "controller": True}]
    return body


def quota(core: client.CoreV1Api, namespace: str, pods: int) -> None:
    """At most `pods` pods in the namespace: children's runners wait for room instead of running."""
    core.create_namespaced_resource_quota(namespace, {"metadata": {"name": "pods"},
                                                      "spec": {"hard": {"pods": str(pods)}}})


def patch_status_as(api: client.ApiClient, namespace: str, name: str, status: dict) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name,
                                                                       {"status": status})


@pytest.mark.threat("forged-children", f"{MAX_CHILDREN + 1} Executions labelled parent=victim with a controlling "
                    "ownerReference to the victim's UID, made by a tenant",
                    "the victim is cancelled at once; the forged ones are not its children (not listed, not waited "
                    "for)")
@pytest.mark.timeout(180)
def test_forged_children_do_not_make_an_execution_uncancellable(tenant, operators, fx, kubectl, kubeconfig, result):
    operators.start()
    victim = tenant.fx.create(longrun("victim", steps=600, seconds=0.5))
    fx.wait_phase("victim", "Running", timeout=60)
    with pytest.raises(ApiException) as refused:
        tenant.fx.create(forged_child("victim-forged-0", victim))
    assert refused.value.status == 403 and OWNED in refused.value.body, "the first line: the API server"
    # The second line: the operator's own check, as on a cluster without Flux's policies.
    with policies.unenforced(kubectl, kubeconfig, OWNED):
        for i in range(MAX_CHILDREN + 1):
            tenant.fx.create(forged_child(f"victim-forged-{i}", victim))
    made_by = "the tenant (refused by the API server; then made with the policy unbound)"
    time.sleep(2)  # let the operator see them all
    started = time.monotonic()
    tenant.fx.cancel("victim", "stop it")
    try:
        status = fx.wait_phase("victim", "Cancelled", timeout=30)
    except AssertionError:
        raise AssertionError(f"still {fx.phase('victim')} 30 s after the cancel: "
                             f"{log_tail(operators.started[0], 1500)}") from None
    took = time.monotonic() - started
    listed = [c["name"] for c in status["cancellation"].get("children") or []]
    forged_cancelled = fx.get("victim-forged-0")["spec"].get("cancel")
    result.figure(f"{MAX_CHILDREN + 1} forged children (made by {made_by}); victim Cancelled in {took:.1f}s, "
                  f"{len(listed)} listed as its children")
    assert not [n for n in listed if "forged" in n], listed
    assert forged_cancelled is None, "a forged child is not the victim's to cancel"


@pytest.mark.threat("spawn-rewrite", "a runner rewrites status.spawnRequests with 50 names, then with 50 new ones",
                    f"at most {MAX_CHILDREN} children exist; the rest are refused with an Event; the parent still "
                    "cancels")
@pytest.mark.timeout(240)
def test_rewriting_spawn_requests_cannot_pass_the_cap(tenant, operators, fx, core, kubeconfig, result):
    quota(core, tenant.namespace, 1)  # the parent's runner only: its children wait for room, cheaply
    operators.start()
    tenant.fx.create(longrun("greedy", steps=600, seconds=0.5))
    fx.wait_phase("greedy", "Running", timeout=60)
    runner = as_runner(kubeconfig, tenant.namespace, "greedy")
    try:
        for batch in ("a", "b"):
            requests = [{"name": f"greedy-{batch}{i}", "workflow": "flux_examples.quick:main", "input": {}}
                        for i in range(MAX_CHILDREN)]
            patch_status_as(runner, tenant.namespace, "greedy", {"spawnRequests": requests})
            time.sleep(5)
    finally:
        runner.close()

    def children() -> list[dict]:
        items = fx.custom.list_namespaced_custom_object(GROUP, VERSION, tenant.namespace, PLURAL,
                                                        label_selector=f"{PARENT_LABEL}=greedy")["items"]
        return items

    wait_for(lambda: len(children()) >= MAX_CHILDREN, timeout=60, what=f"{MAX_CHILDREN} children")
    time.sleep(3)
    made = len(children())
    status = fx.status("greedy")
    refused = status.get("childrenRefused")
    events = fx.events("greedy")
    fx.cancel("greedy", "enough")
    ended = fx.wait_phase("greedy", *TERMINAL, timeout=60)
    result.figure(f"{made} children made for {2 * MAX_CHILDREN} names requested; childrenRefused={refused}; "
                  f"parent {ended['phase']} after the cancel")
    assert made == MAX_CHILDREN, f"{made} children exist"
    assert refused == MAX_CHILDREN, status.get("childrenRefused")
    assert "SpawnRefused" in events, events
    assert ended["phase"] == "Cancelled", ended


@pytest.mark.threat("spawn-collision", "a tenant makes an Execution under the name a workflow will spawn "
                    "(<parent>-left)", "ctx.spawn raises, naming the conflict; a Warning Event; never a hang")
@pytest.mark.timeout(180)
def test_a_taken_child_name_is_a_clear_error(tenant, operators, fx, result):
    operators.start()
    tenant.fx.create(manifest("tree-left", "flux_examples.quick:main", startAt=NEVER))  # unrelated, squatting
    tenant.fx.create(manifest("tree", "flux_examples.tree:main", {"steps": 1, "stepSeconds": 0.1}))
    started = time.monotonic()
    try:
        status = fx.wait_phase("tree", *TERMINAL, timeout=60)
    except AssertionError:
        raise AssertionError(f"tree still {fx.phase('tree')} after 60 s: the spawn hangs") from None
    took = time.monotonic() - started
    events = fx.events("tree")
    result.figure(f"tree {status['phase']} in {took:.0f}s: {(status.get('message') or '')[:160]!r}")
    assert status["phase"] == "Failed", status
    assert "tree-left" in status["message"] and "taken" in status["message"], status["message"]
    assert "SpawnConflict" in events, events
    assert fx.get("tree-left")["spec"].get("cancel") is None, "the squatter is not the parent's to touch"


@pytest.mark.threat("spawn-name-held", "the name a workflow will spawn (<parent>-left) is held by an Execution "
                    "being deleted, kept by a tenant's finalizer",
                    "the spawn waits while the name is held (no conflict: it is on its way out), and the child is "
                    "made once the name is free; the parent Succeeds")
@pytest.mark.timeout(180)
def test_a_child_name_held_by_an_execution_being_deleted_is_made_once_free(tenant, operators, fx, result):
    operators.start()
    held = manifest("held-left", "flux_examples.quick:main", startAt=NEVER)
    held["metadata"]["finalizers"] = ["example.com/hold"]
    tenant.fx.create(held)
    # Deleted by whoever may (the tenant's own role has no delete), and held by the tenant's finalizer.
    fx.custom.delete_namespaced_custom_object(GROUP, VERSION, tenant.namespace, PLURAL, "held-left")
    tenant.fx.create(manifest("held", "flux_examples.tree:main", {"steps": 1, "stepSeconds": 0.1}))

    def waiting() -> bool:
        entries = {c["name"]: c for c in fx.status("held").get("children") or []}
        return entries.get("held-left", {}).get("phase") == "Pending" and "held-right" in entries
    try:
        wait_for(waiting, timeout=60, what="the parent to admit held-left and wait for the name")
        time.sleep(3)  # several passes of the parent meanwhile
        assert fx.get("held-left")["metadata"].get("deletionTimestamp"), "the holder is still the one being deleted"
    finally:  # else the namespace could not go at the end
        fx.patch("held-left", {"metadata": {"finalizers": None}})
    freed = time.monotonic()
    try:  # the wake on the DELETE takes a few seconds; the operator's periodic look alone, up to 60 s
        status = fx.wait_phase("held", *TERMINAL, timeout=20)
    except AssertionError:
        entry = next((c for c in fx.status("held").get("children") or [] if c["name"] == "held-left"), None)
        raise AssertionError(f"held still {fx.phase('held')} 20 s after the name was freed; its entry: {entry}") \
            from None
    result.figure(f"held {status['phase']} {time.monotonic() - freed:.0f}s after the name was freed")
    assert status["phase"] == "Succeeded", status
    assert fx.get("held-left")["metadata"].get("ownerReferences"), "held-left is now the parent's own child"


@pytest.mark.threat("child-results", "14 children each returning ~120 KB: more than an Execution can hold (etcd "
                    "takes ~1.5 MB)", "results past the budget are not mirrored, and ctx.spawn says so; the parent "
                    "ends; each result stays on its child")
@pytest.mark.timeout(300)
def test_children_results_have_a_total_budget(tenant, operators, fx, result):
    operators.start()
    tenant.fx.create(manifest("heavy", "flux_examples.spawnbomb:main", {"mode": "wide", "width": 14,
                                                                        "kilobytes": 120}))
    try:
        status = fx.wait_phase("heavy", *TERMINAL, timeout=200)
    except AssertionError:
        raise AssertionError(f"heavy still {fx.phase('heavy')}: {log_tail(operators.started[0], 1500)}") from None
    size = len(json.dumps(fx.get("heavy")))
    mirrored = [c for c in status.get("children") or [] if c.get("result") is not None]
    omitted = [c for c in status.get("children") or [] if c.get("resultOmitted")]
    assert omitted, "some results must have been left on the children"
    child = fx.wait_phase(omitted[0]["name"], *TERMINAL, timeout=30)
    result.figure(f"heavy {status['phase']} ({size // 1024} KiB as stored): {len(mirrored)} results mirrored, "
                  f"{len(omitted)} left on their children; {(status.get('message') or '')[:140]!r}")
    assert status["phase"] == "Failed", status.get("phase")
    assert "not mirrored" in status["message"], status["message"]
    assert child["phase"] == "Succeeded" and child["checkpoint"]["result"], "the result stays on the child"


BEYOND = "9999-12-31T23:59:59-23:59"  # 10000-01-01T23:58:59Z: past what a datetime holds


@pytest.mark.threat("overflowing-time", f"a runner writes checkpoint.updatedAt {BEYOND} and state Cancelled",
                    "refused by the schema, or harmless: the cancel ends, `kubectl flux status` prints")
@pytest.mark.timeout(120)
def test_a_timestamp_past_the_calendar_stops_nothing(tenant, api, operators, fx, kubeconfig, kubectl, result):
    grant(api, tenant.namespace, tenant.user, POD_RULES)  # choosing nodes needs create pods (flux-tenant-pod-settings)
    operators.start()
    # A runner pod that is never scheduled: nothing but the forged write touches the checkpoint.
    tenant.fx.create(manifest("late", "flux_examples.quick:main",
                              podTemplate={"nodeSelector": {"flux.dev/test-no-such-node": "x"}}))
    fx.wait_phase("late", "Pending", timeout=30)
    wait_for(lambda: fx.pod("late"), timeout=30, what="the runner pod")
    runner = as_runner(kubeconfig, tenant.namespace, "late")
    try:
        patch_status_as(runner, tenant.namespace, "late", {"checkpoint": {"state": "Cancelled", "updatedAt": BEYOND}})
        written = "accepted"
    except ApiException as err:
        written = f"refused ({err.status}): {json.loads(err.body).get('message', '')[:120]}"
    finally:
        runner.close()
    tenant.fx.cancel("late", "give up")
    try:
        status = fx.wait_phase("late", *TERMINAL, timeout=30)
    except AssertionError:
        raise AssertionError(f"late still {fx.phase('late')}: {log_tail(operators.started[0], 1500)}") from None
    shown = kubectl("flux", "status", "late", "-n", tenant.namespace, check=False)
    result.figure(f"the write was {written}; late {status['phase']}; `kubectl flux status` exit {shown.returncode}")
    assert status["phase"] == "Cancelled", status
    assert shown.returncode == 0, shown.stderr[-800:]


TREE_CAP, FANOUT = 10, 3
UNCAPPED = sum(FANOUT ** depth for depth in range(MAX_DEPTH + 1))  # what the caps per execution and on depth allow


@pytest.mark.threat("tree-bomb", f"a workflow spawns {FANOUT} copies of itself at every level ({UNCAPPED} executions "
                    f"within the caps per execution and on depth), under a platform cap of {TREE_CAP} a tree",
                    "the tree stops at the cap exactly, though the operator's workers admit at once; the spawns past "
                    "it are refused as TreeFull with an Event, and counted in flux_spawns_refused_total; the "
                    "bystander's execution runs")
@pytest.mark.timeout(300)
def test_a_spawn_bomb_stops_at_the_platforms_cap_on_a_tree(tenant, operators, fx, bystander, kubectl, result):
    limits = {"maxExecutionsPerTree": TREE_CAP}
    with policies.platform_limits(kubectl, **limits):
        operator = operators.start(None, True, "--tenancy-policy", json.dumps(limits))
        root = tenant.fx.create(manifest("bomb", "flux_examples.spawnbomb:main", {"mode": "bomb", "fanout": FANOUT}))
        bystander.create(manifest("ordinary", "flux_examples.quick:main"))

        def tree() -> list[dict]:
            selector = f"{ROOT_LABEL}={root['metadata']['uid']}"
            return fx.custom.list_namespaced_custom_object(GROUP, VERSION, tenant.namespace, PLURAL,
                                                           label_selector=selector)["items"]

        def settled() -> list[dict] | None:
            members = tree()
            phases = [(m.get("status") or {}).get("phase") for m in members] + [fx.phase("bomb")]
            return members if all(p in TERMINAL for p in phases) else None
        members = wait_for(settled, timeout=240, interval=1, what="every execution of the tree to end")
        time.sleep(3)
        grown = len(tree())
        ordinary = bystander.wait_phase("ordinary", *TERMINAL, timeout=60)
        counted = operator.samples().get('flux_spawns_refused_total{reason="TreeFull"}')
    size = 1 + len(members)
    refused = [c for m in [fx.get("bomb"), *members] for c in (m.get("status") or {}).get("children") or []
               if c.get("reason") == "TreeFull"]
    told = [e for e in fx.core.list_namespaced_event(tenant.namespace).items if e.reason == "SpawnRefused"]
    result.figure(f"tree of {size} executions (cap {TREE_CAP}; {UNCAPPED} without it); {len(refused)} spawns "
                  f"refused as TreeFull, {len(told)} SpawnRefused Events; bystander {ordinary['phase']}")
    # Up to three workers reconcile parents of the tree at once: without the claims (World.tree_claim) each could
    # admit its children against the same count, up to TREE_CAP + 2 * FANOUT.
    assert size == TREE_CAP, f"{size} executions in the tree"
    assert grown == len(members), "the tree grew after every execution in it had ended"
    assert refused and all(f"the platform allows at most {TREE_CAP} a tree" in c["error"] for c in refused), \
        refused[:2]
    assert told and all(f"at most {TREE_CAP} a tree" in e.message for e in told), [e.message for e in told]
    assert counted == len(refused), f"flux_spawns_refused_total{{reason=TreeFull}} is {counted}, {len(refused)} refused"
    assert ordinary["phase"] == "Succeeded", ordinary
