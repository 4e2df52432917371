"""metav1.Condition bookkeeping: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

STARTED = "Started"
CANCEL_REQUESTED = "CancelRequested"
FINISHED = "Finished"
READY = "Ready"  # a Schedule's


class StartedReason(StrEnum):
    """Reasons of the Started condition, as the operator writes them (readers need not parse messages)."""

    RUNNER_STARTED = "RunnerStarted"
    START_AT_NOT_REACHED = "StartAtNotReached"
    RETRY_BACKOFF = "RetryBackoff"
    QUOTA_EXCEEDED = "QuotaExceeded"
    RUNNER_DELAYED = "RunnerDelayed"
    RUNNER_UNSCHEDULABLE = "RunnerUnschedulable"
    QUEUED = "Queued"  # a ConcurrencyLimit it matches is full
    RUNNER_IMAGE_NOT_PULLED = "RunnerImageNotPulled"  # the kubelet cannot pull the runner's image
    RUNNER_CONFIG_MISSING = "RunnerConfigMissing"  # a Secret or ConfigMap the pod names is not there


class ReadyReason(StrEnum):
    """Reasons of a Schedule's Ready condition."""

    SCHEDULED = "Scheduled"
    SUSPENDED = "Suspended"
    INVALID_SCHEDULE = "InvalidSchedule"
    RUN_REFUSED = "RunRefused"  # the API server refused the last run's create for good


# Started=False with one of these: Pending, and the runner is not running yet for a known reason (a start time,
# a full quota, a refused create that is retried, no node that fits its pod). A retry's backoff says so in
# status.nextRetryAt instead.
WAITING_REASONS = frozenset({StartedReason.START_AT_NOT_REACHED, StartedReason.QUOTA_EXCEEDED,
                             StartedReason.RUNNER_DELAYED, StartedReason.RUNNER_UNSCHEDULABLE,
                             StartedReason.QUEUED})
# How the operator's message starts when it waits on purpose (a reason in WAITING_REASONS); readers show the rest.
WAITING_PREFIX = "waiting: "


def set_condition(conditions: list[dict[str, Any]], type_: str, ok: bool, reason: str, message: str,
                  generation: int | None, now: str) -> None:
    status = "True" if ok else "False"
    for condition in conditions:
        if condition["type"] == type_:
            if condition["status"] != status:
                condition["lastTransitionTime"] = now
            condition.update(status=status, reason=reason, message=message)
            if generation is not None:
                condition["observedGeneration"] = generation
            return
    new = {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
    if generation is not None:
        new["observedGeneration"] = generation
    conditions.append(new)
