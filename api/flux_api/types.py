"""Pydantic models of the Execution resource, for reading and (through `status_patch`) writing.

These models are the single source of truth: the CRD in crds/ is generated from them
(`make crds`), and the operator, runner and plugin parse with them.
Field names are the wire names (camelCase), as in every Kubernetes API.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

WORKFLOW_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL_PHASES = frozenset({Phase.CANCELLED, Phase.SUCCEEDED, Phase.FAILED})


class Outcome(StrEnum):
    GRACEFUL = "Graceful"  # the runner acknowledged with a final checkpoint
    KILLED = "Killed"  # the grace period ran out
    NOT_STARTED = "NotStarted"  # cancelled while Pending: the workflow never ran
    TOO_LATE = "TooLate"  # the workflow finished before the cancel took effect


class CancelSource(StrEnum):
    SPEC = "spec"
    ANNOTATION = "annotation"
    DEADLINE = "deadline"
    PARENT = "parent"


class _Model(BaseModel):
    # Objects from the API server may carry fields from a newer version: ignore, never fail.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class CancelRequest(_Model):
    """spec.cancel: set once, never changed or removed (a CEL rule on the CRD enforces it)."""

    reason: str = Field(min_length=1, max_length=1024, description="Why the execution is cancelled.")
    cascade: bool = Field(True, description="Cancel child executions too.")
    force: bool = Field(False, description="Skip the grace period: SIGKILL at once.")


class ExecutionSpec(_Model):
    workflow: str = Field(
        pattern=WORKFLOW_PATTERN,
        max_length=512,
        description='The workflow function, "package.module:function", importable in the runner.',
    )
    input: dict[str, Any] = Field(default_factory=dict, description="JSON object passed to the workflow.")
    image: str | None = Field(None, min_length=1, description="Runner image; defaults from operator settings.")
    gracePeriodSeconds: int | None = Field(
        None, ge=0, le=3600,
        description="SIGTERM to SIGKILL on cancel; unset means the operator's default (30 unless configured).",
    )
    activeDeadlineSeconds: int | None = Field(
        None, ge=1, description="Once exceeded, the execution is cancelled with reason DeadlineExceeded."
    )
    cancel: CancelRequest | None = Field(None, description="Set to cancel. Cannot be undone.")


class Condition(_Model):
    """metav1.Condition."""

    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    observedGeneration: int | None = Field(None, ge=0)
    lastTransitionTime: str
    reason: str = Field(max_length=1024)
    message: str = Field("", max_length=32768)


class StepRecord(_Model):
    name: str
    result: Any = None
    completedAt: str | None = None


class Checkpoint(_Model):
    """Written by the runner after every step and once more when it stops."""

    state: str = Field(description="Running, Succeeded, Failed or Cancelled.")
    sequence: int = Field(0, ge=0)
    steps: list[StepRecord] = Field(default_factory=list)
    data: Any = None
    result: Any = None
    error: str | None = None
    updatedAt: str | None = None


class ChildRef(_Model):
    name: str
    phase: str | None = None


class Cancellation(_Model):
    reason: str
    source: CancelSource
    requestedAt: str | None = None
    signalledAt: str | None = None
    acknowledgedAt: str | None = None
    completedAt: str | None = None
    outcome: Outcome | None = None
    children: list[ChildRef] = Field(default_factory=list)


class SpawnRequest(_Model):
    """The runner asks the operator for a child; runners cannot create Executions themselves."""

    name: str = Field(max_length=253)
    workflow: str = Field(pattern=WORKFLOW_PATTERN, max_length=512)
    input: dict[str, Any] = Field(default_factory=dict)


class ChildStatus(_Model):
    """The operator mirrors each spawned child here so the runner can read its result."""

    name: str
    phase: str | None = None
    result: Any = None
    error: str | None = None


class ExecutionStatus(_Model):
    phase: Phase | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    podName: str | None = None
    startedAt: str | None = None
    finishedAt: str | None = None
    message: str | None = None
    checkpoint: Checkpoint | None = None
    cancellation: Cancellation | None = None
    spawnRequests: list[SpawnRequest] = Field(default_factory=list)
    children: list[ChildStatus] = Field(default_factory=list)


class Execution(_Model):
    """A whole object as read from the API: metadata stays a plain dict."""

    apiVersion: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ExecutionSpec
    status: ExecutionStatus = Field(default_factory=ExecutionStatus)

    @property
    def name(self) -> str:
        return self.metadata.get("name", "")

    @property
    def namespace(self) -> str:
        return self.metadata.get("namespace", "")

    @property
    def phase(self) -> Phase:
        return self.status.phase or Phase.PENDING


# --- typed writes ---------------------------------------------------------------------------------

def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through `X | None` and `list[X]`; None for plain values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _reject_unknown(model: type[BaseModel], data: Any, path: str) -> None:
    # Reading ignores unknown fields (newer servers); writing must not: the schema would drop them silently.
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            raise ValueError(f"{path}{key}: {model.__name__} has no such field")
        inner = _model_in(field.annotation)
        if inner is None:
            continue
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            _reject_unknown(inner, item, f"{path}{key}[{i}]." if isinstance(value, list) else f"{path}{key}.")


def status_patch(fields: dict[str, Any]) -> dict[str, Any]:
    """A merge patch of status, checked against the models: a misspelt or ill-typed field raises.

    Only the fields given are written (a None removes the field, as merge patch says).
    """
    _reject_unknown(ExecutionStatus, fields, "status.")
    return ExecutionStatus.model_validate(fields).model_dump(mode="json", exclude_unset=True)
