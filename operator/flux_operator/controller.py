"""Workers that drain the work queue, only while this replica leads.

A failure on one execution is logged with its key, counted, and retried with backoff for that
key alone; the other keys carry on. Nothing here reads the API: the handlers fill the World.
Every request made for a key waits in its namespace's lane of the client budget (budget.py), and the
queue hands keys out by namespace in turn (workqueue.py): one namespace cannot starve another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from flux_api import TERMINAL_PHASES, logfields
from flux_api.errors import Failure

from flux_operator.budget import lane
from flux_operator.kube import ApiFailure
from flux_operator.metrics import Metrics
from flux_operator.workqueue import Reconcile, WorkQueue, namespace_of
from flux_operator.world import Key, World

log = logging.getLogger("flux_operator")

# Transient failures this many times in a row are worth an Event on the object, not only a log line.
PERSISTENT_FAILURES = 5
# Whatever one object makes decide() or a builder raise (decimal.Overflow from a quantity was one such
# surprise): that key alone is retried, with backoff and an Event. The list is not closed on purpose: an
# exception missing from it ended the worker thread, and a few such objects every worker.
POISON = Exception


class Controller:
    def __init__(self, world: World, reconcile: Reconcile, queue: WorkQueue, metrics: Metrics,
                 workers: int = 4, leading: Callable[[], bool] = lambda: True, kind: str = "execution",
                 live: Callable[[], list[Key]] | None = None,
                 on_failure: Callable[[Key, str], None] | None = None) -> None:
        self.world, self.reconcile, self.queue, self.metrics = world, reconcile, queue, metrics
        self.workers, self.leading, self.kind, self.live = workers, leading, kind, live
        self.on_failure = on_failure  # makes a persistent failure visible on the object itself
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    def enqueue(self, keys: Iterable[Key | None]) -> None:
        for key in keys:
            if key is not None:
                self.queue.add(key)

    def enqueue_after(self, keys: Iterable[Key | None], delay: float) -> None:
        """Each key in `delay` seconds, or sooner if it is already due: a burst of changes makes one pass."""
        for key in keys:
            if key is not None:
                self.queue.add_after(key, delay)

    def enqueue_live(self) -> int:
        """Every execution not yet finished, from the World (never the API): the safety pass."""
        if self.live is not None:
            keys = self.live()
            self.enqueue(keys)
            return len(keys)
        live = [k for k in self.world.keys() if (s := self.world.snapshot(k)) is None
                or s.execution.phase not in TERMINAL_PHASES]
        self.enqueue(live)
        return len(live)

    def start(self, safety_seconds: float) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"{self.kind}-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        thread = threading.Thread(target=self._safety_pass, args=(safety_seconds,), name=f"{self.kind}-safety-pass",
                                  daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stopped.set()
        self.queue.shutdown()

    def _safety_pass(self, seconds: float) -> None:
        while not self._stopped.wait(seconds):
            if self.leading():
                self.enqueue_live()

    def _work(self) -> None:
        while not self._stopped.is_set():
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                if self.leading():
                    self.process(key)
            except Exception:  # outside a reconcile (its logging context, its lane): still not the worker's end
                self.queue.retry(key)
                log.exception("%s %s: failed outside its reconcile; retried", self.kind, key)
            finally:
                self.queue.done(key)

    def stopped_workers(self) -> list[str]:
        """Threads of this controller that ended while it runs (/healthz red): each is work nobody does."""
        if self._stopped.is_set():
            return []
        return [t.name for t in self._threads if not t.is_alive()]

    def _report(self, key: Key, message: str) -> None:
        if self.on_failure is None:
            return
        try:
            self.on_failure(key, message)
        except ApiFailure as err:
            log.warning("%s %s/%s: could not post the failure as an Event: %s", self.kind, *key, err)

    def process(self, key: Key) -> None:
        """One reconcile of `key`, with every failure answered by a retry of that key alone; its requests
        (the failure's Event too) wait in the key's namespace's lane of the client budget."""
        began = time.monotonic()
        ns, name = key if isinstance(key, tuple) and len(key) == 2 else (None, str(key))
        try:
            uid = self.world.uid_of(key) if self.kind == "execution" else None
            with lane(str(namespace_of(key))), logfields.about(namespace=ns, uid=uid,
                                                               **{self.kind: name}):
                self._process(key)
        finally:
            self.metrics.reconcile_seconds.labels(self.kind).observe(time.monotonic() - began)

    def _process(self, key: Key) -> None:
        try:
            result = self.reconcile(key)
        except ApiFailure as err:
            self.metrics.reconcile_errors.labels(err.kind).inc()
            if err.kind is Failure.NOT_FOUND:
                log.info("%s %s/%s: %s (gone meanwhile)", self.kind, *key, err)
                self.queue.forget(key)  # its failures: a namesake made later starts with none
                return
            delay = self.queue.retry(key)
            level = logging.INFO if err.transient or err.kind is Failure.CONFLICT else logging.ERROR
            log.log(level, "%s %s/%s: %s; retry in %.2fs", self.kind, *key, err, delay)
            if level == logging.ERROR or self.queue.failures(key) >= PERSISTENT_FAILURES:
                self._report(key, str(err))
            return
        except POISON as err:
            self.metrics.reconcile_errors.labels("Poison").inc()
            delay = self.queue.retry(key)
            log.error("%s %s/%s cannot be reconciled: %r; retry in %.1fs", self.kind, *key, err, delay,
                      exc_info=True)
            self._report(key, f"cannot be reconciled: {err!r}")
            return
        self.queue.forget(key)
        if result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after)
