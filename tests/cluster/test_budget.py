"""The client budget on a real cluster: when it is short, an execution's Events wait and the work they tell of
does not; every Event still arrives, with the time of its decision (deferred.py)."""

from __future__ import annotations

from datetime import datetime

import pytest
from fluxtest import Executions, manifest, wait_for
from fluxtest.faults import metric
from fluxtest.operators import OperatorProcess

pytestmark = pytest.mark.cluster

RUNS = 6


@pytest.fixture
def tight(cluster, crd_installed, operator_env):
    """An operator whose budget (3 requests a second) is the limit for a handful of executions."""
    op = OperatorProcess(operator_env, cluster.logs)
    op.start("--qps", "3", "--burst", "3")
    yield op
    op.stop()


def test_a_short_budget_defers_events_behind_the_work_and_loses_none(tight, custom, core, namespace):
    fx = Executions(custom, core, namespace)
    names = [f"run-{i}" for i in range(RUNS)]
    for name in names:
        fx.create(manifest(name, "flux_examples.quick:main"))
    deferred: list[float] = []

    def finished():
        deferred.append(metric(tight, "flux_events_deferred"))
        return all(fx.phase(name) == "Succeeded" for name in names) or None
    wait_for(finished, timeout=300, interval=0.2, what=f"{RUNS} executions Succeeded on 3 requests a second")
    assert max(deferred) >= 1, f"no Event ever waited: the budget was not short ({deferred})"

    def told():
        reasons = {name: fx.events(name) for name in names}
        return reasons if all("Started" in r for r in reasons.values()) else None
    wait_for(told, timeout=120, interval=1, what="every execution's Started Event")
    wait_for(lambda: metric(tight, "flux_events_deferred") == 0, timeout=60, what="nothing left waiting")
    assert metric(tight, "flux_events_dropped_total") == 0
    for name in names:
        started = fx.status(name)["startedAt"]
        event = next(e for e in core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
                     if e.reason == "Started")
        at = datetime.fromisoformat(started.replace("Z", "+00:00"))
        assert abs((event.first_timestamp - at).total_seconds()) < 2, "the time of the decision, not of the post"
