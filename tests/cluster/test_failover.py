"""Failover on a real cluster: two replicas share one Lease and only its holder acts; a leader killed
mid-cancel loses nothing, nor one killed while executions queue under a limit; an operator that dies between
any two writes of a cancel leaves nothing undone and nothing done twice."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fluxtest import Executions, longrun, wait_for
from fluxtest.identity import OPERATOR_NAMESPACE
from fluxtest.limits import Limits, assert_queued
from fluxtest.operators import CrashingOperator, OperatorProcess, crash_wrapper
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

LEASE_SECONDS = 5  # what OperatorProcess passes as --lease-seconds
# One Event when a cancel is asked for and signalled in one reconcile (the usual case, a restart included);
# a Signalled Event of its own only for a signal retried later, so at most one of those.


def health(op: OperatorProcess) -> dict:
    """The replica's /healthz JSON, red (500) or green."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/healthz", timeout=2) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())


def log_tail(op: OperatorProcess, chars: int = 4000) -> str:
    return op.log_path.read_text(errors="replace")[-chars:] if op.log_path.exists() else "(no log)"


# --- the operators ---------------------------------------------------------------------------------

# The test operators run as the chart's ServiceAccount, whose Leases live in the release namespace.
DEFAULT_LEASE = (OPERATOR_NAMESPACE, os.environ.get("FLUX_LEADER_ELECTION_ID", "flux-operator"))


def default_lease(coordination: client.CoordinationV1Api) -> client.V1LeaseSpec | None:
    """The Lease of every operator that watches all namespaces, as another test session's does."""
    namespace, name = DEFAULT_LEASE
    try:
        return coordination.read_namespaced_lease(name, namespace).spec
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def held(spec: client.V1LeaseSpec | None) -> str | None:
    """Its holder, while the holder keeps renewing it."""
    if spec is None or not spec.holder_identity or spec.renew_time is None:
        return None
    age = (datetime.now(timezone.utc) - spec.renew_time).total_seconds()
    return spec.holder_identity if age <= (spec.lease_duration_seconds or 0) else None


def record(spec: client.V1LeaseSpec | None) -> tuple | None:
    return spec and (spec.holder_identity, spec.renew_time, spec.lease_transitions)


@pytest.fixture(scope="module")
def alone(operator, api) -> client.CoordinationV1Api:
    """The session's operator stopped for the module, and started again at its end.

    An operator of another test session on the same cluster, watching every namespace, would act on
    ours too: nothing could be observed then (see `isolated`)."""
    operator.stop()  # releases the default Lease if it held it
    try:
        time.sleep(2.5)  # a standby elsewhere would take the released Lease, and renew it, by now
        yield client.CoordinationV1Api(api)
    finally:
        operator.start()


@pytest.fixture
def isolated(alone):
    """Skips while another session's operator acts on every namespace; an error if one did meanwhile."""
    before = default_lease(alone)
    if (holder := held(before)) is not None:
        pytest.skip(f"another operator, {holder}, acts on every namespace of this cluster")
    yield
    after = default_lease(alone)
    if record(after) != record(before):  # ours is stopped: whoever wrote the Lease is someone else
        raise AssertionError(f"another operator, {after.holder_identity or '(since released)'}, took the Lease "
                             f"{'/'.join(DEFAULT_LEASE)} during the test and so acted on our namespace too: "
                             f"this outcome says nothing about failover")


@pytest.fixture
def fx(custom, core, namespace, isolated) -> Executions:
    return Executions(custom, core, namespace)


@pytest.fixture
def lease_args(namespace) -> list[str]:
    """One Lease of this test's own (in the release namespace: the chart's RBAC allows Leases only there), and
    only this test's namespace watched: the replicas elect among themselves and touch nothing of any other test."""
    return ["--namespace", namespace, "--leader-election-namespace", OPERATOR_NAMESPACE,
            "--leader-election-id", f"failover-{uuid.uuid4().hex[:8]}"]


@pytest.fixture
def replicas(operator_env, cluster, lease_args):
    """Starts operators sharing `lease_args`' Lease, each with a log of its own; kills them at the end."""
    started: list[OperatorProcess] = []

    def start(cls=OperatorProcess, **attrs) -> OperatorProcess:
        op = cls(operator_env, cluster.logs)
        for key, value in attrs.items():
            setattr(op, key, value)
        op.log_path = cluster.logs / f"failover-{lease_args[-1]}-{len(started)}.log"
        started.append(op)
        op.start(*lease_args)
        return op

    yield start
    for op in started:
        op.stop(kill=True)


def one_leader(*ops: OperatorProcess) -> tuple[OperatorProcess, list[OperatorProcess]]:
    """Waits until exactly one replica leads and every other one names it as the holder."""
    def settled():
        reports = [health(op) for op in ops]
        leaders = [op for op, r in zip(ops, reports) if r["leader"]]
        if len(leaders) != 1:
            return None
        holder = health(leaders[0])["identity"]
        return reports if all(r["holder"] == holder for r in reports) else None
    reports = wait_for(settled, timeout=30, what="exactly one leader among the replicas")
    assert sum(r["leader"] for r in reports) == 1, reports
    leader = next(op for op, r in zip(ops, reports) if r["leader"])
    return leader, [op for op in ops if op is not leader]


def assert_once(fx: Executions, name: str, *reasons: str) -> list[str]:
    events = fx.events(name)
    counts = {**{reason: events.count(reason) for reason in reasons}, **fx.cancel_told(name)}
    assert all(n == 1 for n in counts.values()), f"{name}: each event once, got {counts} (all: {events})"
    assert events.count("Signalled") <= 1, f"{name}: {events}"
    return events


def cancelling_under_a_leader(fx: Executions, replicas, prefix: str, count: int):
    """Where both failover tests start: two replicas, one leading, and `count` executions running, then cancelled."""
    first, second = replicas(), replicas()
    leader, (standby,) = one_leader(first, second)
    names = [f"{prefix}-{i}" for i in range(count)]
    for name in names:
        fx.create(longrun(name, seconds=0.5, gracePeriodSeconds=10))
    for name in names:
        fx.wait_step(name, timeout=90)
    for name in names:
        fx.cancel(name, "failover test")
    return leader, standby, names


# --- only the holder of the Lease acts -------------------------------------------------------------

def test_only_the_leader_acts_and_each_event_appears_once(fx, replicas):
    leader, standby, names = cancelling_under_a_leader(fx, replicas, "solo", 3)
    for name in names:
        status = fx.wait_phase(name, "Cancelled", timeout=90)
        assert status["cancellation"]["outcome"] == "Graceful", status["cancellation"]
    assert health(leader)["leader"] and not health(standby)["leader"], "the Lease changed hands meanwhile"
    for name in names:
        assert_once(fx, name, "Started")
    # The standby watched all of it and wrote nothing: no transition, no error about any execution.
    acted = [line for line in standby.log_path.read_text().splitlines() if f"execution {fx.ns}/" in line]
    assert not acted, f"the standby acted: {acted}"
    assert any(f"execution {fx.ns}/" in line for line in leader.log_path.read_text().splitlines())


# --- the leader dies mid-cancel --------------------------------------------------------------------

def test_leader_killed_mid_cancel_loses_nothing(fx, replicas):
    leader, standby, names = cancelling_under_a_leader(fx, replicas, "kill", 5)
    killed_at = time.monotonic()
    leader.stop(kill=True)
    at_kill = {name: (fx.phase(name), fx.events(name)) for name in names}
    wait_for(lambda: health(standby)["leader"], timeout=LEASE_SECONDS + 2 + 15,
             what=f"the standby to take over (log: {standby.log_path})")
    takeover = time.monotonic() - killed_at
    print(f"\nfailover: standby took over {takeover:.1f}s after the leader was killed; "
          f"state right after the kill: {at_kill}")
    assert takeover <= LEASE_SECONDS + 2 + 3, f"takeover took {takeover:.1f}s (lease {LEASE_SECONDS}s)"
    for name in names:
        status = fx.wait_phase(name, "Cancelled", timeout=90)
        assert status["cancellation"]["outcome"] == "Graceful", (name, status["cancellation"], at_kill[name])
    for name in names:
        events = fx.events(name)
        counts = {"Started": events.count("Started"), **fx.cancel_told(name)}
        assert all(n == 1 for n in counts.values()) and events.count("Signalled") <= 1, (
            f"{name}: each event once, got {counts} (all: {events}; right after the kill: {at_kill[name]}; "
            f"takeover {takeover:.1f}s)")


# --- the leader dies while executions wait under a ConcurrencyLimit --------------------------------

def test_leader_killed_while_executions_queue_the_standby_keeps_the_same_queue(fx, replicas, custom):
    """The count is derived from the cluster, not remembered: the standby admits no more than `max`, keeps
    the line's order, and takes in one created while no replica led."""
    leader, (standby,) = one_leader(replicas(), replicas())
    limits = Limits(custom, fx.ns)
    limits.create("solo", 1)
    fx.create(longrun("q-0", seconds=0.5))
    fx.wait_phase("q-0", "Running", timeout=90)
    for name in ("q-1", "q-2"):
        fx.create(longrun(name, seconds=0.5))
        assert_queued(fx, name, "waiting: 1 of 1 running under limit solo")
    leader.stop(kill=True)
    fx.create(longrun("q-3", seconds=0.5))  # while the Lease is still the dead leader's
    wait_for(lambda: health(standby)["leader"], timeout=LEASE_SECONDS + 2 + 15,
             what=f"the standby to take over (log: {standby.log_path})")
    assert_queued(fx, "q-3", "waiting: 1 of 1 running under limit solo")
    limits.wait_usage("solo", 1, 3)
    assert [fx.pod(n) for n in ("q-1", "q-2")] == [None, None], "the new leader admitted more than max"
    fx.cancel("q-0", "hand over")
    fx.wait_phase("q-1", "Running", timeout=30)
    limits.wait_usage("solo", 1, 2)
    for name in ("q-2", "q-3"):
        assert fx.phase(name) == "Pending" and fx.pod(name) is None, f"{name} started beside q-1"
    assert fx.events("q-1").count("Started") == 1, fx.events("q-1")


# --- the operator dies between any two writes of a cancel ------------------------------------------

# The operator dying right after any one of its writes (fluxtest.operators.crash_wrapper).
WRAPPER = crash_wrapper("""
api.delete_pod = wrap(api.delete_pod, lambda namespace, name, *a, **k: "delete-pod")
api.emit_event = wrap(api.emit_event, lambda involved, name, type_, reason, message, **k: f"event:{reason}")
api.patch_status = wrap(api.patch_status,
                        lambda namespace, name, status, resource_version: f"status:{status.get('phase')}")
api.create = wrap(api.create, lambda body: f"create:{body['kind']}")
api.patch_execution = wrap(api.patch_execution, lambda namespace, name, patch: "patch-execution")
""")


# The writes of cancelling a running leaf, in the order the operator makes them.
# The CancelRequested Event is not among them: a cancel that concludes within TOLD_AFTER_SECONDS is told by the
# Cancelled Event alone.
CRASH_POINTS = ["delete-pod", "status:Cancelling", "event:Cancelled", "status:Cancelled"]


def written(log: Path) -> list[str]:
    return [line.split("flux-test: wrote ", 1)[1] for line in log.read_text(errors="replace").splitlines()
            if "flux-test: wrote " in line]


@pytest.mark.parametrize("point", CRASH_POINTS, ids=[f"{i}-{p.replace(':', '-')}" for i, p in
                                                     enumerate(CRASH_POINTS, 1)])
def test_operator_killed_between_each_pair_of_writes(fx, replicas, point):
    crashing = replicas(CrashingOperator, wrapper=WRAPPER, crash_after=point)
    wait_for(lambda: health(crashing)["leader"], timeout=30, what="the crashing operator to lead")
    # Long steps: the runner reaches no step boundary (where it would see spec.cancel by itself and
    # stop before any delete) in the second the operator needs to signal it.
    fx.create(longrun("crash", seconds=4, gracePeriodSeconds=10))
    fx.wait_step("crash", timeout=90)
    fx.cancel("crash", "crash test")
    try:
        crashing.proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the operator never wrote {point}: {log_tail(crashing)}") from None
    assert crashing.proc.returncode == 137, log_tail(crashing)
    writes = written(crashing.log_path)
    # The writes of the cancel, up to the crash (the delete first, unless the runner beat it to it).
    start = writes.index("delete-pod") if "delete-pod" in writes else 0
    cancel = writes[start:]
    # The crash line itself can be lost with the process (os._exit); what was logged must end at the point.
    assert not cancel or cancel[-1] == point or point not in cancel, cancel
    crashed = (fx.phase("crash"), fx.events("crash"), fx.pod("crash") is not None)

    restarted = replicas()  # waits the dead one's Lease out, as after a real crash
    status = fx.wait_phase("crash", "Cancelled", timeout=90)
    detail = (f"crashed after {cancel} (then phase {crashed[0]}, events {crashed[1]}, pod there: {crashed[2]}); "
              f"logs {crashing.log_path}, {restarted.log_path}")
    assert status["cancellation"]["outcome"] == "Graceful", f"{status['cancellation']}; {detail}"
    events = fx.events("crash")
    counts = fx.cancel_told("crash")
    assert all(n == 1 for n in counts.values()), f"each event once, got {counts} (all: {events}); {detail}"
    assert "Signalled" not in events, f"a restart signals in the request's reconcile: one Event; {detail}"
