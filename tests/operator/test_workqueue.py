"""The work queue: one key once, never two workers on one key, delays and backoff, and namespaces
taking turns (a property-style test holds every invariant over random sequences of operations)."""

from __future__ import annotations

import random
import threading
import time

import pytest
from flux_operator.workqueue import WorkQueue, namespace_of
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from tests.operator.builders import Clock

pytestmark = pytest.mark.unit


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
    clock = Clock(0.0)
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


# --- fairness between namespaces -----------------------------------------------------------------

def test_the_shard_of_a_key_is_its_namespace() -> None:
    assert namespace_of(("team-a", "job")) == "team-a"
    assert namespace_of("plain") is None


def test_namespaces_take_turns_whatever_their_backlog() -> None:
    q = WorkQueue()
    for i in range(5):
        q.add(("storm", f"s{i}"))
    q.add(("quiet", "q0"))
    q.add(("quiet", "q1"))
    out = []
    while (key := q.get(0)) is not None:
        out.append(key)
        q.done(key)
    assert out == [("storm", "s0"), ("quiet", "q0"), ("storm", "s1"), ("quiet", "q1"),
                   ("storm", "s2"), ("storm", "s3"), ("storm", "s4")]


def test_a_deadline_behind_a_storm_is_handed_out_next() -> None:
    clock = Clock(0.0)
    q = WorkQueue(clock=clock)
    q.add_after(("quiet", "deadline"), 30)
    for i in range(300):
        q.add(("storm", f"s{i}"))
    for _ in range(10):
        key = q.get(0)
        q.done(key)
        q.retry(key)  # failing, retried
    clock.now = 30
    assert q.get(0) == ("storm", "s10"), "the storm's turn came first"
    assert q.get(0) == ("quiet", "deadline"), "then the other namespace's, not after 290 storm keys"


def test_one_namespace_never_holds_more_workers_than_its_limit() -> None:
    q = WorkQueue(shard_limit=2)
    for i in range(5):
        q.add(("storm", f"s{i}"))
    first, second = q.get(0), q.get(0)
    assert q.get(0) is None, "a third worker stays free for another namespace"
    q.add(("quiet", "cancel"))
    assert q.get(0) == ("quiet", "cancel")
    q.done(first)
    assert q.get(0) == ("storm", "s2"), "a finished key frees a worker for its namespace"
    q.done(second)
    assert q.get(0) == ("storm", "s3")


def test_a_waiting_worker_is_woken_when_a_namespace_drops_below_its_limit() -> None:
    q = WorkQueue(shard_limit=1)
    q.add(("storm", "s0"))
    q.add(("storm", "s1"))
    taken = q.get(0)
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(q.get(timeout=5)))
    waiter.start()
    time.sleep(0.1)
    assert not got, "s1 waits: its namespace is at its limit"
    q.done(taken)
    waiter.join(5)
    assert got == [("storm", "s1")]


def test_a_namespace_at_its_limit_keeps_its_place_in_line() -> None:
    q = WorkQueue(shard_limit=1)
    q.add(("a", "1")), q.add(("a", "2"))
    a1 = q.get(0)
    q.add(("b", "1")), q.add(("b", "2")), q.add(("c", "1"))
    b1 = q.get(0)
    assert b1 == ("b", "1"), "a is at its limit: b goes"
    q.done(a1), q.done(b1)
    assert q.get(0) == ("a", "2"), "a was first in line while it waited, before c"
    assert q.get(0) == ("c", "1")


def test_workers_on_many_threads_never_share_a_key_and_lose_none() -> None:
    q = WorkQueue(base_delay=0.001, max_delay=0.01, shard_limit=3)
    keys = [(f"ns{n}", f"k{i}") for n in range(3) for i in range(20)]
    lock = threading.Lock()
    active: set = set()
    overlaps: list = []
    served: dict = {}
    stop = threading.Event()

    def worker() -> None:
        rng = random.Random()
        while not stop.is_set():
            key = q.get(timeout=0.05)
            if key is None:
                continue
            with lock:
                if key in active:
                    overlaps.append(key)
                active.add(key)
                served[key] = served.get(key, 0) + 1
            time.sleep(rng.random() * 0.001)
            with lock:
                active.discard(key)
            if rng.random() < 0.2:
                q.retry(key)
            q.done(key)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    rng = random.Random(7)
    for _ in range(3):
        for key in rng.sample(keys, len(keys)):
            q.add(key)
        time.sleep(0.05)
    last = time.monotonic()
    deadline = last + 10
    while (len(q) or len(served) < len(keys)) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(5)
    assert not overlaps, f"keys handed to two workers at once: {overlaps[:5]}"
    assert set(served) == set(keys), f"never handed out: {sorted(set(keys) - set(served))[:5]}"
    assert len(q) == 0


# --- the invariants, over random sequences (hypothesis) ------------------------------------------

KEYS = [(ns, name) for ns in ("a", "b", "c") for name in ("1", "2", "3")]
DELAYS = [0.5, 1.0, 2.0, 5.0]


class QueueModel(RuleBasedStateMachine):
    """Drives a WorkQueue with a fake clock and one get() at a time, next to a model of what it owes:

    - a key handed out was asked for (added, or its delayed add came due) and is not being worked on;
    - no key is worked on twice at once, and no namespace holds more keys than its limit;
    - nothing is lost: get() answers None only when every key it owes belongs to a namespace at its
      limit; and a key added while worked on comes back after done();
    - namespaces take turns: while a namespace has keys waiting (and is below its limit), no other
      namespace is handed two keys before it gets one;
    - a delayed key is not handed out before its time (unless added directly); the earliest wins;
    - backoff doubles per key up to the maximum, and forget() starts it over.
    """

    @initialize(limit=st.sampled_from([None, 1, 2]))
    def start(self, limit) -> None:
        self.clock = Clock(0.0)
        self.limit = limit
        self.q = WorkQueue(base_delay=0.5, max_delay=4.0, clock=self.clock, shard_limit=limit)
        self.queued: set = set()  # owed now, not being worked on
        self.processing: set = set()
        self.dirty: set = set()
        self.due: dict = {}  # key -> earliest delayed time
        self.failures: dict = {}
        self.passed: dict = {}  # shard T -> {shard S: hand-outs to S while T waited, eligible}

    def _eligible(self, shard) -> bool:
        return self.limit is None or sum(1 for k in self.processing if k[0] == shard) < self.limit

    def _owe(self, key) -> None:
        if key in self.processing:
            self.dirty.add(key)
        elif key not in self.queued:
            if not any(k[0] == key[0] for k in self.queued):
                self.passed[key[0]] = {}  # a namespace that starts waiting goes to the back of the line
            self.queued.add(key)

    def _promote(self) -> None:
        for key, when in sorted(self.due.items(), key=lambda kv: kv[1]):
            if when <= self.clock.now:
                del self.due[key]
                self._owe(key)

    @rule(key=st.sampled_from(KEYS))
    def add(self, key) -> None:
        self.q.add(key)
        self._owe(key)

    @rule(key=st.sampled_from(KEYS), delay=st.sampled_from(DELAYS))
    def add_after(self, key, delay) -> None:
        self.q.add_after(key, delay)
        when = self.clock.now + delay
        if self.due.get(key, float("inf")) > when:
            self.due[key] = when

    @rule(key=st.sampled_from(KEYS))
    def retry(self, key) -> None:
        failures = self.failures.get(key, 0)
        expected = min(4.0, 0.5 * 2 ** failures)
        assert self.q.retry(key) == expected
        self.failures[key] = failures + 1
        when = self.clock.now + expected
        if self.due.get(key, float("inf")) > when:
            self.due[key] = when

    @rule(key=st.sampled_from(KEYS))
    def forget(self, key) -> None:
        self.q.forget(key)
        self.failures.pop(key, None)
        assert self.q.failures(key) == 0

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 3.0]))
    def advance(self, seconds) -> None:
        self.clock.now += seconds

    @rule()
    def get(self) -> None:
        self._promote()
        key = self.q.get(timeout=0)
        if key is None:
            stuck = [k for k in self.queued if self._eligible(k[0])]
            assert not stuck, f"owed and free to go, yet not handed out: {stuck}"
            return
        assert key in self.queued, f"{key} handed out without being asked for (or before its time)"
        assert key not in self.processing, f"{key} handed to a second worker"
        assert self._eligible(key[0]), f"namespace {key[0]} is over its limit of {self.limit}"
        shard = key[0]
        for other, waited in self.passed.items():
            if other != shard and self._eligible(other) and any(k[0] == other for k in self.queued):
                waited[shard] = waited.get(shard, 0) + 1
                assert waited[shard] <= 1, f"{shard} went twice while {other} waited its turn"
        self.passed[shard] = {}
        self.queued.discard(key)
        self.processing.add(key)

    @precondition(lambda self: self.processing)
    @rule(data=st.data())
    def done(self, data) -> None:
        key = data.draw(st.sampled_from(sorted(self.processing)))
        self.q.done(key)
        self.processing.discard(key)
        if key in self.dirty:
            self.dirty.discard(key)
            self._owe(key)

    @invariant()
    def counts_match(self) -> None:
        if hasattr(self, "q"):
            assert len(self.q) == len(self.queued) + len(self.due)


QueueModel.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
test_queue_invariants_hold_for_any_sequence = QueueModel.TestCase


def test_stats_count_ready_delayed_and_busy_keys_and_the_wait_is_measured_from_ready() -> None:
    clock = Clock(100.0)
    waits: list[float] = []
    queue = WorkQueue(clock=clock, on_wait=waits.append)
    queue.add(("a", "1"))
    queue.add(("a", "2"))
    queue.add_after(("b", "3"), 30)
    assert (queue.stats().ready, queue.stats().delayed, queue.stats().busy) == (2, 1, 0)
    clock.advance(1.5)
    key = queue.get(timeout=0)
    assert key == ("a", "1") and waits == [1.5]
    assert (queue.stats().ready, queue.stats().busy) == (1, 1)
    queue.done(key)
    assert queue.stats().busy == 0
