"""The execution state machine: observed state in, actions out. Pure: no I/O, no clock.

The operator calls `decide()` on every change of an execution, its runner pod or its children.
Every decision depends only on what is observed now (and on the reconciler's Memory of what it made and
what the API server refused), so running it twice, or after an operator restart in any phase, does
nothing twice (level-triggered). Cancels are decided in cancel.py, children in children.py, the
runner's objects in runner.py, the times waited for in timing.py. Only the pod and children the operator
made count (ownership.py). The shell that feeds it and carries its actions out is reconcile.py.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime

from flux_api import TERMINAL_PHASES, Cancellation, Execution, Outcome, Phase
from flux_api.cancel import CancelIntent
from flux_api.conditions import CANCEL_REQUESTED, FINISHED, STARTED, WAITING_PREFIX, StartedReason
from flux_api.events import EventReason
from flux_api.names import runner_pod_name_for
from flux_api.timefmt import format_time

from flux_operator import payloads
from flux_operator.execution import suspend, timing, waiting
from flux_operator.execution.actions import (
    CANCEL_RECORD_FIELDS,
    VERDICT_TAKEN_BACK,
    Action,
    CancelChild,
    CreateChild,
    DeleteExecution,
    DeletePod,
    EmitEvent,
    EnsureRunner,
    MakeProgress,
    Observe,
    ObserveRefusal,
    PatchStatus,
    Plan,
    PodView,
    SuspendChild,
)
from flux_operator.execution.cancel import (
    Family,
    cancel_at_once,
    cancel_intent,
    cancelling,
    request_cancel,
    requested_at,
    source_reason,
)
from flux_operator.execution.children import TreeRoom, owned_children, spawn
from flux_operator.execution.queueing import Queued
from flux_operator.execution.runner import (
    container_not_created,
    ensure_runner,
    gated,
    not_created,
    own_pod,
    pod_pending,
    record_made,
    runner_started,
    unschedulable,
)
from flux_operator.ownership import PROGRESS, Memory

__all__ = ["Action", "CancelChild", "CreateChild", "DeleteExecution", "DeletePod", "EmitEvent", "EnsureRunner",
           "Family", "MakeProgress", "Observe", "ObserveRefusal", "PatchStatus", "PodView", "SuspendChild", "TreeRoom",
           "cancel_intent", "decide", "requested_at"]

VERDICTS = (Phase.SUCCEEDED, Phase.FAILED)


def checkpoint_state(ex: Execution) -> Phase | None:
    """The runner's own word on how its run stands; None also for a state this version does not know."""
    return ex.status.checkpoint.state if ex.status.checkpoint else None


# --- deciding -----------------------------------------------------------------------------------

def decide(ex: Execution, pod: PodView | None, children: list[Execution], now: datetime,
           memory: Memory | None = None, cancel_asked: datetime | None = None,
           family: Family | None = None, queued: Queued | None = None, tree: TreeRoom | None = None) -> list[Action]:
    """`pod` is the pod the World found for the execution, `children` the Executions found under the names it
    asked for or recorded: only what the operator provably made of them is used.
    `cancel_asked`: when a cancel request reached the API, if the World knows (for the latency metrics).
    `family`: the same for each descendant, by name, for a cancel that cascades (cancel.cascade).
    `queued`: the full concurrency limit it would wait on if it started now (queueing.verdict), or None.
    `tree`: its tree's room for children (children.TreeRoom), or None for no cap."""
    family = family or {}
    memory = memory if memory is not None else Memory()
    plan = Plan()
    phase = ex.phase
    intent = cancel_intent(ex, now)
    pod = own_pod(ex, pod, memory)
    owned = owned_children(ex, children)
    if phase not in TERMINAL_PHASES:
        waiting.record_signals(ex, plan, now)
    if phase in TERMINAL_PHASES:
        expires = timing.expires_at(ex)
        if expires is not None and now >= expires:
            return [DeleteExecution(ex.name, ex.metadata.get("uid", ""))]
        _terminal(ex, intent, plan, now)
    elif phase == Phase.CANCELLING:
        cancelling(ex, intent, pod, owned, plan, now, cancel_asked, family)
    elif phase == Phase.SUSPENDING and intent is None and checkpoint_state(ex) not in VERDICTS:
        suspend.suspending(ex, pod, owned, plan, now)
    elif phase == Phase.SUSPENDED and suspend.suspended(ex, intent, owned, plan, now, family):
        pass
    elif phase == Phase.SUSPENDED and intent is None:  # resumed: its runner starts now
        _start_when_due(ex, memory, plan, now, queued)
    elif phase == Phase.WAITING and _waited(ex, intent, pod, owned, memory, plan, now, family, queued):
        pass
    else:  # Pending, Running; a Suspending one cancelled or finished; a Suspended one cancelled with live children
        _active(ex, intent, pod, children, owned, memory, plan, now, cancel_asked, family, queued, tree)
    return _finish(ex, pod, memory, plan)


def _finish(ex: Execution, pod: PodView | None, memory: Memory, plan: Plan) -> list[Action]:
    record_made(ex, pod, memory, plan)
    generation = ex.metadata.get("generation")
    if not plan.status.model_fields_set and ex.status.observedGeneration == generation:
        return _ordered(plan.actions, None)
    plan.status.set(observedGeneration=generation)
    fenced = not (plan.cancel_record and plan.status.model_fields_set <= CANCEL_RECORD_FIELDS)
    return _ordered(plan.actions, PatchStatus(plan.status.patch(), fenced))


def _ordered(actions: list[Action], status: PatchStatus | None) -> list[Action]:
    """Signals first, so a SIGTERM never waits behind other writes; then the other side effects and the
    Events (each posted under a fixed name, so posting twice is harmless); then the status write. Creates
    come after it: it records the hashes of their creation tokens, and nothing may be created before its
    token is on record (ownership.py). An operator that dies anywhere in between decides the same again
    from what is left, and finishes."""
    signals = [a for a in actions if isinstance(a, (DeletePod, CancelChild, SuspendChild))]
    effects = [a for a in actions if isinstance(a, DeleteExecution)]
    events = _folded([a for a in actions if isinstance(a, EmitEvent)])
    creates = [a for a in actions if isinstance(a, (EnsureRunner, CreateChild, MakeProgress))]
    # Metrics count once: right after the write that records what they count (before creates, which may fail).
    after = [a for a in actions if isinstance(a, (Observe, ObserveRefusal))]
    return [*signals, *effects, *events, *([status] if status else []), *after, *creates]


def _folded(events: list[EmitEvent]) -> list[EmitEvent]:
    """One Event where one reconcile has several to say about one cancel: the signal goes into the request's,
    and a request that concludes in the same reconcile (nothing ran, or its runner was already gone) goes
    into the conclusion's, which then tells all of it. A Signalled Event of its own is left for a signal sent
    later than the request (after a restart, a retry)."""
    request = next((e for e in events if e.reason == EventReason.CANCEL_REQUESTED), None)
    signal = next((e for e in events if e.reason == EventReason.SIGNALLED), None)
    if request is None:
        return events
    told = dataclasses.replace(request, signalled=signal.message) if signal is not None else request
    conclusion = next((e for e in events if e.reason in CONCLUSIONS), None)
    if conclusion is not None:
        # Concluding means no pod and no live child: no signal was sent here, so none can fail to arrive.
        whole = "; ".join(part for part in (told.message, told.signalled, conclusion.message) if part)
        told, events = dataclasses.replace(conclusion, message=whole), [e for e in events if e is not conclusion]
    return [told if e is request else e for e in events if e is not signal]


CONCLUSIONS = (EventReason.CANCELLED, EventReason.CANCEL_IGNORED)


def _terminal(ex: Execution, intent: CancelIntent | None, plan: Plan, now: datetime) -> None:
    """A finished execution stays as it is; a late cancel is answered once, with an Event."""
    if intent is None or ex.status.cancellation is not None:
        return
    if any(c.type == CANCEL_REQUESTED for c in ex.status.conditions):
        return
    message = f"already finished ({ex.phase}): cancel ignored"
    plan.condition(ex, now, CANCEL_REQUESTED, False, "AlreadyFinished", message)
    plan.event(EventReason.CANCEL_IGNORED, message, "Warning")


def _active(ex: Execution, intent: CancelIntent | None, pod: PodView | None, found: list[Execution],
            children: list[Execution], memory: Memory, plan: Plan, now: datetime,
            cancel_asked: datetime | None, family: Family, queued: Queued | None = None,
            tree: TreeRoom | None = None) -> None:
    """Pending or Running. `children` are the owned ones among the `found`."""
    checkpoint = checkpoint_state(ex)
    verdict = checkpoint in (Phase.SUCCEEDED, Phase.FAILED)
    if ex.phase == Phase.PENDING and verdict:
        # A verdict can only come from this run's runner (a retry takes the last one back), even when
        # the kubelet has not yet reported its container running: it started, and the status says so.
        _mark_started(ex, pod.name if pod else ex.status.podName or "", plan, now)
    # A verdict stands once its pod has ended (an honest runner exits right after writing it). A runner that
    # writes one and runs on keeps its queue slot, its deadline and its cancel until then.
    if verdict and (pod is None or pod.phase in ("Succeeded", "Failed")):
        if checkpoint == Phase.SUCCEEDED:
            _complete(ex, Phase.SUCCEEDED, None, intent, plan, now)
        else:
            _failed(ex, runners_word(ex.status.checkpoint.error or "workflow failed"), intent, pod, plan, now)
        return
    if intent is not None:
        request_cancel(ex, intent, pod, children, plan, now, cancel_asked, family)
        return
    if verdict:
        return  # decided when its pod ends
    if ex.spec.suspend:
        suspend.request_suspend(ex, pod, children, plan, now)
        return
    if checkpoint == Phase.WAITING:
        waiting.runner_waits(ex, pod, plan, now)
        return
    if checkpoint == Phase.CANCELLED:
        # The runner stopped for a SIGTERM that was no cancel (an eviction, a drain, a node shutdown):
        # once its pod is gone, a new one resumes from the checkpoint.
        if pod is not None:
            if not pod.terminating and pod.phase in ("Succeeded", "Failed"):
                plan.actions.append(DeletePod(pod.name, 0, pod.uid))
            return
        if ex.phase == Phase.PENDING and queued is not None:
            _queue(ex, queued, plan, now)  # still Pending it holds no slot: it takes one in line like any start
            return
        _resume_or_fail(ex, "the runner was stopped without a cancel (evicted, drained or its node shut down)",
                        memory, plan, now)
        return
    if pod is None:
        if ex.status.podName and ex.phase == Phase.RUNNING:
            _resume_or_fail(ex, f"runner pod {ex.status.podName} disappeared before the workflow finished",
                            memory, plan, now)
            return
        _start_when_due(ex, memory, plan, now, queued)
        return
    if ex.status.phase is None:  # the pod was made, but the write that said so did not land
        # With runnerObjects (empty merges into nothing): a phase without them would read as legacy (runner.legacy),
        # whose objects are trusted by owner alone.
        plan.status.set(phase=Phase.PENDING, podName=pod.name, runnerObjects={})
    if pod.phase == "Failed" and pod.reason in DISRUPTIONS:
        # Evicted (node pressure, API eviction, taint manager): not the workflow's fault. Free the name;
        # once the pod is gone a new one resumes from the checkpoint.
        if not pod.terminating:
            plan.actions.append(DeletePod(pod.name, 0, pod.uid))
        return
    if pod.phase == "Failed":
        _failed(ex, pod.exit_message or "runner pod failed", None, pod, plan, now)
        return
    if pod.phase == "Succeeded" and checkpoint not in (Phase.SUCCEEDED, Phase.FAILED):
        _failed(ex, "runner exited without a final checkpoint", None, pod, plan, now)
        return
    if not pod.started and pod.gate and not pod.terminating:
        gated(ex, pod, plan, now)  # Pending, or Running and resumed: its new pod waits for admission again
    elif not pod.started and ex.phase == Phase.PENDING and pod.unschedulable and not pod.terminating:
        unschedulable(ex, pod, plan, now)
    elif not pod.started and ex.phase == Phase.PENDING and not_created(pod) and not pod.terminating:
        container_not_created(ex, pod, plan, now)
    if pod.started and ex.phase == Phase.PENDING:
        _mark_started(ex, pod.name, plan, now)
    elif pod.started and timing.queued_since(ex) is not None:
        runner_started(ex, pod.name, plan, now)  # a resumed run re-admitted by Kueue
    if ex.phase == Phase.RUNNING or pod.started:
        spawn(ex, found, children, memory, plan, now, tree)
    if ex.phase == Phase.RUNNING and checkpoint == Phase.RUNNING and PROGRESS not in memory.made:
        # Its runner checkpoints (its first write goes to the Execution when it finds no ExecutionProgress):
        # made now, not at the start, so a start costs no request more and a run too short to checkpoint none.
        plan.actions.append(MakeProgress())


def _waited(ex: Execution, intent: CancelIntent | None, pod: PodView | None, children: list[Execution],
            memory: Memory, plan: Plan, now: datetime, family: Family, queued: Queued | None = None) -> bool:
    """A durable wait (waiting.py); False leaves a cancel with a pod or live children, and a suspend, to _active."""
    if intent is not None:
        live = [c for c in children if c.phase not in TERMINAL_PHASES] if intent.cascade else []
        if pod is not None or live:
            return False
        cancel_at_once(ex, intent, children, plan, now, family, Outcome.WHILE_WAITING, "waiting")
        return True
    if ex.spec.suspend:
        return False
    if waiting.due(ex, pod, now) and queued is not None:
        _queue(ex, queued, plan, now)  # it stays Waiting, its wake come, until a slot frees
    elif waiting.due(ex, pod, now):
        waiting.wake(ex, plan, now)
        _start_runner(ex, ex.status.podName or runner_pod_name_for(ex.name, ex.status.retries), memory, plan, now)
    return True


def _mark_started(ex: Execution, pod_name: str, plan: Plan, now: datetime) -> None:
    runner_started(ex, pod_name, plan, now)
    plan.status.set(phase=Phase.RUNNING, startedAt=ex.status.startedAt or now,
                       podName=pod_name)
    if ex.status.nextRetryAt is not None:
        plan.status.set(nextRetryAt=None)
    plan.event(EventReason.STARTED if not ex.status.retries else EventReason.RETRY_STARTED,
               f"runner pod {pod_name} started", key=str(ex.status.retries or ""))


def _start_when_due(ex: Execution, memory: Memory, plan: Plan, now: datetime, queued: Queued | None = None) -> None:
    """Creates the runner, unless spec.startAt or a retry's backoff says not yet, or a full concurrency limit:
    then Pending, saying why."""
    pod_name = ex.status.podName or runner_pod_name_for(ex.name, ex.status.retries)
    if ex.status.phase is None:
        # runnerObjects (empty until something is asked for) marks an execution whose objects are recorded.
        plan.status.set(phase=Phase.PENDING, podName=pod_name, runnerObjects={})
    wait = timing.waiting_until(ex, now)
    if wait is None:
        if (unusable := payloads.depth_problem(ex.metadata, "spec.podTemplate")) is not None:
            _complete(ex, Phase.FAILED, unusable, None, plan, now)
            return
        if queued is not None:
            _queue(ex, queued, plan, now)
            return
        _start_runner(ex, pod_name, memory, plan, now)
        return
    reason = StartedReason.RETRY_BACKOFF if timing.in_backoff(ex) else StartedReason.START_AT_NOT_REACHED
    message = f"{WAITING_PREFIX}starts at {format_time(wait)}"
    if reason is StartedReason.START_AT_NOT_REACHED:
        plan.waiting(ex, now, reason, message)


def _queue(ex: Execution, queued: Queued, plan: Plan, now: datetime) -> None:
    """Waits for a slot: said once, and again only when what it says changes (no write per hand-over)."""
    plan.waiting(ex, now, StartedReason.QUEUED, queued.message)


def _failed(ex: Execution, error: str, intent: CancelIntent | None, pod: PodView | None, plan: Plan,
            now: datetime) -> None:
    """A run failed: retry it from its checkpoint in a new pod if the policy allows, else Failed.
    A cancelled execution is never retried."""
    if intent is not None or not timing.can_retry(ex):
        _complete(ex, Phase.FAILED, error, intent, plan, now)
        return
    retries = (ex.status.retries or 0) + 1
    at = now + timing.backoff(ex)
    message = f"run {retries} of {ex.spec.retry.limit + 1} failed: {error}; retry at {format_time(at)}"[:4000]
    plan.status.set(phase=Phase.PENDING, retries=retries, nextRetryAt=at,
                       podName=runner_pod_name_for(ex.name, retries), message=message)
    if ex.status.checkpoint is not None:
        # The steps stay: the new runner skips every recorded one. Only the verdict is taken back.
        plan.status.set(checkpoint=VERDICT_TAKEN_BACK)
    if pod is not None and not pod.terminating:
        plan.actions.append(DeletePod(pod.name, 0, pod.uid))  # it has finished: nothing to wait for
    plan.condition(ex, now, STARTED, False, StartedReason.RETRY_BACKOFF, message)
    plan.event(EventReason.RETRY_SCHEDULED, message, "Warning", key=str(retries))


def _start_runner(ex: Execution, pod_name: str, memory: Memory, plan: Plan, now: datetime) -> None:
    """Asks for the runner's objects; a create the API server refused for good ends the execution."""
    refused = ensure_runner(ex, pod_name, memory, plan, now)
    if refused:
        _complete(ex, Phase.FAILED, refused, None, plan, now)
        plan.event(EventReason.RUNNER_REFUSED, refused, "Warning")


REASON_PREFIX = re.compile(r"^[A-Z][A-Za-z]{2,63}:")
# Reasons only the operator gives (a platform refusal, a phase): a workflow's error that starts with one would
# pass for the platform's word on a dashboard. SpawnConflict is the runner's own error name too.
OPERATORS_REASONS = frozenset({*(r.value for r in EventReason), *(p.value for p in Phase)}) - {"SpawnConflict"}


def runners_word(error: str) -> str:
    """A runner's error as it wrote it, unless its reason is one of the operator's: then it reads as the
    workflow's, and the condition's reason is the phase."""
    if REASON_PREFIX.match(error) and error.split(":", 1)[0] in OPERATORS_REASONS:
        return f"workflow error {error}"
    return error
# Pod failures that say nothing about the workflow: it resumes from its checkpoint in a new pod.
DISRUPTIONS = frozenset({"Evicted", "Preempting", "Terminated", "DeletionByTaintManager", "NodeShutdown",
                         "NodeLost"})
# A runner pod lost this many times (evictions, drains) ends the execution as Failed.
MAX_RESUMES = 5


def _resume_or_fail(ex: Execution, why: str, memory: Memory, plan: Plan, now: datetime) -> None:
    """The pod went away with no cancel asked for (a drain or an eviction): start a new one."""
    if pod_pending(ex, memory):
        _start_runner(ex, ex.status.podName or "", memory, plan, now)  # never made yet: no resume
        return
    if ex.status.resumes >= MAX_RESUMES:
        _complete(ex, Phase.FAILED, f"{why}; given up after {MAX_RESUMES} resumes", None, plan, now)
        return
    _start_runner(ex, ex.status.podName or "", memory, plan, now)
    if not any(isinstance(a, EnsureRunner) for a in plan.actions):
        return  # refused for good (Failed), or waiting to retry a create: no new pod yet
    plan.status.set(resumes=ex.status.resumes + 1)
    if checkpoint_state(ex) == Phase.CANCELLED:
        # It wrote its cleanup checkpoint on the way out; that was no verdict: the steps stay, the run goes on.
        plan.status.set(checkpoint=VERDICT_TAKEN_BACK)
    plan.event(EventReason.RESUMED, f"{why}: resuming from the last checkpoint in a new pod "
               f"({ex.status.resumes + 1} of at most {MAX_RESUMES})", key=str(ex.status.resumes + 1))


def _complete(ex: Execution, phase: Phase, error: str | None, intent: CancelIntent | None, plan: Plan,
              now: datetime) -> None:
    """The workflow finished on its own. A cancel that arrived meanwhile came too late."""
    plan.status.set(phase=phase, finishedAt=now)
    if error:
        plan.status.set(message=error)
    elif ex.status.checkpoint and ex.status.checkpoint.result is not None:
        plan.status.set(message="workflow succeeded")
    if intent is not None:
        plan.status.set(cancellation=Cancellation(reason=intent.reason, source=intent.source, requestedAt=now,
                                                  completedAt=now, outcome=Outcome.TOO_LATE, children=[]))
        plan.condition(ex, now, CANCEL_REQUESTED, True, source_reason(intent), intent.reason)
        plan.event(EventReason.CANCEL_IGNORED, f"workflow finished ({phase}) before the cancel took effect")
        plan.actions.append(Observe("outcome", intent.source, Outcome.TOO_LATE))
    # A runner's error may name its reason ("CheckpointTooLarge: ..."): the condition carries it.
    reason = error.split(":", 1)[0] if error and REASON_PREFIX.match(error) else phase
    plan.condition(ex, now, FINISHED, True, reason, error or f"execution {phase.lower()}")


