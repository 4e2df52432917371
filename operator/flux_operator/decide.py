"""The execution state machine: observed state in, actions out. Pure: no I/O, no clock.

The operator calls `decide()` on every change of an execution, its runner pod or its children,
and on a periodic resync. Every decision depends only on what is observed now, so running it
twice, or after an operator restart in any phase, does nothing twice (level-triggered).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flux_api import CANCEL_ANNOTATION, TERMINAL_PHASES, CancelSource, Execution, Outcome, Phase
from flux_api.cancel import CancelIntent, recorded_or_requested
from flux_api.conditions import CANCEL_REQUESTED, FINISHED, STARTED, set_condition
from flux_api.names import DEADLINE_REASON, runner_pod_name_for
from flux_api.timefmt import format_time, parse_time
from flux_api.types import status_patch

from flux_operator import timing
from flux_operator.actions import (  # noqa: F401 - re-exported: decide's callers name the actions here
    Action,
    CancelChild,
    CreateChild,
    DeleteExecution,
    DeletePod,
    EmitEvent,
    EnsureRunner,
    Observe,
    PatchStatus,
    PodView,
)


@dataclass
class _Plan:
    status: dict[str, Any] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)

    def event(self, reason: str, message: str, type_: str = "Normal") -> None:
        self.actions.append(EmitEvent(reason, message, type_))


# --- observing --------------------------------------------------------------------------------------

def cancel_intent(ex: Execution, now: datetime) -> CancelIntent | None:
    """The cancel asked for, from whichever way in came first; None when nobody asked."""
    recorded = ex.status.cancellation
    found = recorded_or_requested({
        "metadata": ex.metadata,
        "spec": {"cancel": ex.spec.cancel.model_dump() if ex.spec.cancel else None},
        "status": {"cancellation": recorded.model_dump(mode="json") if recorded else None},
    })
    if found is not None:
        return found
    if ex.status.unscheduleRequest is not None:  # the workflow asked: ctx.unschedule(reason)
        return CancelIntent(ex.status.unscheduleRequest.reason, CancelSource.UNSCHEDULE)
    deadline = deadline_at(ex)
    if deadline is not None and now >= deadline:
        return CancelIntent(DEADLINE_REASON, CancelSource.DEADLINE)
    return None


def deadline_at(ex: Execution) -> datetime | None:
    if ex.spec.activeDeadlineSeconds is None:
        return None
    start = parse_time(ex.status.startedAt) or parse_time(ex.metadata.get("creationTimestamp"))
    return start + timedelta(seconds=ex.spec.activeDeadlineSeconds) if start else None


# Where a cancel request lands in managedFields, and where the watch cache keeps its time.
_CANCEL_FIELD_PATHS = (("f:spec", "f:cancel"), ("f:metadata", "f:annotations", f"f:{CANCEL_ANNOTATION}"))
CANCEL_REQUESTED_AT = "flux.internal/cancelRequestedAt"


def first_cancel_time(managed_fields: list[dict[str, Any]] | None) -> datetime | None:
    """When a cancel request first reached the API: the managedFields entry that set it (second precision)."""
    times = []
    for entry in managed_fields or []:
        for path in _CANCEL_FIELD_PATHS:
            node: Any = entry.get("fieldsV1") or {}
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            moment = parse_time(entry.get("time")) if node is not None else None
            if moment is not None:
                times.append(moment)
    return min(times, default=None)


def requested_at(ex: Execution, intent: CancelIntent, now: datetime) -> datetime:
    if intent.source == CancelSource.DEADLINE:
        return deadline_at(ex) or now
    if intent.source == CancelSource.UNSCHEDULE:
        return parse_time(ex.status.unscheduleRequest.requestedAt) or now
    return parse_time(ex.metadata.get(CANCEL_REQUESTED_AT)) or first_cancel_time(ex.metadata.get("managedFields")) \
        or now


def _checkpoint_state(ex: Execution) -> str | None:
    return ex.status.checkpoint.state if ex.status.checkpoint else None


def _children_view(children: list[Execution]) -> list[dict[str, Any]]:
    return [{"name": c.name, "phase": c.phase.value} for c in sorted(children, key=lambda c: c.name)]


def _mirror_children(children: list[Execution]) -> list[dict[str, Any]]:
    out = []
    for c in sorted(children, key=lambda c: c.name):
        entry: dict[str, Any] = {"name": c.name, "phase": c.phase.value}
        if c.status.checkpoint is not None and c.status.checkpoint.result is not None:
            entry["result"] = c.status.checkpoint.result
        if c.phase in (Phase.FAILED, Phase.CANCELLED) and c.status.message:
            entry["error"] = c.status.message
        out.append(entry)
    return out


# --- deciding -----------------------------------------------------------------------------------

def decide(ex: Execution, pod: PodView | None, children: list[Execution], now: datetime) -> list[Action]:
    plan = _Plan()
    phase = ex.phase
    intent = cancel_intent(ex, now)
    if phase in TERMINAL_PHASES:
        expires = timing.expires_at(ex)
        if expires is not None and now >= expires:
            return [DeleteExecution(ex.name, ex.metadata.get("uid", ""))]
        _terminal(ex, intent, plan, now)
    elif phase == Phase.CANCELLING:
        _cancelling(ex, intent, pod, children, plan, now)
    else:
        _active(ex, intent, pod, children, plan, now)
    return _finish(ex, plan)


def _finish(ex: Execution, plan: _Plan) -> list[Action]:
    generation = ex.metadata.get("generation")
    if not plan.status and ex.status.observedGeneration == generation:
        return _ordered(plan.actions, None)
    plan.status["observedGeneration"] = generation
    return _ordered(plan.actions, PatchStatus(status_patch(plan.status)))


def _ordered(actions: list[Action], status: PatchStatus | None) -> list[Action]:
    """Signals first, so a SIGTERM never waits behind other writes; then the other side effects and the
    Events (each posted under a fixed name, so posting twice is harmless); the status write last. An
    operator that dies anywhere in between decides the same again from what is left, and finishes."""
    signals = [a for a in actions if isinstance(a, (DeletePod, CancelChild))]
    effects = [a for a in actions if isinstance(a, (EnsureRunner, CreateChild, DeleteExecution))]
    events = [a for a in actions if isinstance(a, EmitEvent)]
    after = [a for a in actions if isinstance(a, Observe)]  # metrics count once: only after the write
    return [*signals, *effects, *events, *([status] if status else []), *after]


def _conditions(ex: Execution, plan: _Plan) -> list[dict[str, Any]]:
    if "conditions" not in plan.status:
        plan.status["conditions"] = [c.model_dump(exclude_none=True) for c in ex.status.conditions]
    return plan.status["conditions"]


def _condition(ex: Execution, plan: _Plan, now: datetime, type_: str, ok: bool, reason: str, message: str) -> None:
    set_condition(_conditions(ex, plan), type_, ok, reason, message, ex.metadata.get("generation"), format_time(now))


def _terminal(ex: Execution, intent: CancelIntent | None, plan: _Plan, now: datetime) -> None:
    """A finished execution stays as it is; a late cancel is answered once, with an Event."""
    if intent is None or ex.status.cancellation is not None:
        return
    if any(c.type == CANCEL_REQUESTED for c in ex.status.conditions):
        return
    message = f"already finished ({ex.phase.value}): cancel ignored"
    _condition(ex, plan, now, CANCEL_REQUESTED, False, "AlreadyFinished", message)
    plan.event("CancelIgnored", message, "Warning")


def _active(ex: Execution, intent: CancelIntent | None, pod: PodView | None, children: list[Execution],
            plan: _Plan, now: datetime) -> None:
    """Pending or Running."""
    checkpoint = _checkpoint_state(ex)
    if checkpoint == Phase.SUCCEEDED.value:
        _complete(ex, Phase.SUCCEEDED, None, intent, plan, now)
        return
    if checkpoint == Phase.FAILED.value:
        _failed(ex, ex.status.checkpoint.error or "workflow failed", intent, pod, plan, now)
        return
    if intent is not None:
        _request_cancel(ex, intent, pod, children, plan, now)
        return
    if pod is None:
        if ex.status.podName and ex.phase == Phase.RUNNING:
            _failed(ex, f"runner pod {ex.status.podName} disappeared before the workflow finished", None, pod,
                    plan, now)
            return
        _start_when_due(ex, plan, now)
        return
    if pod.phase == "Failed":
        _failed(ex, pod.exit_message or "runner pod failed", None, pod, plan, now)
        return
    if pod.phase == "Succeeded" and checkpoint not in (Phase.SUCCEEDED.value, Phase.FAILED.value):
        _failed(ex, "runner exited without a final checkpoint", None, pod, plan, now)
        return
    if pod.started and ex.phase == Phase.PENDING:
        plan.status.update(phase=Phase.RUNNING.value, startedAt=ex.status.startedAt or format_time(now),
                           podName=pod.name)
        if ex.status.nextRetryAt is not None:
            plan.status["nextRetryAt"] = None
        _condition(ex, plan, now, STARTED, True, "RunnerStarted", f"runner pod {pod.name} started")
        plan.event("Started" if not ex.status.retries else "RetryStarted", f"runner pod {pod.name} started")
    if ex.phase == Phase.RUNNING or pod.started:
        _spawn_children(ex, children, plan)


def _start_when_due(ex: Execution, plan: _Plan, now: datetime) -> None:
    """Creates the runner, unless spec.startAt or a retry's backoff says not yet: then Pending, saying when."""
    if ex.status.phase is None:
        plan.status["phase"] = Phase.PENDING.value
        plan.status["podName"] = runner_pod_name_for(ex.name, ex.status.retries)
    wait = timing.waiting_until(ex, now)
    if wait is None:
        plan.actions.append(EnsureRunner())
        return
    reason = "RetryBackoff" if timing.in_backoff(ex) else "StartAtNotReached"
    message = f"waiting: starts at {format_time(wait)}"
    if reason == "StartAtNotReached" and ex.status.message != message:
        plan.status["message"] = message
        _condition(ex, plan, now, STARTED, False, reason, message)


def _failed(ex: Execution, error: str, intent: CancelIntent | None, pod: PodView | None, plan: _Plan,
            now: datetime) -> None:
    """A run failed: retry it from its checkpoint in a new pod if the policy allows, else Failed.
    A cancelled execution is never retried."""
    if intent is not None or not timing.can_retry(ex):
        _complete(ex, Phase.FAILED, error, intent, plan, now)
        return
    retries = (ex.status.retries or 0) + 1
    at = now + timing.backoff(ex)
    message = f"run {retries} of {ex.spec.retry.limit + 1} failed: {error}; retry at {format_time(at)}"[:4000]
    plan.status.update(phase=Phase.PENDING.value, retries=retries, nextRetryAt=format_time(at),
                       podName=runner_pod_name_for(ex.name, retries), message=message)
    if ex.status.checkpoint is not None:
        # The steps stay: the new runner skips every recorded one. Only the verdict is taken back.
        plan.status["checkpoint"] = {"state": Phase.RUNNING.value, "error": None, "result": None}
    if pod is not None and not pod.terminating:
        plan.actions.append(DeletePod(pod.name, 0, pod.uid))  # it has finished: nothing to wait for
    _condition(ex, plan, now, STARTED, False, "RetryBackoff", message)
    plan.event("RetryScheduled", message, "Warning")


def _spawn_children(ex: Execution, children: list[Execution], plan: _Plan) -> None:
    existing = {c.name for c in children}
    for request in ex.status.spawnRequests:
        if request.name not in existing:
            plan.actions.append(CreateChild(request.name, request.workflow, request.input))
    mirror = _mirror_children(children)
    if mirror != [c.model_dump(exclude_none=True) for c in ex.status.children]:
        plan.status["children"] = mirror


def _complete(ex: Execution, phase: Phase, error: str | None, intent: CancelIntent | None, plan: _Plan,
              now: datetime) -> None:
    """The workflow finished on its own. A cancel that arrived meanwhile came too late."""
    plan.status.update(phase=phase.value, finishedAt=format_time(now))
    if error:
        plan.status["message"] = error
    elif ex.status.checkpoint and ex.status.checkpoint.result is not None:
        plan.status["message"] = "workflow succeeded"
    if intent is not None:
        plan.status["cancellation"] = {"reason": intent.reason, "source": intent.source.value,
                                       "requestedAt": format_time(now), "completedAt": format_time(now),
                                       "outcome": Outcome.TOO_LATE.value, "children": []}
        _condition(ex, plan, now, CANCEL_REQUESTED, True, _source_reason(intent), intent.reason)
        plan.event("CancelIgnored", f"workflow finished ({phase.value}) before the cancel took effect")
        plan.actions.append(Observe("outcome", intent.source.value, Outcome.TOO_LATE.value))
    _condition(ex, plan, now, FINISHED, True, phase.value, error or f"execution {phase.value.lower()}")


def _source_reason(intent: CancelIntent) -> str:
    return f"By{intent.source.value.capitalize()}"


def _ran(ex: Execution) -> bool:
    return ex.status.startedAt is not None or ex.status.checkpoint is not None


def _request_cancel(ex: Execution, intent: CancelIntent, pod: PodView | None, children: list[Execution],
                    plan: _Plan, now: datetime) -> None:
    stamp = format_time(now)
    cancellation: dict[str, Any] = {"reason": intent.reason, "source": intent.source.value, "requestedAt": stamp,
                                    "children": _children_view(children)}
    _condition(ex, plan, now, CANCEL_REQUESTED, True, _source_reason(intent), intent.reason)
    plan.event("CancelRequested", f"cancel requested ({intent.source.value}): {intent.reason}")
    backoff = pod is None and timing.in_backoff(ex)
    if pod is None and not [c for c in children if c.phase not in TERMINAL_PHASES] and (not _ran(ex) or backoff):
        # Nothing runs (never started, or a retry waits for its backoff): straight to Cancelled.
        when = "during the retry backoff" if backoff else "before it started"
        cancellation.update(completedAt=stamp, outcome=Outcome.NOT_STARTED.value)
        plan.status.update(phase=Phase.CANCELLED.value, finishedAt=stamp, cancellation=cancellation,
                           message=f"cancelled {when}: {intent.reason}")
        if backoff:
            plan.status["nextRetryAt"] = None
        _condition(ex, plan, now, FINISHED, True, Phase.CANCELLED.value, f"cancelled {when}")
        plan.event("Cancelled", f"cancelled {when} (NotStarted)")
        plan.actions.append(Observe("outcome", intent.source.value, Outcome.NOT_STARTED.value))
        return
    cancellation["signalledAt"] = stamp
    _signal(ex, intent, pod, children, plan)
    if pod is not None:  # also when already terminating: a restarted operator deleted it but did not say so
        _signalled_event(ex, intent, pod, plan)
    waited = (now - requested_at(ex, intent, now)).total_seconds()
    plan.actions.append(Observe("signal_seconds", intent.source.value, max(waited, 0.0)))
    live_children = [c for c in children if c.phase not in TERMINAL_PHASES] if intent.cascade else []
    if pod is None and not live_children:
        # The runner is already gone (an operator restart after the signal, or it just ended): conclude now.
        _conclude(ex, intent, cancellation, plan, now)
        return
    plan.status.update(phase=Phase.CANCELLING.value, cancellation=cancellation)


def _signal(ex: Execution, intent: CancelIntent, pod: PodView | None, children: list[Execution], plan: _Plan) -> None:
    """Idempotent: cascade to live children, then SIGTERM the runner through a graceful pod delete."""
    if intent.cascade:
        reason = f"parent {ex.name} cancelled: {intent.reason}"[:1024]
        for child in children:
            if child.phase not in TERMINAL_PHASES and child.spec.cancel is None:
                plan.actions.append(CancelChild(child.name, reason, intent.force))
    if pod is None:
        return
    if not pod.terminating:
        plan.actions.append(DeletePod(pod.name, _grace(ex, intent), pod.uid))
        _signalled_event(ex, intent, pod, plan)


def _grace(ex: Execution, intent: CancelIntent) -> int:
    return 0 if intent.force else ex.spec.gracePeriodSeconds


def _signalled_event(ex: Execution, intent: CancelIntent, pod: PodView, plan: _Plan) -> None:
    if not any(isinstance(a, EmitEvent) and a.reason == "Signalled" for a in plan.actions):
        plan.event("Signalled", f"runner pod {pod.name} deleted with grace period {_grace(ex, intent)}s (SIGTERM)")


def _cancelling(ex: Execution, intent: CancelIntent | None, pod: PodView | None, children: list[Execution],
                plan: _Plan, now: datetime) -> None:
    assert intent is not None, "Cancelling always has a recorded cancellation"
    _signal(ex, intent, pod, children, plan)
    recorded = ex.status.cancellation
    cancellation = recorded.model_dump(exclude_none=True, mode="json")
    checkpoint = ex.status.checkpoint
    if checkpoint is not None and checkpoint.state == Phase.CANCELLED.value and not recorded.acknowledgedAt:
        cancellation["acknowledgedAt"] = checkpoint.updatedAt or format_time(now)
    cancellation["children"] = _children_view(children)
    # Without cascade the children are not ours to stop, so they are not waited for either.
    live_children = [c for c in children if c.phase not in TERMINAL_PHASES] if intent.cascade else []
    if pod is None and not live_children:
        _conclude(ex, intent, cancellation, plan, now)
        return
    if cancellation != recorded.model_dump(exclude_none=True, mode="json"):
        plan.status["cancellation"] = cancellation


def _conclude(ex: Execution, intent: CancelIntent, cancellation: dict[str, Any], plan: _Plan, now: datetime) -> None:
    """The pod is gone and every child has stopped: record how it ended."""
    stamp = format_time(now)
    state = _checkpoint_state(ex)
    if state in (Phase.SUCCEEDED.value, Phase.FAILED.value):
        phase, outcome = Phase(state), Outcome.TOO_LATE
    elif state == Phase.CANCELLED.value:
        phase, outcome = Phase.CANCELLED, Outcome.GRACEFUL
    elif ex.status.startedAt is None and state is None:
        phase, outcome = Phase.CANCELLED, Outcome.NOT_STARTED
    else:
        phase, outcome = Phase.CANCELLED, Outcome.KILLED
    cancellation.update(completedAt=stamp, outcome=outcome.value)
    plan.status.update(phase=phase.value, finishedAt=stamp, cancellation=cancellation)
    if phase == Phase.CANCELLED:
        plan.status["message"] = f"cancelled ({outcome.value}): {intent.reason}"
    elif ex.status.checkpoint and ex.status.checkpoint.error:
        plan.status["message"] = ex.status.checkpoint.error
    _condition(ex, plan, now, FINISHED, True, phase.value, f"{phase.value} (cancel outcome {outcome.value})")
    plan.event("Cancelled" if phase == Phase.CANCELLED else "CancelIgnored",
               f"{phase.value}: outcome {outcome.value}")
    plan.actions.append(Observe("outcome", intent.source.value, outcome.value))
    waited = (now - requested_at(ex, intent, now)).total_seconds()
    plan.actions.append(Observe("complete_seconds", intent.source.value, max(waited, 0.0)))

