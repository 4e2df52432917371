"""A namespace user who may manage pods (as `edit` grants) churns them: every pod made, changed or deleted is a
watch event on pods. The operator asks the API server for runner pods only (handlers.pods_served_only), so
none of them reaches it. Before, kopf filtered the runner label in the client: the operator received and
decoded every pod of every namespace it served, only to drop it, so one tenant's churn cost it for everyone.
"""

from __future__ import annotations

import time

import pytest
from fluxtest import longrun, wait_for
from fluxtest.faults import health, log_tail, metric
from fluxtest.tenancy import grant
from kubernetes import client

PODS = 40
CHANGES = 4
NOWHERE = {"flux.test/node": "none"}  # no node has it: the pods stay Pending and run nothing


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "churn"}},
            "spec": {"nodeSelector": NOWHERE, "containers": [{"name": "c", "image": "registry.invalid/none:0"}]}}


@pytest.mark.threat("pod-churn", f"a tenant who may manage pods (as `edit` grants) makes {PODS} pods, changes each "
                    f"{CHANGES} times and deletes them, while another namespace's execution starts",
                    "no event of theirs reaches the operator (its pod watch asks the API server for runner pods "
                    "only); the other namespace's runner pod events do, and its execution runs")
@pytest.mark.timeout(240)
def test_a_tenants_pod_churn_never_reaches_the_operator(api, tenant, bystander, operators, result):
    op = operators.start()
    grant(api, tenant.namespace, tenant.user, [{"apiGroups": [""], "resources": ["pods"],
                                                "verbs": ["create", "patch", "delete"]}])
    core = client.CoreV1Api(tenant.api)
    theirs, runners = f'stream="pods@{tenant.namespace}"', f'stream="pods@{bystander.ns}"'
    before = metric(op, "flux_watch_events_total", theirs), metric(op, "flux_watch_events_total", runners)
    names = [f"churn-{i}" for i in range(PODS)]
    for name in names:
        core.create_namespaced_pod(tenant.namespace, pod(name))
    bystander.create(longrun("bystander", steps=4, seconds=0.5))
    for change in range(CHANGES):
        for name in names:
            core.patch_namespaced_pod(name, tenant.namespace, {"metadata": {"annotations": {"churn": str(change)}}})
    for name in names:
        core.delete_namespaced_pod(name, tenant.namespace, grace_period_seconds=0)
    churned = PODS * (CHANGES + 2)  # at least: made, changed, deleted; the scheduler's notes come on top
    done = bystander.wait_phase("bystander", "Succeeded", "Failed", "Cancelled", timeout=90)
    time.sleep(2)  # the churn's last events, were any on their way
    heard = wait_for(lambda: metric(op, "flux_watch_events_total", runners) - before[1] or None, timeout=10,
                     what="the bystander's runner pod events counted")
    reached = metric(op, "flux_watch_events_total", theirs) - before[0]
    code, report = health(op)  # and the tenant's pod watch was open all along: nothing kept events away
    restarts = metric(op, "flux_watch_restarts_total", theirs)
    result.figure(f"{PODS} pods made, changed {CHANGES} times and deleted (at least {churned} pod events): "
                  f"{reached:.0f} reached the operator; the bystander's runner pod brought {heard:.0f}, and its "
                  f"execution {done['phase']}")
    assert reached == 0, f"{reached} of the tenant's pod events reached the operator: {log_tail(op, 800)}"
    assert done["phase"] == "Succeeded", done
    assert code == 200 and restarts == 0, (code, report, restarts)
