"""The checkpoint: kept in memory, written whole to status.checkpoint on every change."""

from __future__ import annotations

import asyncio
from typing import Any

from flux_api import TERMINAL_PHASES, Checkpoint, Phase, StepRecord
from flux_api.timefmt import now_text
from pydantic import ValidationError

from flux_runner.client import ExecutionClient
from flux_runner.errors import CheckpointRejected, Invalid, InvalidSpec

FINAL_STATES = frozenset(phase.value for phase in TERMINAL_PHASES)


def recorded_checkpoint(execution: dict[str, Any]) -> Checkpoint | None:
    raw = (execution.get("status") or {}).get("checkpoint")
    if raw is None:
        return None
    try:
        return Checkpoint.model_validate(raw)
    except ValidationError as exc:
        raise InvalidSpec(f"status.checkpoint is not a valid checkpoint: {exc}") from exc


class Journal:
    def __init__(self, api: ExecutionClient, previous: Checkpoint | None = None) -> None:
        self._api = api
        previous = previous or Checkpoint(state=Phase.RUNNING)
        self.sequence = previous.sequence  # continues across restarts: strictly increasing
        self.steps: list[StepRecord] = list(previous.steps)
        self.data: Any = previous.data
        self._recorded = {step.name: step for step in previous.steps}
        # Concurrent steps (asyncio.gather) must not interleave: sequence order = write order.
        self._lock = asyncio.Lock()

    def recorded(self, name: str) -> StepRecord | None:
        """The step's record from an earlier run of this Execution (before a restart)."""
        return self._recorded.get(name)

    async def record_step(self, name: str, result: Any) -> dict[str, Any]:
        step = StepRecord(name=name, result=result, completedAt=now_text())
        self.steps.append(step)
        try:
            return await self._write(Phase.RUNNING)
        except Invalid as exc:
            # Without the offending step the final Failed checkpoint can still be written.
            self.steps.remove(step)
            raise CheckpointRejected(f"the API server rejected the checkpoint of step {name!r}: {exc}") from exc

    async def save_data(self, data: Any) -> dict[str, Any]:
        previous, self.data = self.data, data
        try:
            return await self._write(Phase.RUNNING)
        except Invalid as exc:
            self.data = previous
            raise CheckpointRejected(f"the API server rejected the checkpoint data: {exc}") from exc

    async def finish(self, state: Phase, result: Any = None, error: str | None = None) -> dict[str, Any]:
        return await self._write(state, result, error)

    async def _write(self, state: Phase, result: Any = None, error: str | None = None) -> dict[str, Any]:
        async with self._lock:
            self.sequence += 1
            checkpoint = Checkpoint(
                state=state,
                sequence=self.sequence,
                steps=self.steps,
                data=self.data,
                result=result,
                error=error,
                updatedAt=now_text(),
            )
            # Every key is sent, None included: in a merge patch None deletes a stale value.
            return await self._api.patch_status({"checkpoint": checkpoint.model_dump(mode="json")})
