"""Schedules in the plugin: pure logic (patches, rows) and the actions that call Kube.

`unschedule` and `schedule suspend` set spec.suspend, exactly what `kubectl patch` of suspend does;
the reason goes into an annotation so `schedule list` can say why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flux_api.names import SCHEDULE_LABEL, UNSCHEDULE_REASON_ANNOTATION
from flux_api.schedule import ScheduleSpec, ScheduleStatus

from flux_cli import objects
from flux_cli.durations import age
from flux_cli.errors import ArgumentError
from flux_cli.executions.cancelling import build_cancel_patch
from flux_cli.kube import Kube

MAX_REASON = 1024


def suspend_patch(reason: str | None) -> dict[str, Any]:
    if reason is not None and not (0 < len(reason.strip()) and len(reason) <= MAX_REASON):
        raise ArgumentError(f"--reason must be 1 to {MAX_REASON} characters")
    return {"metadata": {"annotations": {UNSCHEDULE_REASON_ANNOTATION: reason}}, "spec": {"suspend": True}}


def resume_patch() -> dict[str, Any]:
    return {"metadata": {"annotations": {UNSCHEDULE_REASON_ANNOTATION: None}}, "spec": {"suspend": False}}


@dataclass
class UnscheduleResult:
    schedule: str
    namespace: str
    reason: str | None
    cancelled: list[str] = field(default_factory=list)
    already_suspended: bool = False


def unschedule(kube: Kube, namespace: str, name: str, reason: str | None, cancel_running: bool) -> UnscheduleResult:
    patch = suspend_patch(reason)
    if cancel_running:
        build_cancel_patch(reason or "unscheduled")  # checks the reason before any change
    before = kube.get_schedule(namespace, name)
    kube.patch_schedule(namespace, name, patch)
    result = UnscheduleResult(name, namespace, reason,
                              already_suspended=objects.lenient(ScheduleSpec, objects.spec(before)).suspend)
    if cancel_running:
        runs = own_runs(before, kube.list_executions(namespace, f"{SCHEDULE_LABEL}={name}"))
        for run in sorted(runs, key=objects.name_of):
            if not objects.is_terminal(run) and not objects.spec_cancel(run):
                kube.patch_execution(namespace, objects.name_of(run),
                                     build_cancel_patch(f"unscheduled: {reason}" if reason else "unscheduled"))
                result.cancelled.append(objects.name_of(run))
    return result


def own_runs(schedule: dict[str, Any], labelled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Schedule's runs as the operator counts them: in its record (status.runs) and controlled by it.
    Anyone may label an Execution as a run; --cancel-running must not cancel look-alikes."""
    uid = objects.metadata(schedule).get("uid")
    recorded = objects.status(schedule).get("runs")
    return [run for run in labelled
            if any(o.get("uid") == uid and o.get("controller") for o in objects.metadata(run).get("ownerReferences") or []
                   if isinstance(o, dict))
            and (not isinstance(recorded, list) or objects.metadata(run).get("uid") in recorded)]


def resume(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    kube.get_schedule(namespace, name)  # a clear "not found" before anything else
    return kube.patch_schedule(namespace, name, resume_patch())


def rows(schedules: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """One row per Schedule, read through the flux_api models (leniently), sorted like kubectl get."""
    out = []
    for obj in sorted(schedules, key=objects.key_of):
        spec = objects.lenient(ScheduleSpec, objects.spec(obj))
        written = objects.status(obj)
        status = objects.lenient(ScheduleStatus, written)
        why = objects.annotations_of(obj).get(UNSCHEDULE_REASON_ANNOTATION) or (
            status.lastUnschedule.reason if status.lastUnschedule else None)
        out.append({
            "name": objects.name_of(obj),
            "namespace": objects.namespace_of(obj),
            "schedule": spec.schedule,
            "timeZone": spec.timeZone or "UTC",
            "suspend": spec.suspend,
            "reason": why if spec.suspend else None,
            "active": [active.name for active in status.active],
            "lastScheduleTime": written.get("lastScheduleTime") if status.lastScheduleTime else None,  # as written
            "lastAgo": age(status.lastScheduleTime, now),
            "nextScheduleTime": written.get("nextScheduleTime") if status.nextScheduleTime else None,
            "age": age(objects.created_at(obj), now),
        })
    return out
