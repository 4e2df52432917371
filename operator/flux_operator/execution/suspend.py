"""Deciding a suspend (spec.suspend): the cancel's graceful path, except that it can be undone. Pure.

Suspending deletes the runner pod with the grace period (SIGTERM: the runner cancels the current step at
its await and writes a final checkpoint), suspends the live children the operator made, and concludes
Suspended once the pod is gone and every child is Suspended or finished. spec.suspend false again resumes:
phase Pending, a new pod that skips every finished step, and the children this parent suspended resume too.
A cancel wins over a suspend at every point; a Suspended execution has no pod, so its cancel ends at once.
"""

from __future__ import annotations

from datetime import datetime

from flux_api import TERMINAL_PHASES, Execution, Outcome, Phase, Suspension
from flux_api.cancel import MAX_REASON, CancelIntent
from flux_api.events import EventReason
from flux_api.names import SUSPEND_REASON_ANNOTATION, SUSPENDED_BY_ANNOTATION, runner_pod_name_for

from flux_operator.execution import timing
from flux_operator.execution.actions import RUN_AGAIN, VERDICT_TAKEN_BACK, DeletePod, Plan, PodView, SuspendChild
from flux_operator.execution.cancel import Family, cancel_at_once, force_due
from flux_operator.execution.children import owned_children

DEFAULT_REASON = "suspended"


def suspend_reason(ex: Execution) -> str:
    """The annotation's reason (`kubectl flux suspend --reason`), or a plain default."""
    text = str((ex.metadata.get("annotations") or {}).get(SUSPEND_REASON_ANNOTATION) or "").strip()
    return text[:MAX_REASON] or DEFAULT_REASON


def settled(children: list[Execution]) -> bool:
    """Every child has stopped: Suspended or finished."""
    return all(c.phase in TERMINAL_PHASES or c.phase == Phase.SUSPENDED for c in children)


def request_suspend(ex: Execution, pod: PodView | None, children: list[Execution], plan: Plan,
                    now: datetime) -> None:
    """Pending or Running with spec.suspend: signal the runner and the children; Suspended at once when
    nothing runs. `children` are the owned ones."""
    previous = ex.status.suspension or Suspension()
    record = Suspension(reason=suspend_reason(ex), requestedAt=now, count=previous.count + 1,
                        suspendedSeconds=previous.suspendedSeconds)
    if ex.status.phase is None:  # never decided on before: what _start_when_due would have recorded
        plan.status.set(podName=runner_pod_name_for(ex.name, ex.status.retries), runnerObjects={})
    _suspend_children(ex, children, record.reason, plan)
    told = f"suspend requested: {record.reason}"
    if pod is not None and not pod.terminating:
        plan.actions.append(DeletePod(pod.name, ex.spec.gracePeriodSeconds, pod.uid))
        told += f"; runner pod {pod.name} deleted with grace period {ex.spec.gracePeriodSeconds}s (SIGTERM)"
    if pod is None and settled(children):
        _conclude(ex, record, Outcome.NOT_STARTED if timing.in_backoff(ex) else _outcome(ex, record), told, plan, now)
        return
    plan.status.set(phase=Phase.SUSPENDING, suspension=record)
    plan.cancel_record = True  # read from nothing the runner writes: not fenced (PatchStatus.fenced)
    plan.event(EventReason.SUSPEND_REQUESTED, told, key=str(record.count))


def suspending(ex: Execution, pod: PodView | None, children: list[Execution], plan: Plan, now: datetime) -> None:
    """Waits for the pod to go and the children to stop; force-deletes a pod overdue past its grace period."""
    recorded = ex.status.suspension or Suspension(reason=suspend_reason(ex), requestedAt=now, count=1)
    record = recorded.model_copy()
    _suspend_children(ex, children, record.reason, plan)  # spawned meanwhile, or a patch to try again
    if pod is not None and not pod.terminating:
        plan.actions.append(DeletePod(pod.name, ex.spec.gracePeriodSeconds, pod.uid))  # a restart before it went
    if pod is not None and force_due(pod, record.forcedAt, now):
        plan.actions.append(DeletePod(pod.name, 0, pod.uid))
        record.forcedAt = now
        plan.event(EventReason.FORCE_DELETED, f"runner pod {pod.name} was still terminating past its grace "
                   "period (is its node down?): force-deleted", "Warning", key=f"suspend-{record.count}")
    # Gone, not only stopped: a resume makes a pod of the same name.
    if pod is None and settled(children):
        _conclude(ex, record, _outcome(ex, record), "", plan, now)
        return
    if record != recorded or ex.status.suspension is None:
        plan.status.set(suspension=record)


def suspended(ex: Execution, intent: CancelIntent | None, children: list[Execution], plan: Plan, now: datetime,
              family: Family) -> bool:
    """A Suspended execution: cancelled at once, or resumed. False: the decision is not made here (a cancel
    with children still stopping goes the cancel's usual way; a resume starts its runner in machine.py)."""
    if intent is not None:
        if intent.cascade and not _all_suspended(children, family):
            return False
        cancel_at_once(ex, intent, children, plan, now, family, Outcome.WHILE_SUSPENDED, "suspended")
        return True
    if ex.spec.suspend:
        _suspend_late_children(ex, children, plan)
        return True  # stays as it is
    _resume(ex, children, plan, now)
    return False


def _suspend_late_children(ex: Execution, children: list[Execution], plan: Plan) -> None:
    """A child whose create raced the suspend (a spawn the last Running pass made, seen only once the parent
    concluded) is suspended as its siblings were: a live child never suspended is one. Once: a child suspended
    before (its status.suspension), and resumed by hand since, runs on."""
    record = ex.status.suspension or Suspension()
    late = [c for c in children if c.status.suspension is None]
    _suspend_children(ex, late, record.reason or suspend_reason(ex), plan)


def _all_suspended(children: list[Execution], family: Family) -> bool:
    """Every live descendant Suspended, at every level: a grandchild resumed by hand under a Suspended child
    runs, and its ancestors may not be Cancelled at once while it does."""
    level = children
    while level:
        live = [c for c in level if c.phase not in TERMINAL_PHASES]
        if any(c.phase != Phase.SUSPENDED for c in live):
            return False
        level = [g for c in live for g in owned_children(c, family.get(c.name, []))]
    return True


def _resume(ex: Execution, children: list[Execution], plan: Plan, now: datetime) -> None:
    """Pending again, the time suspended added up; the children this parent suspended resume with it."""
    record = (ex.status.suspension or Suspension()).model_copy()
    since = record.suspendedAt or record.requestedAt or now
    record.suspendedSeconds = timing.paused_seconds(record.suspendedSeconds, since, now)
    record.resumedAt = now
    for child in children:
        by = (child.metadata.get("annotations") or {}).get(SUSPENDED_BY_ANNOTATION)
        if child.spec.suspend and child.phase not in TERMINAL_PHASES and by == ex.name:
            plan.actions.append(SuspendChild(child.name, False))
    plan.status.set(phase=Phase.PENDING, suspension=record, message=None)
    state = ex.status.checkpoint.state if ex.status.checkpoint is not None else None
    if state in (Phase.CANCELLED, Phase.WAITING):
        # Its last checkpoint answered the suspend's SIGTERM, or a durable sleep's: no verdict. The steps stay,
        # and a sleep whose time has not come sleeps on in the new pod.
        plan.status.set(checkpoint=VERDICT_TAKEN_BACK if state == Phase.CANCELLED else RUN_AGAIN)
    plan.event(EventReason.RESUMED, f"resumed after {record.suspendedSeconds}s suspended in all: a new pod "
               "continues from the last checkpoint", key=f"suspend-{record.count}")


def _suspend_children(ex: Execution, children: list[Execution], reason: str, plan: Plan) -> None:
    asked = f"parent {ex.name} suspended: {reason}"[:MAX_REASON]
    for child in children:
        if child.phase not in TERMINAL_PHASES and not child.spec.suspend and child.spec.cancel is None:
            plan.actions.append(SuspendChild(child.name, True, asked, ex.name))


def _conclude(ex: Execution, record: Suspension, outcome: Outcome, told: str, plan: Plan, now: datetime) -> None:
    record = record.model_copy(update={"suspendedAt": now, "outcome": outcome, "resumedAt": None})
    plan.status.set(phase=Phase.SUSPENDED, suspension=record, message=f"suspended ({outcome}): {record.reason}"[:8192])
    said = f"suspended ({outcome}){_MESSAGES.get(outcome, '')}"
    plan.event(EventReason.SUSPENDED, f"{told}; {said}" if told else said, key=str(record.count))


def _outcome(ex: Execution, record: Suspension) -> Outcome:
    """How the runner stopped, with a cancel's meanings."""
    checkpoint = ex.status.checkpoint
    if checkpoint is not None and checkpoint.state == Phase.WAITING:
        return Outcome.GRACEFUL  # it had ended its pod to wait
    if checkpoint is not None and checkpoint.state == Phase.CANCELLED:
        return Outcome.CLEANUP_FAILED if checkpoint.error else Outcome.GRACEFUL
    if ex.status.startedAt is None and checkpoint is None:
        return Outcome.NOT_STARTED
    return Outcome.FORCE_DELETED if record.forcedAt is not None else Outcome.KILLED


_MESSAGES = {
    Outcome.CLEANUP_FAILED: ": the workflow stopped but its cleanup raised",
    Outcome.KILLED: ": the grace period ran out before the workflow finished cleaning up (SIGKILL); steps not "
                    "in the last checkpoint run again on resume",
    Outcome.FORCE_DELETED: ": its pod outlived the grace period and was force-deleted",
}
