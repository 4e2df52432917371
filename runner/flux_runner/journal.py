"""The checkpoint: kept in memory, written whole (and bounded), at most once an interval.

Finished steps are written together: the first change after a quiet interval at once, later ones when the
interval since the last write has passed (a background flush, so a long step does not hold them back). These
periodic writes go to the runner's ExecutionProgress when the operator made one (flux_api.progress), so they
cost the operator nothing; the final checkpoint (end, cancel, failure, a durable wait) and `flush()` (before a
spawn, or when the workflow asks) go to the Execution's status.checkpoint, at once. What a crash can cost: the
steps finished since the last write, at most one interval of them, run again in the next pod; a cancel or a
clean end costs nothing, its final checkpoint holds every step."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from flux_api import Checkpoint, Phase, StepRecord, nesting
from flux_api.ledger import Ledger
from flux_api.progress import KIND as PROGRESS_KIND
from flux_api.progress import belongs_to, checkpoint_of, newest
from flux_api.signals import SIGNAL_STEP_PREFIX, wait_step
from flux_api.timefmt import now_text
from flux_api.types import CHECKPOINT_BUDGET, RECENT_STEPS
from pydantic import ValidationError

from flux_runner.client import ExecutionClient
from flux_runner.settings import DEFAULT_CHECKPOINT_INTERVAL
from flux_runner.errors import (
    ApiError,
    CheckpointRejected,
    CheckpointTooLarge,
    Forbidden,
    Invalid,
    InvalidSpec,
    NotFound,
    TooLarge,
)
from flux_runner.waits import DurableWait

log = logging.getLogger("flux.runner")

# Looking for an ExecutionProgress not there yet: first after this long (or an interval), then twice as long
# each time, up to a minute: a runner whose operator cannot make one costs a GET a minute.
LOOK_FIRST_AFTER = 0.25
LOOK_AT_MOST_EVERY = 60.0


def recorded_checkpoint(execution: dict[str, Any], progress: dict[str, Any] | None = None) -> Checkpoint | None:
    """The checkpoint to go on from: the newer of status.checkpoint and the ExecutionProgress's, or when nothing
    ran yet a retry's spec.seed."""
    recorded = (execution.get("status") or {}).get("checkpoint")
    raw = newest(recorded, checkpoint_of(progress))
    where = "status.checkpoint" if raw is recorded else f"{PROGRESS_KIND} status.checkpoint"
    if raw is None:
        raw, where = (execution.get("spec") or {}).get("seed"), "spec.seed"
        if raw is None:
            return None
        raw = {**raw, "state": Phase.RUNNING} if isinstance(raw, dict) else raw
    # What a restarted runner reads back and writes again (a forger may have put anything there), each
    # with the levels above its values: results {name: value}, steps [{"result": value}].
    for field, above in (("data", 0), ("result", 0), ("results", 1), ("steps", 2)):
        if isinstance(raw, dict) and (problem := nesting.nesting_problem(raw.get(field), f"{where}.{field}", above)):
            raise InvalidSpec(problem)
    try:
        checkpoint = Checkpoint.model_validate(raw)
    except ValidationError as exc:
        raise InvalidSpec(f"{where} is not a valid checkpoint: {exc}") from exc
    return without_signed_signals(checkpoint) if where == "spec.seed" else checkpoint


def without_signed_signals(seed: Checkpoint) -> Checkpoint:
    """A seed says what its Execution's creator wrote; a signal's sentBy is the API server's word only in
    spec.signals. So a signed signal in a seed, and its wait, are waited for again: never taken on trust."""
    signed = {name for name, value in seed.results.items()
              if name.startswith(SIGNAL_STEP_PREFIX) and isinstance(value, dict) and "sentBy" in value}
    if not signed:
        return seed
    dropped = signed | {wait_step(name) for name in signed}
    legacy = [] if seed.done is not None else [step.name for step in seed.steps]
    done, kept = Ledger(seed.done, legacy), Ledger()
    for name in done:
        if name not in dropped:
            kept.add(name)
    log.warning("spec.seed: %d signed signal(s) not taken on trust; the workflow waits for them again",
                len(signed))
    return seed.model_copy(update={
        "done": kept.stored(),
        "results": {name: value for name, value in seed.results.items() if name not in dropped},
        "steps": [step for step in seed.steps if step.name not in dropped],
        "stepCount": max(0, seed.stepCount - (len(done) - len(kept)))})


class Journal:
    """Steps done (a compact ledger), their results, the workflow's data: the bounded checkpoint.

    Each write sends the whole checkpoint, which never grows past CHECKPOINT_BUDGET: what would
    push it past is refused here with CheckpointTooLarge, before the API server has to.
    """

    def __init__(self, api: ExecutionClient, previous: Checkpoint | None = None,
                 budget: int = CHECKPOINT_BUDGET, interval: float = DEFAULT_CHECKPOINT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, progress: bool = False,
                 look_for: str | None = None) -> None:
        self._api = api
        self.interval, self.clock = interval, clock
        self.to_progress = progress  # periodic writes go to the ExecutionProgress (main.py found one)
        # Without one yet: the UID whose ExecutionProgress the operator makes once this runner has written a
        # checkpoint, looked for before a periodic write, first after an interval, then ever more rarely.
        self._look_for = look_for
        self._look_after = max(interval, LOOK_FIRST_AFTER)
        self._look_at = clock() + self._look_after
        self.written_at = float("-inf")  # when the last write was sent (monotonic)
        self.answered_at = float("-inf")  # when the last write to the Execution was sent: its answer was read
        self._dirty = False
        self._flusher: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None  # a background write that failed: raised by the next call
        # Each answer of a background write (the Execution as it is now): the cancel switch reads it.
        self.on_written: Callable[[dict[str, Any]], Any] = lambda _: None
        previous = previous or Checkpoint(state=Phase.RUNNING)
        self.budget = budget
        self.sequence = previous.sequence  # continues across restarts: strictly increasing
        self.recent: list[StepRecord] = list(previous.steps)[-RECENT_STEPS:]
        legacy = [] if previous.done is not None else [step.name for step in previous.steps]
        self.ledger = Ledger(previous.done, legacy)
        self.results: dict[str, Any] = dict(previous.results)
        for step in previous.steps:  # older checkpoints kept results on the step records
            if step.result is not None:
                self.results.setdefault(step.name, step.result)
        self.count = max(previous.stepCount, len(self.ledger))
        self.data: Any = previous.data
        # Concurrent steps (asyncio.gather) must not interleave: sequence order = write order.
        self._lock = asyncio.Lock()

    def done(self, name: str) -> bool:
        """The step finished in an earlier run of this Execution (before a restart)."""
        return name in self.ledger

    def result(self, name: str) -> Any:
        return self.results.get(name)

    @property
    def step_names(self) -> list[str]:
        return list(self.ledger)

    async def record_step(self, name: str, result: Any) -> dict[str, Any] | None:
        """Records a finished step; the Execution as the API server answered if it was written now, else None
        (it is written within the interval)."""
        self._raise_failure()
        self.ledger.add(name)
        if result is not None:
            self.results[name] = result
        self.recent = [*self.recent, StepRecord(name=name, completedAt=now_text())][-RECENT_STEPS:]
        self.count += 1
        try:
            return await self._soon()
        except (Invalid, CheckpointTooLarge) as exc:
            # Without the offending step the final Failed checkpoint can still be written.
            self.ledger.discard_last(name)
            self.results.pop(name, None)
            self.recent = [r for r in self.recent if r.name != name]
            self.count -= 1
            if isinstance(exc, CheckpointTooLarge):
                raise CheckpointTooLarge(f"the result of step {name!r} does not fit: {exc.args[0]}") from None
            raise CheckpointRejected(f"the API server rejected the checkpoint of step {name!r}: {exc}") from exc

    async def save_data(self, data: Any) -> dict[str, Any] | None:
        self._raise_failure()
        previous, self.data = self.data, data
        try:
            return await self._soon()
        except (Invalid, CheckpointTooLarge) as exc:
            self.data = previous
            if isinstance(exc, CheckpointTooLarge):
                raise CheckpointTooLarge(f"the checkpoint data does not fit: {exc.args[0]}") from None
            raise CheckpointRejected(f"the API server rejected the checkpoint data: {exc}") from exc

    async def flush(self) -> dict[str, Any] | None:
        """Writes what is pending at once; None when nothing was."""
        self._raise_failure()
        await self._stop_flusher()
        return await self._write(Phase.RUNNING, to_execution=True) if self._dirty else None

    async def finish(self, state: Phase, result: Any = None, error: str | None = None,
                     wait: DurableWait | None = None) -> dict[str, Any]:
        await self._stop_flusher()  # the final word is the last write
        try:
            written = await self._write(state, result, error, wait, to_execution=True)
        except CheckpointTooLarge as exc:
            # The final word must land: the result goes, the reason stays.
            written = await self._write(Phase.FAILED, None,
                                        f"CheckpointTooLarge: the workflow result does not fit: {exc.args[0]}",
                                        to_execution=True)
        assert written is not None, "a write to the Execution answers with it"
        return written

    def checkpoint(self, state: Phase, result: Any = None, error: str | None = None,
                   wait: DurableWait | None = None) -> dict[str, Any]:
        return Checkpoint(
            state=state, sequence=self.sequence, steps=self.recent, stepCount=self.count,
            done=self.ledger.stored(), results=self.results, data=self.data, result=result, error=error,
            wakeAt=wait.wake_at if wait else None, waiting=wait.waiting if wait else None,
            signal=wait.signal if wait else None, updatedAt=now_text(),
        ).model_dump(mode="json")

    async def _soon(self) -> dict[str, Any] | None:
        """Checks the size at once (the step that does not fit is the one refused); writes now if the interval
        has passed since the last write, else leaves it to the background flush."""
        self._dirty = True
        if self._flusher is None and self.clock() - self.written_at >= self.interval:
            return await self._write(Phase.RUNNING)
        self._measure(self.checkpoint(Phase.RUNNING))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later(), name="checkpoint flush")
        return None

    async def _flush_later(self) -> None:
        try:
            while self._dirty:  # steps that finished while a write was on its way go with the next one
                await asyncio.sleep(max(0.0, self.written_at + self.interval - self.clock()))
                if self._dirty and (written := await self._write(Phase.RUNNING)) is not None:
                    self.on_written(written)
        except (ApiError, CheckpointTooLarge) as exc:
            log.error("a checkpoint write failed: %s", exc)
            self._failure = exc
        finally:
            self._flusher = None

    async def _stop_flusher(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None and not flusher.done():
            flusher.cancel()
            # asyncio.wait, not `await flusher` under suppress(CancelledError): that also swallowed a cancel of
            # the caller (the workflow's SIGTERM) landing while the background write stopped.
            await asyncio.wait([flusher])
            if not flusher.cancelled() and flusher.exception() is not None:
                raise flusher.exception()  # anything but its own cancel still reaches the caller

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if isinstance(failure, (Invalid, CheckpointTooLarge)):
            raise CheckpointRejected(f"the API server rejected a checkpoint: {failure}") from failure
        if failure is not None:
            raise failure

    def _measure(self, checkpoint: dict[str, Any]) -> int:
        size = len(json.dumps(checkpoint, separators=(",", ":")))
        if size > self.budget:
            raise CheckpointTooLarge(f"{size} bytes of checkpoint, the budget is {self.budget}")
        return size

    async def _write(self, state: Phase, result: Any = None, error: str | None = None,
                     wait: DurableWait | None = None, to_execution: bool = False) -> dict[str, Any] | None:
        """The Execution as the API server answered, or None when the write went to the ExecutionProgress."""
        async with self._lock:
            checkpoint = self.checkpoint(state, result, error, wait)
            size = self._measure(checkpoint)
            self._dirty = False  # what changes from here on is written by a later write
            self.written_at = self.clock()  # when it was sent: concurrent steps wait an interval from here
            self.sequence += 1
            checkpoint["sequence"] = self.sequence
            # Every key is sent, None included: in a merge patch None deletes a stale value.
            try:
                if not to_execution and not self.to_progress and self._look_for and self.clock() >= self._look_at:
                    await self._look()
                if self.to_progress and not to_execution and await self._progressed(checkpoint):
                    return None
                answer = await self._api.patch_status({"checkpoint": checkpoint})
                self.answered_at = self.written_at
                return answer
            except BaseException as exc:
                self._dirty = True  # not written: the next write carries it
                if isinstance(exc, TooLarge):
                    raise CheckpointTooLarge(f"the API server refused {size} bytes: {exc}") from exc
                raise

    async def _progressed(self, checkpoint: dict[str, Any]) -> bool:
        """Writes `checkpoint` to the ExecutionProgress; False if that object is gone or no longer ours to write,
        and from then on every checkpoint goes to the Execution."""
        try:
            await self._api.patch_progress({"checkpoint": checkpoint})
            return True
        except (NotFound, Forbidden) as exc:
            log.warning("the ExecutionProgress cannot be written, checkpoints go to the Execution: %s", exc)
            self.to_progress = False
            return False

    async def _look(self) -> None:
        """Looks again for the ExecutionProgress the operator makes once this runner checkpoints; none yet (or no
        answer), again later, backing off."""
        assert self._look_for is not None
        try:
            found, again = await look_for_progress(self._api, self._look_for)
        except ApiError as exc:  # the checkpoint is written to the Execution meanwhile
            log.warning("could not look for the ExecutionProgress: %s", exc)
            found, again = None, True
        if found is not None:
            self.to_progress = True
            log.info("checkpoints go to the ExecutionProgress")
        if not again:
            self._look_for = None
            return
        self._look_after = min(LOOK_AT_MOST_EVERY, self._look_after * 2)
        self._look_at = self.clock() + self._look_after


async def look_for_progress(api: ExecutionClient, uid: str | None) -> tuple[dict[str, Any] | None, bool]:
    """The runner's own ExecutionProgress, if there is one; and whether to look again later: only when there is
    none yet. One of a deleted namesake's (another controller UID) is neither read nor written, and with no
    right to one (an operator older than it) there never will be: every checkpoint goes to the Execution."""
    try:
        found = await api.get_progress()
    except Forbidden:
        return None, False
    if found is None:
        return None, True
    if belongs_to(found, uid):
        return found, False
    log.warning("the ExecutionProgress of this name is not this execution's; checkpoints go to the Execution")
    return None, False
