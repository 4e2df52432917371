"""The checkpoint: kept in memory, written whole (and bounded) to status.checkpoint on every change."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flux_api import Checkpoint, Phase, StepRecord, nesting
from flux_api.ledger import Ledger
from flux_api.timefmt import now_text
from flux_api.types import CHECKPOINT_BUDGET, RECENT_STEPS
from pydantic import ValidationError

from flux_runner.client import ExecutionClient
from flux_runner.errors import CheckpointRejected, CheckpointTooLarge, Invalid, InvalidSpec, TooLarge


def recorded_checkpoint(execution: dict[str, Any]) -> Checkpoint | None:
    raw = (execution.get("status") or {}).get("checkpoint")
    if raw is None:
        return None
    # What a restarted runner reads back and writes again (a forger may have put anything there), each
    # with the levels above its values: results {name: value}, steps [{"result": value}].
    for field, above in (("data", 0), ("result", 0), ("results", 1), ("steps", 2)):
        if isinstance(raw, dict) and (problem := nesting.nesting_problem(raw.get(field), f"status.checkpoint.{field}",
                                                                          above)):
            raise InvalidSpec(problem)
    try:
        return Checkpoint.model_validate(raw)
    except ValidationError as exc:
        raise InvalidSpec(f"status.checkpoint is not a valid checkpoint: {exc}") from exc


class Journal:
    """Steps done (a compact ledger), their results, the workflow's data: the bounded checkpoint.

    Each write sends the whole checkpoint, which never grows past CHECKPOINT_BUDGET: what would
    push it past is refused here with CheckpointTooLarge, before the API server has to.
    """

    def __init__(self, api: ExecutionClient, previous: Checkpoint | None = None,
                 budget: int = CHECKPOINT_BUDGET) -> None:
        self._api = api
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

    async def record_step(self, name: str, result: Any) -> dict[str, Any]:
        self.ledger.add(name)
        if result is not None:
            self.results[name] = result
        self.recent = [*self.recent, StepRecord(name=name, completedAt=now_text())][-RECENT_STEPS:]
        self.count += 1
        try:
            return await self._write(Phase.RUNNING)
        except (Invalid, CheckpointTooLarge) as exc:
            # Without the offending step the final Failed checkpoint can still be written.
            self.ledger.discard_last(name)
            self.results.pop(name, None)
            self.recent = [r for r in self.recent if r.name != name]
            self.count -= 1
            if isinstance(exc, CheckpointTooLarge):
                raise CheckpointTooLarge(f"the result of step {name!r} does not fit: {exc.args[0]}") from None
            raise CheckpointRejected(f"the API server rejected the checkpoint of step {name!r}: {exc}") from exc

    async def save_data(self, data: Any) -> dict[str, Any]:
        previous, self.data = self.data, data
        try:
            return await self._write(Phase.RUNNING)
        except (Invalid, CheckpointTooLarge) as exc:
            self.data = previous
            if isinstance(exc, CheckpointTooLarge):
                raise CheckpointTooLarge(f"the checkpoint data does not fit: {exc.args[0]}") from None
            raise CheckpointRejected(f"the API server rejected the checkpoint data: {exc}") from exc

    async def finish(self, state: Phase, result: Any = None, error: str | None = None) -> dict[str, Any]:
        try:
            return await self._write(state, result, error)
        except CheckpointTooLarge as exc:
            # The final word must land: the result goes, the reason stays.
            return await self._write(Phase.FAILED, None,
                                     f"CheckpointTooLarge: the workflow result does not fit: {exc.args[0]}")

    def checkpoint(self, state: Phase, result: Any = None, error: str | None = None) -> dict[str, Any]:
        return Checkpoint(
            state=state, sequence=self.sequence, steps=self.recent, stepCount=self.count,
            done=self.ledger.stored(), results=self.results, data=self.data, result=result, error=error,
            updatedAt=now_text(),
        ).model_dump(mode="json")

    async def _write(self, state: Phase, result: Any = None, error: str | None = None) -> dict[str, Any]:
        async with self._lock:
            checkpoint = self.checkpoint(state, result, error)
            size = len(json.dumps(checkpoint, separators=(",", ":")))
            if size > self.budget:
                raise CheckpointTooLarge(f"{size} bytes of checkpoint, the budget is {self.budget}")
            self.sequence += 1
            checkpoint["sequence"] = self.sequence
            # Every key is sent, None included: in a merge patch None deletes a stale value.
            try:
                return await self._api.patch_status({"checkpoint": checkpoint})
            except TooLarge as exc:
                raise CheckpointTooLarge(f"the API server refused {size} bytes: {exc}") from exc
