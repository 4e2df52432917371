"""One switch for every way a cancel arrives: SIGTERM/SIGINT, spec.cancel or the cancel annotation."""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import Any

from flux_api.cancel import recorded_or_requested, requested_cancel

log = logging.getLogger("flux.runner")


def cancel_reason(execution: dict[str, Any]) -> str | None:
    """Why the Execution is cancelled, or None: the same reading as the operator's and the plugin's."""
    intent = requested_cancel(execution)
    return intent.reason if intent else None


class StopReason(str, Enum):
    """Why the workflow is being stopped (`await ctx.stop_reason()`): what its cleanup should undo."""

    CANCEL = "Cancel"  # for good: the execution ends Cancelled
    SUSPEND = "Suspend"  # spec.suspend: it resumes from its checkpoint, and the step that was cut runs again
    # The pod stopped with no cancel or suspend asked for (an eviction, a drain, a delete of the pod): a new pod
    # goes on from the checkpoint, as after a suspend.
    INTERRUPTED = "Interrupted"


def stop_reason_of(execution: dict[str, Any]) -> StopReason:
    """The reason the Execution gives for a stop: a cancel wins (it takes over a suspend), then a suspend. A
    cancel the operator recorded counts too: a deadline's is nowhere else."""
    if recorded_or_requested(execution) is not None:
        return StopReason.CANCEL
    if ((execution.get("spec") or {}).get("suspend")) is True:
        return StopReason.SUSPEND
    return StopReason.INTERRUPTED


class CancelSwitch:
    """Flipped once; flipping cancels the workflow task, whichever way the cancel came in."""

    def __init__(self) -> None:
        self.reason: str | None = None
        # Known at the flip when the Execution (or the workflow) asked for the cancel; a SIGTERM says nothing.
        self.cause: StopReason | None = None
        self._task: asyncio.Task[Any] | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def attach(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        if self.requested:
            task.cancel(self.reason)

    def request(self, reason: str, cause: StopReason | None = None) -> None:
        # Only the first request cancels: cleanup code must be free to await without being cut again.
        if self.requested:
            log.info("cancel already in progress; ignoring: %s", reason)
            return
        self.reason, self.cause = reason, cause
        if self._task is not None and self._task.done():
            log.info("%s after the workflow ended; finishing up", reason)
            return
        log.info("cancelling the workflow: %s", reason)
        if self._task is not None:
            self._task.cancel(reason)

    def observe(self, execution: dict[str, Any]) -> bool:
        """Requests a cancel if the Execution asks for one; True if it newly did."""
        if self.requested:
            return False
        reason = cancel_reason(execution)
        if reason is None:
            return False
        self.request(reason, StopReason.CANCEL)
        return True

    async def enforce(self, execution: dict[str, Any]) -> None:
        """Like observe, and a cancel it requests lands here: the caller never carries on past it."""
        if self.observe(execution):
            await asyncio.sleep(0)  # the task.cancel() just made raises CancelledError at this await
            # Reached only in a task the cancel did not target (one the workflow made itself).
            raise asyncio.CancelledError(self.reason)
