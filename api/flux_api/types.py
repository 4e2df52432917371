"""Pydantic models of the Execution resource, for reading and (through flux_api.writes) writing.

These models are the single source of truth: the CRD in crds/ is generated from them
(`make crds`), and the operator, runner and plugin parse with them.
Field names are the wire names (camelCase), as in every Kubernetes API.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

# Re-exported: every role reads them from here, beside the models they make up.
from flux_api.fields import Name, StartStamp, Stamp, Text, _Model  # noqa: F401
from flux_api.pod_template import (  # noqa: F401
    LABEL_VALUE_PATTERN,
    EnvVar,
    LabelValue,
    LocalObjectReference,
    PodMetadata,
    PodTemplate,
    ResourceRequirements,
    Volume,
    VolumeMount,
)
from flux_api.signals import MAX_SIGNALS, MAX_USER_NAME, Signal, SignalWait

MAX_DEADLINE_SECONDS = 10 * 365 * 24 * 3600  # bounded so no admitted value can overflow a datetime
# Caps on what one workflow may ask for: children per execution (over every spawnRequests it ever wrote),
# and depth of the tree.
MAX_CHILDREN = 50
# Time suspended or queued that a deadline leaves out, at most: a century (the schema's bound; the operator clamps
# an older object's larger value, so no deadline overflows a datetime).
MAX_PAUSED_SECONDS = 100 * 365 * 24 * 3600
MAX_DEPTH = 5
# Children's results mirrored into the parent's status.children, in all (etcd keeps an object within ~1.5 MB;
# the checkpoint takes up to 256 KiB). A result past it stays on its child, and ctx.spawn says so.
MIRRORED_RESULTS_BUDGET = 256 * 1024
MIRRORED_ERROR_CHARS = 2048
# Every reason a person or a workflow gives (a cancel's, an unschedule's) and a condition's (as metav1 has it).
MAX_REASON = 1024
WORKFLOW_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    CANCELLING = "Cancelling"
    SUSPENDING = "Suspending"  # spec.suspend: the runner is being stopped gracefully, as for a cancel
    SUSPENDED = "Suspended"  # no pod; resumes from its checkpoint once spec.suspend is false again
    WAITING = "Waiting"  # a durable sleep: no pod until its wake time (status.checkpoint.wakeAt)
    CANCELLED = "Cancelled"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL_PHASES = frozenset({Phase.CANCELLED, Phase.SUCCEEDED, Phase.FAILED})


def _known_phase(value: Any) -> Any:
    # A runner writes its own status (its checkpoint, and could write its children's mirror): a value this
    # version does not know reads as None, never as an error that would leave the whole execution unread.
    return None if isinstance(value, str) and value not in Phase._value2member_map_ else value


# A Phase as read from what a runner may write. The schema stays the bounded string it always was: the
# API server admits any value, and the reading above is what keeps an unknown one harmless.
CheckpointPhase = Annotated[Phase | None, BeforeValidator(_known_phase),
                            WithJsonSchema({"type": "string", "maxLength": 32})]
MirroredPhase = Annotated[Phase | None, BeforeValidator(_known_phase),
                          WithJsonSchema({"type": "string", "maxLength": 253})]


class Outcome(StrEnum):
    GRACEFUL = "Graceful"  # the runner acknowledged with a final checkpoint
    CLEANUP_FAILED = "CleanupFailed"  # it stopped, but the workflow's cleanup raised
    KILLED = "Killed"  # the grace period ran out before the workflow finished cleaning up
    FORCE_DELETED = "ForceDeleted"  # the pod outlived its grace period + margin (a dead node?): force-deleted
    NOT_STARTED = "NotStarted"  # cancelled while Pending: the workflow never ran
    TOO_LATE = "TooLate"  # the workflow finished before the cancel took effect
    WHILE_SUSPENDED = "WhileSuspended"  # cancelled while Suspended: no pod was left to stop
    WHILE_WAITING = "WhileWaiting"  # cancelled while Waiting (a durable sleep): no pod was left to stop


class CancelSource(StrEnum):
    SPEC = "spec"
    ANNOTATION = "annotation"
    DEADLINE = "deadline"
    PARENT = "parent"
    REPLACED = "replaced"  # a Schedule with concurrencyPolicy Replace started the next run
    UNSCHEDULE = "unschedule"  # the workflow called ctx.unschedule(reason)


class CancelRequest(_Model):
    """spec.cancel: set once, never changed or removed (a CEL rule on the CRD enforces it)."""

    reason: str = Field(min_length=1, max_length=MAX_REASON, description="Why the execution is cancelled.")
    cascade: bool = Field(True, description="Cancel child executions too.")
    force: bool = Field(False, description="Skip the grace period: SIGKILL at once.")


class RetryPolicy(_Model):
    limit: int = Field(ge=0, le=100, description="Retries after a failed run (0: none).")
    backoffSeconds: int = Field(10, ge=0, le=3600,
                                description="Wait before the first retry; doubles each retry, at most 1 hour.")


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
        None, ge=1, le=MAX_DEADLINE_SECONDS,
        description="Once exceeded, the execution is cancelled with reason DeadlineExceeded (at most 10 years).",
    )
    cancel: CancelRequest | None = Field(None, description="Set to cancel. Cannot be undone.")
    signals: list[Signal] = Field(default_factory=list, max_length=MAX_SIGNALS,
                                  description="Signals sent to the workflow (ctx.wait_for_signal); append-only.")
    retryOf: Name | None = Field(None, description="The execution this one retries (kubectl flux retry).")
    seed: Seed | None = Field(None, description="Finished steps to start from when nothing ran yet (kubectl flux "
                                                "retry): they are skipped, their results reused.")
    suspend: bool = Field(False, description="True: stop the runner gracefully and keep the checkpoint (Suspended); "
                                             "false again: resume in a new pod, skipping every finished step.")
    podTemplate: PodTemplate | None = Field(None, description="Settings of the runner pod.")
    startAt: StartStamp = Field(
        None,
        description="RFC 3339 time: the execution stays Pending until then (cancelling before ends NotStarted).")
    retry: RetryPolicy | None = Field(None, description="Retry failed runs from the last checkpoint.")
    ttlSecondsAfterFinished: int | None = Field(
        None, ge=0, le=31536000,
        description="Delete the execution (and what it owns) this long after it finished; unset: the "
                    "operator's default.")


class Condition(_Model):
    """metav1.Condition."""

    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    observedGeneration: int | None = Field(None, ge=0)
    lastTransitionTime: Stamp
    reason: str = Field(max_length=MAX_REASON)
    message: str = Field("", max_length=32768)


class StepRecord(_Model):
    name: Name
    result: Any = None
    completedAt: Stamp | None = None


class StepRun(_Model):
    """Consecutive numbered steps: prefix + first ... prefix + last."""

    prefix: Name
    first: int = Field(ge=0)
    last: int = Field(ge=0)


class StepLedger(_Model):
    """Every finished step, compactly (flux_api.ledger): numbered runs, then other names."""

    runs: list[StepRun] = Field(default_factory=list)
    names: list[Name] = Field(default_factory=list)


# The runner keeps its checkpoint (step ledger, results, data, recent steps) within this many bytes
# of JSON; a workflow that would need more fails once with CheckpointTooLarge (no crash loop).
CHECKPOINT_BUDGET = 256 * 1024
RECENT_STEPS = 20


class Checkpoint(_Model):
    """Written by the runner at most once a checkpoint interval while it runs, and once more when it stops."""

    # None: a state this version does not know. It is no verdict: once the runner exits the execution fails
    # ("runner exited without a final checkpoint").
    state: CheckpointPhase = Field(description="Running, Waiting, Succeeded, Failed or Cancelled.")
    sequence: int = Field(0, ge=0)
    steps: list[StepRecord] = Field(
        default_factory=list, description=f"The latest steps (at most {RECENT_STEPS}), for people to read.")
    stepCount: int = Field(0, ge=0, description="How many steps have finished in all.")
    done: StepLedger | None = Field(None, description="Every finished step, so a restart skips them.")
    results: dict[str, Any] = Field(default_factory=dict, description="Results of finished steps, by name.")
    data: Any = None
    result: Any = None
    error: Text | None = None
    wakeAt: Stamp | None = Field(None, description="State Waiting: when the operator starts the next pod.")
    waiting: str | None = Field(None, max_length=MAX_REASON, description="State Waiting: what it waits for.")
    signal: SignalWait | None = Field(None, description="State Waiting: the signal that ends the wait.")
    updatedAt: Stamp | None = None


class Seed(_Model):
    """spec.seed: a retry's head start, the finished steps of the execution it retries up to the step to run
    again. The runner starts its checkpoint from it when its execution has none; the same trust as spec.input."""

    done: StepLedger | None = None
    results: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list, max_length=RECENT_STEPS)
    stepCount: int = Field(0, ge=0)
    data: Any = None


class ChildRef(_Model):
    name: Name
    phase: MirroredPhase = None


class Cancellation(_Model):
    reason: str = Field(max_length=MAX_REASON)
    source: CancelSource
    requestedAt: Stamp | None = None
    signalledAt: Stamp | None = None
    acknowledgedAt: Stamp | None = None
    completedAt: Stamp | None = None
    forcedAt: Stamp | None = Field(None, description="When the operator force-deleted a pod that would not go.")
    outcome: Outcome | None = None
    children: list[ChildRef] = Field(default_factory=list, max_length=MAX_CHILDREN)
    childrenOmitted: int | None = Field(None, ge=0, description="Children not listed: the list is bounded.")


class Suspension(_Model):
    """The latest suspend (spec.suspend), written by the operator; `count` and `suspendedSeconds` add up."""

    reason: str = Field("", max_length=MAX_REASON)
    requestedAt: Stamp | None = None
    suspendedAt: Stamp | None = Field(None, description="When the runner pod and every child had stopped.")
    forcedAt: Stamp | None = Field(None, description="When the operator force-deleted a pod that would not go.")
    outcome: Outcome | None = Field(None, description="Graceful, CleanupFailed, Killed, ForceDeleted or NotStarted.")
    resumedAt: Stamp | None = None
    count: int = Field(0, ge=0, description="Suspends so far.")
    suspendedSeconds: int = Field(0, ge=0, json_schema_extra={"maximum": MAX_PAUSED_SECONDS},
                                  description="Time spent suspended, in all: not counted toward "
                                              "activeDeadlineSeconds.")


class SpawnRequest(_Model):
    """The runner asks the operator for a child; runners cannot create Executions themselves."""

    name: str = Field(max_length=253)
    workflow: str = Field(pattern=WORKFLOW_PATTERN, max_length=512)
    input: dict[str, Any] = Field(default_factory=dict)


class ChildRefused(StrEnum):
    """ChildStatus.reason: why no child was made under a name the runner asked for."""

    TOO_DEEP = "TooDeep"  # the tree would pass MAX_DEPTH
    TREE_FULL = "TreeFull"  # the tree holds the most executions the platform allows (maxExecutionsPerTree)
    NAME_TAKEN = "NameTaken"  # an Execution the operator did not make for this parent has the name
    REFUSED = "Refused"  # the API server refused the child (an admission policy, a quota that never heals)


# A record keeps one creation-token hash per operator that tried to make the object (a restart mid-create
# adds one): only an object carrying one of them is ever taken for the operator's own.
MAX_TOKENS = 4
TokenHash = Annotated[str, Field(max_length=64)]


class ChildStatus(_Model):
    """The operator's record of each child it was asked for, and the mirror of its phase and result for the
    runner. Only a child whose UID is recorded here (or that carries a creation token recorded here) is one."""

    name: Name
    uid: Name | None = Field(None, description="The child the operator made; no other Execution counts.")
    tokens: list[TokenHash] = Field(default_factory=list, max_length=MAX_TOKENS,
                                    description="Hashes of the creation tokens it put on the child (until made).")
    phase: MirroredPhase = None
    reason: Name | None = Field(None, description="Why it was not made: TooDeep, NameTaken or Refused.")
    result: Any = None
    resultOmitted: int | None = Field(
        None, ge=0, description="Size of a result left on the child: the mirrored results have a total budget.")
    error: Text | None = None


class Made(_Model):
    """One object the operator makes for an execution: the hashes of its creation tokens, recorded before
    the create, then its UID. An object found under its name without either is not the operator's."""

    name: Name | None = None
    uid: Name | None = None
    tokens: list[TokenHash] = Field(default_factory=list, max_length=MAX_TOKENS)


class RunnerObjects(_Model):
    serviceAccount: Made | None = None
    role: Made | None = None
    roleBinding: Made | None = None
    pod: Made | None = None


class UnscheduleRequest(_Model):
    """Written by the runner (ctx.unschedule): the operator suspends the Schedule and cancels this run."""

    reason: str = Field(min_length=1, max_length=MAX_REASON)
    requestedAt: Stamp | None = None


class SignalReceived(_Model):
    """The operator's record of a signal in spec.signals (by its place in the list)."""

    name: Name
    index: int = Field(ge=0, le=MAX_SIGNALS)
    receivedAt: Stamp | None = None
    sentBy: str | None = Field(None, max_length=MAX_USER_NAME,
                               description="Who sent it: the signal's own sentBy, which the API server checked was the "
                                           "sender's user name. Absent when the signal named no one.")
    fieldManager: Name | None = Field(None, description="The field manager that wrote spec.signals: named by the "
                                                        "client, so it says which tool, not who.")


class ExecutionStatus(_Model):
    phase: Phase | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    podName: Name | None = None
    startedAt: Stamp | None = None
    finishedAt: Stamp | None = None
    message: Text | None = None
    checkpoint: Checkpoint | None = None
    cancellation: Cancellation | None = None
    suspension: Suspension | None = None
    waitingSince: Stamp | None = Field(None, description="When the current durable wait began (phase Waiting).")
    signals: list[SignalReceived] = Field(default_factory=list, max_length=MAX_SIGNALS,
                                          description="Every signal received, in the order sent.")
    spawnRequests: list[SpawnRequest] = Field(
        default_factory=list, max_length=MAX_CHILDREN,
        description=f"Children the runner asks for; at most {MAX_CHILDREN} per execution.")
    children: list[ChildStatus] = Field(
        default_factory=list, max_length=MAX_CHILDREN,
        description=f"Every child asked for (at most {MAX_CHILDREN}, over every spawnRequests written), made or "
                    "refused.")
    childrenRefused: int | None = Field(
        None, ge=0, description=f"Spawn requests refused because the execution already had {MAX_CHILDREN} children.")
    runnerObjects: RunnerObjects | None = Field(
        None, description="What the operator made for the runner: nothing else under those names is used.")
    resumes: int = Field(0, ge=0, description="Runner pods started again after an eviction or a drain.")
    queuedSeconds: int = Field(0, ge=0, json_schema_extra={"maximum": MAX_PAUSED_SECONDS},
                               description="Time a retried or resumed run waited again for a slot of a "
                                                    "ConcurrencyLimit or an admission (Kueue's), in all: not "
                                                    "counted toward activeDeadlineSeconds.")
    retries: int | None = Field(None, ge=0, description="Retries started so far.")
    nextRetryAt: Stamp | None = Field(None, description="When the pending retry starts.")
    unscheduleRequest: UnscheduleRequest | None = None


class _Object(_Model):
    """A whole object as read from the API: metadata stays a plain dict (its subclass adds spec and status)."""

    apiVersion: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.metadata.get("name", "")

    @property
    def namespace(self) -> str:
        return self.metadata.get("namespace", "")


class Execution(_Object):
    """A whole Execution as read from the API."""

    spec: ExecutionSpec
    status: ExecutionStatus = Field(default_factory=ExecutionStatus)

    @property
    def phase(self) -> Phase:
        return self.status.phase or Phase.PENDING


ExecutionSpec.model_rebuild()  # spec.seed names models defined after it
