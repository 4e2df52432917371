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
    """`async with Deadline(seconds)`: the block is cancelled after `seconds` (None: never) and TimeoutError is
    raised in its place, unless the task was also cancelled from elsewhere meanwhile (that CancelledError goes on).
    A cancel that was pending before the block, as in cleanup code, is not counted as one from elsewhere. Like
    asyncio.Timeout, it has when(), reschedule() and expired(); `Deadline.at(when)` is asyncio.timeout_at."""

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._when: float | None = None
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._cancelling = 0
        self._expired = False

    @classmethod
    def at(cls, when: float | None) -> Deadline:
        deadline = cls(None)
        deadline._when = when
        return deadline

    def when(self) -> float | None:
        return self._when

    def expired(self) -> bool:
        return self._expired

    def reschedule(self, when: float | None) -> None:
        """Moves the deadline to the loop time `when` (None: never), as asyncio.Timeout.reschedule does."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._when = when
        if when is not None and self._task is not None and not self._expired:
            self._handle = asyncio.get_running_loop().call_at(when, self._expire)

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadline must be used inside a task")
        self._task, self._cancelling = task, task.cancelling()
        when = self._when
        if self._seconds is not None:
            when = asyncio.get_running_loop().time() + max(self._seconds, 0)
        self.reschedule(when)
        return self

    def _expire(self) -> None:
        assert self._task is not None
        self._expired = True
        self._handle = None
        self._task.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        assert self._task is not None
        # Only our own cancel is taken back: the count returns to what it was when the block began.
        if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


def interpreter_is_right(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> bool:
    return version >= (3, 11, 3)


def timeout(seconds: float | None) -> Any:
    """`asyncio.timeout(seconds)` where the interpreter's is right, else a Deadline."""
    return asyncio.timeout(seconds) if interpreter_is_right() else Deadline(seconds)


def install() -> bool:
    """Makes `asyncio.timeout` a Deadline where the interpreter's is wrong; True if it did. Done before the
    workflow's module is imported, so `from asyncio import timeout` there gets it too."""
    if interpreter_is_right():
        return False
    asyncio.timeout = asyncio.timeouts.timeout = Deadline  # type: ignore[assignment]
    asyncio.timeout_at = asyncio.timeouts.timeout_at = Deadline.at  # type: ignore[assignment]
    return True
