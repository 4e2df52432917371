"""The ExecutionProgress resource: where a running runner writes its checkpoint between decision points.

A checkpoint write that only adds finished steps changes nothing the operator decides on, yet as a write of
the Execution it would be a watch event of an object the operator watches, decoded and compared for nothing.
So the runner's periodic writes go to this object (one per execution that checkpoints, same name, owned by
the Execution, made by the operator once it sees the runner's first checkpoint); the operator never watches
it. What the operator does decide on goes to the Execution's status.checkpoint as before: the final
checkpoint, a durable wait, the write before a spawn, `ctx.flush()`, and any write while there is no object.
Both carry the same `sequence`: the higher one is the newer checkpoint (`newest`), which is what a restarted runner, a retry and the CLI read.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field

from flux_api.timefmt import parse_time
from flux_api.types import Checkpoint, _Model

KIND = "ExecutionProgress"
PLURAL = "executionprogresses"
SINGULAR = "executionprogress"
SHORT_NAMES = ["fxp"]


# The object's status: the CRD's schema is generated from it (crd.progress_crd).
class ExecutionProgressStatus(_Model):
    checkpoint: Checkpoint | None = Field(None, description="The runner's latest checkpoint while it runs.")


def newest(recorded: dict[str, Any] | None, progress: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newer of status.checkpoint and the ExecutionProgress's checkpoint, by sequence; a tie goes to the
    Execution's own (the final word is written there)."""
    if not isinstance(progress, dict):
        return recorded
    if not isinstance(recorded, dict):
        return progress
    return progress if _sequence(progress) > _sequence(recorded) else recorded


def _sequence(checkpoint: dict[str, Any]) -> int:
    sequence = checkpoint.get("sequence")
    return sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else -1


def belongs_to(progress: dict[str, Any] | None, uid: str | None) -> bool:
    """Whether the ExecutionProgress (as read) is the one of the Execution with this UID: its controller. Only
    the operator may create these, so the reference is its word; a deleted namesake's object has another UID."""
    owners = ((progress or {}).get("metadata") or {}).get("ownerReferences") or []
    return bool(uid) and any(isinstance(o, dict) and o.get("controller") and o.get("uid") == uid for o in owners)


def checkpoint_of(progress: dict[str, Any] | None) -> dict[str, Any] | None:
    """The checkpoint an ExecutionProgress or an Execution (as read) holds in its status, if any."""
    status = (progress or {}).get("status")
    checkpoint = status.get("checkpoint") if isinstance(status, dict) else None
    return checkpoint if isinstance(checkpoint, dict) else None


# The API server stamps writes to the second; the operator's finishedAt is its own clock's.
FINISH_TOLERANCE = timedelta(seconds=1)


def written_after_finish(status: dict[str, Any], progress: dict[str, Any] | None) -> bool:
    """Whether the ExecutionProgress's status was last written after its execution (of this `status`) finished,
    by the API server's own stamp (managedFields): no runner of it writes then, only someone holding its token,
    so it is not news."""
    finished = parse_time(status.get("finishedAt"))
    if finished is None:
        return False
    entries = ((progress or {}).get("metadata") or {}).get("managedFields") or []
    stamps = [parse_time(e.get("time")) for e in entries if isinstance(e, dict) and e.get("subresource") == "status"]
    return any(t is not None and t > finished + FINISH_TOLERANCE for t in stamps)


def with_progress(execution: dict[str, Any], progress: dict[str, Any] | None) -> dict[str, Any]:
    """`execution` (as read) with the newer of its status.checkpoint and the checkpoint of `progress`, if that is
    its own ExecutionProgress (belongs_to) and was not written after the execution finished; `execution` itself
    when its own checkpoint is the newer."""
    status = execution.get("status") if isinstance(execution.get("status"), dict) else {}
    if not belongs_to(progress, (execution.get("metadata") or {}).get("uid")):
        return execution
    if written_after_finish(status, progress):
        return execution
    recorded = status.get("checkpoint")
    newer = newest(recorded, checkpoint_of(progress))
    if newer is None or newer is recorded:
        return execution
    return {**execution, "status": {**status, "checkpoint": newer}}
