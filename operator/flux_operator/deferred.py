"""Events the client budget had no token to spare for, posted later by a thread of their own.

An execution's Event goes out at once, before the status write it tells of, while the budget has a token
that no other request waits for: on a quiet cluster, always. When the budget is short (a thousand starts
at once), the reconcile hands it here instead and goes on to its status write: an Event is news, the
status is the record. This thread posts them oldest first in the budget's background lane, which gets a
token only while no other request waits. A deferred Event keeps the time of its decision; one still
waiting when the operator stops is lost, as client-go's are; past `capacity` the oldest are dropped,
counted and logged.
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
        self._waiting: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False
        self.dropped = 0

    def add(self, event: dict[str, Any]) -> None:
        with self._cond:
            if len(self._waiting) >= self.capacity:
                self._waiting.popleft()
                self.dropped += 1
                self._on_drop()
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("%d deferred Event(s) dropped: more than %d waited for the client budget",
                                self.dropped, self.capacity)
            self._waiting.append(event)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deferred-events", daemon=True)
                self._thread.start()
            self._cond.notify()

    def pending(self) -> int:
        """Events not posted yet, the one being posted included."""
        with self._cond:
            return len(self._waiting) + self._busy

    def wait_posted(self, timeout: float) -> bool:
        """Blocks until every Event handed over has been posted (or refused): True; False after `timeout`."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._waiting and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._waiting))
                event = self._waiting.popleft()
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
