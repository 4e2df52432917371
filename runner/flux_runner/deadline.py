"""`asyncio.timeout` that keeps its word inside a task that is already being cancelled, as a workflow's cleanup is.

Before Python 3.11.3, `asyncio.timeout` turns its own expiry into TimeoutError only when no other cancel of the
task is pending (CPython gh-102780). After the SIGTERM's cancel there always is one, so in cleanup code a
timeout that runs out raises CancelledError instead, and the rest of the cleanup (its final checkpoint too) is
skipped. Debian bookworm's python3, the runner image's, is 3.11.2. `timeout` is the interpreter's own where it
is right and `Deadline` where it is not; `install` gives workflows the same through `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import sys
from types import TracebackType
from typing import Any


class Deadline:
    """`async with Deadline(delay)`: the block is cancelled after `delay` seconds (None: never) and TimeoutError
    is raised in its place, unless the task was also cancelled from elsewhere meanwhile (that CancelledError goes
    on). A cancel that was pending before the block, as in cleanup code, is not counted as one from elsewhere.
    Like asyncio.Timeout: when(), reschedule() and expired(), one use only; `Deadline.at(when)` is timeout_at."""

    def __init__(self, delay: float | None) -> None:
        self._delay = delay
        self._when: float | None = None
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._cancelling = 0
        self._state = "created"  # then entered, expiring (our cancel is on its way), expired or exited

    @classmethod
    def at(cls, when: float | None) -> Deadline:
        deadline = cls(None)
        deadline._when = when
        return deadline

    def when(self) -> float | None:
        return self._when

    def expired(self) -> bool:
        return self._state in ("expiring", "expired")

    def reschedule(self, when: float | None) -> None:
        """Moves the deadline to the loop time `when` (None: never), as asyncio.Timeout.reschedule does."""
        if self._state != "entered":
            raise RuntimeError(f"cannot reschedule a deadline that is {self._state}")
        self._when = when
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if when is not None:
            loop = asyncio.get_running_loop()
            if when <= loop.time():
                self._handle = loop.call_soon(self._expire)
            else:
                self._handle = loop.call_at(when, self._expire)

    async def __aenter__(self) -> Deadline:
        if self._state != "created":
            raise RuntimeError("a deadline is used once")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadline must be used inside a task")
        self._task, self._cancelling, self._state = task, task.cancelling(), "entered"
        when = self._when
        if self._delay is not None:
            when = asyncio.get_running_loop().time() + self._delay
        self.reschedule(when)
        return self

    def _expire(self) -> None:
        assert self._task is not None
        self._handle = None
        self._state = "expiring"
        self._task.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        assert self._task is not None
        if self._state == "expiring":
            self._state = "expired"
            # Only our own cancel is taken back: the count returns to what it was when the block began.
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc
        else:
            self._state = "exited"


def interpreter_is_right(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> bool:
    return version >= (3, 11, 3)


def timeout(delay: float | None) -> Any:
    """`asyncio.timeout(delay)` where the interpreter's is right, else a Deadline."""
    return asyncio.timeout(delay) if interpreter_is_right() else Deadline(delay)


def install() -> bool:
    """Makes `asyncio.timeout` a Deadline where the interpreter's is wrong; True if it did. Done before the
    workflow's module is imported, so `from asyncio import timeout` there gets it too."""
    if interpreter_is_right():
        return False
    asyncio.timeout = asyncio.timeouts.timeout = Deadline  # type: ignore[assignment]
    asyncio.timeout_at = asyncio.timeouts.timeout_at = Deadline.at  # type: ignore[assignment]
    return True
