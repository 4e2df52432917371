"""The control plane misbehaves under running and cancelling executions: the API server restarts, etcd
hangs, the node dies. Each fault is real (signals to the real processes, through the supervisor's hooks
in localcluster.faults)."""

from __future__ import annotations

import signal
import time

import pytest
from flux_operator.execution.cancel import ESCALATION_MARGIN_SECONDS
from fluxtest import TERMINAL, longrun, manifest, wait_for
from fluxtest.faults import counted, finished_steps, log_tail, metric, runner_starts, statuses, step_runs, wait_all
from fluxtest.podlogs import RunnerLogs
from localcluster.nodes import choice

pytestmark = pytest.mark.faults


# --- the API server restarted mid-cancel ----------------------------------------------------------------

@pytest.mark.row("apiserver-restart")
@pytest.mark.kubelet
@pytest.mark.timeout(400)
def test_apiserver_restarted_mid_cancel(fx, operators, faults, result):
    """Cancels in flight when the API server goes down (SIGTERM, then SIGKILL after 5 s) must all conclude
    once it is back; the operator's requests in the minute after must stay those of the work left."""
    op = operators.start()
    longruns = [f"restart-{i}" for i in range(4)]  # a cleanup of 3 s, within a grace of 10 s
    stubborn = [f"restart-stubborn-{i}" for i in range(2)]  # Cancelling for their whole 8 s grace
    for name in longruns:
        fx.create(counted(name, steps=600, seconds=0.5, cleanup=3, gracePeriodSeconds=10))
    for name in stubborn:
        fx.create(manifest(name, "flux_examples.stubborn:main", {"onCancel": "ignore"}, gracePeriodSeconds=8))
    names = [*longruns, *stubborn]
    for name in names:
        fx.wait_step(name, timeout=120)
    for name in names:
        fx.cancel(name, "cancelled around an API server restart")
    # Down once every runner has been signalled: each cancel is in the middle of its cleanup or grace.
    wait_all(fx, names, "Cancelling", timeout=30, interval=0.1)
    at_restart = {n: s.get("phase") for n, s in statuses(fx, names).items()}
    # SIGTERM: it stops listening at once and drains; its drain of watches would last a minute, so
    # SIGKILL after 5 s (a restart that a supervisor would have to force anyway).
    down_for = faults.restart("kube-apiserver", sig=signal.SIGTERM, kill_after=5)
    back = time.monotonic()
    requests_back = metric(op, "flux_api_requests")
    final = wait_all(fx, names, *TERMINAL, timeout=120)
    concluded = time.monotonic() - back
    time.sleep(max(0.0, 60 - (time.monotonic() - back)))
    requests_minute = metric(op, "flux_api_requests") - requests_back
    result.figure(f"{requests_minute:.0f} operator API requests in the minute after the restart "
                  f"({len(names)} cancels in flight; API server down {down_for:.1f} s; all concluded "
                  f"{concluded:.1f} s after it was back)")
    result.note(f"phases when the API server went down: {at_restart}; outcomes after: "
                + ", ".join(f"{n}={(final[n].get('cancellation') or {}).get('outcome')}" for n in names))
    outcomes = {n: (final[n].get("phase"), (final[n].get("cancellation") or {}).get("outcome")) for n in names}
    assert all(phase == "Cancelled" for phase, _ in outcomes.values()), f"lost cancels: {outcomes}"
    # The stubborn ones' grace ends while the API server is down: the node reports the kill once it is back,
    # and if that report comes after the escalation margin the operator force-deletes (both are honest).
    assert all(outcomes[n][1] in ("Killed", "ForceDeleted") for n in stubborn), outcomes
    for name in names:
        events = fx.events(name)
        counts = fx.cancel_told(name)
        assert all(c == 1 for c in counts.values()), f"{name}: each Event once, got {counts}"
        assert events.count("Signalled") <= 1, f"{name}: a signal retried is told once: {events}"
    # Lease renewals every 2 s make 30; a retry loop that does not back off makes thousands.
    assert requests_minute <= 300, f"{requests_minute} requests in the minute after: {log_tail(op)}"


# --- etcd paused for 20 s while runners checkpoint ---------------------------------------------------------

STEPS = 30


@pytest.mark.row("etcd-pause")
@pytest.mark.timeout(400)
def test_etcd_paused_during_runs(fx, operators, faults, cluster, result):
    """SIGSTOP etcd for 20 s while four runners checkpoint every 0.5 s, then SIGCONT. Every execution must
    still succeed with each step recorded once, and no runner may redo more than one step."""
    operators.start()
    names = [f"etcd-{i}" for i in range(4)]
    logs = {name: RunnerLogs(fx.core, fx.ns, name) for name in names}  # every run's log, through the API
    for name in names:
        fx.create(counted(name, steps=STEPS, seconds=0.5))
    for name in names:
        fx.wait_step(name, steps=2, timeout=120)
    with faults.paused("etcd"):
        time.sleep(20)
    final = wait_all(fx, names, *TERMINAL, timeout=240)
    reruns, starts, problems = {}, {}, {}
    for name in names:
        runs = step_runs(logs[name])
        reruns[name] = sum(n - 1 for n in runs.values() if n > 1)
        starts[name] = runner_starts(logs[name])
        recorded = finished_steps(final[name].get("checkpoint"))
        expected = [f"step-{i}" for i in range(1, STEPS + 1)]
        if final[name].get("phase") != "Succeeded" or recorded != expected or sorted(runs) != sorted(expected):
            problems[name] = (final[name].get("phase"), final[name].get("message"), recorded, dict(runs))
    result.figure(f"{sum(reruns.values())} step re-runs in all; per runner {reruns} "
                  f"(runner processes started: {starts})")
    assert not problems, problems
    assert all(n <= 1 for n in reruns.values()), f"more than one step re-run by a runner: {reruns}"


# --- the node killed, then a cancel ---------------------------------------------------------------------------

NODE_GRACE = 5


@pytest.mark.row("node-killed")
@pytest.mark.kubelet
@pytest.mark.timeout(300)
def test_node_killed_then_cancel(fx, operators, faults, cluster, core, result):
    """With its node dead, a runner pod can never confirm its end: the operator must force-delete it
    ESCALATION_MARGIN_SECONDS past its grace period and conclude ForceDeleted. The node dies whole: the
    process node with its containers; a real node's kubelet and containerd with their shims and containers."""
    operators.start()
    fx.create(longrun("orphan", seconds=0.5, gracePeriodSeconds=NODE_GRACE))
    fx.wait_step("orphan", timeout=120)
    containers = faults.kill_node()
    try:
        time.sleep(1)
        cancelled = time.monotonic()
        fx.cancel("orphan", "its node died")
        wait_for(lambda: (p := fx.pod("orphan")) is None or p.metadata.deletion_timestamp, timeout=30,
                 what="the runner pod to be deleted (Terminating)")
        status = fx.wait_phase("orphan", *TERMINAL, timeout=NODE_GRACE + ESCALATION_MARGIN_SECONDS + 60)
        took = time.monotonic() - cancelled
        bound = NODE_GRACE + ESCALATION_MARGIN_SECONDS
        result.figure(f"{took:.1f} s from cancel to {status['phase']}/{status['cancellation'].get('outcome')} "
                      f"(grace {NODE_GRACE} s + margin {ESCALATION_MARGIN_SECONDS} s = {bound} s)")
        if cluster.node == "process":
            result.note(f"killed the node process and its {len(containers)} container process(es) with it")
        else:
            result.note(f"killed the kubelet and containerd, and with them the {len(containers)} process(es) of "
                        f"its pods: {', '.join(sorted(containers.values()))}")
        assert status["phase"] == "Cancelled"
        assert status["cancellation"]["outcome"] == "ForceDeleted", status["cancellation"]
        assert status["cancellation"].get("forcedAt")
        assert took <= bound + 5, f"{took:.1f} s > grace + margin ({bound} s) + 5 s of slack"
        assert fx.pod("orphan") is None
        assert fx.events("orphan").count("ForceDeleted") == 1, fx.events("orphan")
    finally:
        faults.start_node()

    def node_ready():
        node = core.read_node(choice.of(cluster).name)
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    wait_for(node_ready, timeout=60, what="the node to be Ready again")
