"""kopf's watch streams, supervised: one that dies is restarted, one that cannot be turns /healthz red.

What kopf 1.45.2 does by itself: a stream that is closed, expires (410) or hears nothing, not even a
bookmark (the API server sends one a minute), for `settings.watching.inactivity_timeout` is reconnected.
What it lacks: any exception in a watcher task (a 403 once its retries are spent, an ERROR event other
than 410, a failure processing one object) ends that task, and kopf's orchestrator then stops the whole
operator, every namespace for one stream's trouble. `install()` runs each watcher under `supervise`, which
restarts a failed or ended one with backoff (a restart lists again), and also one whose stream stays
silent past `restart_after` although kopf reconnects it. The WatchMonitor records every stream's last
sign of life (an event, a bookmark, the end of a listing); a stream failing or silent for too long is a
problem /healthz reports, so the kubelet restarts the pod when restarting the stream did not help.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching as kopf_watching
from kopf._cogs.structs import references
from kopf._core.reactor import queueing as kopf_queueing

from flux_operator import boundary

log = logging.getLogger("flux_operator")

INACTIVITY_SECONDS = 70.0  # kopf's default: reconnect after this long without an event or a bookmark
RESTART_AFTER = 2 * INACTIVITY_SECONDS + 10  # silent through one reconnect: list again in a new task
SILENT_AFTER = 3 * INACTIVITY_SECONDS + 10  # and still silent: /healthz red
# A failure that one restart mends is no problem. Failing again within RECOVERED_AFTER of the last failure
# makes a series (a listing may succeed each time while the watch itself is refused); a series older than
# FAILING_AFTER turns /healthz red, until RECOVERED_AFTER passes without a failure.
RECOVERED_AFTER = 60.0
FAILING_AFTER = 30.0
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class Stream:
    life: float  # monotonic: the last event, bookmark or listing (or the start)
    failing_since: float | None = None  # the first failure of the current series
    last_failure: float = 0.0
    failures: int = 0  # in the current series
    error: str = ""
    restarts: int = 0


class WatchMonitor:
    """Thread-safe: the event loop records, the health endpoint's thread reads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, silent_after: float = SILENT_AFTER,
                 failing_after: float = FAILING_AFTER, recovered_after: float = RECOVERED_AFTER) -> None:
        self.clock, self.silent_after, self.failing_after = clock, silent_after, failing_after
        self.recovered_after = recovered_after
        self._streams: dict[str, Stream] = {}
        self._heard: dict[str, int] = {}  # by stream, never reset: flux_watch_events
        self._lock = threading.Lock()

    def started(self, key: str) -> None:
        with self._lock:
            self._streams.setdefault(key, Stream(life=self.clock()))

    def alive(self, key: str, heard: int = 0) -> None:
        """A sign of life; `heard`: how many objects or bookmarks it brought (an end of a listing brings none)."""
        with self._lock:
            stream = self._streams.get(key)
            if stream is not None:
                stream.life = self.clock()
            if heard:
                self._heard[key] = self._heard.get(key, 0) + heard

    def heard(self) -> dict[str, int]:
        """Watch events (a listing's objects included, the API server's bookmarks not) each stream brought so far."""
        with self._lock:
            return dict(self._heard)

    def failed(self, key: str, error: str) -> None:
        with self._lock:
            stream = self._streams.get(key)
            if stream is None:
                return
            now = self.clock()
            if stream.failing_since is None or now - stream.last_failure >= self.recovered_after:
                stream.failing_since, stream.failures = now, 0
            stream.last_failure, stream.failures, stream.error = now, stream.failures + 1, error
            stream.restarts += 1

    def stopped(self, key: str) -> None:
        with self._lock:
            self._streams.pop(key, None)

    def silent_for(self, key: str) -> float:
        with self._lock:
            stream = self._streams.get(key)
            return self.clock() - stream.life if stream is not None else 0.0

    def problems(self) -> dict[str, str]:
        """{stream: why it is not working}, for the streams failing or silent too long."""
        now, found = self.clock(), {}
        with self._lock:
            for key, stream in self._streams.items():
                series = stream.failing_since is not None and now - stream.last_failure < self.recovered_after
                if series and stream.failures > 1 and now - stream.failing_since > self.failing_after:
                    found[key] = f"failing for {now - stream.failing_since:.0f}s " \
                                 f"({stream.failures} failures): {stream.error}"
                elif now - stream.life > self.silent_after:
                    found[key] = f"no event or bookmark for {now - stream.life:.0f}s"
        return found

    def restarts(self) -> dict[str, int]:
        with self._lock:
            return {key: stream.restarts for key, stream in self._streams.items()}


def stream_key(resource: Any, namespace: str | None) -> str:
    return f"{getattr(resource, 'plural', resource)}@{namespace or '*'}"


async def supervise(watcher: Callable[..., Any], monitor: WatchMonitor, restart_after: float = RESTART_AFTER,
                    check_every: float = 5.0, backoff: tuple[float, ...] = BACKOFF,
                    passthrough: tuple[type[BaseException], ...] = (), **kwargs: Any) -> None:
    """Runs kopf's `watcher(**kwargs)` for ever: restarted when it fails, ends, or stays silent too long.
    An error of a `passthrough` type is kopf's to handle: raised as it is."""
    key = stream_key(kwargs.get("resource"), kwargs.get("namespace"))
    monitor.started(key)
    attempt = 0
    try:
        while True:
            began = time.monotonic()
            task = asyncio.create_task(watcher(**kwargs), name=f"flux-supervised watcher for {key}")
            why = await _until_over(task, monitor, key, began, restart_after, check_every)
            if not task.cancelled() and isinstance(task.exception(), passthrough):
                raise task.exception()
            monitor.failed(key, why)
            attempt = 0 if time.monotonic() - began >= monitor.recovered_after else attempt + 1
            delay = backoff[min(attempt, len(backoff) - 1)]
            log.error("watch %s stopped (%s); restarting it in %.0fs", key, why, delay)
            await asyncio.sleep(delay)
    finally:
        monitor.stopped(key)


async def _until_over(task: asyncio.Task, monitor: WatchMonitor, key: str, began: float, restart_after: float,
                      check_every: float) -> str:
    """Waits for the watcher task to end (or cancels it once silent too long); says why it is over."""
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=check_every)
            if done:
                break
            # Silent this long, and running this long: each new run gets its own time to list.
            silent = min(monitor.silent_for(key), time.monotonic() - began)
            if silent > restart_after:
                task.cancel()
                await asyncio.wait({task})
                return f"no event or bookmark for {silent:.0f}s"
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait({task})
        raise
    if task.cancelled():
        return "its task was cancelled"
    error = task.exception()
    return f"{type(error).__name__}: {error}"[:500] if error is not None else "it ended"


def _recording(infinite_watch: Callable[..., AsyncIterator[Any]]):
    async def watch(**kwargs: Any) -> AsyncIterator[Any]:
        key = stream_key(kwargs.get("resource"), kwargs.get("namespace"))
        async for item in infinite_watch(**kwargs):
            _monitor.alive(key, _news(item))  # every event, bookmark and end of a listing is a sign of life
            yield item

    return watch


def _news(item: Any) -> bool:
    """An object the watch brought (a listing's, or an event's, a quieted checkpoint's too), not the API server's
    bookmark nor the end of a listing: what flux_watch_events counts."""
    return isinstance(item, dict) and (item.get("type") != "BOOKMARK" or bool(item.get(boundary.QUIETED)))


_monitor = WatchMonitor()
_kopf_watcher: Callable[..., Any] | None = None


def install(monitor: WatchMonitor) -> None:
    """Before kopf starts; again to report to another monitor. kopf is pinned: tests/operator/test_watches.py
    runs kopf's own watcher through this."""
    global _monitor, _kopf_watcher
    _monitor = monitor
    if _kopf_watcher is not None:
        return
    watcher, infinite_watch = getattr(kopf_queueing, "watcher", None), getattr(kopf_watching, "infinite_watch", None)
    if not callable(watcher) or not callable(infinite_watch):
        raise RuntimeError("kopf changed: its watcher or infinite_watch is gone; see flux_operator/watches.py")
    _kopf_watcher = watcher

    async def supervised(**kwargs: Any) -> None:
        # kopf's own observers of CRDs and namespaces carry on without them when forbidden: leave that to them.
        resource = kwargs.get("resource")
        observer = resource is not None and (references.CRDS.check(resource) or references.NAMESPACES.check(resource))
        await supervise(watcher, _monitor, passthrough=(kopf_errors.APIForbiddenError,) if observer else (), **kwargs)

    kopf_queueing.watcher = supervised
    kopf_watching.infinite_watch = _recording(infinite_watch)
