"""Every reason the operator posts on a Kubernetes Event, in one enum.

The strings are an interface: dashboards and alerts select Events by them, so a member's value never
changes. A StrEnum equals its string, so a reader comparing with the plain string keeps working.
"""

from __future__ import annotations

from enum import StrEnum

# An Event's message is cut to this many characters (the API server refuses a longer one).
MAX_MESSAGE = 1024


class EventReason(StrEnum):
    # --- an execution's cancel
    CANCEL_REQUESTED = "CancelRequested"
    SIGNALLED = "Signalled"
    SIGNAL_FAILED = "SignalFailed"
    FORCE_DELETED = "ForceDeleted"
    CANCELLED = "Cancelled"
    CANCEL_IGNORED = "CancelIgnored"
    # --- an execution's run
    STARTED = "Started"
    RETRY_STARTED = "RetryStarted"
    RETRY_SCHEDULED = "RetryScheduled"
    RESUMED = "Resumed"  # a new pod after an eviction or a drain, or spec.suspend set back to false
    SUSPEND_REQUESTED = "SuspendRequested"
    SUSPENDED = "Suspended"
    WAITING = "Waiting"  # the runner ended its pod for a durable sleep
    WOKEN = "Woken"  # its wake time came, or the signal it waited for: a new pod goes on
    SIGNAL_RECEIVED = "SignalReceived"
    RUNNER_DELAYED = "RunnerDelayed"
    RUNNER_UNSCHEDULABLE = "RunnerUnschedulable"
    RUNNER_NOT_CREATED = "RunnerNotCreated"  # its container cannot be made: the image, or a Secret/ConfigMap
    RUNNER_REFUSED = "RunnerRefused"
    LIMIT_EXCEEDED = "LimitExceeded"
    RECONCILE_FAILED = "ReconcileFailed"
    NAMESPACE_NOT_ENABLED = "NamespaceNotEnabled"
    # --- an execution's children
    SPAWN_REFUSED = "SpawnRefused"
    SPAWN_CONFLICT = "SpawnConflict"
    # --- a Schedule
    RUN_STARTED = "RunStarted"
    RUN_NAME_TAKEN = "RunNameTaken"
    UNSCHEDULED = "Unscheduled"
    INVALID_SCHEDULE = "InvalidSchedule"
    INVALID_TEMPLATE = "InvalidTemplate"
    MISSED_SCHEDULE = "MissedSchedule"
    SKIPPED_FORBID = "SkippedForbid"
    TOO_MANY_RUNS = "TooManyRuns"
    RUN_REFUSED = "RunRefused"
