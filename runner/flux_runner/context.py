"""`ctx`, the workflow's handle on the runner: steps, checkpoints, children, cancellation."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from flux_api.names import SCHEDULE_LABEL
from flux_api.timefmt import format_time, utcnow
from flux_api.types import MAX_REASON, UnscheduleRequest
from flux_api.writes import StatusWrite

from flux_runner.cancel import CancelSwitch, StopReason, stop_reason_of
from flux_runner.client import ExecutionClient
from flux_runner.errors import ApiError, DuplicateStep, NotScheduled
from flux_runner.journal import Journal
from flux_runner.jsonvalue import json_value
from flux_runner import deadline, tracing
from flux_runner.signalling import SignalWaits
from flux_runner.spawner import POLL_INTERVAL, Spawner, requested_children
from flux_runner.waits import DEFAULT_DURABLE_AFTER, DurableWait, aware, recorded, recorded_wake, seconds_of


# How long ctx.stop_reason() waits for the Execution: a small part of the 30 s a grace period gives by default.
STOP_REASON_READ_SECONDS = 5.0


class WorkflowContext:
    """Passed to `async def main(ctx, input)`.

    Steps are identified by name: after a restart a step whose name is recorded in the
    checkpoint is not run again, its recorded result is returned.
    """

    def __init__(
        self,
        api: ExecutionClient,
        journal: Journal,
        switch: CancelSwitch,
        spawner: Spawner,
        log: logging.Logger | None = None,
        schedule: str | None = None,
        durable_after: float = DEFAULT_DURABLE_AFTER,
    ) -> None:
        self._api = api
        self._durable_after = durable_after
        self._sleeps = 0
        self._signals = SignalWaits(api, journal, switch, self._claim, self._enforce, durable_after,
                                    spawner.poll_interval)
        self._schedule = schedule
        self._journal = journal
        self._switch = switch
        self._spawner = spawner
        self._started: set[str] = set()
        self._polled_at = float("-inf")  # when the Execution was last read (the journal's clock)
        self.log = log or logging.getLogger("flux.workflow")

    @property
    def cancelled(self) -> bool:
        """True once a cancel arrived (signal, spec.cancel or annotation), also during cleanup."""
        return self._switch.requested

    async def stop_reason(self) -> StopReason | None:
        """Why the workflow is being stopped, or None while it is not; for cleanup code, which may await it.

        CANCEL is for good; after SUSPEND or INTERRUPTED (an eviction, a drain) the execution goes on from its
        checkpoint, so compensating there would undo work that is kept. A SIGTERM does not say which: the
        Execution is read then, and read again on the next call until it says CANCEL. If it cannot be read,
        the answer is CANCEL, as every stop was before this could be asked; the read waits at most
        STOP_REASON_READ_SECONDS.
        """
        if not self._switch.requested:
            return None
        if self._switch.cause is None:
            try:
                async with deadline.timeout(STOP_REASON_READ_SECONDS):  # the grace period runs meanwhile
                    reason = stop_reason_of(await self._api.get())
            except (ApiError, TimeoutError) as exc:  # cleanup must get an answer, and soon
                self.log.warning("could not read the Execution to tell why it stops (%s): taking it as a cancel",
                                 exc or "no answer in time")
                return StopReason.CANCEL
            if reason is not StopReason.CANCEL:
                return reason
            self._switch.cause = reason
        return self._switch.cause

    @property
    def completed_steps(self) -> list[str]:
        """Names of the steps recorded in the checkpoint, in order, restarts included.

        A cancel can land just after a step was recorded and before the workflow sees its
        result, so cleanup code should count from here rather than from its own variables.
        """
        return self._journal.step_names

    def raise_if_cancelled(self) -> None:
        if self._switch.requested:
            raise asyncio.CancelledError(self._switch.reason)

    async def step(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs `fn(*args)` (sync or async) once; checkpoints and returns its JSON result.

        Sync functions run on the event loop and delay cancellation until they return:
        keep them short, or make long work `async`.
        """
        self._claim(name)
        if self._journal.done(name):
            self.log.debug("step %s: done before the restart, reusing its result", name)
            return self._journal.result(name)
        await self._check_cancel()
        self.log.debug("step %s: started", name)
        with tracing.step(name):
            value = fn(*args)
            if inspect.isawaitable(value):
                value = await value
        result = json_value(value, f"the result of step {name!r}")
        await self._enforce(await self._journal.record_step(name, result))
        self.log.debug("step %s: done", name)
        return result

    async def checkpoint(self, data: Any) -> None:
        """Stores `data` (JSON) in status.checkpoint.data; it is kept until replaced. Written with the steps
        (at most once an interval); `await ctx.flush()` writes it at once."""
        payload = json_value(data, "checkpoint data")
        await self._enforce(await self._journal.save_data(payload))

    async def flush(self) -> None:
        """Writes the steps and data not written yet at once, rather than within the checkpoint interval."""
        await self._enforce(await self._journal.flush())

    async def spawn(self, workflow: str, input: Mapping[str, Any] | None = None, name: str | None = None) -> Any:
        """Runs a child Execution `<this name>-<name>` and returns its result.

        `name` defaults to `child-<n>` (n counts spawn calls, stable across restarts).
        Raises ChildFailed if the child ends Failed or Cancelled.
        """
        await self._enforce(await self._journal.flush())  # a child never starts ahead of the steps before it
        return await self._spawner.spawn(workflow, input, name)

    async def sleep(self, delay: float | timedelta, name: str | None = None) -> None:
        """Sleeps `delay` (seconds or a timedelta). Longer than the operator's --durable-wait-after (60 s by
        default), the sleep holds no pod: its wake time is checkpointed, the pod ends (phase Waiting), and at
        the wake time a new pod goes on from here, every earlier step skipped. `name` defaults to `sleep-<n>`
        (n counts sleeps, stable across restarts). A cancel ends either kind at once."""
        seconds = seconds_of(delay)
        await self._sleep(name, lambda: utcnow() + timedelta(seconds=seconds))

    async def sleep_until(self, moment: datetime, name: str | None = None) -> None:
        """Sleeps until `moment` (a timezone-aware datetime), as `sleep` does."""
        moment = aware(moment, utcnow())
        await self._sleep(name, lambda: moment)

    async def _sleep(self, name: str | None, wake: Callable[[], datetime]) -> None:
        self._sleeps += 1
        name = name if name is not None else f"sleep-{self._sleeps}"
        self._claim(name)
        wake_at = recorded_wake(self._journal.result(name)) if self._journal.done(name) else None
        if not self._journal.done(name):
            await self._check_cancel()
            wake_at = wake()
            await self._enforce(await self._journal.record_step(name, recorded(wake_at)))
        remaining = (wake_at - utcnow()).total_seconds() if wake_at is not None else 0.0
        if remaining <= self._durable_after:
            await asyncio.sleep(max(0.0, remaining))
            return
        self.log.info("sleep %s: until %s, without a pod", name, format_time(wake_at))
        raise DurableWait(wake_at, f"sleeping until {format_time(wake_at)}")

    async def wait_for_signal(self, name: str, timeout: float | timedelta | None = None, *,
                              with_sender: bool = False) -> Any:
        """Waits for a signal `name` (`kubectl flux signal EXECUTION NAME --data JSON`) and returns its data, or
        with `with_sender` (data, sender): the user who signed it, which the API server checked (None when the
        signal names no one). Each wait takes the next signal of that name not yet taken (one that timed out
        takes none). Raises SignalTimeout after `timeout` (seconds or a timedelta; None waits for ever). A wait
        longer than the durable threshold holds no pod, as a long ctx.sleep does: a new pod takes the signal when
        it arrives."""
        data, sender = await self._signals.wait(name, timeout)
        return (data, sender) if with_sender else data

    @property
    def schedule(self) -> str | None:
        """The Schedule that started this execution, or None."""
        return self._schedule

    async def unschedule(self, reason: str) -> None:
        """Suspends the Schedule that started this execution and ends this run as Cancelled with `reason`.

        The runner may only write its own status, so it asks (status.unscheduleRequest) and the operator
        suspends the Schedule. The cancel lands here: cleanup in `except CancelledError`/`finally` runs.
        """
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
            raise ValueError(f"ctx.unschedule needs a reason of 1 to {MAX_REASON} characters")
        if self._schedule is None:
            raise NotScheduled("ctx.unschedule(): this execution was not started by a Schedule")
        request = StatusWrite(unscheduleRequest=UnscheduleRequest(reason=reason, requestedAt=utcnow())).patch()
        await self._api.patch_status(request)
        self.log.info("asked to unschedule %s: %s", self._schedule, reason)
        self._switch.request(reason, StopReason.CANCEL)
        await asyncio.sleep(0)  # the task.cancel() just made raises CancelledError here
        raise asyncio.CancelledError(reason)  # reached only in a task the workflow made itself

    def _claim(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a step name must be a non-empty string, got {name!r}")
        if name in self._started:
            raise DuplicateStep(f"step {name!r} already ran in this execution; step names must be unique")
        self._started.add(name)

    async def _enforce(self, execution: dict[str, Any] | None) -> None:
        if execution is not None:
            await self._switch.enforce(execution)

    async def _check_cancel(self) -> None:
        # A step boundary: a lost SIGTERM must not let the work go on, so the API server is asked too, at most
        # once a checkpoint interval (a write's answer counts as asking).
        clock = self._journal.clock
        if not self._switch.requested and clock() - max(self._polled_at, self._journal.answered_at) >= \
                self._journal.interval:
            execution = await self._api.poll()
            self._polled_at = clock()
            await self._switch.enforce(execution)
        else:
            # Every boundary yields, I/O or not: SIGTERM's handler and the background flush get their turn
            # even in a loop of steps that never awaits anything else.
            await asyncio.sleep(0)


def create_context(
    api: ExecutionClient,
    execution: dict[str, Any],
    journal: Journal,
    switch: CancelSwitch,
    poll_interval: float = POLL_INTERVAL,
    durable_after: float = DEFAULT_DURABLE_AFTER,
) -> WorkflowContext:
    spawner = Spawner(api, switch, requested_children(execution), poll_interval)
    journal.on_written = switch.observe  # a background checkpoint write's answer may carry a cancel
    labels = (execution.get("metadata") or {}).get("labels") or {}
    return WorkflowContext(api, journal, switch, spawner, schedule=labels.get(SCHEDULE_LABEL),
                           durable_after=durable_after)
