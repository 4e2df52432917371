"""Lease election: one leader, a standby that waits the lease out, compare-and-swap on every write."""

from __future__ import annotations

import copy
import json
import threading
import time

import httpx
import pytest
from flux_operator.budget import LEASE_LANE, current_lane
from flux_operator.health import Health
from flux_operator.kube import KubeApi
from flux_operator.kubeconfig import ClientConfig
from flux_operator.leader import LeaderElector

pytestmark = pytest.mark.unit

LEASES = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"


class FakeLeases:
    """coordination.k8s.io/v1 over HTTP as the API server does it: resourceVersion checked on PUT."""

    def __init__(self) -> None:
        self.lease: dict | None = None
        self.rv = 0
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        path, method = request.url.path, request.method
        if method == "GET" and path == f"{LEASES}/flux-operator":
            return self._answer(200) if self.lease else self._status(404, "NotFound")
        if method == "POST" and path == LEASES:
            if self.lease is not None:
                return self._status(409, "AlreadyExists")
            return self._store(json.loads(request.content))
        if method == "PUT" and path == f"{LEASES}/flux-operator":
            body = json.loads(request.content)
            if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
                return self._status(409, "Conflict")
            return self._store(body)
        return self._status(405, "MethodNotAllowed")

    def _store(self, body: dict) -> httpx.Response:
        self.rv += 1
        self.lease = {**copy.deepcopy(body), "metadata": {**body["metadata"], "resourceVersion": str(self.rv)}}
        return self._answer(200)

    def _answer(self, code: int) -> httpx.Response:
        return httpx.Response(code, json=self.lease)

    @staticmethod
    def _status(code: int, reason: str) -> httpx.Response:
        return httpx.Response(code, json={"kind": "Status", "status": "Failure", "reason": reason, "code": code,
                                          "message": reason})


def elector(leases: FakeLeases, identity: str, duration: float = 1.0) -> LeaderElector:
    api = KubeApi(ClientConfig(server="https://api.test"), transport=httpx.MockTransport(leases))
    return LeaderElector(api, "ns", "flux-operator", identity, duration=duration, renew_deadline=duration * 2 / 3,
                         retry=0.05, renew_every=0.1)


def step(e: LeaderElector) -> bool:
    won = e.try_acquire_or_renew()
    if won and not e.leading:
        e._leading.set()
    return won


def test_first_comer_leads_and_the_other_waits() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    assert step(a)
    assert not step(b)
    assert b.holder == "a"


def test_the_leader_renews_without_reading() -> None:
    leases = FakeLeases()
    a = elector(leases, "a")
    step(a)
    before = leases.requests
    assert step(a)
    assert leases.requests == before + 1, "one write per renewal, no read"


def test_a_standby_takes_over_once_the_lease_runs_out() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    step(a)
    assert not step(b)
    time.sleep(1.1)  # a is dead: no renewal for longer than the lease
    assert step(b)
    assert leases.lease["spec"]["holderIdentity"] == "b"
    assert leases.lease["spec"]["leaseTransitions"] == 1


def test_a_renewing_leader_keeps_the_lease() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    step(a)
    for _ in range(4):
        time.sleep(0.4)
        assert step(a)
        assert not step(b)


def test_two_racing_for_one_lease_cannot_both_win() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    step(a)
    assert not step(b)
    time.sleep(1.1)
    stale = copy.deepcopy(leases.lease)
    assert step(b)
    # a writes from what it read before b took over: a Conflict, not a second leader
    a._lease = stale
    assert not a.try_acquire_or_renew()


def test_release_hands_over_at_once() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a", duration=30), elector(leases, "b", duration=30)
    step(a)
    step(b)
    a.release()
    assert not a.leading
    assert step(b), "no need to wait out the 30 s lease"


def test_the_lease_is_written_in_its_own_lane_of_the_budget() -> None:
    """The Lease's lane goes before every namespace's (budget.py): renewals never queue behind tenants."""
    leases, lanes = FakeLeases(), []

    def recording(request: httpx.Request) -> httpx.Response:
        lanes.append(current_lane())
        return leases(request)

    api = KubeApi(ClientConfig(server="https://api.test"), transport=httpx.MockTransport(recording))
    e = LeaderElector(api, "ns", "flux-operator", "a", duration=1.0, renew_deadline=0.6, retry=0.05,
                      renew_every=0.05)
    runner = threading.Thread(target=e.run)
    runner.start()
    deadline = time.monotonic() + 5
    while len(lanes) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    e.stop()
    runner.join(5)
    assert len(lanes) >= 4 and set(lanes) == {LEASE_LANE}, lanes
    assert leases.lease["spec"]["holderIdentity"] == "", "released on the way out, in the same lane"


def test_health_is_red_while_the_api_is_silent_or_a_problem_is_set() -> None:
    contact = [time.monotonic()]
    health = Health("me", lambda: contact[0], lambda: True, lambda: "me", lambda: 0, stale_after=30)
    ok, body = health.report()
    assert ok and body["leader"] and body["holder"] == "me"
    contact[0] -= 31
    ok, body = health.report()
    assert not ok and "api" in body["problems"]
    contact[0] = time.monotonic()
    health.set_problem("crd", "not installed")
    assert health.report()[0] is False
    health.set_problem("crd", None)
    assert health.report()[0] is True
