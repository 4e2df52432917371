"""The vocabulary of decisions: what decide() is given (PodView) and what it returns (actions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flux_api import CancelSource, Checkpoint, Execution, Outcome, Phase, StatusWrite
from flux_api.conditions import CANCEL_REQUESTED, FINISHED, STARTED, set_condition
from flux_api.events import EventReason
from flux_api.timefmt import format_time

MAX_CONDITIONS = 16  # ExecutionStatus.conditions' bound
OWN_CONDITIONS = (STARTED, CANCEL_REQUESTED, FINISHED)

# --- actions --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Make:
    """One of the runner's objects to create, carrying `token`. An object already under its name is the
    operator's only if it proves so (ownership.proves): a recorded hash or UID, or, for an execution started
    before records were kept (`trust_owner`), its controlling ownerReference."""

    key: str  # serviceAccount, role, roleBinding or pod (the keys of status.runnerObjects)
    token: str
    proofs: tuple[str, ...]
    uids: tuple[str, ...] = ()
    trust_owner: bool = False


@dataclass(frozen=True)
class EnsureRunner:
    """Create what the runner lacks, in order (ServiceAccount, Role, RoleBinding, pod), after the status write
    that recorded their creation tokens' hashes."""

    makes: tuple[Make, ...] = ()


@dataclass(frozen=True)
class MakeProgress:
    """Create the runner's ExecutionProgress (flux_api.progress): its runner checkpoints, so from now on its
    periodic writes can go where the operator does not watch. Best effort, once per execution and replica."""


@dataclass(frozen=True)
class DeletePod:
    name: str
    grace_seconds: int
    uid: str = ""  # delete only this pod, never a successor of the same name


@dataclass(frozen=True)
class PatchStatus:
    """A merge patch of status: a decision's StatusWrite, every field checked against the models.
    `fenced`: sent with the resourceVersion it was decided on (a Conflict if the object moved on). Only a
    write that no runner write can make stale goes without: the record of a cancel just signalled, which
    would otherwise meet the runner's final checkpoint (the SIGTERM's answer) nearly every time."""

    patch: dict[str, Any]
    fenced: bool = True


@dataclass(frozen=True)
class CancelChild:
    name: str
    reason: str
    force: bool
    parent: str = ""  # the child's own parent, when a cancel reaches a grandchild or deeper in one pass


@dataclass(frozen=True)
class SuspendChild:
    """spec.suspend of a child this execution made: true with its parent's reason, false on its resume (only
    for a child whose suspended-by annotation names this parent)."""

    name: str
    suspend: bool
    reason: str = ""
    parent: str = ""


@dataclass(frozen=True)
class CreateChild:
    """After the status write that recorded the hash of `token`, which the child carries."""

    name: str
    workflow: str
    input: dict[str, Any]
    token: str = ""


@dataclass(frozen=True)
class EmitEvent:
    reason: EventReason
    message: str
    type: str = "Normal"
    key: str = ""  # posted once per (execution, reason, key): a repeat after a crash is a no-op
    signalled: str = ""  # a Signalled Event folded into this one; the shell leaves it out if the signal failed


@dataclass(frozen=True)
class DeleteExecution:
    """ttlSecondsAfterFinished ran out: delete it; the garbage collector removes what it owns."""

    name: str
    uid: str


@dataclass(frozen=True)
class Observe:
    """A metric to record: `name` is signal_seconds, complete_seconds or outcome."""

    name: str
    source: CancelSource
    value: float | Outcome


# The label of spawn requests refused past MAX_CHILDREN: they get no entry, so no ChildRefused of their own.
TOO_MANY_CHILDREN = "TooManyChildren"


@dataclass(frozen=True)
class ObserveRefusal:
    """Spawn requests refused, by why (a ChildRefused, or TOO_MANY_CHILDREN): counted once, after the status
    write that records them, as Observe is."""

    reason: str
    count: int = 1


Action = (EnsureRunner | DeletePod | PatchStatus | CancelChild | SuspendChild | CreateChild | EmitEvent | DeleteExecution
          | Observe | ObserveRefusal | MakeProgress)


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
    deletion_at: datetime | None = None  # metadata.deletionTimestamp: when the kubelet must be done
    token: str = ""  # the creation token annotation: proves the operator made it (ownership.py)
    node: str = ""
    reason: str = ""  # status.reason, e.g. Evicted
    unschedulable: str = ""  # the scheduler's message while it finds no node for the pod (PodScheduled=False)
    resource_version: str = ""  # orders two views of one pod: an older one never replaces a newer
    gate: str = ""  # the first scheduling gate holding it back (Kueue's admission gate, say): it cannot start
    queue: str = ""  # its kueue.x-k8s.io/queue-name label: the LocalQueue that admits it
    held: bool = False  # finalizers keep the object once the kubelet is done with it
    waiting: str = ""  # why the kubelet has not made its container yet (ImagePullBackOff, ...), with its message
    waiting_message: str = ""


# What a cancel's record writes: none of it read from what the runner writes (see PatchStatus.fenced).
CANCEL_RECORD_FIELDS = frozenset({"phase", "cancellation", "suspension", "conditions", "observedGeneration"})
# A merge patch of the checkpoint that keeps its steps and removes only its verdict (error, result).
VERDICT_TAKEN_BACK = Checkpoint(state=Phase.RUNNING, error=None, result=None)
# The same for a checkpoint that waited (a durable sleep): its wake time goes too.
RUN_AGAIN = Checkpoint(state=Phase.RUNNING, error=None, result=None, wakeAt=None, waiting=None, signal=None)


@dataclass
class Plan:
    status: StatusWrite = field(default_factory=StatusWrite)  # only what is set is written
    actions: list[Action] = field(default_factory=list)
    cancel_record: bool = False  # the status write records a cancel just signalled (PatchStatus.fenced)

    def event(self, reason: EventReason, message: str, type_: str = "Normal", key: str = "") -> None:
        self.actions.append(EmitEvent(reason, message, type_, key))

    def waiting(self, ex: Execution, now: datetime, reason: str, message: str) -> bool:
        """Pending on purpose: Started=False with `reason`, and `message` as the status message; said once, and
        again only when the message changes (no write while nothing new is said). True when said now."""
        if ex.status.message == message:
            return False
        self.status.set(message=message)
        self.condition(ex, now, STARTED, False, reason, message)
        return True

    def condition(self, ex: Execution, now: datetime, type_: str, ok: bool, reason: str, message: str) -> None:
        """metav1.Condition bookkeeping on the status this plan will write. The list stays within its bound:
        others' conditions make room for the operator's own."""
        held = self.status.conditions if "conditions" in self.status.model_fields_set else ex.status.conditions
        conditions = [c.model_dump(exclude_none=True) for c in held]
        set_condition(conditions, type_, ok, reason, message, ex.metadata.get("generation"), format_time(now))
        while len(conditions) > MAX_CONDITIONS:
            conditions.remove(next(c for c in conditions if c["type"] not in OWN_CONDITIONS))
        self.status.set(conditions=conditions)
