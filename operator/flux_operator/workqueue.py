"""A work queue of keys (executions' and, in a queue of their own, Schedules'), as client-go has it: each
key at most once in the queue, never handed to two workers at once, re-queued when it changed while being
worked on, delayed adds for deadlines and per-key exponential backoff for failures.

Fair between namespaces: ready keys wait in one line per shard (the key's namespace), and the lines
take turns, one key each. A namespace with thousands of keys ready gets no more turns than one with
a single key, and `shard_limit` keeps one namespace from holding every worker at once, so a worker is
free for another namespace's cancel or deadline even while one namespace's keys are slow or failing.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from flux_operator.metric_values import QueueStats

Key = Hashable
Shard = Hashable


@dataclass(frozen=True)
class Result:
    """What the worker does next with the key: nothing, or look again after `requeue_after` seconds."""

    requeue_after: float | None = None


# One reconcile of a key, whatever kind it is (an execution, a Schedule): the queue's workers call it.
Reconcile = Callable[[Key], Result]


def namespace_of(key: Key) -> Shard:
    """The shard of a (namespace, name) key; any other key shares one shard (plain FIFO)."""
    return key[0] if isinstance(key, tuple) and key else None


class WorkQueue:
    def __init__(self, base_delay: float = 0.05, max_delay: float = 10.0, clock=time.monotonic,
                 shard_of: Callable[[Key], Shard] = namespace_of, shard_limit: int | None = None,
                 on_wait: Callable[[float], None] | None = None) -> None:
        self.base_delay, self.max_delay, self._clock = base_delay, max_delay, clock
        self.on_wait = on_wait  # seconds from a key being ready to a worker taking it (a metric)
        self._ready_since: dict[Key, float] = {}
        self._shard_of, self.shard_limit = shard_of, shard_limit
        self._ready: dict[Shard, deque[Key]] = {}  # per shard, only while it has keys
        self._turns: deque[Shard] = deque()  # the shards in _ready, in the order they take turns
        self._queued: set[Key] = set()
        self._processing: set[Key] = set()
        self._in_flight: dict[Shard, int] = {}  # keys being worked on, per shard
        self._dirty: set[Key] = set()  # added while processing: goes back in when done
        self._delayed: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}  # earliest pending delayed add per key
        self._failures: dict[Key, int] = {}
        self._seq = 0
        self._closed = False
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queued) + len(self._due)

    def stats(self) -> QueueStats:
        with self._cond:
            return QueueStats(ready=len(self._queued), delayed=len(self._due), busy=len(self._processing))

    def add(self, key: Key) -> None:
        with self._cond:
            self._add(key)

    def _add(self, key: Key) -> None:
        if self._closed or key in self._queued:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        self._queued.add(key)
        self._ready_since[key] = self._clock()
        shard = self._shard_of(key)
        line = self._ready.get(shard)
        if line is None:
            line = self._ready[shard] = deque()
            self._turns.append(shard)
        line.append(key)
        self._cond.notify()

    def add_after(self, key: Key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            when = self._clock() + delay
            if self._due.get(key, float("inf")) <= when:
                return  # an earlier wake-up is already set; it will reconsider
            self._due[key] = when
            self._seq += 1
            heapq.heappush(self._delayed, (when, self._seq, key))
            self._cond.notify()

    def retry(self, key: Key) -> float:
        """Back off exponentially per key; returns the delay chosen."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = min(self.max_delay, self.base_delay * 2 ** failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        """The key succeeded: its next failure starts from the base delay again."""
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: Key) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float | None = None) -> Key | None:
        """The next key to work on, or None on timeout or shutdown. Call `done(key)` after."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                self._promote_due()
                key = self._next()
                if key is not None:
                    return key
                if self._closed:
                    return None
                waits = [w for w in (self._delayed[0][0] if self._delayed else None, deadline) if w is not None]
                wait = max(0.0, min(waits) - self._clock()) if waits else None
                if deadline is not None and self._clock() >= deadline:
                    return None
                self._cond.wait(wait)

    def _next(self) -> Key | None:
        """The first key of the first shard in turn that may take another worker; that shard goes last."""
        for i, shard in enumerate(self._turns):
            if self.shard_limit is not None and self._in_flight.get(shard, 0) >= self.shard_limit:
                continue  # it keeps its place: first in line once one of its keys is done
            del self._turns[i]
            line = self._ready[shard]
            key = line.popleft()
            if line:
                self._turns.append(shard)
            else:
                del self._ready[shard]
            self._queued.discard(key)
            ready_since = self._ready_since.pop(key, None)
            if self.on_wait is not None and ready_since is not None:
                self.on_wait(self._clock() - ready_since)
            self._processing.add(key)
            self._in_flight[shard] = self._in_flight.get(shard, 0) + 1
            return key
        return None

    def _promote_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            when, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) == when:
                del self._due[key]
                self._add(key)

    def done(self, key: Key) -> None:
        with self._cond:
            if key not in self._processing:
                return
            self._processing.discard(key)
            shard = self._shard_of(key)
            left = self._in_flight[shard] - 1
            if left:
                self._in_flight[shard] = left
            else:
                del self._in_flight[shard]
            if key in self._dirty:
                self._dirty.discard(key)
                self._add(key)
            if self._queued:
                self._cond.notify_all()  # a shard at its limit may take a worker again

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
