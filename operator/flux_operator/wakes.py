"""Who is next in line once slots of a namespace's concurrency limits free: worked out off kopf's event loop,
once per namespace per burst.

A pass down a namespace's line costs time with its size (thousands of executions: tens of milliseconds). Done on
the event loop for each freeing event, one tenant deleting its executions held up every namespace's watch
events; here a burst of them costs a pass or two, on a thread of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from flux_operator.world import Key

log = logging.getLogger("flux_operator")

# Long enough to gather a burst's events, short enough that the next in line starts at once to a user.
SETTLE_SECONDS = 0.05


class Wakes:
    def __init__(self, to_wake: Callable[[str, datetime], list[Key]], enqueue: Callable[[Iterable[Key]], None],
                 clock: Callable[[], datetime], settle: float = SETTLE_SECONDS) -> None:
        self.to_wake, self.enqueue, self.clock, self.settle = to_wake, enqueue, clock, settle
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._asked = threading.Event()
        self._stopped = threading.Event()

    def ask(self, namespace: str) -> None:
        with self._lock:
            self._pending.add(namespace)
        self._asked.set()

    def run_once(self) -> int:
        """Wakes the admitted of every namespace asked for; how many namespaces it looked at."""
        with self._lock:
            namespaces, self._pending = self._pending, set()
            self._asked.clear()
        for namespace in sorted(namespaces):
            try:
                self.enqueue(self.to_wake(namespace, self.clock()))
            except Exception:  # one namespace's bad state must not stop the others' wakes; the safety pass retries
                log.exception("waking the next in line of %s failed", namespace)
        return len(namespaces)

    def start(self) -> None:
        threading.Thread(target=self._run, name="limit-wakes", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self._asked.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._asked.wait()
            if self._stopped.wait(self.settle):
                return
            self.run_once()
