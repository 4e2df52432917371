"""What the metrics are made of, worked out without Prometheus: pure, so each is unit-tested with its edges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flux_api import TERMINAL_PHASES, Phase
from flux_api.conditions import StartedReason
from flux_api.timefmt import parse_time

# World.watched(): (key, raw execution) pairs, and when each cancel was seen reaching the API.
Watched = tuple[list[tuple[tuple[str, str], dict[str, Any]]], dict[tuple[str, str], datetime]]


@dataclass(frozen=True)
class QueueStats:
    ready: int
    delayed: int
    busy: int


@dataclass(frozen=True)
class LimitShown:
    """A ConcurrencyLimit as its status shows it (active and queued are None while it is not applied)."""

    namespace: str
    name: str
    max: int
    active: int | None
    queued: int | None


@dataclass(frozen=True)
class Transition:
    """A status write that started an execution (seconds since its creation) or ended it (its phase and seconds
    since it started, or since its creation if it never started)."""

    started_after: float | None = None
    ended: Phase | None = None
    ran_for: float | None = None


def transition(before_phase: Phase | None, before_started: datetime | None, written: dict[str, Any]) -> Transition:
    """From the phase and start time before a status write and the object the write returned."""
    status = written.get("status") or {}
    created = parse_time((written.get("metadata") or {}).get("creationTimestamp"))
    started = _time(status.get("startedAt"))
    phase = _phase(status.get("phase"))
    started_after = None
    if before_started is None and started is not None and created is not None:
        started_after = (started - created).total_seconds()
    if phase not in TERMINAL_PHASES or before_phase in TERMINAL_PHASES:
        return Transition(started_after=started_after)
    ended_at = _time(status.get("finishedAt")) or _time((status.get("cancellation") or {}).get("completedAt"))
    begun = started or created
    ran_for = (ended_at - begun).total_seconds() if ended_at is not None and begun is not None else None
    return Transition(started_after=started_after, ended=phase, ran_for=ran_for)


def resource_of(path: str) -> str:
    """The resource (and subresource) a request's path names, for a label of bounded cardinality:
    /api/v1/namespaces/a/pods/b -> pods; /apis/g/v/namespaces/a/executions/b/status -> executions/status."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts[:1] == ["api"]:
        parts = parts[2:]
    elif parts[:1] == ["apis"]:
        parts = parts[3:]
    else:
        return "other"
    if len(parts) >= 2 and parts[0] == "namespaces":
        parts = parts[2:] if len(parts) > 2 else ["namespaces"]
    if not parts:
        return "other"
    return parts[0] if len(parts) < 3 else f"{parts[0]}/{parts[2]}"


def oldest_age(times: list[datetime], now: datetime) -> float:
    """Seconds since the earliest of `times`; 0 when there are none."""
    return max((now - min(times)).total_seconds(), 0.0) if times else 0.0


def _time(value: Any) -> datetime | None:
    return parse_time(value) if isinstance(value, (str, datetime)) else None


def _phase(value: Any) -> Phase | None:
    try:
        return Phase(value)
    except ValueError:
        return None


def cancelling_since(watched: Watched, default_grace: float | None = None) -> list[datetime]:
    """When the cancel of each execution still Cancelling reached the API, or else was recorded (a deadline's):
    for flux_oldest_cancelling_seconds. With `default_grace`, when each ran out of its grace period instead
    (its spec.gracePeriodSeconds, else that): for flux_oldest_cancel_overdue_seconds, which a tenant's long
    grace period cannot raise."""
    held, asked = watched
    times = []
    for key, raw in held:
        spec, status = raw.get("spec") or {}, raw.get("status") or {}
        at = asked.get(key) or parse_time((status.get("cancellation") or {}).get("requestedAt"))
        if status.get("phase") != Phase.CANCELLING or at is None:
            continue
        grace = spec.get("gracePeriodSeconds")
        grace = grace if isinstance(grace, int) and not isinstance(grace, bool) else default_grace
        times.append(at if default_grace is None else at + timedelta(seconds=grace or 0))
    return times


def _namespace_own_wait(spec: dict, status: dict) -> bool:
    """Pending on the namespace's own account: a queue it asked for (a ConcurrencyLimit, Kueue), its own
    ResourceQuota full (until a pod is made: one made that then sticks is the platform's to see), an image of
    its own (spec.image) that cannot be pulled, or a Secret or ConfigMap its template names that is missing. A
    tenant's own mistake must not hold the platform's alert up for everyone; the runner image not pulled does."""
    reasons = {c.get("reason") for c in status.get("conditions") or []
               if isinstance(c, dict) and c.get("status") == "False"}
    pod_made = bool((((status.get("runnerObjects") or {}).get("pod")) or {}).get("uid"))
    own_image = bool(spec.get("image")) and StartedReason.RUNNER_IMAGE_NOT_PULLED in reasons
    # Its own template names Secrets or ConfigMaps; a platform's --runner-pod-template naming a missing one is
    # the platform's (without a template of its own, the tenant named none).
    own_config = bool(spec.get("podTemplate")) and StartedReason.RUNNER_CONFIG_MISSING in reasons
    return StartedReason.QUEUED in reasons or (StartedReason.QUOTA_EXCEEDED in reasons and not pod_made) or \
        own_image or own_config


def pending_since(watched: Watched) -> list[datetime]:
    """Since when each execution still Pending (not suspended, not waiting on its namespace's own queue or
    quota) could have started: its creation, or its spec.startAt when later. For flux_oldest_pending_seconds."""
    times = []
    for _, raw in watched[0]:
        meta, spec, status = raw.get("metadata") or {}, raw.get("spec") or {}, raw.get("status") or {}
        if (status.get("phase") or Phase.PENDING) != Phase.PENDING or spec.get("suspend") is True or \
                _namespace_own_wait(spec, status):
            continue
        moments = [t for t in (parse_time(meta.get("creationTimestamp")), parse_time(spec.get("startAt"))) if t]
        times.extend([max(moments)] if moments else [])
    return times
