"""Events the client budget had no token to spare for, posted later by a thread of their own.

An execution's Event goes out at once, before the status write it tells of, while the budget has a token
that no other request waits for: on a quiet cluster, always. When the budget is short (a thousand starts
at once), the reconcile hands it here instead and goes on to its status write: an Event is news, the
status is the record. This thread posts them in the budget's background lane, which gets a token only
while no other request waits: namespaces in turn, each one's oldest first. A deferred Event keeps the time of
its decision; one still waiting when the operator stops is lost, as client-go's are; past `capacity` the
oldest of the namespace with the most waiting is dropped, counted and logged, so one tenant's flood costs
only its own news.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from flux_operator import budget
from flux_operator.kube import ApiFailure

log = logging.getLogger("flux_operator")

CAPACITY = 10_000  # Events waiting at most (about 1 KB each)


class DeferredEvents:
    def __init__(self, post: Callable[[dict[str, Any]], object], capacity: int = CAPACITY,
                 on_drop: Callable[[], None] = lambda: None) -> None:
        self._post, self.capacity, self._on_drop = post, capacity, on_drop
        self._waiting: dict[str, deque[dict[str, Any]]] = {}  # by namespace, in turn
        self._count = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False
        self.dropped = 0

    def add(self, event: dict[str, Any]) -> None:
        namespace = str((event.get("involvedObject") or {}).get("namespace") or event["metadata"].get("namespace", ""))
        with self._cond:
            if self._count >= self.capacity:
                fullest = max(self._waiting, key=lambda ns: len(self._waiting[ns]))
                self._waiting[fullest].popleft()
                if not self._waiting[fullest]:
                    del self._waiting[fullest]
                self._count -= 1
                self.dropped += 1
                self._on_drop()
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("%d deferred Event(s) dropped: more than %d waited for the client budget",
                                self.dropped, self.capacity)
            self._waiting.setdefault(namespace, deque()).append(event)
            self._count += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deferred-events", daemon=True)
                self._thread.start()
            self._cond.notify()

    def pending(self) -> int:
        """Events not posted yet, the one being posted included."""
        with self._cond:
            return self._count + self._busy

    def wait_posted(self, timeout: float) -> bool:
        """Blocks until every Event handed over has been posted (or refused): True; False after `timeout`."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._count and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._count > 0)
                event = self._next()
                self._busy = True
            try:
                with budget.lane(budget.BACKGROUND_LANE):
                    self._post(event)
            except ApiFailure as err:  # an Event is news: said in the log, never retried
                log.warning("deferred Event %s not posted: %s", event["metadata"]["name"], err)
            except Exception:  # noqa: BLE001 - this thread must outlive any one Event
                log.exception("deferred Event %s not posted", event["metadata"]["name"])
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _next(self) -> dict[str, Any]:
        """The oldest Event of the namespace whose turn it is; that namespace goes to the back of the line."""
        namespace = next(iter(self._waiting))
        waiting = self._waiting.pop(namespace)
        event = waiting.popleft()
        if waiting:
            self._waiting[namespace] = waiting
        self._count -= 1
        return event
