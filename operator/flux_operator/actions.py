"""What decide() asks the reconciler to do, and the view of the runner pod it decides from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# --- actions --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnsureRunner:
    """Create the runner's ServiceAccount, Role, RoleBinding and pod (each idempotently)."""


@dataclass(frozen=True)
class DeletePod:
    name: str
    grace_seconds: int
    uid: str = ""  # delete only this pod, never a successor of the same name


@dataclass(frozen=True)
class PatchStatus:
    """A merge patch of status, built by `status_patch` so every field is checked against the models."""

    patch: dict[str, Any]


@dataclass(frozen=True)
class CancelChild:
    name: str
    reason: str
    force: bool


@dataclass(frozen=True)
class CreateChild:
    name: str
    workflow: str
    input: dict[str, Any]


@dataclass(frozen=True)
class EmitEvent:
    reason: str
    message: str
    type: str = "Normal"


@dataclass(frozen=True)
class DeleteExecution:
    """ttlSecondsAfterFinished ran out: delete it; the garbage collector removes what it owns."""

    name: str
    uid: str


@dataclass(frozen=True)
class Observe:
    """A metric to record: `name` is signal_seconds, complete_seconds or outcome."""

    name: str
    source: str
    value: float | str


Action = EnsureRunner | DeletePod | PatchStatus | CancelChild | CreateChild | EmitEvent | DeleteExecution | Observe


@dataclass
class PodView:
    """What the state machine needs of the runner pod."""

    name: str
    phase: str = "Pending"  # the pod's status.phase
    terminating: bool = False
    started: bool = False  # a container has ever run
    exit_message: str = ""  # termination message or reason of the last terminated container
    uid: str = ""
    owner_uid: str = ""  # the controlling owner: the Execution this pod belongs to
    deletion_at: str | None = None  # metadata.deletionTimestamp: when the kubelet must be done
    node: str = ""
    reason: str = ""  # status.reason, e.g. Evicted
