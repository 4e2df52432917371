"""The operator's client budget: one token bucket for every request it makes, shared out fairly.

client-go's model (`qps` sustained, `burst` at once), with one difference: when requests have to wait
for tokens, they wait in lanes (the namespace being reconciled), and the lanes take turns, one token
each. A namespace with many requests waiting gets no more of the budget than one with a single request,
so one namespace's failure storm cannot hold back another namespace's cancel. A lane alone gets all of it.

The lane is set around each reconcile (`with lane(namespace):`) and read where a request is made, so no
API method takes it as an argument. The leader Lease has a lane of its own that goes before all others
(its renewals are a few a minute; a late one costs the leadership); requests outside any lane (start-up
checks) share the budget as one more lane. The background lane goes after all others but for one token in
LAST_LANES_SHARE: an execution's Event that finds no token to spare waits there (deferred.py), so news seldom
holds up a start, a signal or a write, and a busy namespace cannot hold back everyone's news for ever.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar, copy_context

# Namespace names cannot contain ':', so these never meet a namespace's lane.
LEASE_LANE = ":lease"
OPERATOR_LANE = ":operator"
# Served while no other lane waits, and at least one token in LAST_LANES_SHARE while others do: Events the budget
# had no token to spare for (deferred.py), which a namespace keeping its lane full must not hold back for ever.
BACKGROUND_LANE = ":background"
LAST_LANES_SHARE = 10

_current: ContextVar[str] = ContextVar("flux_budget_lane", default=OPERATOR_LANE)


@contextlib.contextmanager
def lane(name: str) -> Iterator[None]:
    """Requests made inside this block (in this thread) wait in `name`'s lane."""
    token = _current.set(name)
    try:
        yield
    finally:
        _current.reset(token)


def current_lane() -> str:
    return _current.get()


def carried(fn, *args):
    """`fn(*args)` for another thread (a pool's) that still waits in this thread's lane: a thread pool does not
    carry context variables, and without this the request would wait in the `:operator` lane instead."""
    return functools.partial(copy_context().run, fn, *args)


class FairBucket:
    """The bucket and the turns, without blocking or a clock of its own: `poll` is told the time.

    Each waiting request holds a ticket in its lane (first come, first served within a lane). Only the
    head ticket may take a token: the first of the lane whose turn it is (a lane in `first` before any
    other). Once it has its token, its lane goes to the back of the turns."""

    def __init__(self, qps: float, burst: int, now: float, first: tuple[str, ...] = (),
                 last: tuple[str, ...] = ()) -> None:
        self.qps, self.burst, self.first, self.last = qps, max(1, burst), first, last
        self.tokens, self._last = float(self.burst), now
        self._lanes: dict[str, deque[int]] = {}  # lane -> its waiting tickets, oldest first
        self._turns: deque[str] = deque()  # lanes with waiting tickets, in turn order (not `first` or `last`)
        self._lane_of: dict[int, str] = {}
        self._urgent: set[int] = set()
        self._seq = 0
        self._passed_over = 0  # tokens other lanes took while a `last` lane waited

    def join(self, lane: str, urgent: bool = False) -> int:
        """An urgent ticket (a signal) goes behind the lane's other urgent ones, ahead of the rest: a cancel
        storm's SIGTERMs do not wait behind its Events and status writes. Lanes still take turns."""
        self._seq += 1
        ticket = self._seq
        if lane not in self._lanes:
            self._lanes[lane] = deque()
            if lane not in self.first and lane not in self.last:
                self._turns.append(lane)
        tickets = self._lanes[lane]
        if urgent:
            tickets.insert(sum(1 for t in tickets if t in self._urgent), ticket)
            self._urgent.add(ticket)
        else:
            tickets.append(ticket)
        self._lane_of[ticket] = lane
        return ticket

    def head(self) -> int | None:
        """The ticket that gets the next token."""
        for lane in self.first:
            if lane in self._lanes:
                return self._lanes[lane][0]
        last = next((lane for lane in self.last if lane in self._lanes), None)
        if self._turns and (last is None or self._passed_over < LAST_LANES_SHARE - 1):
            return self._lanes[self._turns[0]][0]
        return self._lanes[last][0] if last is not None else None

    def spare(self, now: float) -> bool:
        """Takes a token if one is there and no request waits for it: True. Never waits, never queues."""
        self._refill(now)
        if self._lane_of or self.tokens < 1 - 1e-9:
            return False
        self.tokens -= 1
        return True

    def _refill(self, now: float) -> None:
        if now > self._last:
            self.tokens = min(self.burst, self.tokens + (now - self._last) * self.qps)
            self._last = now

    def poll(self, ticket: int, now: float) -> float | None:
        """0: the token is taken, go. Seconds: the head's wait for a token. None: not this ticket's turn."""
        self._refill(now)
        if ticket != self.head():
            return None
        if self.tokens < 1 - 1e-9:  # a whole token, give or take rounding: never a wait of 1e-17 s
            return (1 - self.tokens) / self.qps
        self.tokens = max(0.0, self.tokens - 1)
        if self._lane_of.get(ticket) in self.last:
            self._passed_over = 0
        elif any(lane in self._lanes for lane in self.last):
            self._passed_over += 1
        self.leave(ticket)
        return 0.0

    def leave(self, ticket: int) -> None:
        """The ticket is done (it got its token, or gave up): its lane moves to the back if it waits on."""
        lane = self._lane_of.pop(ticket, None)
        self._urgent.discard(ticket)
        if lane is None:
            return
        tickets = self._lanes[lane]
        tickets.remove(ticket)
        if lane in self.first or lane in self.last:
            if not tickets:
                del self._lanes[lane]
            return
        self._turns.remove(lane)
        if tickets:
            self._turns.append(lane)
        else:
            del self._lanes[lane]

    def waiting(self) -> int:
        return len(self._lane_of)


class RateLimiter:
    """The bucket shared by every worker thread; `acquire` blocks until its request may go."""

    def __init__(self, qps: float, burst: int, clock=time.monotonic, first: tuple[str, ...] = (LEASE_LANE,),
                 last: tuple[str, ...] = (BACKGROUND_LANE,)) -> None:
        self.qps, self._clock = qps, clock
        self._bucket = FairBucket(qps, burst, clock(), first, last) if qps > 0 else None
        self._cond = threading.Condition()

    def acquire(self, lane_name: str | None = None, urgent: bool = False) -> float:
        """Waits for a token in the current lane (or `lane_name`), an urgent request ahead of the lane's
        others; returns the seconds waited."""
        if self._bucket is None:
            return 0.0
        started = self._clock()
        with self._cond:
            ticket = self._bucket.join(lane_name or current_lane(), urgent)
            try:
                while (wait := self._bucket.poll(ticket, self._clock())) != 0:
                    self._cond.wait(wait)  # None: until the head moves on
            except BaseException:
                self._bucket.leave(ticket)
                raise
            finally:
                self._cond.notify_all()  # the next head is someone else now
        return self._clock() - started

    def try_acquire(self) -> bool:
        """A token at once if the budget has one to spare (nobody waits for it); False rather than a wait."""
        if self._bucket is None:
            return True
        with self._cond:
            return self._bucket.spare(self._clock())

    def waiting(self) -> int:
        if self._bucket is None:
            return 0
        with self._cond:
            return self._bucket.waiting()
