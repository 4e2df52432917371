"""Durable sleeps on a real cluster: a two-minute ctx.sleep holds no pod, and a new pod goes on after it."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from fluxtest import Executions, manifest, wait_for
from fluxtest.operators import OperatorProcess

pytestmark = pytest.mark.cluster


@pytest.fixture
def fx(custom, core, namespace, operator) -> Executions:
    return Executions(custom, core, namespace)


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.fixture
def quick_waits(operator, cluster, core, custom, namespace, operator_env) -> Executions:
    """The session's operator stopped for the test, and in its stead one whose durable waits begin at 10 s (the
    least the flag takes)."""
    operator.stop()  # releases the Lease the new one takes
    try:
        op = OperatorProcess(operator_env, cluster.logs)
        op.log_path = cluster.logs / f"quick-waits-{namespace}.log"
        op.start("--durable-wait-after", "10")
        try:
            yield Executions(custom, core, namespace)
        finally:
            op.stop()
    finally:
        operator.start()


def test_a_sleep_past_the_threshold_holds_no_pod_and_goes_on_after_it(quick_waits):
    """The two-minute sleep below, at the operator's least threshold: what `make test` runs."""
    fx = quick_waits
    fx.create(manifest("nap", "flux_examples.nap:main", {"sleepSeconds": 25, "stepsBefore": 1, "stepsAfter": 1}))
    status = fx.wait_phase("nap", "Waiting", timeout=60)
    wake = at(status["checkpoint"]["wakeAt"])
    wait_for(lambda: fx.pod("nap") is None, timeout=30, what="the runner pod to be gone while it sleeps")
    while (datetime.now(timezone.utc) - wake).total_seconds() < -2:  # no pod comes back before the wake time
        assert fx.phase("nap") == "Waiting" and fx.pod("nap") is None
        time.sleep(1)
    status = fx.wait_phase("nap", "Succeeded", timeout=90)
    steps = status["checkpoint"]["steps"]
    assert [s["name"] for s in steps] == ["before-1", "sleep-1", "after-1"]
    assert at(steps[2]["completedAt"]) >= wake, "the step after it ran only after the wake time"
    assert fx.events("nap").count("Woken") == 1


@pytest.mark.minutes
def test_a_two_minute_sleep_holds_no_pod_and_goes_on_after_it(fx):
    fx.create(manifest("nap", "flux_examples.nap:main", {"sleepSeconds": 120, "stepsBefore": 2, "stepsAfter": 2}))
    status = fx.wait_phase("nap", "Waiting", timeout=60)
    wake = status["checkpoint"]["wakeAt"]
    assert status["message"] == f"sleeping until {wake}"
    before = status["checkpoint"]["steps"]
    assert [s["name"] for s in before] == ["before-1", "before-2", "sleep-1"]
    wait_for(lambda: fx.pod("nap") is None, timeout=30, what="the runner pod to be gone while it sleeps")
    for _ in range(10):  # no pod comes back before the wake time
        time.sleep(5)
        assert fx.phase("nap") == "Waiting" and fx.pod("nap") is None
    status = fx.wait_phase("nap", "Succeeded", timeout=150)
    steps = status["checkpoint"]["steps"]
    assert [s["name"] for s in steps] == ["before-1", "before-2", "sleep-1", "after-1", "after-2"]
    assert steps[:3] == before, "nothing before the sleep ran again"
    assert at(steps[3]["completedAt"]) >= at(wake), "the steps after it ran only after the wake time"
    assert status["checkpoint"]["result"] == {"stepsBefore": 2, "stepsAfter": 2}
    reasons = fx.events("nap")
    assert reasons.count("Waiting") == 1 and reasons.count("Woken") == 1


def test_a_cancel_while_waiting_ends_it_at_once(fx):
    fx.create(manifest("dozing", "flux_examples.nap:main", {"sleepSeconds": 3600, "stepsBefore": 1}))
    fx.wait_phase("dozing", "Waiting", timeout=60)
    # Until its last pod is gone the cancel goes the usual way (outcome Graceful: nothing was cut).
    wait_for(lambda: fx.pod("dozing") is None, timeout=30, what="the runner pod to be gone")
    fx.cancel("dozing", "woken up for nothing")
    status = fx.wait_phase("dozing", "Cancelled", timeout=30)
    assert status["cancellation"]["outcome"] == "WhileWaiting"
    assert status["message"] == "cancelled while waiting: woken up for nothing"


def test_a_suspend_while_waiting_and_its_resume_sleep_on(fx):
    fx.create(manifest("deep", "flux_examples.nap:main", {"sleepSeconds": 3600, "stepsBefore": 1}))
    wake = fx.wait_phase("deep", "Waiting", timeout=60)["checkpoint"]["wakeAt"]
    fx.patch("deep", {"spec": {"suspend": True}})
    assert fx.wait_phase("deep", "Suspended", timeout=30)["suspension"]["outcome"] == "Graceful"
    fx.patch("deep", {"spec": {"suspend": False}})
    status = wait_for(lambda: (s := fx.status("deep")).get("phase") == "Waiting" and
                      (s.get("suspension") or {}).get("resumedAt") and s, timeout=60,
                      what="the resumed execution to sleep on")
    assert status["checkpoint"]["wakeAt"] == wake, "the same sleep, the same wake time"
    assert [s["name"] for s in status["checkpoint"]["steps"]] == ["before-1", "sleep-1"], "nothing ran twice"
