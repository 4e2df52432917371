"""The Schedule state machine: a Schedule and the runs it owns in, actions out. Pure: no I/O, no clock.

Runs are named `<schedule>-<minutes since 1970 of the cron time>`, so creating one twice is a
harmless conflict, and after any downtime only the latest missed time is considered: at most one
run starts, never a burst. Cron times come from `croniter`, in the Schedule's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from flux_api import API_VERSION, KIND, TERMINAL_PHASES, Execution, Phase
from flux_api.conditions import set_condition
from flux_api.names import SCHEDULE_KIND, SCHEDULE_LABEL, SCHEDULED_AT_ANNOTATION
from flux_api.schedule import ConcurrencyPolicy, Schedule, ScheduleStatus
from flux_api.timefmt import format_time, parse_time
from flux_api.types import status_patch

READY = "Ready"


@dataclass(frozen=True)
class CreateRun:
    name: str
    body: dict[str, Any]


@dataclass(frozen=True)
class ReplaceRun:
    """Cancel an active run through spec.cancel; the annotation makes its source `replaced`."""

    name: str
    reason: str


@dataclass(frozen=True)
class DeleteRun:
    name: str
    uid: str


@dataclass(frozen=True)
class Suspend:
    """The workflow called ctx.unschedule: set spec.suspend, as a user would."""

    reason: str


@dataclass(frozen=True)
class PatchScheduleStatus:
    patch: dict[str, Any]


@dataclass(frozen=True)
class ScheduleEvent:
    reason: str
    message: str
    type: str = "Normal"


ScheduleAction = CreateRun | ReplaceRun | DeleteRun | Suspend | PatchScheduleStatus | ScheduleEvent


@dataclass
class Decision:
    actions: list[ScheduleAction] = field(default_factory=list)
    requeue_after: float | None = None


class InvalidSchedule(ValueError):
    pass


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise InvalidSchedule(f"unknown time zone {name!r}") from err


def check_cron(expression: str) -> str:
    expression = expression.strip()
    if not (expression.startswith("@") or len(expression.split()) == 5) or not croniter.is_valid(expression):
        raise InvalidSchedule(f"invalid cron expression {expression!r}")
    return expression


def latest_due(expression: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The latest cron time at or before `now` (UTC)."""
    moment = croniter(expression, now.astimezone(tz) + timedelta(microseconds=1)).get_prev(datetime)
    return moment.astimezone(timezone.utc)


def next_due(expression: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The first cron time after `now` (UTC)."""
    return croniter(expression, now.astimezone(tz)).get_next(datetime).astimezone(timezone.utc)


def run_name(schedule: str, moment: datetime) -> str:
    return f"{schedule}-{int(moment.timestamp()) // 60}"


def run_body(schedule: Schedule, name: str, moment: datetime) -> dict[str, Any]:
    template = schedule.spec.executionTemplate
    meta = template.metadata
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {
            "name": name, "namespace": schedule.namespace,
            "labels": {**(meta.labels if meta else {}), SCHEDULE_LABEL: schedule.name},
            "annotations": {**(meta.annotations if meta else {}), SCHEDULED_AT_ANNOTATION: format_time(moment)},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": SCHEDULE_KIND, "name": schedule.name,
                                 "uid": schedule.metadata.get("uid", ""), "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": template.spec.model_dump(mode="json", exclude_none=True),
    }


def _history(schedule: Schedule, runs: list[Execution]) -> list[DeleteRun]:
    """The oldest finished runs beyond each history limit."""
    limits = {Phase.SUCCEEDED: schedule.spec.successfulExecutionsHistoryLimit,
              Phase.FAILED: schedule.spec.failedExecutionsHistoryLimit,
              Phase.CANCELLED: schedule.spec.cancelledExecutionsHistoryLimit}
    doomed = []
    for phase, limit in limits.items():
        done = sorted((r for r in runs if r.phase == phase), key=lambda r: (r.status.finishedAt or "", r.name),
                      reverse=True)
        doomed += [DeleteRun(r.name, r.metadata.get("uid", "")) for r in done[limit:]]
    return doomed


def _unschedule_request(schedule: Schedule, runs: list[Execution]) -> Execution | None:
    """A run whose workflow called ctx.unschedule and that this Schedule has not answered yet."""
    answered = schedule.status.lastUnschedule.execution if schedule.status.lastUnschedule else None
    asking = [r for r in runs if r.status.unscheduleRequest is not None and r.name != answered]
    return min(asking, key=lambda r: r.name) if asking else None


def decide_schedule(schedule: Schedule, runs: list[Execution], now: datetime) -> Decision:
    decision = Decision()
    status: dict[str, Any] = {}
    old = schedule.status.model_dump(mode="json", exclude_none=True)
    conditions = [c.model_dump(exclude_none=True) for c in schedule.status.conditions]
    generation = schedule.metadata.get("generation")
    active = sorted(r.name for r in runs if r.phase not in TERMINAL_PHASES)
    suspended = schedule.spec.suspend

    asking = _unschedule_request(schedule, runs)
    if asking is not None and asking.status.unscheduleRequest is not None:
        reason = asking.status.unscheduleRequest.reason
        status["lastUnschedule"] = {"execution": asking.name, "reason": reason, "at": format_time(now)}
        decision.actions.append(Suspend(reason))
        decision.actions.append(ScheduleEvent("Unscheduled", f"{asking.name} asked to unschedule: {reason}"))
        suspended = True

    decision.actions += _history(schedule, runs)
    succeeded = [parse_time(r.metadata.get("annotations", {}).get(SCHEDULED_AT_ANNOTATION))
                 for r in runs if r.phase == Phase.SUCCEEDED]
    if any(succeeded):
        status["lastSuccessfulTime"] = format_time(max(s for s in succeeded if s))

    try:
        expression, tz = check_cron(schedule.spec.schedule), zone(schedule.spec.timeZone)
    except InvalidSchedule as err:
        set_condition(conditions, READY, False, "InvalidSchedule", str(err), generation, format_time(now))
        status.update(active=[{"name": n} for n in active], nextScheduleTime=None, message=str(err))
        decision.actions.append(ScheduleEvent("InvalidSchedule", str(err), "Warning"))
        return _finish(decision, schedule, old, status, conditions)

    if suspended:
        set_condition(conditions, READY, True, "Suspended", "suspended: no new runs", generation, format_time(now))
        status.update(active=[{"name": n} for n in active], nextScheduleTime=None, message="suspended")
        return _finish(decision, schedule, old, status, conditions)

    if any(c.type == READY and c.reason == "Suspended" for c in schedule.status.conditions):
        status["resumedAt"] = format_time(now)  # the times missed while suspended are not made up
    moments = [parse_time(t) for t in (status.get("resumedAt") or schedule.status.resumedAt,
                                       schedule.status.lastScheduleTime, schedule.metadata.get("creationTimestamp"))]
    since = max((m for m in moments if m is not None), default=now)
    due = latest_due(expression, tz, now)
    upcoming = next_due(expression, tz, now)
    message = None
    if due > since:
        name = run_name(schedule.name, due)
        late = (now - due).total_seconds()
        deadline = schedule.spec.startingDeadlineSeconds
        existing = {r.name for r in runs}
        if name in existing:
            status["lastScheduleTime"] = format_time(due)
        elif deadline is not None and late > deadline:
            message = f"missed the run of {format_time(due)} by {late:.0f}s (startingDeadlineSeconds {deadline})"
            decision.actions.append(ScheduleEvent("MissedSchedule", message, "Warning"))
            status["lastScheduleTime"] = format_time(due)  # skipped for good: never started late
        elif active and schedule.spec.concurrencyPolicy == ConcurrencyPolicy.FORBID:
            message = f"run of {format_time(due)} waits: {', '.join(active)} still active (concurrencyPolicy Forbid)"
            decision.actions.append(ScheduleEvent("SkippedForbid", message))
        else:
            if schedule.spec.concurrencyPolicy == ConcurrencyPolicy.REPLACE:
                for run in (r for r in runs if r.name in active and r.spec.cancel is None):
                    decision.actions.append(ReplaceRun(
                        run.name, f"replaced by {name}: schedule {schedule.name} has concurrencyPolicy Replace"))
            decision.actions.append(CreateRun(name, run_body(schedule, name, due)))
            decision.actions.append(ScheduleEvent("RunStarted", f"started {name} for {format_time(due)}"))
            status["lastScheduleTime"] = format_time(due)
            active = sorted({*active, name})
        if deadline is not None and message and "waits" in message and late <= deadline:
            # Forbid: look again when the deadline for this run passes (a finished run also wakes us).
            decision.requeue_after = max(1.0, deadline - late)
    set_condition(conditions, READY, True, "Scheduled", f"next run at {format_time(upcoming)}", generation,
                  format_time(now))
    status.update(active=[{"name": n} for n in active], nextScheduleTime=format_time(upcoming), message=message)
    wait = (upcoming - now).total_seconds()
    decision.requeue_after = min(decision.requeue_after or wait, wait)
    return _finish(decision, schedule, old, status, conditions)


def _finish(decision: Decision, schedule: Schedule, old: dict[str, Any], status: dict[str, Any],
            conditions: list[dict[str, Any]]) -> Decision:
    status["conditions"] = conditions
    status["observedGeneration"] = schedule.metadata.get("generation")
    changed = {k: v for k, v in status.items() if old.get(k) != v and not (v is None and k not in old)}
    if changed:
        decision.actions.append(PatchScheduleStatus(status_patch(changed, ScheduleStatus)))
    return decision
