"""Events the client budget had no token to spare for: posted later, oldest first, behind every other request."""

from __future__ import annotations

import threading

import pytest
from flux_api.errors import Failure
from flux_operator import budget
from flux_operator.deferred import DeferredEvents
from flux_operator.kube import ApiFailure

pytestmark = pytest.mark.unit


def event(name: str, namespace: str = "ns") -> dict:
    return {"metadata": {"name": name}, "reason": "Started", "involvedObject": {"namespace": namespace, "name": name}}


def test_deferred_events_are_posted_oldest_first_in_the_background_lane() -> None:
    posted, lanes, gate = [], [], threading.Event()

    def post(body: dict) -> bool:
        gate.wait(5)
        posted.append(body["metadata"]["name"])
        lanes.append(budget.current_lane())
        return True
    events = DeferredEvents(post)
    for name in ("a", "b", "c"):
        events.add(event(name))
    assert events.pending() == 3 and posted == []
    gate.set()
    assert events.wait_posted(5)
    assert posted == ["a", "b", "c"] and set(lanes) == {budget.BACKGROUND_LANE}
    assert events.pending() == 0


def test_a_refused_event_is_logged_and_the_next_one_still_goes(caplog) -> None:
    posted = []

    def post(body: dict) -> bool:
        if body["metadata"]["name"] == "bad":
            raise ApiFailure("post event", Failure.FORBIDDEN, "events are forbidden")
        if body["metadata"]["name"] == "odd":
            raise ValueError("a bug")
        posted.append(body["metadata"]["name"])
        return True
    events = DeferredEvents(post)
    for name in ("bad", "odd", "good"):
        events.add(event(name))
    assert events.wait_posted(5)
    assert posted == ["good"]
    assert "deferred Event bad not posted: post event" in caplog.text and "deferred Event odd" in caplog.text


def test_past_its_capacity_the_oldest_are_dropped_and_counted(caplog) -> None:
    gate, posted, drops = threading.Event(), [], []

    def post(body: dict) -> bool:
        gate.wait(5)
        posted.append(body["metadata"]["name"])
        return True
    events = DeferredEvents(post, capacity=2, on_drop=lambda: drops.append(1))
    events.add(event("first"))  # taken by the thread at once, then held at the gate
    assert not events.wait_posted(0.2)
    for name in ("a", "b", "c", "d"):
        events.add(event(name))
    gate.set()
    assert events.wait_posted(5)
    assert posted == ["first", "c", "d"] and events.dropped == 2 and len(drops) == 2
    assert "1 deferred Event(s) dropped: more than 2 waited" in caplog.text


def test_one_namespaces_flood_drops_its_own_events_and_others_take_turns() -> None:
    gate, posted = threading.Event(), []

    def post(body: dict) -> bool:
        gate.wait(5)
        posted.append(body["metadata"]["name"])
        return True
    events = DeferredEvents(post, capacity=20)
    events.add(event("held"))  # taken by the thread at once, then held at the gate
    assert not events.wait_posted(0.2)
    for i in range(3):
        events.add(event(f"victim-{i}", "quiet"))
    for i in range(1000):
        events.add(event(f"flood-{i}", "noisy"))
    events.add(event("late", "third"))
    gate.set()
    assert events.wait_posted(5)
    assert [n for n in posted if n.startswith("victim")] == ["victim-0", "victim-1", "victim-2"]
    assert "late" in posted and events.dropped == 1000 + 4 - 20
    assert posted[1:4] == ["victim-0", "flood-984", "late"], "namespaces take turns, each oldest first"
