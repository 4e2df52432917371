"""How a workflow run ended, as the final checkpoint and the one-line summary record it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from flux_api import Phase

from flux_runner.cancel import CancelSwitch
from flux_runner.errors import ApiError, NotJsonSerialisable
from flux_runner.jsonvalue import json_value
from flux_runner.waits import DurableWait

MAX_ERROR = 4000  # status is not a log: keep a runaway message from bloating the object


@dataclass(frozen=True)
class Ending:
    state: Phase
    result: Any = None
    error: str | None = None
    reason: str | None = None  # why it was cancelled, or what it waits for (state Waiting)
    wait: DurableWait | None = None  # state Waiting: until when, or for which signal

    @classmethod
    def failed(cls, error: str) -> Ending:
        return cls(Phase.FAILED, error=error[:MAX_ERROR])

    @classmethod
    def cancelled(cls, reason: str | None, error: str | None = None) -> Ending:
        return cls(Phase.CANCELLED, error=error, reason=reason)

    @property
    def summary(self) -> str:
        detail = self.error if self.state == Phase.FAILED else self.reason
        return f"{self.state}: {detail}" if detail else str(self.state)


def describe(exc: BaseException) -> str:
    # TaskGroup failures wrap the interesting errors: list those, not "1 sub-exception".
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def infrastructure_error(task: asyncio.Task[Any]) -> ApiError | None:
    """The API server failed the workflow (not the workflow itself): restart, do not record."""
    if task.cancelled():
        return None
    error = task.exception()
    return error if isinstance(error, ApiError) else None


def ending_of(task: asyncio.Task[Any], switch: CancelSwitch) -> Ending:
    if task.cancelled():
        return Ending.cancelled(switch.reason or "the workflow raised CancelledError")
    error = task.exception()
    if isinstance(error, DurableWait) and not switch.requested:
        return Ending(Phase.WAITING, reason=error.waiting, wait=error)
    if error is not None:
        if switch.requested:
            # Cancelled, and then the cleanup itself failed: still a cancel, with the cleanup error.
            return Ending.cancelled(switch.reason, f"cleanup failed: {describe(error)}"[:MAX_ERROR])
        return Ending.failed(describe(error))
    try:
        return Ending(Phase.SUCCEEDED, result=json_value(task.result(), "the workflow result"))
    except NotJsonSerialisable as exc:
        return Ending.failed(describe(exc))
