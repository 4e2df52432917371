"""The operator dies between a create and the write that records what it made (the UID): its successor finds
the object, recognises it by the creation token whose hash was recorded before the create, and goes on. A
forged object under the same name would not carry that token (tests/hostile/test_ownership.py)."""

from __future__ import annotations

import subprocess

import pytest
from fluxtest import manifest, wait_for
from fluxtest.operators import CrashingOperator, crash_wrapper
from tests.cluster.test_failover import (  # noqa: F401 (fixtures)
    alone,
    fx,
    health,
    isolated,
    lease_args,
    log_tail,
    replicas,
)

pytestmark = pytest.mark.cluster

# The operator with its creates wrapped (fluxtest.operators.crash_wrapper): it dies right after the create
# named by FLUX_TEST_CRASH_AFTER reached the API server (one that made something), before anything records it.
WRAPPER = crash_wrapper("""
api.create = wrap(api.create, lambda body: f"create:{body['kind']}")
api.make_execution = wrap(api.make_execution, lambda namespace, body: "create:Execution")
""", only_if_made=True)


CASES = {
    "create:ServiceAccount": manifest("gap", "flux_examples.quick:main"),  # Role, binding and pod not made yet
    "create:Pod": manifest("gap", "flux_examples.quick:main"),  # all made, the pod's UID not recorded
    "create:Execution": manifest("gap", "flux_examples.tree:main", {"steps": 1, "stepSeconds": 0.1}),  # a child
}


@pytest.mark.parametrize("point", list(CASES), ids=[p.replace(":", "-") for p in CASES])
@pytest.mark.timeout(240)
def test_a_successor_recognises_what_was_made_before_the_crash(fx, replicas, point):
    crashing = replicas(CrashingOperator, wrapper=WRAPPER, crash_after=point)
    wait_for(lambda: health(crashing)["leader"], timeout=30, what="the crashing operator to lead")
    fx.create(CASES[point])
    try:
        crashing.proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the operator never wrote {point}: {log_tail(crashing)}") from None
    successor = replicas()  # waits the dead one's Lease out
    status = fx.wait_phase("gap", "Succeeded", "Failed", "Cancelled", timeout=120)
    detail = f"logs {crashing.log_path}, {successor.log_path}: {status.get('message')}"
    assert status["phase"] == "Succeeded", detail
    assert "RunnerRefused" not in fx.events("gap"), detail
    if point == "create:Execution":
        assert all(c.get("uid") for c in status["children"]), status["children"]
    else:
        assert len(status["runnerObjects"]["serviceAccount"]["tokens"]) == 2 or point == "create:Pod", \
            "the successor's token beside the first one's"
