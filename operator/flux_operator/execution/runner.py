"""Starting a runner: which pod is the execution's own, asking for the runner's objects, and what a create
the API server refused does to the execution. Pure: observed state and the reconciler's Memory in.

Each of the runner's objects (ServiceAccount, Role, RoleBinding, pod) is recorded in
status.runnerObjects: the hash of its creation token before the create, its UID once made (ownership.py).
A ServiceAccount, Role or RoleBinding already made is never asked for again, so a retried start sends only
what is missing (usually the pod). An object found under the runner's names that is not provably the
operator's is never used: the create it blocked is refused, and the execution fails naming it.

A refusal that cannot heal (admission's 403, 400/422, 413: a policy, Pod Security, the schema or a size limit said
no) ends the execution Failed with the API server's message and a Warning Event. One that can (a full ResourceQuota,
throttling, a 5xx, no answer, an RBAC 403 while the operator's role is upgraded) leaves it Pending with a message
saying so, retried with bounded backoff.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from flux_api import Execution
from flux_api.conditions import STARTED, WAITING_PREFIX, StartedReason
from flux_api.names import KUEUE_ADMISSION_GATE
from flux_api.errors import Failure
from flux_api.events import EventReason
from flux_api.types import RunnerObjects

from flux_operator.execution import timing
from flux_operator.execution.actions import EnsureRunner, Make, Plan, PodView
from flux_operator.ownership import Memory, Refusal, token_hash, with_token

ACCOUNT_KINDS = ("serviceAccount", "role", "roleBinding")  # made once per execution
RUNNER_KEYS = (*ACCOUNT_KINDS, "pod")  # the pod is made again for each run, retry and resume


def legacy(ex: Execution) -> bool:
    """Started by an operator that kept no records of what it made: recognised by ownerReference, as it was."""
    return ex.status.runnerObjects is None and ex.status.phase is not None


def _record(ex: Execution) -> dict[str, Any]:
    return (ex.status.runnerObjects or RunnerObjects()).model_dump(mode="json", exclude_none=True,
                                                                  exclude_defaults=True)


def own_pod(ex: Execution, pod: PodView | None, memory: Memory) -> PodView | None:
    """The pod, if it is one the operator made for this execution; else None (it is not used, not even
    deleted: it is not ours)."""
    if pod is None or legacy(ex):
        return pod
    if pod.uid and pod.uid == memory.made.get("pod"):
        return pod
    made = ex.status.runnerObjects.pod if ex.status.runnerObjects else None
    if made is None or made.name != pod.name:
        return None
    if made.uid:
        return pod if made.uid == pod.uid else None
    return pod if pod.token and token_hash(pod.token) in made.tokens else None


def refused_runner(memory: Memory) -> Refusal | None:
    """The refusal that decides: a permanent one first."""
    found = [memory.refusals[k] for k in RUNNER_KEYS if k in memory.refusals]
    return next((r for r in found if r.permanent), found[0] if found else None)


def refusal_message(refused: Refusal) -> str:
    """The Failed message: the API server's own words, or the object that is not ours."""
    if refused.failure is Failure.CONFLICT:
        return f"RunnerRefused: {refused.message}"
    return f"RunnerRefused: the API server refused the runner's {refused.what}: {refused.message}"


def ensure_runner(ex: Execution, pod_name: str, memory: Memory, plan: Plan, now: datetime) -> str | None:
    """Asks for what the runner lacks, recording each creation token's hash in this decision's status (the
    creates run after that write). Returns the message to fail with when the API server refused for good."""
    refused = refused_runner(memory)
    if refused is not None and refused.permanent:
        return refusal_message(refused)
    if refused is not None:
        _waiting(ex, refused, plan, now)
        if now < refused.retry_at:
            return None
    record = _record(ex)
    makes = []
    for key in ACCOUNT_KINDS:
        made = dict(record.get(key) or {})
        if made.get("uid") or memory.made.get(key):
            continue
        token = memory.token(key)
        made["tokens"] = with_token(made.get("tokens", []), token)
        record[key] = made
        makes.append(Make(key, token, tuple(made["tokens"]), (), legacy(ex)))
    made = dict(record.get("pod") or {})
    known = tuple(u for u in (made.get("uid"), memory.made.get("pod")) if u)
    if made.get("name") != pod_name or known:
        # A new pod (the first, a retry's or a resume's): a new token, so no earlier pod's token (readable
        # on that pod) can vouch for an object someone else puts under this name.
        token = memory.token("pod", renew=True)
        memory.made.pop("pod", None)
        # "uid": None removes the earlier pod's from the record (a merge patch keeps what it does not name): the
        # API server would take the runner's writes from that pod's token, and never from the new one's.
        made = {"name": pod_name, "tokens": with_token([], token), "uid": None}
    else:
        token = memory.token("pod")
        made["tokens"] = with_token(made.get("tokens", []), token)
    record["pod"] = made
    makes.append(Make("pod", token, tuple(made["tokens"]), known, legacy(ex)))
    if record != _record(ex) or ex.status.runnerObjects is None:
        plan.status.set(runnerObjects=record)
    plan.actions.append(EnsureRunner(tuple(makes)))
    return None


def pod_pending(ex: Execution, memory: Memory) -> bool:
    """The pod asked for has not been made yet (its create failed or is to be retried): not a lost pod."""
    if legacy(ex) or ex.status.runnerObjects is None:
        return False
    made = ex.status.runnerObjects.pod
    return made is not None and made.name == ex.status.podName and not made.uid and not memory.made.get("pod")


def _waiting(ex: Execution, refused: Refusal, plan: Plan, now: datetime) -> None:
    """Pending, saying why and that it is retried: once per message."""
    reason = StartedReason.QUOTA_EXCEEDED if refused.failure is Failure.QUOTA else StartedReason.RUNNER_DELAYED
    message = (f"{WAITING_PREFIX}could not create the runner's {refused.what} ({refused.failure}: "
               f"{refused.message[:400]}); retrying with backoff")
    if plan.waiting(ex, now, reason, message):
        plan.event(EventReason.RUNNER_DELAYED, message, "Warning", key=reason.lower())


def unschedulable(ex: Execution, pod: PodView, plan: Plan, now: datetime) -> None:
    """Pending while no node fits the runner pod (too little CPU or memory, a taint, a selector), saying
    so in the scheduler's words: once per message. Starting clears it (machine._mark_started)."""
    message = f"{WAITING_PREFIX}runner pod {pod.name} is not scheduled: {pod.unschedulable[:400]}"
    if plan.waiting(ex, now, StartedReason.RUNNER_UNSCHEDULABLE, message):
        plan.event(EventReason.RUNNER_UNSCHEDULABLE, message, "Warning")


# The kubelet's reasons for a container it cannot make: they alternate (ErrImagePull, then ImagePullBackOff), so
# the message names the kind, not the reason, and is written once.
IMAGE_WAITS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CONFIG_WAITS = frozenset({"CreateContainerConfigError"})


def not_created(pod: PodView) -> bool:
    return pod.waiting in IMAGE_WAITS or pod.waiting in CONFIG_WAITS


def container_not_created(ex: Execution, pod: PodView, plan: Plan, now: datetime) -> None:
    """Pending while the kubelet cannot make the runner's container: its image cannot be pulled, or a Secret or
    ConfigMap it names is missing. Said once per message; starting clears it (machine._mark_started)."""
    if pod.waiting in IMAGE_WAITS:
        reason = StartedReason.RUNNER_IMAGE_NOT_PULLED
        message = f"{WAITING_PREFIX}runner pod {pod.name}: its image cannot be pulled (see the pod's events)"
    else:
        reason = StartedReason.RUNNER_CONFIG_MISSING
        message = f"{WAITING_PREFIX}runner pod {pod.name}: {pod.waiting_message[:400] or pod.waiting}"
    if plan.waiting(ex, now, reason, message):
        plan.event(EventReason.RUNNER_NOT_CREATED, message, "Warning")


def gated(ex: Execution, pod: PodView, plan: Plan, now: datetime) -> None:
    """While a scheduling gate holds the pod back (Kueue has not admitted it): Queued, naming the LocalQueue;
    once per message. Pending before the first start; a resumed run stays Running, its deadline paused.
    Starting clears it (runner_started)."""
    if pod.gate == KUEUE_ADMISSION_GATE:
        message = f"{WAITING_PREFIX}admission by Kueue (LocalQueue {pod.queue or 'unnamed'})"
    else:
        message = f"{WAITING_PREFIX}runner pod {pod.name} is held by the scheduling gate {pod.gate}"
    plan.waiting(ex, now, StartedReason.QUEUED, message)


def runner_started(ex: Execution, pod_name: str, plan: Plan, now: datetime) -> None:
    """Started=True for the runner pod now running, whether the first, a retry's or a resumed run's (re-admitted
    by Kueue). A waiting message goes. A run that had started before and then waited for a slot or an admission
    has the wait added to queuedSeconds, which the deadline leaves out; before the first start there is
    nothing to add (the deadline counts from startedAt)."""
    since = timing.queued_since(ex)
    if since is not None and ex.status.startedAt is not None:
        plan.status.set(queuedSeconds=timing.paused_seconds(ex.status.queuedSeconds, since, now))
    if (ex.status.message or "").startswith(WAITING_PREFIX):
        plan.status.set(message=None)  # it waited (a start time, a full quota, Kueue): no longer
    plan.condition(ex, now, STARTED, True, StartedReason.RUNNER_STARTED, f"runner pod {pod_name} started")


def record_made(ex: Execution, pod: PodView | None, memory: Memory, plan: Plan) -> None:
    """Adds the UIDs of what was made to the status this decision writes. The ServiceAccount's, Role's and
    RoleBinding's ride on a write made anyway (until then their tokens prove them, and this replica's Memory
    skips them). The pod's (`pod` is the proven one, own_pod) is written once its container runs, with another
    write or alone: the API server takes the runner's writes only from the pod recorded (flux_api.policy), so
    a runner must never wait on a write that might not come. Its first start's is the write that says Running."""
    if ex.status.runnerObjects is None:
        return  # an older operator's execution: no records
    written = plan.status.model_fields_set
    planned = plan.status.runnerObjects if "runnerObjects" in written else None
    record = _dumped(planned) if planned is not None else _record(ex)
    before = copy.deepcopy(record)
    if written:
        for key in ACCOUNT_KINDS:
            if key in record and not record[key].get("uid") and memory.made.get(key):
                record[key]["uid"] = memory.made[key]
    made = record.get("pod")
    if pod is not None and pod.uid and made is not None and made.get("name") == pod.name and not made.get("uid") \
            and (written or pod.started or pod.phase != "Pending"):
        record["pod"] = {"name": pod.name, "uid": pod.uid}
    if record != before:
        plan.status.set(runnerObjects=record)


def _dumped(objects: RunnerObjects) -> dict[str, Any]:
    """As this decision set it: a uid set to None (removed by the write) stays in it."""
    return objects.model_dump(mode="json", exclude_unset=True)
