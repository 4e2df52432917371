"""A cancel-safe `asyncio.wait_for` for workflows on Python 3.11.

On 3.11, `asyncio.wait_for` returns the awaited result when the cancel of its caller lands in the same turn of
the loop as that result (CPython gh-86296): the CancelledError is dropped. A workflow awaiting `wait_for` when
SIGTERM arrives would then go on with its next step as if nothing happened, and only the SIGKILL at the end
of the grace period would stop it, with no cleanup and no final checkpoint. Python 3.12 rebuilt `wait_for` on
`asyncio.timeout`, which never drops a cancel; the runner gives 3.11 workflows the same.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

from flux_runner import deadline

T = TypeVar("T")

_ORIGINAL = asyncio.tasks.wait_for


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """`asyncio.wait_for` as Python 3.12 has it: on timeout, the awaitable is cancelled and TimeoutError raised;
    a cancel of the caller always raises CancelledError, even when the awaitable has just finished."""
    if timeout is not None and timeout <= 0:
        # No wait at all: 3.11's own path cancels the awaitable and loses no cancel of the caller.
        return await _ORIGINAL(aw, timeout)
    async with deadline.timeout(timeout):
        return await aw


def needed(version: tuple[int, ...] = sys.version_info[:2]) -> bool:
    return version < (3, 12)


def install() -> bool:
    """Makes `asyncio.wait_for` the cancel-safe one where the interpreter's drops cancels; True if it did.

    Done before the workflow's module is imported, so `from asyncio import wait_for` there gets it too."""
    if not needed():
        return False
    current: Any = asyncio.wait_for
    if current is not wait_for:
        asyncio.wait_for = wait_for  # type: ignore[assignment]
        asyncio.tasks.wait_for = wait_for  # type: ignore[assignment]
    return True
