"""A waiting runner follows its own Execution with a watch instead of polling it.

A parent waiting for its children and a signal wait look at their Execution until what they wait for is
there. A GET every poll interval made a thousand waiting runners two thousand requests a second. Once
something waits, one watch of the Execution alone (a metadata.name field selector, which the runner's Role
allows by resourceNames) keeps the latest object here and wakes the waiters when it changes: no request
while nothing happens, and a change is seen when it is made, not at the next poll.

Without the watch, reads are GETs and waits last the poll interval, as before: while the watch is down (it is
opened again with backoff, from the last version it saw), and for good when the Role forbids it (one made by
an operator older than this runner).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from flux_runner import deadline
from flux_runner.errors import ApiError, Forbidden

log = logging.getLogger("flux.runner")

# Waiting with a live watch: look again after this long anyway. A watch that stalls without an error is
# closed by the client's read timeout (client.WATCH_QUIET_LIMIT); this only bounds what a bug could cost.
LIVE_WAIT_LIMIT = 60.0
# A watch that ended sooner than this (an expired version, a server that closes it at once) is opened again
# only after a backoff, as after a failure.
SHORT_WATCH_SECONDS = 5.0

Poll = Callable[[], Awaitable[dict[str, Any]]]
# Events of the Execution's watch from a resourceVersion: None once the watch is open, then each event.
Stream = Callable[[str], AsyncIterator[dict[str, Any] | None]]
Delay = Callable[[int], float]


def version_of(execution: dict[str, Any] | None) -> str | None:
    return ((execution or {}).get("metadata") or {}).get("resourceVersion")


class Follower:
    def __init__(self, poll: Poll, stream: Stream, delay: Delay) -> None:
        self._poll, self._stream, self._delay = poll, stream, delay
        self._latest: dict[str, Any] | None = None
        self._from: str | None = None  # where the watch goes on from: the last object's or bookmark's version
        self._live = False  # the watch is open: _latest is as new as anything it has sent
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._opened = False  # said once in the log: the first watch is open

    @property
    def live(self) -> bool:
        return self._live

    async def read(self) -> dict[str, Any]:
        """The Execution: the watch's latest while it is open, else a GET (from the API server's cache)."""
        if self._live and self._latest is not None:
            return self._latest
        execution = await self._poll()
        if not self._live:
            self._keep(execution)
        return execution

    async def changed(self, seen: dict[str, Any], poll: float, at_most: float = LIVE_WAIT_LIMIT) -> None:
        """Returns once the Execution may have changed since `seen`: at once when the watch already has a newer
        one; when the watch sends one, or goes up or down; else after `poll` without a live watch; never later
        than `at_most`."""
        self._start()
        wake = self._wake
        if self._live and version_of(self._latest) != version_of(seen):
            return
        # A timeout, not wait_for: on Python 3.11 wait_for drops a cancel (SIGTERM) that lands in the same turn as
        # the wake, and the runner would wait on until the SIGKILL. deadline's, as this may run in cleanup code.
        with contextlib.suppress(TimeoutError):
            async with deadline.timeout(min(at_most, LIVE_WAIT_LIMIT if self._live else poll)):
                await wake.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # whatever ended it, the run is over
            self._task = None
        self._set_live(False)

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="follow own execution")

    def _keep(self, execution: dict[str, Any]) -> None:
        changed = version_of(execution) != version_of(self._latest)
        self._latest, self._from = execution, version_of(execution) or self._from
        if changed:
            self._notify()

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def _set_live(self, live: bool) -> None:
        if live != self._live:
            self._live = live
            self._notify()

    async def _follow(self) -> None:
        failures, loop = 0, asyncio.get_running_loop()
        while True:
            opened = loop.time()
            try:
                if self._from is None:  # nothing read yet, or the watch's version expired: start from now
                    self._keep(await self._poll())
                await self._watch()
            except Forbidden as exc:
                log.info("no watch of the execution allowed (%s): polling every wait instead", exc)
                return
            except (ApiError, OSError, ValueError) as exc:
                problem = str(exc)
            else:
                if loop.time() - opened >= SHORT_WATCH_SECONDS:
                    failures = 0
                    continue
                problem = "the watch ended at once"  # backed off too: never a loop of opens
            failures = min(failures + 1, 30)  # the backoff is capped long before; 2**n must stay a float
            delay = self._delay(failures)
            log.warning("watch of the execution: %s; polling meanwhile, again in %.1fs", problem, delay)
            await asyncio.sleep(delay)

    async def _watch(self) -> None:
        """One watch, until the API server ends it; the caller opens the next from where this one stopped. Not
        live once it returns or raises."""
        try:
            async for event in self._stream(self._from or ""):
                if event is None:
                    if not self._opened:
                        log.info("following the execution with a watch (from version %s)", self._from)
                        self._opened = True
                    self._set_live(True)
                    continue
                kind, obj = event.get("type"), event.get("object")
                if not isinstance(obj, dict):
                    continue
                if kind in ("ADDED", "MODIFIED"):
                    self._keep(obj)
                elif kind == "BOOKMARK":
                    self._from = version_of(obj) or self._from
                elif kind == "ERROR":  # 410 Gone: the version is too old to watch from; read afresh
                    self._from = None
                    return
                elif kind == "DELETED":  # its pod goes with it; reads say NotFound as a GET does
                    self._latest, self._from = None, None
                    return
        finally:
            self._set_live(False)  # however it ended (the caller's except clauses rely on this)
