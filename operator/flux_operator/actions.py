"""The vocabulary of decisions: what decide() is given (PodView) and what it returns (actions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flux_api import Execution
from flux_api.conditions import set_condition
from flux_api.timefmt import format_time

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
    key: str = ""  # posted once per (execution, reason, key): a repeat after a crash is a no-op


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


@dataclass(slots=True)  # one per runner pod in the World: thousands of them
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
    resource_version: str = ""  # orders two views of one pod: an older one never replaces a newer


@dataclass
class Plan:
    status: dict[str, Any] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)

    def event(self, reason: str, message: str, type_: str = "Normal", key: str = "") -> None:
        self.actions.append(EmitEvent(reason, message, type_, key))

    def condition(self, ex: Execution, now: datetime, type_: str, ok: bool, reason: str, message: str) -> None:
        """metav1.Condition bookkeeping on the status this plan will write."""
        if "conditions" not in self.status:
            self.status["conditions"] = [c.model_dump(exclude_none=True) for c in ex.status.conditions]
        set_condition(self.status["conditions"], type_, ok, reason, message, ex.metadata.get("generation"),
                      format_time(now))
