"""The work queue: one key once, never two workers on one key, delays and backoff."""

from __future__ import annotations

import pytest
from flux_operator.workqueue import WorkQueue

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_queued_once() -> None:
    q = WorkQueue()
    q.add("a"), q.add("a"), q.add("b")
    assert [q.get(0), q.get(0), q.get(0)] == ["a", "b", None]


def test_a_key_being_worked_on_is_not_handed_out_again_but_comes_back_after() -> None:
    q = WorkQueue()
    q.add("a")
    assert q.get(0) == "a"
    q.add("a")
    assert q.get(0) is None, "still processing: another worker must not take it"
    q.done("a")
    assert q.get(0) == "a"


def test_delayed_adds_wait_their_turn_and_the_earliest_wins() -> None:
    clock = Clock()
    q = WorkQueue(clock=clock)
    q.add_after("late", 10)
    q.add_after("soon", 1)
    q.add_after("soon", 5)  # later than what is set: ignored
    assert q.get(0) is None
    clock.now = 1
    assert q.get(0) == "soon"
    clock.now = 10
    assert q.get(0) == "late"


def test_backoff_doubles_per_key_and_resets_on_forget() -> None:
    q = WorkQueue(base_delay=1, max_delay=5)
    assert [q.retry("a") for _ in range(4)] == [1, 2, 4, 5]
    assert q.retry("b") == 1
    q.forget("a")
    assert q.retry("a") == 1


def test_shutdown_wakes_waiters() -> None:
    q = WorkQueue()
    q.shutdown()
    assert q.get(timeout=5) is None
