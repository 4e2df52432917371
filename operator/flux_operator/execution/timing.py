"""The times an execution waits for: its start time, a retry's backoff, its deadline, its TTL. Pure, like
decide().

Nothing announces these moments with an event, so the reconciler asks `next_wakeup` and puts the key
back on the queue for then; after an operator restart the same times are read from the object again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flux_api import TERMINAL_PHASES, Execution, Phase
from flux_api.conditions import STARTED, StartedReason
from flux_api.timefmt import parse_time
from flux_api.types import MAX_PAUSED_SECONDS

from flux_operator.execution import waiting

MAX_BACKOFF_SECONDS = 3600


def deadline_at(ex: Execution) -> datetime | None:
    """When spec.activeDeadlineSeconds runs out: counted from the start, or from creation if it never started,
    leaving out the time spent Suspended and the time a resumed run waited for admission (none while either
    lasts)."""
    if ex.spec.activeDeadlineSeconds is None or ex.phase == Phase.SUSPENDED:
        return None
    if queued_since(ex) is not None:
        return None  # waiting for a slot or for Kueue: not its fault, not counted
    start = ex.status.startedAt or parse_time(ex.metadata.get("creationTimestamp"))
    paused = min((ex.status.suspension.suspendedSeconds if ex.status.suspension else 0) + ex.status.queuedSeconds,
                 MAX_PAUSED_SECONDS)
    return start + timedelta(seconds=ex.spec.activeDeadlineSeconds + paused) if start else None


def paused_seconds(so_far: int, since: datetime, now: datetime) -> int:
    """Seconds paused (suspended, or queued after a start) with the time since `since` added: whole seconds,
    never less than before, at most the schema's bound."""
    return min(so_far + max(0, int((now - since).total_seconds())), MAX_PAUSED_SECONDS)


def queued_since(ex: Execution) -> datetime | None:
    """Since when it waits for a concurrency limit's slot or an admission (Started=False, reason Queued). The
    condition's transition time is when Started went False, which for a retry is its failure, not its queueing:
    the wait began no sooner than its backoff (or start time) ended."""
    went_false = next((c.lastTransitionTime for c in ex.status.conditions
                       if c.type == STARTED and c.status == "False" and c.reason == StartedReason.QUEUED), None)
    if went_false is None:
        return None
    could_start = may_start_at(ex)
    return max(went_false, could_start) if could_start is not None else went_false


def start_at(ex: Execution) -> datetime | None:
    """When the first run may start: spec.startAt, for an execution that has never run."""
    if ex.status.startedAt is not None or ex.status.checkpoint is not None:
        return None
    return ex.spec.startAt


def retry_at(ex: Execution) -> datetime | None:
    """When the pending retry starts; None unless a retry is waiting for its pod (Pending, or Suspended in its
    backoff: a resume does not cut the backoff short)."""
    if ex.phase not in (Phase.PENDING, Phase.SUSPENDED):
        return None
    return ex.status.nextRetryAt


def may_start_at(ex: Execution) -> datetime | None:
    """The moment the runner pod may be created (a retry's backoff, or spec.startAt); None: no such wait."""
    return retry_at(ex) or start_at(ex)


def waiting_until(ex: Execution, now: datetime) -> datetime | None:
    """The moment the runner pod may be created, if that is still in the future."""
    moment = may_start_at(ex)
    return moment if moment is not None and moment > now else None


def in_backoff(ex: Execution) -> bool:
    """A retry is scheduled and its pod not started: nothing runs now."""
    return retry_at(ex) is not None


def can_retry(ex: Execution) -> bool:
    return ex.spec.retry is not None and (ex.status.retries or 0) < ex.spec.retry.limit


def backoff(ex: Execution) -> timedelta:
    """backoffSeconds, doubled for each retry already made, at most an hour."""
    assert ex.spec.retry is not None
    seconds = ex.spec.retry.backoffSeconds * 2 ** (ex.status.retries or 0)
    return timedelta(seconds=min(seconds, max(MAX_BACKOFF_SECONDS, ex.spec.retry.backoffSeconds)))


def _wakes(ex: Execution) -> datetime | None:
    """When a durable wait ends (waiting.ends_at); None when that is an event's to say (a signal, the pod gone)."""
    at = waiting.ends_at(ex) if ex.phase == Phase.WAITING else None
    return None if at == waiting.AT_ONCE else at


def expires_at(ex: Execution) -> datetime | None:
    """When a finished execution is deleted (ttlSecondsAfterFinished); None: kept."""
    if ex.phase not in TERMINAL_PHASES or ex.spec.ttlSecondsAfterFinished is None:
        return None
    finished = ex.status.finishedAt
    return finished + timedelta(seconds=ex.spec.ttlSecondsAfterFinished) if finished else None


def next_wakeup(ex: Execution, now: datetime, deadline: datetime | None) -> float | None:
    """Seconds until the next moment that changes a decision with no event to announce it."""
    if ex.phase in TERMINAL_PHASES:
        moments = [expires_at(ex)]
    elif ex.phase == Phase.CANCELLING or ex.spec.cancel is not None:
        return None  # a deadline already fired, or a cancel is on its way: nothing to wait for here
    else:
        moments = [deadline, waiting_until(ex, now), _wakes(ex)]
    found = [m for m in moments if m is not None]
    return max(0.0, (min(found) - now).total_seconds()) if found else None
