"""One namespace's failure storm must not delay another namespace's starts, cancels and deadlines.

The tenant fills its namespace with executions whose runner pods the API server keeps refusing: the
platform gave the namespace a ResourceQuota the tenant has used up (here `pods: 0`), and "exceeded
quota" is transient, so every one of them is retried with backoff, each try costing the operator about
eight requests. The operator runs with a small client budget (`--qps 10 --burst 10`) so that 100 such
executions are a storm a minute long; fairness does not depend on the size of the budget, only the
size of the storm needed to show its absence does. The speed figures belong to the benchmark
(bench/fairness.py); the bounds here only tell "within seconds" from "behind the whole storm".
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flux_api import GROUP, PLURAL, VERSION
from flux_api.timefmt import parse_time
from fluxtest import longrun, manifest
from fluxtest.faults import log_tail, metric
from localcluster.probes import wait_for

STORM = 100
BUDGET = ("--qps", "10", "--burst", "10")
# Falls while the storm is on: it starts about 15 s after the victim does.
DEADLINE_SECONDS = 40
# Generous on 2 shared cores: with fairness each takes a second or two; behind the storm, about a minute.
START_WITHIN = 30.0
CANCEL_WITHIN = 15.0
LATE_AT_MOST = 15.0
CANCELLING = ("Cancelling", "Cancelled")


def use_up_pod_quota(core, namespace: str) -> None:
    core.create_namespaced_resource_quota(namespace, {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}})
    wait_for(lambda: (core.read_namespaced_resource_quota("no-pods", namespace).status.hard or {}).get("pods"),
             timeout=30, what="the quota's status")


def first_seen(fx, wanted: dict[str, tuple[str, ...]], timeout: float) -> dict[str, float]:
    """Polls until each execution has shown one of its phases; the wall-clock time each was first seen so."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(wanted) and time.monotonic() < deadline:
        for name, phases in wanted.items():
            if name not in seen and fx.phase(name) in phases:
                seen[name] = time.time()
        time.sleep(0.2)
    return seen


def refusals(op) -> float:
    return metric(op, "flux_reconcile_errors_total", 'kind="QuotaExceeded"')


@pytest.mark.threat("fairness", f"{STORM} executions whose runner pods the API server keeps refusing (quota used up), "
                    "retried with backoff in the tenant's namespace",
                    "another namespace's executions still start, cancel and meet their deadlines within seconds")
@pytest.mark.timeout(300)
def test_a_failure_storm_in_one_namespace_does_not_delay_another(tenant, bystander, operators, core, result):
    use_up_pod_quota(core, tenant.namespace)
    op = operators.start(None, True, *BUDGET)
    # Before the storm: two of the bystander's executions running, one to cancel, one with a deadline.
    bystander.create(longrun("victim-cancel", steps=600, seconds=0.5))
    bystander.create(longrun("victim-deadline", steps=600, seconds=0.5, activeDeadlineSeconds=DEADLINE_SECONDS))
    for name in ("victim-cancel", "victim-deadline"):
        bystander.wait_phase(name, "Running", timeout=60)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: tenant.fx.create(longrun(f"storm-{i:03d}")), range(STORM)))
    wait_for(lambda: refusals(op) >= 10, timeout=60, what="the operator to meet the quota: the storm is on")
    refused_before = refusals(op)

    # During the storm: a new execution, a cancel, and (a little later) the deadline.
    asked = time.time()
    bystander.create(longrun("victim-start", steps=600, seconds=0.5))
    bystander.cancel("victim-cancel", reason="the bystander changes its mind")
    seen = first_seen(bystander, {"victim-start": ("Running",), "victim-cancel": CANCELLING},
                      max(START_WITHIN, CANCEL_WITHIN) + 10)
    status = bystander.status("victim-deadline")
    due = parse_time(status["startedAt"]).timestamp() + DEADLINE_SECONDS  # the operator's own rule
    storm_on_at_due = due > asked
    seen |= first_seen(bystander, {"victim-deadline": CANCELLING}, max(0.0, due - time.time()) + LATE_AT_MOST + 10)

    start_took = round(seen["victim-start"] - asked, 1) if "victim-start" in seen else None
    cancel_took = round(seen["victim-cancel"] - asked, 1) if "victim-cancel" in seen else None
    late = round(seen["victim-deadline"] - due, 1) if "victim-deadline" in seen else None
    refused = refusals(op) - refused_before
    storm_pods = core.list_namespaced_pod(tenant.namespace).items
    result.figure(f"with {STORM} refusing executions next door (--qps 10): start -> Running {start_took} s, "
                  f"cancel -> Cancelling {cancel_took} s, deadline acted on {late} s late; "
                  f"{refused:.0f} refused tries of the tenant's pods meanwhile (None: not within the bound + 10 s)")
    result.note("fairness: the quota (pods: 0) is the platform's; the tenant only creates Executions, as itself")
    assert op.proc.poll() is None, f"the operator died: {log_tail(op)}"
    assert not storm_pods, "the storm is not real: the tenant's pods were admitted"
    assert refused >= 20 and storm_on_at_due, f"the storm was not on while the bystander acted ({refused} refusals)"
    assert start_took is not None and start_took <= START_WITHIN, f"a new execution took {start_took} s to start"
    assert cancel_took is not None and cancel_took <= CANCEL_WITHIN, f"the cancel took {cancel_took} s"
    assert late is not None and late <= LATE_AT_MOST, f"the deadline was acted on {late} s late"
    assert bystander.wait_phase("victim-cancel", "Cancelled", timeout=60)["cancellation"]["source"] == "spec"
    assert bystander.wait_phase("victim-deadline", "Cancelled", timeout=60)["cancellation"]["source"] == "deadline"


TREE = {"depth": 2, "fanout": 5, "stepSeconds": 3600}  # 1 + 5 + 25 = 31 executions
SLOW_BUDGET = ("--qps", "2", "--burst", "2")
# At two requests a second, taking turns with the Lease, the start-up checks and the tenant's lane: the
# bystander's first child cancel goes out within a few seconds; behind the tenant's cascade, after the
# 20-odd patches queued ahead of it, in about a minute.
REACHED_WITHIN = 15.0


@pytest.mark.threat("cascade-fairness", "a tenant cancels a tree of 31 running executions while the operator's "
                    "client budget is two requests a second", "another namespace's cancel reaches its own "
                    "children within seconds, not behind the tenant's whole cascade")
@pytest.mark.timeout(420)
def test_a_big_cascade_in_one_namespace_does_not_hold_up_anothers(tenant, bystander, operators, fx, custom, result):
    op = operators.start()
    tenant.fx.create(manifest("big", "flux_examples.tree:full", TREE))
    bystander.spawn_tree()

    def tenants(wanted) -> list[dict]:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, tenant.namespace, PLURAL)["items"]
        return [i for i in items if wanted(i)]

    wait_for(lambda: len(tenants(lambda i: (i.get("status") or {}).get("phase") == "Running")) == 31, timeout=180,
             interval=1, what="the tenant's 31 executions to run")
    op.stop()
    operators.start(None, True, *SLOW_BUDGET)
    tenant.fx.cancel("big", "a big cascade")
    wait_for(lambda: tenants(lambda i: i["spec"].get("cancel") and i["metadata"]["name"] != "big"), timeout=60,
             what="the tenant's cascade to be under way")
    asked = time.monotonic()
    bystander.cancel("tree", "the bystander's own cancel")
    below = ("tree-left", "tree-right", "tree-left-leaf", "tree-right-leaf")
    wait_for(lambda: any(bystander.get(n)["spec"].get("cancel") for n in below), timeout=120, interval=0.2,
             what="the bystander's cancel to reach its tree")
    took = time.monotonic() - asked
    left = len(tenants(lambda i: not i["spec"].get("cancel")))
    result.figure(f"--qps 2: the bystander's cancel reached its children {took:.1f} s after it was asked, "
                  f"{left} of the tenant's 30 descendants still to be cancelled then")
    assert took <= REACHED_WITHIN, took
    assert left >= 5, f"the tenant's cascade was over ({left} left): nothing was measured"
