"""Deciding a cancel: which one was asked for and when, record it, signal the runner and the children,
escalate, conclude."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from flux_api import TERMINAL_PHASES, Cancellation, CancelSource, Execution, Outcome, Phase
from flux_api.cancel import MAX_REASON, CancelIntent, cancel_of, first_cancel_time
from flux_api.conditions import CANCEL_REQUESTED, FINISHED
from flux_api.events import EventReason
from flux_api.names import DEADLINE_REASON

from flux_operator.execution import timing
from flux_operator.execution.actions import CancelChild, DeletePod, EmitEvent, Observe, Plan, PodView
from flux_operator.execution.children import children_view, owned_children


def cancel_intent(ex: Execution, now: datetime) -> CancelIntent | None:
    """The cancel asked for, from whichever way in came first; None when nobody asked."""
    found = cancel_of(ex)
    if found is not None:
        return found
    if ex.status.unscheduleRequest is not None:  # the workflow asked: ctx.unschedule(reason)
        return CancelIntent(ex.status.unscheduleRequest.reason, CancelSource.UNSCHEDULE)
    deadline = timing.deadline_at(ex)
    if deadline is not None and now >= deadline:
        return CancelIntent(DEADLINE_REASON, CancelSource.DEADLINE)
    return None


def requested_at(ex: Execution, intent: CancelIntent, now: datetime, asked: datetime | None = None) -> datetime:
    """When the cancel was asked for. `asked` is what the watch cache read off managedFields (which its trimmed
    copy does not keep); an object that still has them is read directly."""
    if intent.source == CancelSource.DEADLINE:
        return timing.deadline_at(ex) or now
    if intent.source == CancelSource.UNSCHEDULE:
        return _unschedule_asked(ex, now)
    return asked or first_cancel_time(ex.metadata.get("managedFields")) or now


def _unschedule_asked(ex: Execution, now: datetime) -> datetime:
    """The runner writes the request and may take it back, or date it anywhere: the operator's own record
    first, else the runner's time only between the run's start and now."""
    if ex.status.cancellation is not None and ex.status.cancellation.requestedAt is not None:
        return ex.status.cancellation.requestedAt
    said = ex.status.unscheduleRequest.requestedAt if ex.status.unscheduleRequest is not None else None
    floor = ex.status.startedAt
    if said is None or said > now or (floor is not None and said < floor):
        return now
    return said


def source_reason(intent: CancelIntent) -> str:
    return f"By{intent.source.capitalize()}"


def _ran(ex: Execution) -> bool:
    return ex.status.startedAt is not None or ex.status.checkpoint is not None


# A cancel that concludes within this long of its request is told by one Event, its conclusion's, which carries
# the request and the signal: a write fewer per cancel. A slower cancel has its CancelRequested Event then.
TOLD_AFTER_SECONDS = 5
_TOLD_LATER = (EventReason.CANCEL_REQUESTED, EventReason.SIGNALLED)


def request_told_at(ex: Execution) -> datetime | None:
    """When a Cancelling execution's CancelRequested Event is due if it has not concluded by then."""
    recorded = ex.status.cancellation
    return recorded.requestedAt + timedelta(seconds=TOLD_AFTER_SECONDS) if recorded and recorded.requestedAt else None


def _requested(intent: CancelIntent) -> str:
    return f"cancel requested ({intent.source}): {intent.reason}"


def _tell_request(ex: Execution, intent: CancelIntent, recorded: Cancellation, plan: Plan) -> None:
    """The request's Event (with the signal sent when it was recorded), held back since the request."""
    plan.event(EventReason.CANCEL_REQUESTED, _requested(intent))
    if recorded.signalledAt is not None and ex.status.podName:
        _signalled_event(ex, intent, ex.status.podName, plan)


def request_cancel(ex: Execution, intent: CancelIntent, pod: PodView | None, children: list[Execution],
                   plan: Plan, now: datetime, asked: datetime | None = None, family: Family | None = None) -> None:
    cancellation = Cancellation(reason=intent.reason, source=intent.source, requestedAt=now).model_copy(
        update=children_view(children))
    plan.condition(ex, now, CANCEL_REQUESTED, True, source_reason(intent), intent.reason)
    plan.event(EventReason.CANCEL_REQUESTED, _requested(intent))
    backoff = pod is None and timing.in_backoff(ex)
    held = pod is not None and bool(pod.gate) and not pod.started  # a scheduling gate (Kueue) never let it start
    if (pod is None or held) and not [c for c in children if c.phase not in TERMINAL_PHASES] and \
            (not _ran(ex) or backoff or held):
        # Nothing runs (never started, held back by a gate, or a retry waits for its backoff): straight to Cancelled.
        when = "during the retry backoff" if backoff else "while its pod was held by a scheduling gate" if held \
            else "before it started"
        if held and not pod.terminating:
            plan.actions.append(DeletePod(pod.name, 0, pod.uid))  # never ran: nothing to wait for
        cancellation = cancellation.model_copy(update={"completedAt": now, "outcome": Outcome.NOT_STARTED})
        plan.status.set(phase=Phase.CANCELLED, finishedAt=now, cancellation=cancellation,
                           message=f"cancelled {when}: {intent.reason}")
        if backoff:
            plan.status.set(nextRetryAt=None)
        plan.condition(ex, now, FINISHED, True, Phase.CANCELLED, f"cancelled {when}")
        plan.event(EventReason.CANCELLED, f"cancelled {when} (NotStarted)")
        plan.actions.append(Observe("outcome", intent.source, Outcome.NOT_STARTED))
        return
    cancellation = cancellation.model_copy(update={"signalledAt": now})
    _signal(ex, intent, pod, children, plan, family or {})
    if pod is not None:  # also when already terminating: a restarted operator deleted it but did not say so
        _signalled_event(ex, intent, pod.name, plan)
    elif _ran(ex):
        # It ran and its pod is gone: an operator that died after the delete, before saying so, or a pod that
        # ended or was deleted by someone else. The Event says what is known, not which.
        plan.event(EventReason.SIGNALLED,
                   f"runner pod {ex.status.podName} was already gone: nothing left to signal")
    waited = (now - requested_at(ex, intent, now, asked)).total_seconds()
    plan.actions.append(Observe("signal_seconds", intent.source, max(waited, 0.0)))
    live_children = [c for c in children if c.phase not in TERMINAL_PHASES] if intent.cascade else []
    if pod is None and not live_children:
        # The runner is already gone (an operator restart after the signal, or it just ended): conclude now.
        _conclude(ex, intent, cancellation, plan, now, asked)
        return
    plan.status.set(phase=Phase.CANCELLING, cancellation=cancellation)
    plan.cancel_record = True
    # Told when it concludes, or at request_told_at (cancelling() below): not now.
    plan.actions = [a for a in plan.actions if not (isinstance(a, EmitEvent) and a.reason in _TOLD_LATER)]


def _signal(ex: Execution, intent: CancelIntent, pod: PodView | None, children: list[Execution], plan: Plan,
            family: Family) -> None:
    """Idempotent: cascade to live descendants, then SIGTERM the runner through a graceful pod delete."""
    if intent.cascade:
        plan.actions.extend(cascade(ex.name, intent.reason, intent.force, children, family))
    if pod is None:
        return
    if not pod.terminating:
        plan.actions.append(DeletePod(pod.name, _grace(ex, intent), pod.uid))
        _signalled_event(ex, intent, pod.name, plan)


Family = Mapping[str, list[Execution]]  # per descendant's name: the executions found as its children


def cascade(name: str, reason: str, force: bool, children: list[Execution], family: Family) -> list[CancelChild]:
    """Every live descendant that has no cancel yet, in one pass, level by level: what each parent would ask of
    its own children when its cancel reaches it, word for word (reason, force, who asked), so the two never
    disagree (spec.cancel is immutable). Beyond the descendants the World knows, each cancelled parent
    cascades itself. Only owned children count, at every level (owned_children)."""
    cancels: list[CancelChild] = []
    level = [(name, reason, force, children)]
    while level:
        below = []
        for parent, parent_reason, parent_force, kids in level:
            asked = f"parent {parent} cancelled: {parent_reason}"[:MAX_REASON]
            for child in kids:
                if child.phase in TERMINAL_PHASES:
                    continue
                own = cancel_of(child)  # a cancel it already has: its own reason and force go on down
                if own is None:
                    cancels.append(CancelChild(child.name, asked, parent_force, parent))
                elif not own.cascade:
                    continue  # it was cancelled without its children, before this: they are not ours to stop
                grandchildren = owned_children(child, family.get(child.name, []))
                if grandchildren:
                    below.append((child.name, own.reason if own else asked,
                                  own.force if own else parent_force, grandchildren))
        level = below
    return cancels


def cancel_at_once(ex: Execution, intent: CancelIntent, children: list[Execution], plan: Plan, now: datetime,
                   family: Family, outcome: Outcome, while_: str) -> None:
    """Cancelled in this decision: no pod runs (`while_` it was suspended, or waiting) and no child does."""
    if intent.cascade:
        plan.actions.extend(cascade(ex.name, intent.reason, intent.force, children, family))
    cancellation = Cancellation(reason=intent.reason, source=intent.source, requestedAt=now, completedAt=now,
                                outcome=outcome).model_copy(update=children_view(children))
    plan.status.set(phase=Phase.CANCELLED, finishedAt=now, cancellation=cancellation,
                    message=f"cancelled while {while_}: {intent.reason}"[:8192])
    plan.condition(ex, now, CANCEL_REQUESTED, True, source_reason(intent), intent.reason)
    plan.condition(ex, now, FINISHED, True, Phase.CANCELLED, f"cancelled while {while_}")
    plan.event(EventReason.CANCEL_REQUESTED, _requested(intent))
    plan.event(EventReason.CANCELLED, f"cancelled while {while_} ({outcome}): no pod to stop")
    plan.actions.append(Observe("outcome", intent.source, outcome))


def _grace(ex: Execution, intent: CancelIntent) -> int:
    return 0 if intent.force else ex.spec.gracePeriodSeconds


def _signalled_event(ex: Execution, intent: CancelIntent, pod_name: str, plan: Plan) -> None:
    if not any(isinstance(a, EmitEvent) and a.reason == EventReason.SIGNALLED for a in plan.actions):
        plan.event(EventReason.SIGNALLED,
                   f"runner pod {pod_name} deleted with grace period {_grace(ex, intent)}s (SIGTERM)")


# Past the pod's own deadline (deletionTimestamp = delete + grace), how long to wait for the kubelet
# to confirm before force-deleting: a pod on a dead node never goes by itself.
ESCALATION_MARGIN_SECONDS = 15


def stopped(pod: PodView | None) -> bool:
    """The runner really stopped: its pod gone, or going with every container ended and only finalizers (a
    tenant's or a controller's) keeping the object. Without finalizers the kubelet removes it next, and that
    is waited for (the pod's name is then free for what comes after)."""
    return pod is None or (pod.terminating and pod.held and pod.phase in ("Succeeded", "Failed"))


def force_due(pod: PodView | None, forced: datetime | None, now: datetime) -> bool:
    """A force delete is due once the pod is overdue, and once only: a pod still there after it is held by
    finalizers, which no further delete removes."""
    due = escalation_due(pod)
    return forced is None and not stopped(pod) and due is not None and now >= due


def escalation_due(pod: PodView | None) -> datetime | None:
    """When a terminating pod becomes overdue; None if it is not terminating."""
    deadline = pod.deletion_at if pod is not None and pod.terminating else None
    return deadline + timedelta(seconds=ESCALATION_MARGIN_SECONDS) if deadline else None


def cancelling(ex: Execution, intent: CancelIntent | None, pod: PodView | None, children: list[Execution],
               plan: Plan, now: datetime, asked: datetime | None = None, family: Family | None = None) -> None:
    recorded = ex.status.cancellation
    if intent is None or recorded is None:
        # A Cancelling status without its block (the schema forbids it; an old object may have it):
        # finish the cancel anyway rather than stop on it.
        intent = intent or CancelIntent("unknown: status.cancellation was missing", CancelSource.SPEC)
        recorded = Cancellation(reason=intent.reason, source=intent.source)
        plan.status.set(cancellation=recorded)
    _signal(ex, intent, pod, children, plan, family or {})
    cancellation = recorded.model_copy(update=children_view(children))
    checkpoint = ex.status.checkpoint
    # The runner's acknowledgement goes with the next write (usually the final one), not in a write of its own.
    acknowledged = None
    if checkpoint is not None and checkpoint.state == Phase.CANCELLED and not recorded.acknowledgedAt:
        acknowledged = _acknowledged(checkpoint.updatedAt, recorded, now)
    if pod is not None and force_due(pod, cancellation.forcedAt, now):
        plan.actions.append(DeletePod(pod.name, 0, pod.uid))
        cancellation.forcedAt = now
        plan.event(EventReason.FORCE_DELETED,
                   f"runner pod {pod.name} was still terminating {ESCALATION_MARGIN_SECONDS}s past "
                   f"its grace period (is its node down?): force-deleted", "Warning")
    # Without cascade the children are not ours to stop, so they are not waited for either.
    live_children = [c for c in children if c.phase not in TERMINAL_PHASES] if intent.cascade else []
    concluding = stopped(pod) and not live_children
    told_at = request_told_at(ex)
    if concluding or told_at is None or now >= told_at:
        _tell_request(ex, intent, recorded, plan)  # folded into the conclusion's Event if it concludes now
    worth = _worth_a_write(cancellation, recorded) or bool(plan.status.model_fields_set)
    if acknowledged is not None and (concluding or worth):
        cancellation.acknowledgedAt = acknowledged
    if concluding:
        _conclude(ex, intent, cancellation, plan, now, asked)
        return
    if worth and cancellation != recorded:
        plan.status.set(cancellation=cancellation)


def _worth_a_write(new: Cancellation, old: Cancellation) -> bool:
    """A child's step from one live phase to another (Running -> Cancelling) is not worth a status write of
    its own: in a cascade every parent would pay one per child, beside the signals. It goes with the next
    write; a child that ended (or came or went) is written at once."""
    return _as_told(new) != _as_told(old)


def _as_told(record: Cancellation) -> Cancellation:
    return record.model_copy(update={"children": [
        child if child.phase in TERMINAL_PHASES else child.model_copy(update={"phase": None})
        for child in record.children]})


def _conclude(ex: Execution, intent: CancelIntent, cancellation: Cancellation, plan: Plan, now: datetime,
              asked: datetime | None) -> None:
    """The pod is gone and every child has stopped: record how it ended."""
    phase, outcome = _ending(ex, cancellation)
    cancellation = cancellation.model_copy(update={"completedAt": now, "outcome": outcome})
    plan.status.set(phase=phase, finishedAt=now, cancellation=cancellation)
    if phase == Phase.CANCELLED:
        plan.status.set(message=f"cancelled ({outcome}): {intent.reason}{_MESSAGES[outcome](ex)}"[:8192])
    elif ex.status.checkpoint and ex.status.checkpoint.error:
        plan.status.set(message=ex.status.checkpoint.error)
    plan.condition(ex, now, FINISHED, True, phase, f"{phase} (cancel outcome {outcome})")
    plan.event(EventReason.CANCELLED if phase == Phase.CANCELLED else EventReason.CANCEL_IGNORED,
               f"{phase}: outcome {outcome}")
    plan.actions.append(Observe("outcome", intent.source, outcome))
    waited = (now - requested_at(ex, intent, now, asked)).total_seconds()
    plan.actions.append(Observe("complete_seconds", intent.source, max(waited, 0.0)))



def _acknowledged(moment: datetime | None, recorded: Cancellation, now: datetime) -> datetime:
    """The runner's own timestamp when it is plausible (after the signal, not in the future); else now.
    A runner owns its checkpoint, so it must not be able to move an operator-owned time."""
    floor = recorded.signalledAt or recorded.requestedAt
    if moment is None or moment > now or (floor is not None and moment < floor):
        return now
    return moment


def _ending(ex: Execution, cancellation: Cancellation) -> tuple[Phase, Outcome]:
    """Tells apart a clean stop, a cleanup that raised, one cut by the grace period, and a forced one."""
    checkpoint = ex.status.checkpoint
    state = checkpoint.state if checkpoint else None
    if state in (Phase.SUCCEEDED, Phase.FAILED):
        return state, Outcome.TOO_LATE
    if state == Phase.CANCELLED:
        return Phase.CANCELLED, Outcome.CLEANUP_FAILED if checkpoint.error else Outcome.GRACEFUL
    if state == Phase.WAITING:
        return Phase.CANCELLED, Outcome.GRACEFUL  # it had ended its pod to wait: nothing was cut
    if ex.status.startedAt is None and state is None:
        return Phase.CANCELLED, Outcome.NOT_STARTED
    if cancellation.forcedAt is not None:
        return Phase.CANCELLED, Outcome.FORCE_DELETED
    return Phase.CANCELLED, Outcome.KILLED


_MESSAGES = {
    Outcome.GRACEFUL: lambda ex: "",
    Outcome.CLEANUP_FAILED: lambda ex: f"; the workflow stopped but its cleanup raised: {ex.status.checkpoint.error}",
    Outcome.KILLED: lambda ex: "; the grace period ran out before the workflow finished cleaning up (SIGKILL)",
    Outcome.FORCE_DELETED: lambda ex: "; its pod outlived the grace period and was force-deleted, so the stop "
                                      "is not confirmed by the node",
    Outcome.NOT_STARTED: lambda ex: "",
    Outcome.TOO_LATE: lambda ex: "",
}
