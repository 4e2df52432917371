"""The client budget: a token bucket whose tokens go to waiting namespaces in turn, the Lease first."""

from __future__ import annotations

import threading
import time

import pytest
from flux_operator.budget import (BACKGROUND_LANE, LEASE_LANE, OPERATOR_LANE, FairBucket, RateLimiter, current_lane,
                                  lane)
from flux_operator.controller import Controller
from flux_operator.metrics import Metrics
from flux_operator.workqueue import Result
from flux_operator.workqueue import WorkQueue
from flux_operator.world import World

pytestmark = pytest.mark.unit


def grants(bucket: FairBucket, tickets: list[int], now: float) -> list[int]:
    """Polls every ticket at `now`, in the order given; the ones that got a token."""
    return [t for t in tickets if bucket.poll(t, now) == 0]


def test_a_burst_goes_at_once_then_requests_are_spaced_by_the_rate() -> None:
    bucket = FairBucket(qps=10, burst=3, now=0.0)
    tickets = [bucket.join("a") for _ in range(4)]
    assert grants(bucket, tickets, 0.0) == tickets[:3]
    assert bucket.poll(tickets[3], 0.0) == pytest.approx(0.1), "the head waits for the next token"
    assert bucket.poll(tickets[3], 0.1) == 0
    more = [bucket.join("a") for _ in range(4)]
    assert grants(bucket, more, 10.0) == more[:3], "an idle bucket refills up to the burst, no more"


def test_waiting_lanes_take_turns_one_token_each() -> None:
    bucket = FairBucket(qps=1, burst=1, now=0.0)
    bucket.tokens = 0
    storm = [bucket.join("storm") for _ in range(3)]
    quiet = bucket.join("quiet")
    order = []
    for second in range(1, 5):
        order += grants(bucket, [*storm, quiet], float(second))
    assert order == [storm[0], quiet, storm[1], storm[2]]


def test_only_the_head_may_take_a_token_and_the_others_are_told_to_wait() -> None:
    bucket = FairBucket(qps=1, burst=2, now=0.0)
    bucket.tokens = 0
    first, second = bucket.join("a"), bucket.join("b")
    assert bucket.poll(second, 5.0) is None, "not its turn, however many tokens there are"
    assert bucket.head() == first
    assert bucket.poll(first, 5.0) == 0
    assert bucket.poll(second, 5.0) == 0, "the bucket had filled up to its burst meanwhile"


def test_a_signal_goes_before_its_lanes_other_requests_but_lanes_still_take_turns() -> None:
    bucket = FairBucket(qps=1, burst=1, now=0.0)
    bucket.tokens = 0
    writes = [bucket.join("tree") for _ in range(3)]
    other = bucket.join("other")
    signals = [bucket.join("tree", urgent=True) for _ in range(2)]
    order = []
    for second in range(1, 7):
        order += grants(bucket, [*writes, other, *signals], float(second))
    assert order == [signals[0], other, signals[1], writes[0], writes[1], writes[2]]
    assert not bucket._urgent, "no ticket is left marked"


def test_the_lease_goes_before_every_namespace() -> None:
    bucket = FairBucket(qps=1, burst=1, now=0.0, first=(LEASE_LANE,))
    bucket.tokens = 0
    storm = [bucket.join("storm") for _ in range(5)]
    renew = bucket.join(LEASE_LANE)
    assert bucket.head() == renew
    assert grants(bucket, [*storm, renew], 1.0) == [renew]
    assert grants(bucket, [*storm], 2.0) == [storm[0]]


def test_the_background_lane_gets_a_token_only_while_no_other_lane_waits() -> None:
    bucket = FairBucket(qps=1, burst=1, now=0.0, last=(BACKGROUND_LANE,))
    bucket.tokens = 0
    news = [bucket.join(BACKGROUND_LANE) for _ in range(2)]
    write = bucket.join("team")
    order = []
    for second in range(1, 3):
        order += grants(bucket, [*news, write], float(second))
    late = bucket.join("other")  # comes after the news, still goes first
    for second in range(3, 6):
        order += grants(bucket, [*news, write, late], float(second))
    assert order == [write, news[0], late, news[1]]
    assert bucket.waiting() == 0 and bucket.head() is None


def test_the_background_lane_gets_one_token_in_ten_while_others_keep_their_lanes_full() -> None:
    """A namespace that never lets its lane empty must not hold back every namespace's deferred Events."""
    bucket = FairBucket(qps=1, burst=1, now=0.0, last=(BACKGROUND_LANE,))
    bucket.tokens = 0
    news = [bucket.join(BACKGROUND_LANE) for _ in range(3)]
    busy = [bucket.join("busy") for _ in range(40)]
    order = []
    for second in range(1, 31):
        order += grants(bucket, [*news, *busy], float(second))
    assert [order.index(n) for n in news] == [9, 19, 29]
    assert len(order) == 30


def test_a_spare_token_is_one_nobody_waits_for() -> None:
    bucket = FairBucket(qps=1, burst=2, now=0.0)
    assert bucket.spare(0.0) and bucket.spare(0.0), "the burst"
    assert not bucket.spare(0.5), "no whole token yet"
    assert bucket.spare(1.0)
    waiting = bucket.join("team")
    assert not bucket.spare(5.0), "a token is there, but a request waits for it"
    assert bucket.poll(waiting, 5.0) == 0
    assert bucket.spare(5.0)
    limiter = RateLimiter(qps=1, burst=1, clock=lambda: 0.0)
    assert limiter.try_acquire() and not limiter.try_acquire()
    assert RateLimiter(qps=0, burst=1).try_acquire(), "no budget: always"


def test_a_ticket_that_gives_up_hands_the_turn_on() -> None:
    bucket = FairBucket(qps=1, burst=1, now=0.0)
    bucket.tokens = 0
    a, b = bucket.join("a"), bucket.join("b")
    bucket.leave(a)
    assert bucket.head() == b and bucket.waiting() == 1
    bucket.leave(a)  # twice: harmless
    assert bucket.poll(b, 1.0) == 0 and bucket.waiting() == 0


def test_a_lane_alone_gets_the_whole_budget() -> None:
    bucket = FairBucket(qps=4, burst=1, now=0.0)
    got = 0
    now = 0.0
    while True:
        ticket = bucket.join("only")
        while (wait := bucket.poll(ticket, now)) != 0:
            now += wait
        if now > 1.0:
            break
        got += 1
    assert got == 5  # the burst at 0, then four in the next second


def test_the_lane_is_set_for_a_block_and_restored_after() -> None:
    assert current_lane() == OPERATOR_LANE
    with lane("team-a"):
        assert current_lane() == "team-a"
        with lane(LEASE_LANE):
            assert current_lane() == LEASE_LANE
        assert current_lane() == "team-a"
    assert current_lane() == OPERATOR_LANE
    seen = []
    with lane("team-a"):
        other = threading.Thread(target=lambda: seen.append(current_lane()))
        other.start()
        other.join()
    assert seen == [OPERATOR_LANE], "a lane belongs to the thread that set it"


def test_an_unlimited_limiter_never_waits() -> None:
    limiter = RateLimiter(qps=0, burst=1)
    assert [limiter.acquire() for _ in range(1000)] == [0.0] * 1000


def test_threads_of_a_busy_namespace_do_not_starve_another_one() -> None:
    """Three workers of one namespace ask without pause; a fourth, of another namespace, asks now and
    then. Its requests each go at the next or second-next token, not behind the others' queue."""
    limiter = RateLimiter(qps=200, burst=1)
    order: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def storm() -> None:
        with lane("storm"):
            while not stop.is_set():
                limiter.acquire()
                with lock:
                    order.append("storm")

    threads = [threading.Thread(target=storm) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    waits = []
    with lane("quiet"):
        for _ in range(10):
            waits.append(limiter.acquire())
            with lock:
                order.append("quiet")
    stop.set()
    for t in threads:
        t.join(5)
    assert max(waits) < 0.25, f"each quiet request waits about one token (5 ms), not a queue: {waits}"
    quiet_at = [i for i, who in enumerate(order) if who == "quiet"]
    gaps = [b - a - 1 for a, b in zip(quiet_at, quiet_at[1:])]
    assert max(gaps) <= 3, f"storm requests between two quiet ones (one expected): {gaps}"


def test_the_controller_makes_a_keys_requests_in_its_namespaces_lane() -> None:
    seen = []

    class Recording:
        def reconcile(self, key):
            seen.append((key, current_lane()))
            return Result()

    controller = Controller(World(), Recording().reconcile, WorkQueue(), Metrics(), workers=1)
    controller.process(("team-a", "job"))
    controller.process(("team-b", "job"))
    assert seen == [(("team-a", "job"), "team-a"), (("team-b", "job"), "team-b")]
    assert current_lane() == OPERATOR_LANE
