"""When to look at an execution again with no watch event to announce it (the reconcile's requeue)."""

from __future__ import annotations

from datetime import datetime

from flux_api import TERMINAL_PHASES, Phase

from flux_operator.execution import timing
from flux_operator.execution.cancel import escalation_due, request_told_at
from flux_operator.ownership import Memory

# A pod still there after its force delete: how often to look at it again (its watch says when it goes).
FORCED_LOOK_SECONDS = 30.0


def next_wakeup(ex, pod, now: datetime, memory: Memory) -> float | None:
    """Seconds until something changes with no event to announce it: a deadline, a start time, the end of a
    backoff or of the TTL (execution/timing.py), a terminating pod becoming overdue, or a refused create's retry."""
    due = timing.next_wakeup(ex, now, timing.deadline_at(ex))
    retries = [(r.retry_at - now).total_seconds() for r in memory.refusals.values() if r.retry_at is not None]
    if retries and ex.phase not in TERMINAL_PHASES:
        due = _sooner(due, max(0.0, min(retries)))
    if ex.phase in (Phase.CANCELLING, Phase.SUSPENDING) and (overdue := escalation_due(pod)) is not None:
        # Overdue: look again in a moment for the force delete; once it went out, only finalizers keep the pod
        # and its watch says when they go: a rare look, not a loop.
        record = ex.status.cancellation if ex.phase == Phase.CANCELLING else ex.status.suspension
        forced = record is not None and record.forcedAt is not None
        due = _sooner(due, (overdue - now).total_seconds() if overdue > now else FORCED_LOOK_SECONDS if forced
                      else 2.0)
    if ex.phase == Phase.CANCELLING and (told := request_told_at(ex)) is not None and told > now:
        due = _sooner(due, (told - now).total_seconds())  # a slow cancel's CancelRequested Event
    return due


def _sooner(due: float | None, seconds: float) -> float:
    return seconds if due is None else min(due, seconds)
