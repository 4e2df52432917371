"""ConcurrencyLimits whose selectors are as large as the schema allows, in a namespace full of executions: every
decision in that namespace weighs each limit's selector against each execution's labels. The operator is shared, and
its decisions hold one interpreter: one namespace's limits must not buy it minutes of CPU."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flux_api import GROUP, VERSION
from fluxtest import longrun
from fluxtest.faults import log_tail, metric
from fluxtest.tenancy import grant
from kubernetes import client

from tests.hostile.test_fairness import first_seen

LIMITS = 16  # the most a namespace has applied
EXECUTIONS = 300
MATCHED = {f"team-{i:02d}": "t" * 63 for i in range(32)}  # 32 matchLabels, the schema's most
# 32 NotIn expressions with 128 values in all: every one weighed, none excluding (the labels hold other values).
EXPRESSIONS = [{"key": f"tier-{j:02d}", "operator": "NotIn", "values": [f"no-{j}-{v}" for v in range(4)]}
               for j in range(32)]
LABELS = {**MATCHED, **{f"tier-{j:02d}": "yes" for j in range(32)}}  # 2.7 KB, under the 4 KB the World keeps
CPU_WITHIN = 20.0  # seconds of the operator's CPU for the whole burst; before the fix: minutes
START_WITHIN = 20.0


def _limit(i: int) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ConcurrencyLimit", "metadata": {"name": f"l{i:02d}"},
            "spec": {"max": 1, "selector": {"matchLabels": MATCHED, "matchExpressions": EXPRESSIONS}}}


def _execution(i: int) -> dict:
    body = longrun(f"q{i:03d}", steps=600, seconds=0.5)
    # A label of its own each: nothing to share between executions.
    body["metadata"]["labels"] = {**LABELS, "n": str(i)}
    return body


@pytest.mark.threat("limit-selectors", f"a tenant who may make ConcurrencyLimits makes {LIMITS} of max 1 with the "
                    f"largest selectors the schema allows (192 terms each), then {EXECUTIONS} executions they all "
                    "count, each with labels of its own",
                    "the limits past 256 selector terms in a namespace say they are not applied; the operator's CPU "
                    "for the whole burst stays within seconds; another namespace's execution starts within seconds")
@pytest.mark.timeout(300)
def test_limits_with_the_largest_selectors_do_not_buy_the_operator_minutes(api, tenant, fx, bystander, operators,
                                                                           result):
    ns = tenant.namespace
    grant(api, ns, tenant.user, [{"apiGroups": [GROUP], "resources": ["concurrencylimits"], "verbs": ["create"]}])
    op = operators.start()
    limits = client.CustomObjectsApi(tenant.api)
    for i in range(LIMITS):
        limits.create_namespaced_custom_object(GROUP, VERSION, ns, "concurrencylimits", _limit(i))
    cpu_before, began = metric(op, "process_cpu_seconds_total"), time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: tenant.fx.create(_execution(i)), range(EXECUTIONS)))
    asked = time.time()
    bystander.create(longrun("victim-start", steps=600, seconds=0.5))
    seen = first_seen(bystander, {"victim-start": ("Running",)}, START_WITHIN + 10)

    def decided() -> int:  # queued behind the one applied limit: the operator has decided each one
        items = fx.custom.list_namespaced_custom_object(GROUP, VERSION, ns, "executions")["items"]
        return sum(1 for x in items if (x.get("status") or {}).get("phase") in ("Pending", "Running")
                   and ((x.get("status") or {}).get("message", "").startswith("waiting: ")
                        or x["status"]["phase"] == "Running"))
    deadline, done = time.monotonic() + 120, 0
    while time.monotonic() < deadline and (done := decided()) < EXECUTIONS:
        time.sleep(1)
    took, cpu = time.monotonic() - began, metric(op, "process_cpu_seconds_total") - cpu_before
    shown = {x["metadata"]["name"]: (x.get("status") or {}).get("message") or "" for x in fx.custom.
             list_namespaced_custom_object(GROUP, VERSION, ns, "concurrencylimits")["items"]}
    left_out = sorted(name for name, message in shown.items() if "at most 256 selector terms" in message)
    start_took = round(seen["victim-start"] - asked, 1) if "victim-start" in seen else None
    result.figure(f"{len(shown) - len(left_out)} limit applied, {len(left_out)} not (256 selector terms); {done} of "
                  f"{EXECUTIONS} decided in {took:.0f} s; operator CPU {cpu:.1f} s for the burst; another "
                  f"namespace's start -> Running {start_took} s")
    assert op.proc.poll() is None, f"the operator died: {log_tail(op)}"
    assert left_out == [f"l{i:02d}" for i in range(1, LIMITS)], shown
    assert done == EXECUTIONS, f"only {done} of {EXECUTIONS} decided in {took:.0f} s"
    assert cpu <= CPU_WITHIN, f"the operator spent {cpu:.1f} s of CPU on one namespace's burst"
    assert start_took is not None and start_took <= START_WITHIN, f"another namespace's start took {start_took} s"
