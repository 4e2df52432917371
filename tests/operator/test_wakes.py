"""wakes.py: a burst of freed slots is one pass down each namespace's line, on a thread of its own."""

from __future__ import annotations

import threading
import time

import pytest
from flux_api.timefmt import utcnow
from flux_operator.wakes import Wakes

pytestmark = pytest.mark.unit


def test_the_thread_wakes_the_admitted_once_a_burst_and_stops() -> None:
    passes, woken, done = [], [], threading.Event()

    def to_wake(namespace, now):
        passes.append(namespace)
        return [(namespace, "next")]

    def enqueue(keys):
        woken.extend(keys)
        done.set()

    wakes = Wakes(to_wake, enqueue, utcnow, settle=0.05)
    wakes.start()
    try:
        for _ in range(500):
            wakes.ask("team-a")
        wakes.ask("team-b")
        assert done.wait(2), "no pass within 2 s"
        time.sleep(0.2)
        assert sorted(passes) == ["team-a", "team-b"] and ("team-a", "next") in woken
    finally:
        wakes.stop()


def test_one_namespace_failing_does_not_keep_the_others_waiting() -> None:
    woken = []

    def to_wake(namespace, now):
        if namespace == "broken":
            raise ValueError("a bad limit")
        return [(namespace, "next")]

    wakes = Wakes(to_wake, woken.extend, utcnow)
    wakes.ask("broken")
    wakes.ask("fine")
    assert wakes.run_once() == 2 and woken == [("fine", "next")]
    assert wakes.run_once() == 0, "asked once, looked at once"
